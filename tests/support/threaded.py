"""A local HTTP server on a free loopback port, served from a daemon thread (a context manager)."""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType
from typing import Self


class ThreadedServer:
    """Subclasses build the server in `make_server()` (bound to 127.0.0.1, port 0: the OS picks
    a free port while binding, so parallel runs cannot collide)."""

    name = "test-server"

    def __init__(self) -> None:
        self._server: socketserver.TCPServer | None = None
        self._thread: threading.Thread | None = None

    def make_server(self) -> socketserver.TCPServer:
        raise NotImplementedError

    @property
    def port(self) -> int:
        assert self._server is not None, f"{type(self).__name__} is not started"
        return int(self._server.server_address[1])

    def start(self) -> Self:
        server = self._server = self.make_server()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits for one poll
            name=self.name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""An HTTP ticket endpoint on loopback (`POST` answers 201 with `{"id": "T-<n>"}`); `hold`
cleared makes requests hang until it is set again (a worker can be killed mid-request)."""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.threaded import ThreadedServer


class TicketServer(ThreadedServer):
    name = "ticket-server"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.hold = threading.Event()  # set: answer at once
        self.hold.set()
        self.received = threading.Event()

    def make_server(self) -> socketserver.TCPServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append(
                    {"headers": dict(self.headers), "json": json.loads(body or b"null")}
                )
                server.received.set()
                server.hold.wait(60)
                answer = json.dumps({"id": f"T-{len(server.requests)}"}).encode()
                try:
                    self.send_response(201)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the worker that asked was killed

            def log_message(self, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        return httpd

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}/api/issues"

    def stop(self) -> None:
        self.hold.set()  # release any request still held
        super().stop()

"""A TCP proxy on a chosen loopback port, forwarding to a real server: a broker that appears."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading

from tests.support.threaded import ThreadedServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


class TcpProxy(ThreadedServer):
    """Accepts on 127.0.0.1:`port` and relays each connection to `target` ("host:port")."""

    name = "tcp-proxy"

    def __init__(self, port: int, target: str) -> None:
        super().__init__()
        self.listen_port = port
        host, target_port = target.rsplit(":", 1)
        self.target = (host, int(target_port))

    def make_server(self) -> socketserver.TCPServer:
        target = self.target

        class Relay(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                upstream = socket.create_connection(target, timeout=10)
                upstream.settimeout(None)
                back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
                back.start()
                _pump(self.request, upstream)
                back.join(timeout=30)
                upstream.close()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(("127.0.0.1", self.listen_port), Relay)
        server.daemon_threads = True
        return server

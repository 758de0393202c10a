"""A real HTTP server for probe tests: answers chosen per Host header, on 127.0.0.1.

Real sockets, no sleeps: a "slow" site blocks on an event the test releases at the end, so the
client's own timeout is what ends the wait.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "<html><head><title>Sign in - Redmine</title></head></html>"
    hang: bool = False  # never answer (until the server stops)


@dataclass
class Sites:
    """What the server answers for each Host, and what it was asked."""

    replies: dict[str, Reply] = field(default_factory=dict)
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (host, path, method)
    in_flight: int = 0
    most_in_flight: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(sites: Sites) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host = self.headers.get("Host", "")
            with sites.lock:
                sites.seen.append((host, self.path, "GET"))
                sites.in_flight += 1
                sites.most_in_flight = max(sites.most_in_flight, sites.in_flight)
            try:
                reply = sites.replies.get(host, Reply(404, body="no such vhost"))
                if reply.hang:
                    sites.release.wait()
                    return
                body = reply.body.encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            finally:
                with sites.lock:
                    sites.in_flight -= 1

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serve(sites: Sites) -> Iterator[str]:
    """The server's base URL while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(sites))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        sites.release.set()
        server.shutdown()
        server.server_close()
        thread.join()

"""A real HTTP server for probe tests: answers chosen per Host header, on 127.0.0.1.

Real sockets, no sleeps: a "slow" site blocks on an event the test releases at the end, so the
client's own timeout is what ends the wait.
"""

from __future__ import annotations

import contextlib
import datetime
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


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
    server_names: list[str | None] = field(default_factory=list)  # TLS SNI, as received
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


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` (e.g. *.example.com) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def serve(sites: Sites, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """The server's base URL while the block runs (https with `tls`: certificate and key)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(sites))
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)

        def remember(sock: object, server_name: str | None, ctx: object) -> None:
            sites.server_names.append(server_name)

        context.sni_callback = remember
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        sites.release.set()
        server.shutdown()
        server.server_close()
        thread.join()

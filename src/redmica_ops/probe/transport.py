"""HTTP for the probe: one GET per site, to a base URL with the tenant's Host header.

Redirects are not followed (a redirect's target is part of the judgement). Over https the TLS
server name and the certificate check are the tenant's host, not the address connected to, so
a request through a load balancer's DNS name is checked as the customer's browser checks it.
Only the start of the body is read: enough for the <title>.
"""

from __future__ import annotations

import html
import http.client
import re
import socket
import ssl
from typing import Protocol
from urllib.parse import urlsplit

from redmica_ops import __version__
from redmica_ops.probe.model import Answer, Failure, SiteTarget

BODY_LIMIT = 64 * 1024
USER_AGENT = f"redmica-probe/{__version__}"
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


class TransportError(Exception):
    """No answer: a timeout or a connection that failed; `kind` says which."""

    def __init__(self, kind: Failure, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class Transport(Protocol):
    def fetch(self, target: SiteTarget, timeout: float) -> Answer:
        """The answer to GET target.url with Host target.host; TransportError if none."""


def title_of(body: bytes) -> str | None:
    found = _TITLE.search(body)
    if found is None:
        return None
    text = html.unescape(found.group(1).decode("utf-8", "replace"))
    return " ".join(text.split())


class _TenantHTTPSConnection(http.client.HTTPSConnection):
    """Connects to the base URL's host, but speaks TLS as the tenant's host (SNI, check)."""

    def __init__(
        self,
        host: str,
        port: int | None,
        server_name: str,
        timeout: float,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.server_name = server_name
        self.tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.server_name)


class HttpTransport:
    """The real one (http.client): a fresh connection per site, so no answer leaks across."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context or ssl.create_default_context()

    def fetch(self, target: SiteTarget, timeout: float) -> Answer:
        parts = urlsplit(target.url)
        assert parts.hostname is not None  # checked by model.check_base_url
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = _TenantHTTPSConnection(
                parts.hostname,
                parts.port,
                target.host,
                timeout=timeout,
                context=self.context,
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", target.host)
            connection.putheader("User-Agent", USER_AGENT)
            connection.putheader("Accept", "text/html")
            connection.putheader("Connection", "close")
            connection.endheaders()
            response = connection.getresponse()
            body = response.read(BODY_LIMIT)
            return Answer(
                response.status,
                tuple((k, v) for k, v in response.getheaders()),
                title_of(body),
            )
        except TimeoutError:
            raise TransportError(Failure.TIMEOUT, f"no answer within {timeout:g} s") from None
        except ssl.SSLCertVerificationError as exc:
            reason = f"certificate not valid for {target.host}: {exc.verify_message}"
            raise TransportError(Failure.CONNECTION, reason) from None
        except ssl.SSLError as exc:
            raise TransportError(Failure.CONNECTION, f"TLS failed: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(Failure.CONNECTION, _connection_reason(exc)) from None
        finally:
            connection.close()


def _connection_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"name not resolved ({exc.strerror})"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")

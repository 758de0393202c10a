"""A private PostgreSQL cluster as on RDS, and a PostgreSQL impostor, for the lifecycle's security.

`TlsCluster`: Debian's PostgreSQL server on a free port with its data under a temporary
directory, run as the postgres OS user; TLS only on TCP (`hostssl`, nothing else), with a server
certificate for `localhost` / `127.0.0.1` signed by a CA made here, SCRAM passwords, and an
administrator `master` with CREATEDB and CREATEROLE but not SUPERUSER (what RDS gives). The OS
superuser `postgres` (local socket, trust) only sets the scene and looks at the outcome.

`Impostor`: a server speaking just enough of the v3 protocol to ask for a cleartext password
(AuthenticationCleartextPassword) and record whatever it is sent, with or without TLS (with a
certificate from the same CA, so only channel binding can stop libpq).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from redmica_ops.lifecycle.sql import scram_verifier
from tests.live.redmine import Postgres, free_port, sh

ADMIN = "master"


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key): a CA and a certificate for localhost and 127.0.0.1."""
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    sh("openssl", "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_crt),
       "-days", "2", "-subj", "/CN=redmica test CA")  # fmt: skip
    sh("openssl", "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    extensions = directory / "san.cnf"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
       "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(extensions))  # fmt: skip
    return ca_crt, crt, key


@dataclass
class TlsCluster:
    work: Path
    pg: Postgres
    ca: Path
    admin_password: str = field(default_factory=lambda: f"Master-{os.urandom(12).hex()}")

    @property
    def port(self) -> int:
        return self.pg.port

    def sql(self, statements: str, database: str = "postgres") -> str:
        """As the OS superuser over the local socket: to set the scene and to look."""
        return self.pg.sql(statements, database)

    def scalar(self, statement: str, database: str = "postgres") -> str:
        return self.sql(statement, database).strip()

    def as_login(self, user: str, password: str, statements: str, database: str) -> str:
        """As a tenant's own login over TLS, as its application would connect."""
        pgpass = self.work / f"pgpass-{user}"
        pgpass.write_text(f"127.0.0.1:{self.port}:*:{user}:{password}\n")
        pgpass.chmod(0o600)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PGPASSFILE": str(pgpass),
            "PGSSLMODE": "verify-full",
            "PGSSLROOTCERT": str(self.ca),
        }
        result = subprocess.run(
            [str(self.pg.bin / "psql"), "-X", "-w", "-qAt", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", database, "-f", "-"],
            input=statements, capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"psql as {user}: {result.stderr.strip()[-500:]}")
        return result.stdout

    def is_member(self, role: str, of: str) -> bool:
        found = self.scalar(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid"  # noqa: S608
            f" JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = '{of}'"
            f" AND u.rolname = '{role}';"
        )
        return found != "0"

    def databases(self) -> set[str]:
        return set(self.sql("SELECT datname FROM pg_database;").split())

    def roles(self) -> set[str]:
        return set(self.sql("SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_';").split())


def start_cluster() -> TlsCluster:
    work = Path(tempfile.mkdtemp(prefix="redmica-pg-tls-"))
    work.chmod(0o755)
    ca, crt, key = make_certificates(work)
    pg = Postgres(work / "data", work / "sock", free_port())

    def configure(data: Path) -> None:
        for source, name in ((crt, "server.crt"), (key, "server.key")):
            target = data / name
            shutil.copy(source, target)
            shutil.chown(target, "postgres", "postgres")
            target.chmod(0o600)
        # TLS or nothing on TCP; the local socket (trust) is the OS superuser's back door.
        (data / "pg_hba.conf").write_text(
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
        )

    pg.start(work / "postgres.log", configure, ("ssl=on", "password_encryption=scram-sha-256"))
    cluster = TlsCluster(work, pg, ca)
    verifier = scram_verifier(cluster.admin_password)
    cluster.sql(f"CREATE ROLE {ADMIN} LOGIN CREATEDB CREATEROLE NOSUPERUSER PASSWORD '{verifier}';")
    return cluster


def stop_cluster(cluster: TlsCluster) -> None:
    cluster.pg.stop()
    shutil.rmtree(cluster.work, ignore_errors=True)


# -- an impostor ----------------------------------------------------------------------------------
SSL_REQUEST = 80877103
GSS_REQUEST = 80877104


class Impostor:
    """Answers every connection with AuthenticationCleartextPassword and keeps what comes back."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = int(self.listener.getsockname()[1])
        self.received: list[bytes] = []  # every byte sent to it, all connections
        self.connections = 0
        self.context: ssl.SSLContext | None = None
        if tls is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(str(tls[0]), str(tls[1]))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with contextlib.suppress(OSError, ssl.SSLError, ValueError):
                self._talk(connection)
            with contextlib.suppress(OSError):
                connection.close()

    def _read(self, connection: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = connection.recv(size - len(data))
            if not chunk:
                raise ValueError("closed")
            self.received.append(chunk)
            data += chunk
        return data

    def _talk(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        while True:
            (length,) = struct.unpack("!I", self._read(connection, 4))
            body = self._read(connection, length - 4)
            (code,) = struct.unpack("!I", body[:4])
            if code == SSL_REQUEST and self.context is not None:
                connection.sendall(b"S")
                connection = self.context.wrap_socket(connection, server_side=True)
                continue
            if code in (SSL_REQUEST, GSS_REQUEST):
                connection.sendall(b"N")
                continue
            break  # the startup message
        connection.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        kind = self._read(connection, 1)
        (length,) = struct.unpack("!I", self._read(connection, 4))
        self._read(connection, length - 4)
        if kind == b"p":
            # Never let the client think it got in.
            error = b"SFATAL\x00C28P01\x00Mpassword authentication failed\x00\x00"
            connection.sendall(b"E" + struct.pack("!I", len(error) + 4) + error)

    def saw(self, secret: str) -> bool:
        return secret.encode() in b"".join(self.received)

    def close(self) -> None:
        self.listener.close()


@contextlib.contextmanager
def impostor(tls: tuple[Path, Path] | None = None) -> Iterator[Impostor]:
    server = Impostor(tls)
    try:
        yield server
    finally:
        server.close()

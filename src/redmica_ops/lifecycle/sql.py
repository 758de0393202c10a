"""Talking to PostgreSQL: quoting, password verifiers, and the libpq children (psql, pg_dump).

Every identifier reaches SQL through `ident()` (which re-checks the naming rule, reserved words
included, before quoting) and every value through `literal()`. Passwords never reach the
server in clear: a role's password is sent as a SCRAM-SHA-256 verifier computed here, so not
even `log_statement = 'all'` on the server can record it. A login's own password reaches a
child only through a 0600 PGPASSFILE whose one line names that host and port.

A child's environment is built from an allow-list (never this process's AWS credentials or
SECRET_KEY_BASE, never a PGSERVICE that could send it elsewhere). Over TCP every connection
verifies the server's certificate (`sslmode=verify-full` against `db_ssl_root_cert`); the
administrator's also requires channel binding (so SCRAM-SHA-256-PLUS, the password never sent)
and, with libpq 16 or later, `require_auth=scram-sha-256`; its sessions start with
`search_path=pg_catalog, pg_temp` (a client option, which outranks ALTER DATABASE/ROLE SET).
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import functools
import hashlib
import hmac
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from redmica_ops.errors import OperationFailed, UsageError
from redmica_ops.settings import missing_setting
from redmica_ops.tenants import rules

FIELD_SEPARATOR = "\x1f"
SCRAM_ITERATIONS = 4096


def ident(name: str) -> str:
    """A double-quoted identifier, after the naming rule (reserved words included) holds."""
    if problem := rules.check_pg_identifier(name):
        raise UsageError(f"refusing to use {name!r} in SQL: {problem}")
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A string constant, as PostgreSQL's quote_literal() writes it."""
    if "\x00" in value:
        raise UsageError("a SQL value may not contain a NUL character")
    quoted = "'" + value.replace("'", "''") + "'"
    if "\\" in value:
        return "E" + quoted.replace("\\", "\\\\")
    return quoted


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677), so the clear password is
    never sent to the server; `CREATE ROLE ... PASSWORD '<verifier>'` stores it as is."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


# The administrator's sessions: a tenant can put objects in schemas it owns and point its
# database's search_path at them; pg_catalog first and pg_temp last leave it no way in.
SAFE_SEARCH_PATH = "-c search_path=pg_catalog,pg_temp"
# What a libpq child may inherit from this process: nothing that holds a secret (AWS keys, the
# master SECRET_KEY_BASE) and nothing that chooses a server (PGHOST, PGSERVICE, ...).
CHILD_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR")
# Only for a login without a password of ours (the local administrator): libpq's own file.
PASSFILE_ENV = ("HOME", "PGPASSFILE")


@functools.cache
def libpq_major() -> int | None:
    """The major version of the libpq this machine's client tools load (None: unknown)."""
    name = ctypes.util.find_library("pq")
    if name is None:
        return None
    try:
        version = int(ctypes.CDLL(name).PQlibVersion())
    except (OSError, AttributeError):
        return None
    return version // 10000


REQUIRE_AUTH_SINCE = 16  # libpq's require_auth (PGREQUIREAUTH) exists from 16 on


@dataclass(frozen=True)
class Connection:
    """Where and as whom to connect; the password (if any) only ever goes to a PGPASSFILE.

    `host` is a host name or address (TCP, always TLS with a verified certificate from
    `root_cert`) or an absolute Unix-socket directory; `admin`: the administrator's connection
    (channel binding, SCRAM only, a safe search_path)."""

    host: str | None
    port: int | None
    user: str
    password: str | None = None
    root_cert: str | None = None
    admin: bool = False

    def __repr__(self) -> str:  # never show the password, not even in a traceback
        return f"Connection(host={self.host!r}, port={self.port!r}, user={self.user!r})"

    @property
    def over_tcp(self) -> bool:
        return self.host is not None and not self.host.startswith("/")


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def child_env(passfile: bool = False) -> dict[str, str]:
    """The allow-listed part of this process's environment for a PostgreSQL client child."""
    names = CHILD_ENV + (PASSFILE_ENV if passfile else ())
    env = {name: os.environ[name] for name in names if name in os.environ}
    env.setdefault("PATH", os.defpath)
    return env


def tls_env(connection: Connection) -> dict[str, str]:
    """libpq's TLS and authentication requirements for one connection."""
    if not connection.over_tcp:
        return {}  # a socket directory named by the setting: the file system is the boundary
    if not connection.root_cert:
        raise missing_setting(
            ["db_ssl_root_cert"],
            message="a TCP connection to PostgreSQL needs the CA bundle its certificate is "
            f"checked against (sslmode=verify-full), for {connection.host}; no connection "
            "was made",
            alternative="e.g. the RDS global bundle, global-bundle.pem",
        )
    env = {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": connection.root_cert}
    major = libpq_major()
    if connection.admin:
        # SCRAM-SHA-256-PLUS only: libpq (13+) refuses a cleartext or MD5 request before it
        # sends anything, and a server without this certificate's key cannot complete it.
        env["PGCHANNELBINDING"] = "require"
    if major is None or major >= REQUIRE_AUTH_SINCE:
        # Older libpq ignores the variable; channel binding already covers the administrator.
        env["PGREQUIREAUTH"] = "scram-sha-256" if connection.admin else "scram-sha-256,md5"
    return env


@contextmanager
def libpq_env(connection: Connection, database: str) -> Iterator[dict[str, str]]:
    """The environment for one libpq child (psql, pg_dump, pg_restore): the allow-list, the
    connection, its TLS requirements, and a private PGPASSFILE naming exactly its host and
    port when we hold the password."""
    env = child_env(passfile=connection.password is None)
    env.update(tls_env(connection))
    env["PGUSER"] = connection.user
    env["PGDATABASE"] = database
    env["PGCONNECT_TIMEOUT"] = "10"
    env["PGAPPNAME"] = "redmica-ops"
    if connection.host:
        env["PGHOST"] = connection.host
    if connection.port:
        env["PGPORT"] = str(connection.port)
    if connection.admin:
        env["PGOPTIONS"] = SAFE_SEARCH_PATH
    if connection.password is None:
        yield env
        return
    host = connection.host or "localhost"
    port = connection.port or rules.DEFAULT_PG_PORT
    with tempfile.TemporaryDirectory(prefix="redmica-pg-") as tmp:
        path = Path(tmp) / "pgpass"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{_pgpass_escape(host)}:{port}:*:{_pgpass_escape(connection.user)}:")
            handle.write(_pgpass_escape(connection.password) + "\n")
        env["PGPASSFILE"] = str(path)
        yield env


class Sql(Protocol):
    """A connection that runs SQL text and returns rows of strings."""

    def query(self, sql: str, database: str = "postgres") -> list[list[str]]: ...

    def run(self, sql: str, database: str = "postgres") -> None: ...


# psql's exit status when the connection failed (or went bad); 3 is a failed statement.
PSQL_CONNECTION_FAILED = 2


class Psql:
    """SQL through psql: the script on stdin (never argv), ON_ERROR_STOP, no ~/.psqlrc."""

    def __init__(self, connection: Connection, psql: str = "psql", timeout: float = 600) -> None:
        self.connection = connection
        self.psql = psql
        self.timeout = timeout
        self.statements: list[str] = []  # for tests and dry runs: what was sent, in order

    def _call(self, sql: str, database: str) -> str:
        self.statements.append(sql)
        # -w: never prompt (a missing password must fail, not read the script as one).
        argv = [self.psql, "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-F", FIELD_SEPARATOR, "-f", "-"]
        with libpq_env(self.connection, database) as env:
            try:
                result = subprocess.run(
                    argv,
                    input=sql,
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=self.timeout,
                    check=False,
                )
            except FileNotFoundError:
                raise UsageError(
                    f"{self.psql} is not installed", "install the PostgreSQL client (psql)"
                ) from None
        if result.returncode == PSQL_CONNECTION_FAILED:
            raise OperationFailed(
                f"could not connect to PostgreSQL as {self.connection.user!r} "
                f"({self.connection.host or 'local socket'}:{self.connection.port or 5432}): "
                f"{_first_error(result.stderr)}; no statement ran",
                _connect_hint(self.connection),
            )
        if result.returncode != 0:
            raise OperationFailed(
                f"PostgreSQL refused: {_first_error(result.stderr)}",
                "nothing after the failing statement ran; fix the cause and run the command "
                "again (every step checks what already exists)",
            )
        return result.stdout

    def query(self, sql: str, database: str = "postgres") -> list[list[str]]:
        out = self._call(sql, database)
        return [line.split(FIELD_SEPARATOR) for line in out.splitlines() if line]

    def run(self, sql: str, database: str = "postgres") -> None:
        self._call(sql, database)


def _connect_hint(connection: Connection) -> str:
    """What to check when psql cannot connect, by where this connection's login comes from:
    inside the ECS admin task the administrator is the master secret's (its password is set
    here), on the local executor db_admin_user with the libpq password file, and a tenant's
    own login is its document's."""
    where = (
        "the database host/port (db_host or the document's db.host/db.port, allowed by "
        "db_admin_hosts), its certificate (db_ssl_root_cert)"
    )
    if not connection.admin:
        return (
            f"check {where} and the role's password (the document's db.password or "
            "db.password_secret)"
        )
    if connection.password is not None:
        return (
            f"check {where} and the RDS master secret (db_master_secret: its username and "
            "password, readable by the admin task's role)"
        )
    return f"check db_admin_user, {where} and the password file (PGPASSFILE or ~/.pgpass)"


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "FATAL" in line] or lines
    return (errors[0] if errors else "no output")[:300]


def run_tool(
    argv: Sequence[str], connection: Connection, database: str, timeout: float = 3600
) -> subprocess.CompletedProcess[str]:
    """pg_dump / pg_restore with the connection in the environment, never in argv; -w: never
    prompt for a password."""
    with libpq_env(connection, database) as env:
        try:
            result = subprocess.run(
                [argv[0], "-w", *argv[1:]],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            raise UsageError(
                f"{argv[0]} is not installed", "install the PostgreSQL client tools"
            ) from None
    if result.returncode != 0:
        hint = None
        if "connection to server" in result.stderr or "could not connect" in result.stderr:
            hint = (
                f"could not connect as {connection.user!r}: check the database host/port and "
                "the role's password (the document's db.password, or PGPASSFILE)"
            )
        raise OperationFailed(f"{Path(argv[0]).name} failed: {_first_error(result.stderr)}", hint)
    return result

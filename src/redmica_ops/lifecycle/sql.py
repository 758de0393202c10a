"""Talking to PostgreSQL as its administrator: quoting, password verifiers, and psql.

Every identifier reaches SQL through `ident()` (which re-checks the naming rule, reserved words
included, before quoting) and every value through `literal()`. Passwords never reach the
server in clear: a role's password is sent as a SCRAM-SHA-256 verifier computed here, so not
even `log_statement = 'all'` on the server can record it. The administrator's own password
reaches psql only through a 0600 PGPASSFILE named in the environment of that one child.
"""

from __future__ import annotations

import base64
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


@dataclass(frozen=True)
class Connection:
    """Where and as whom to connect; the password (if any) only ever goes to a PGPASSFILE."""

    host: str | None
    port: int | None
    user: str
    password: str | None = None

    def __repr__(self) -> str:  # never show the password, not even in a traceback
        return f"Connection(host={self.host!r}, port={self.port!r}, user={self.user!r})"


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextmanager
def libpq_env(connection: Connection, database: str) -> Iterator[dict[str, str]]:
    """The environment for one libpq child (psql, pg_dump, pg_restore): this process's
    environment minus any inherited PG* password, plus a private PGPASSFILE when needed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGDATABASE")}
    env["PGUSER"] = connection.user
    env["PGDATABASE"] = database
    env["PGCONNECT_TIMEOUT"] = env.get("PGCONNECT_TIMEOUT", "10")
    env["PGAPPNAME"] = "redmica-ops"
    if connection.host:
        env["PGHOST"] = connection.host
    if connection.port:
        env["PGPORT"] = str(connection.port)
    if connection.password is None:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="redmica-pg-") as tmp:
        path = Path(tmp) / "pgpass"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"*:*:*:{_pgpass_escape(connection.user)}:")
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
        argv = [self.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
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
                "check db_admin_user, the database host/port (db_host or the document's "
                "db.host/db.port) and the password file (PGPASSFILE or ~/.pgpass)",
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


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "FATAL" in line] or lines
    return (errors[0] if errors else "no output")[:300]


def run_tool(
    argv: Sequence[str], connection: Connection, database: str, timeout: float = 3600
) -> subprocess.CompletedProcess[str]:
    """pg_dump / pg_restore with the connection in the environment, never in argv."""
    with libpq_env(connection, database) as env:
        try:
            result = subprocess.run(
                list(argv), capture_output=True, text=True, env=env, timeout=timeout, check=False
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

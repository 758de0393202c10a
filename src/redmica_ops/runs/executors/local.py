"""One tenant's migration as a local process: for single-host installs and real-Redmine tests.

The process gets the same environment as the tenant's vhost (and as `entrypoint run-tenant`)
plus an allow-list of the operator's (PATH, locale, Ruby and gem paths: never credentials),
runs in its own session so the operator's first Ctrl-C does not reach it (a migration is never
killed mid-DDL unless asked twice), and writes one log file per tenant.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from redmica_ops.container.keys import master_secret
from redmica_ops.errors import RedmicaError
from redmica_ops.runs.executors import CallStats, Job, Launched, LaunchFailed, TaskState
from redmica_ops.runs.results import TAIL_LINES, mask, secret_values
from redmica_ops.tenants.environment import tenant_environment
from redmica_ops.tenants.model import Tenant

# What a migration may inherit from the operator's environment: how to find programs and
# gems, the locale and time zone. Never AWS credentials, tokens or anything else the operator
# happens to have exported (extra variables go through the setting local_env).
INHERITED_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "RAILS_ENV"}
)
INHERITED_PREFIXES = ("LC_", "GEM_", "BUNDLE_", "RUBY")


def inherited_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in environ.items()
        if name in INHERITED_NAMES or name.startswith(INHERITED_PREFIXES)
    }


class SecretReader(Protocol):
    def resolve(self, reference: str) -> str: ...


@dataclass(frozen=True)
class LocalTarget:
    log_dir: Path
    workdir: str | None = None
    user: str | None = None
    extra_env: Mapping[str, str] | None = None
    default_db_host: str | None = None
    # Reads db.password_secret references (tenants.passwords.PasswordResolver).
    passwords: SecretReader | None = None


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    started_at: str
    path: Path
    secrets: list[str]


def read_tail(path: Path, secrets: list[str], lines: int = TAIL_LINES) -> tuple[str, ...]:
    """The last lines of a tenant's log, secrets masked (what `runs show` prints)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ()
    kept = [mask(line, secrets)[:1000] for line in text.splitlines()[-lines:]]
    return tuple(kept)


def _identity(user: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Popen arguments and login variables to run as `user`, like `runuser -u USER`:
    its uid, its primary group, its supplementary groups (Debian's Redmine reads its secret
    through the www-data group) and its HOME."""
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"no such user: {user}") from None
    groups = os.getgrouplist(user, entry.pw_gid)
    return (
        {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups},
        {"HOME": entry.pw_dir, "USER": user, "LOGNAME": user},
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


class LocalExecutor:
    name = "local"

    def __init__(self, tenants: Mapping[str, Tenant], target: LocalTarget) -> None:
        self.tenants = tenants
        self.target = target
        self.stats = CallStats()
        self.processes: dict[str, _Process] = {}

    def preflight(self) -> dict[str, Any]:
        self.target.log_dir.mkdir(parents=True, exist_ok=True)
        return {
            "log_dir": str(self.target.log_dir),
            "workdir": self.target.workdir,
            "user": self.target.user,
        }

    def log_path(self, tenant: str) -> Path:
        return self.target.log_dir / f"{tenant}.log"

    def launch(self, job: Job) -> Launched | LaunchFailed:
        tenant = self.tenants.get(job.tenant)
        if tenant is None:
            return LaunchFailed(f"tenant {job.tenant} has no valid document", retryable=False)
        password = None
        if tenant.db.password_secret is not None:
            if self.target.passwords is None:
                return LaunchFailed(
                    f"tenant {job.tenant}'s password is in a secret and no reader was given",
                    retryable=False,
                )
            try:
                password = self.target.passwords.resolve(tenant.db.password_secret)
            except RedmicaError as error:
                return LaunchFailed(error.message, retryable=False)
        env = {
            **inherited_environment(os.environ),
            **(self.target.extra_env or {}),
            **tenant_environment(
                job.tenant,
                tenant,
                self.target.default_db_host,
                master_secret=master_secret(os.environ),
                password=password,
            ),
        }
        identity: dict[str, Any] = {}
        if self.target.user:
            try:
                identity, login = _identity(self.target.user)
            except ValueError as exc:
                return LaunchFailed(str(exc), retryable=False)
            env.update(login)
        path = self.log_path(job.tenant)
        # A migration's output can hold anything the tenant's database sends back: owner only.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        log = os.fdopen(fd, "ab")
        log.write(f"== redmica: attempt {job.attempt}, {_now()}\n".encode())
        log.flush()
        self.stats.add("spawn")
        try:
            popen = subprocess.Popen(
                job.command,
                cwd=self.target.workdir,
                env=env,
                **identity,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except (OSError, ValueError, KeyError) as exc:
            log.close()
            message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return LaunchFailed(f"cannot run {job.command[0]!r}: {message}", retryable=False)
        handle = f"local:{popen.pid}"
        self.processes[handle] = _Process(popen, log, _now(), path, secret_values(env))
        return Launched(handle, str(path))

    def poll(self, handles: Sequence[str]) -> dict[str, TaskState]:
        states: dict[str, TaskState] = {}
        for handle in handles:
            process = self.processes.get(handle)
            if process is None:
                states[handle] = TaskState(
                    handle,
                    stopped=True,
                    missing=True,
                    stopped_reason="process not started by this run",
                )
                continue
            code = process.popen.poll()
            if code is None:
                states[handle] = TaskState(handle, stopped=False, started_at=process.started_at)
                continue
            process.log.close()
            reason = None
            if code < 0:
                reason = f"killed by signal {signal.Signals(-code).name}"
            states[handle] = TaskState(
                handle,
                stopped=True,
                exit_code=code,
                stopped_reason=reason,
                started_at=process.started_at,
                stopped_at=_now(),
                tail=read_tail(process.path, process.secrets) if code else (),
            )
        return states

    def stop(self, handle: str, reason: str) -> None:
        process = self.processes.get(handle)
        if process is not None and process.popen.poll() is None:
            self.stats.add("terminate")
            os.killpg(process.popen.pid, signal.SIGTERM)

    def find_launched(self, run_id: str) -> dict[str, str]:
        # A process started by another (crashed) redmica cannot be re-attached.
        return {}

"""One tenant's migration as a local process: for single-host installs and real-Redmine tests.

The process gets the same environment as the tenant's vhost (and as `entrypoint run-tenant`)
plus an allow-list of the operator's (PATH, locale, Ruby and gem paths: never credentials),
runs in its own session so the operator's first Ctrl-C does not reach it (a migration is never
killed mid-DDL unless asked twice), and writes one log file per tenant.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

from redmica_ops.container.keys import master_secret
from redmica_ops.errors import RedmicaError
from redmica_ops.runs.executors import CallStats, Job, Launched, LaunchFailed, TaskState
from redmica_ops.runs.record import RunTarget
from redmica_ops.runs.results import TAIL_LINES, TenantResult, fingerprint, mask, secret_values
from redmica_ops.tenants.environment import tenant_environment
from redmica_ops.tenants.model import Tenant
from redmica_ops.tenants.passwords import SecretReader, password_of

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


@dataclass(frozen=True)
class LocalTarget:
    log_dir: Path
    workdir: str | None = None
    user: str | None = None
    extra_env: Mapping[str, str] | None = None
    default_db_host: str | None = None
    # Reads db.password_secret references (tenants.passwords.PasswordResolver).
    passwords: SecretReader | None = None
    # tenant id -> its incarnation (tenants/incarnations.py), part of its derived key.
    incarnation_of: Callable[[str], str | None] | None = None


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    started_at: str
    path: Path
    secrets: list[str]


@dataclass
class _Batch:
    queue: list[str]
    attempt: int
    command: list[str]
    current: _Process | None = None
    running: str | None = None
    codes: list[int | None] = field(default_factory=list)
    stopped: bool = False
    started_at: str = field(default_factory=lambda: _now())


class ResultSink(Protocol):
    def put(self, result: TenantResult) -> object: ...


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


@dataclass(frozen=True)
class _Identity:
    """Who a process runs as (Popen's user, group, extra_groups); None: as this process."""

    uid: int | None = None
    gid: int | None = None
    groups: list[int] | None = None


def _identity(user: str) -> tuple[_Identity, dict[str, str]]:
    """Popen arguments and login variables to run as `user`, like `runuser -u USER`:
    its uid, its primary group, its supplementary groups (Debian's Redmine reads its secret
    through the www-data group) and its HOME."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"no such user: {user}") from None
    groups = os.getgrouplist(user, entry.pw_gid)
    return (
        _Identity(entry.pw_uid, entry.pw_gid, groups),
        {"HOME": entry.pw_dir, "USER": user, "LOGNAME": user},
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


class LocalExecutor:
    name = "local"

    def __init__(
        self,
        tenants: Mapping[str, Tenant],
        target: LocalTarget,
        results: ResultSink | None = None,
        run_id: str = "",
    ) -> None:
        self.tenants = tenants
        self.target = target
        self.stats = CallStats()
        self.processes: dict[str, _Process] = {}
        self.batches: dict[str, _Batch] = {}
        self.batch_counter = 0
        # A batch leaves each tenant's result where a task's run-tenant would (the bucket).
        self.results = results
        self.run_id = run_id
        self.fingerprint = fingerprint(target.workdir or Path.cwd())

    def preflight(self) -> RunTarget:
        self.target.log_dir.mkdir(parents=True, exist_ok=True)
        return RunTarget(
            log_dir=str(self.target.log_dir),
            workdir=self.target.workdir,
            user=self.target.user,
            fingerprint=self.fingerprint,
        )

    def log_path(self, tenant: str) -> Path:
        return self.target.log_dir / f"{tenant}.log"

    def launch(self, job: Job) -> Launched | LaunchFailed:
        if len(job.tenants) > 1 or self.results is not None:
            # With somewhere to put result objects, one tenant is a batch of one: its result
            # (exit code, masked tail) is kept like a task's.
            return self._launch_batch(job)
        spawned = self._spawn(job.tenant, job.attempt, job.command)
        if isinstance(spawned, LaunchFailed):
            return spawned
        handle = f"local:{spawned.popen.pid}"
        self.processes[handle] = spawned
        return Launched(handle, str(spawned.path))

    def _incarnation(self, tenant_id: str) -> str | None:
        if self.target.incarnation_of is None or master_secret(os.environ) is None:
            return None  # no key is derived: nothing to look up
        return self.target.incarnation_of(tenant_id)

    def _spawn(self, name: str, attempt: int, command: list[str]) -> _Process | LaunchFailed:
        tenant = self.tenants.get(name)
        if tenant is None:
            return LaunchFailed(f"tenant {name} has no valid document", retryable=False)
        job = Job(name, attempt, command)
        try:
            password = password_of(tenant, self.target.passwords)
        except RedmicaError as error:
            return LaunchFailed(f"tenant {name}: {error.message}", retryable=False)
        env = {
            **inherited_environment(os.environ),
            **(self.target.extra_env or {}),
            **tenant_environment(
                job.tenant,
                tenant,
                self.target.default_db_host,
                master_secret=master_secret(os.environ),
                password=password,
                incarnation=self._incarnation(job.tenant),
            ),
        }
        identity = _Identity()
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
                user=identity.uid,
                group=identity.gid,
                extra_groups=identity.groups,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except (OSError, ValueError, KeyError) as exc:
            log.close()
            message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return LaunchFailed(f"cannot run {job.command[0]!r}: {message}", retryable=False)
        return _Process(popen, log, _now(), path, secret_values(env))

    # -- several tenants in turn (--tenants-per-task) --------------------------------------------
    def _launch_batch(self, job: Job) -> Launched | LaunchFailed:
        self.batch_counter += 1
        handle = f"local-batch:{os.getpid()}-{self.batch_counter}"
        batch = _Batch(list(job.tenants), job.attempt, job.command)
        self.batches[handle] = batch
        self._advance(batch)
        streams = {t: str(self.log_path(t)) for t in job.tenants}
        return Launched(handle, str(self.log_path(job.tenant)), streams)

    def _advance(self, batch: _Batch) -> None:
        """Settle the tenant that just finished (its result object) and start the next."""
        while True:
            current = batch.current
            if current is not None:
                code = current.popen.poll()
                if code is None:
                    return
                current.log.close()
                self._record(batch, batch.running or "", code, current)
                batch.current = batch.running = None
            if batch.stopped or not batch.queue:
                return
            name = batch.queue.pop(0)
            spawned = self._spawn(name, batch.attempt, batch.command)
            if isinstance(spawned, LaunchFailed):
                self._record(batch, name, None, None, error=spawned.reason)
                continue
            batch.current, batch.running = spawned, name

    def _record(
        self,
        batch: _Batch,
        tenant: str,
        code: int | None,
        process: _Process | None,
        error: str | None = None,
    ) -> None:
        batch.codes.append(code)
        if self.results is None:
            return
        started = process.started_at if process else _now()
        self.results.put(
            TenantResult(
                self.run_id,
                tenant,
                batch.attempt,
                code,
                started,
                _now(),
                image=f"local:{self.target.workdir or Path.cwd()}",
                fingerprint=self.fingerprint,
                tail=list(read_tail(process.path, process.secrets)) if process and code else [],
                error=error,
            )
        )

    def _batch_state(self, handle: str, batch: _Batch) -> TaskState:
        self._advance(batch)
        if batch.current is not None:
            return TaskState(handle, stopped=False, started_at=batch.started_at)
        failed = any(c != 0 for c in batch.codes)
        return TaskState(
            handle,
            stopped=True,
            exit_code=1 if failed else 0,
            started_at=batch.started_at,
            stopped_at=_now(),
        )

    def poll(self, handles: Sequence[str]) -> dict[str, TaskState]:
        states: dict[str, TaskState] = {}
        for handle in handles:
            batch = self.batches.get(handle)
            if batch is not None:
                states[handle] = self._batch_state(handle, batch)
                continue
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
        batch = self.batches.get(handle)
        if batch is not None:
            batch.stopped = True  # the tenants not yet begun never begin
            if batch.current is not None and batch.current.popen.poll() is None:
                self.stats.add("terminate")
                os.killpg(batch.current.popen.pid, signal.SIGTERM)
            return
        process = self.processes.get(handle)
        if process is not None and process.popen.poll() is None:
            self.stats.add("terminate")
            os.killpg(process.popen.pid, signal.SIGTERM)

    def find_launched(self, run_id: str) -> dict[str, str]:
        # A process started by another (crashed) redmica cannot be re-attached.
        return {}

"""How one tenant's job runs: an ECS task (`ecs.py`) or a local process (`local.py`).

The fan-out engine only sees this interface: launch one job, poll many, stop one, and find
the jobs a run already launched (to resume after a crash).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redmica_ops.runs.record import RunTarget


@dataclass(frozen=True)
class Job:
    tenant: str  # the first (or only) tenant
    attempt: int  # 1 for the first launch; part of the idempotency token
    command: list[str]
    batch: tuple[str, ...] = ()  # all the tenants one task runs in turn (--tenants-per-task)

    @property
    def tenants(self) -> tuple[str, ...]:
        return self.batch or (self.tenant,)


@dataclass(frozen=True)
class Launched:
    handle: str  # task ARN, or local:<pid>
    log_stream: str | None = None
    streams: dict[str, str] = field(default_factory=dict)  # tenant -> its own log, if apart


@dataclass(frozen=True)
class LaunchFailed:
    reason: str
    retryable: bool  # capacity and similar: try again after a back-off
    throttled: bool = False  # AWS throttled us even after the SDK's retries


@dataclass(frozen=True)
class TaskState:
    handle: str
    stopped: bool
    exit_code: int | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    never_started: bool = False  # failed before the migration ran (image pull, ENI, ...)
    missing: bool = False  # the control plane no longer knows the task
    started_at: str | None = None
    stopped_at: str | None = None
    tail: tuple[str, ...] = ()  # last output lines, when the executor has them (local)


@dataclass
class CallStats:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n


class Executor(Protocol):
    name: str
    stats: CallStats

    def preflight(self) -> RunTarget:
        """Check the target exists and return its facts for the record; raise if it cannot
        run."""

    def launch(self, job: Job) -> Launched | LaunchFailed: ...

    def poll(self, handles: Sequence[str]) -> dict[str, TaskState]: ...

    def stop(self, handle: str, reason: str) -> None: ...

    def find_launched(self, run_id: str) -> dict[str, str]:
        """tenant -> handle of jobs this run already launched (for --resume)."""


class NoExecutor:
    """Stands in when a run's tasks cannot be asked about (no ECS settings here): nothing is
    launched, and every task is still running as far as it knows. Collecting then relies on
    the result objects alone."""

    name = "none"

    def __init__(self) -> None:
        self.stats = CallStats()

    def preflight(self) -> RunTarget:
        return RunTarget()

    def launch(self, job: Job) -> Launched | LaunchFailed:
        return LaunchFailed("this run cannot launch here", retryable=False)

    def poll(self, handles: Sequence[str]) -> dict[str, TaskState]:
        return {}

    def stop(self, handle: str, reason: str) -> None:
        pass

    def find_launched(self, run_id: str) -> dict[str, str]:
        return {}

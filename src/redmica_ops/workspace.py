"""What the run and deploy verbs need from their surroundings, as one small typed holder.

A verb (`runs.migrations.run`, `deploy.release.run`, ...) takes a request and a `Workspace`:
the settings, the tenant documents, the run records, the ECS client, a clock, and two ways to
tell a person what is happening (one-line messages and the fan-out's progress). The CLI builds
one from the command line (`Application.workspace()`), the Lambda from its environment
(`AwsWorkspace.from_environment()`), the benchmarks from a simulator. No verb sees click.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

    from redmica_ops.aws import ClientFactory
    from redmica_ops.runs.fanout import Observer
    from redmica_ops.runs.pacing import Cancellation, Clock
    from redmica_ops.runs.record import RunRecords, RunStore
    from redmica_ops.runs.results import ResultSource, ResultStore
    from redmica_ops.settings import Settings
    from redmica_ops.tenants.registry import TenantRegistry
    from redmica_ops.tenants.store import Listing, TenantStore

# Progress of a fan-out: given the clock and the number of tenants to watch, a context that
# yields the observer (a live line on a terminal in the CLI, nothing in the Lambda).
ProgressFactory = Callable[["Clock", int], AbstractContextManager["Observer"]]


class Workspace(Protocol):
    """The dependencies of a verb. Methods, not attributes: most build AWS clients lazily."""

    @property
    def settings(self) -> Settings: ...

    def tenants(self) -> Listing:
        """Every tenant document in the config bucket, valid or not."""

    def run_store(self) -> RunRecords: ...

    def results(self) -> ResultSource:
        """The tenants' result objects (written by `entrypoint run-tenant`)."""

    def ecs(self) -> ECSClient: ...

    def clock(self) -> Clock:
        """The clock long work sleeps on; its sleep ends early when `cancellation` is set."""

    @property
    def cancellation(self) -> Cancellation: ...

    def message(self, text: str) -> None:
        """A line for the person watching (stderr in the CLI, the log in the Lambda)."""

    def status(self, text: str) -> None:
        """The state of long work, replacing the previous one (a rollout's deployments): a
        live line on a terminal, a line every ~10 s otherwise."""

    def progress(self, clock: Clock, total: int) -> AbstractContextManager[Observer]: ...


def silent_progress(clock: Clock, total: int) -> AbstractContextManager[Observer]:
    from redmica_ops.runs.fanout import SilentObserver

    return contextlib.nullcontext(SilentObserver())


def _real_clock(cancellation: Cancellation) -> Clock:
    from redmica_ops.runs.pacing import RealClock

    return RealClock(cancellation)


def _discard(_text: str) -> None:
    pass


class AwsWorkspace:
    """The workspace on real AWS (or moto): settings in, boto3 clients built on first use."""

    def __init__(
        self,
        settings: Settings,
        clients: ClientFactory | None = None,
        *,
        make_clock: Callable[[Cancellation], Clock] = _real_clock,
        message: Callable[[str], None] = _discard,
        status: Callable[[str], None] | None = None,
        progress: ProgressFactory = silent_progress,
        cancellation: Cancellation | None = None,
    ) -> None:
        from redmica_ops.runs.pacing import Cancellation

        self._settings = settings
        self._clients = clients
        self._make_clock = make_clock
        self._message = message
        self._status = status or message
        self._progress = progress
        self._cancellation = cancellation or Cancellation()
        self._clock: Clock | None = None
        self._run_store: RunStore | None = None

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] | None = None, message: Callable[[str], None] = _discard
    ) -> AwsWorkspace:
        """Settings from REDMICA_* variables (and redmica.toml if one is found): the Lambda's."""
        from redmica_ops.settings.loading import load_settings

        return cls(load_settings({}, os.environ if env is None else env), message=message)

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def cancellation(self) -> Cancellation:
        return self._cancellation

    def clients(self) -> ClientFactory:
        if self._clients is None:
            from redmica_ops.aws import ClientFactory

            self._clients = ClientFactory(self._settings)
        return self._clients

    def bucket(self) -> str:
        from redmica_ops.settings import require

        settings = self._settings
        require(settings, ["bucket"], message="no config bucket is set")
        assert settings.bucket is not None
        return settings.bucket

    def store(self) -> TenantStore:
        from redmica_ops.tenants.store import TenantStore

        s = self._settings
        return TenantStore(
            self.clients().s3(),
            self.bucket(),
            s.prefix,
            s.kms_key_id,
            secrets_prefix=s.tenant_secrets_prefix,
        )

    def tenants(self) -> Listing:
        return self.store().load_all()

    def run_store(self) -> RunStore:
        # One per workspace: it remembers each record's ETag, so the conditional save after a
        # load (collect, resume) is matched against what this process read.
        from redmica_ops.runs.record import RunStore

        if self._run_store is None:
            s = self._settings
            self._run_store = RunStore(
                self.clients().s3(), self.bucket(), s.runs_prefix, s.kms_key_id
            )
        return self._run_store

    def results(self) -> ResultStore:
        from redmica_ops.runs.results import ResultStore

        s = self._settings
        return ResultStore(self.clients().s3(), self.bucket(), s.runs_prefix, s.kms_key_id)

    def registry(self) -> TenantRegistry:
        from redmica_ops.tenants.registry import TenantRegistry

        return TenantRegistry(self.store())

    def ecs(self) -> ECSClient:
        return self.clients().ecs()

    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = self._make_clock(self._cancellation)
        return self._clock

    def message(self, text: str) -> None:
        self._message(text)

    def status(self, text: str) -> None:
        self._status(text)

    def progress(self, clock: Clock, total: int) -> AbstractContextManager[Observer]:
        return self._progress(clock, total)

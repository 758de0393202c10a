"""The one place that builds what the verbs use, and the `Workspace` protocol they see.

A verb (`runs.migrations.run`, `deploy.release.run`, ...) takes a request and a `Workspace`:
the settings, the tenant documents, the run records, the ECS client, a clock, two ways to tell
a person what is happening (one-line messages and the fan-out's progress), and the things built
from them: the fleet of cells, the password resolver, executors, runners, stores, the registry.
The CLI builds one from the command line (`Application.workspace()`), the Lambda from its
environment (`AwsWorkspace.from_environment()`), the benchmarks from a simulator
(`bench/workspace.py`). No verb sees click.

`BaseWorkspace` derives every built thing from a few primitives (settings, the client factory,
the clock, the message callbacks, and the subclass's tenants, run records and results), so
nothing else in `src/` constructs a `ClientFactory`, `PasswordResolver`, `Fleet`, clock,
executor, runner, store or registry (`tests/test_layering.py` checks it). Each workspace keeps
one client factory, one fleet and one password resolver (one cache of secrets per command).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from redmica_ops.aws import ClientFactory
from redmica_ops.cells.fleet import Fleet
from redmica_ops.errors import UsageError
from redmica_ops.lifecycle.broker import LambdaInvoker, LambdaLauncher
from redmica_ops.lifecycle.purge import RecordStore
from redmica_ops.lifecycle.site import DatabaseAccess, Site
from redmica_ops.lifecycle.steps import EcsRunner, LocalRunner, Runner
from redmica_ops.probe.record import ProbeRecords, ProbeStore
from redmica_ops.runs.executors import Executor, NoExecutor
from redmica_ops.runs.executors.ecs import EcsExecutor, EcsTarget
from redmica_ops.runs.executors.local import LocalExecutor, LocalTarget
from redmica_ops.runs.fanout import Observer, SilentObserver
from redmica_ops.runs.pacing import Cancellation, Clock, RealClock
from redmica_ops.runs.record import RunRecords, RunStore
from redmica_ops.runs.results import ResultSource, ResultStore
from redmica_ops.settings import Settings, require
from redmica_ops.settings.loading import load_settings
from redmica_ops.tenants.passwords import PasswordResolver
from redmica_ops.tenants.registry import TenantRegistry
from redmica_ops.tenants.store import Listing, TenantStore

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

    from redmica_ops.tenants.model import Tenant


# Progress of a fan-out: given the clock and the number of tenants to watch, a context that
# yields the observer (a live line on a terminal in the CLI, nothing in the Lambda).
class ProgressFactory(Protocol):
    """Builds the progress of one run: `total` tenants; `label` (a cell's name) starts each of
    its lines when several runs share the screen (a release's gates, cell after cell)."""

    def __call__(
        self, clock: Clock, total: int, *, label: str = ""
    ) -> AbstractContextManager[Observer]: ...


class Workspace(Protocol):
    """The dependencies of a verb. Methods, not attributes: most build AWS clients lazily."""

    @property
    def settings(self) -> Settings: ...

    def tenants(self) -> Listing:
        """Every tenant document in the config bucket, valid or not (one read per call)."""

    def registry(self) -> TenantRegistry: ...

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

    def progress(
        self, clock: Clock, total: int, label: str = ""
    ) -> AbstractContextManager[Observer]: ...

    def fleet(self) -> Fleet:
        """The cells of this setup (one implicit cell without the `cells` setting)."""

    def passwords(self) -> PasswordResolver:
        """db.password_secret, read with this process's role; one cache per workspace."""

    def ecs_target(self, task_definition: str | None = None) -> EcsTarget: ...

    def executor(
        self,
        kind: str,
        run_id: str,
        tenants: Mapping[str, Tenant],
        target: EcsTarget | None = None,
    ) -> Executor: ...

    def runner(self, kind: str) -> Runner: ...

    def lifecycle_records(self) -> RecordStore: ...

    def probe_records(self) -> ProbeRecords:
        """Where the site probe writes what it found (beside the run records)."""


def silent_progress(
    clock: Clock, total: int, *, label: str = ""
) -> AbstractContextManager[Observer]:
    return contextlib.nullcontext(SilentObserver())


def real_clock(cancellation: Cancellation) -> Clock:
    return RealClock(cancellation)


def _discard(_text: str) -> None:
    pass


class BaseWorkspace(ABC):
    """Every built thing, derived from the settings, the client factory and the callbacks.

    A subclass says where tenants, run records and results live (`tenants`, `run_store`,
    `results`) and may replace `ecs` (the benchmarks' simulated ECS)."""

    def __init__(
        self,
        settings: Settings,
        client_factory: Callable[[Settings], ClientFactory] | None = None,
        *,
        make_clock: Callable[[Cancellation], Clock] | None = None,
        message: Callable[[str], None] = _discard,
        status: Callable[[str], None] | None = None,
        progress: ProgressFactory = silent_progress,
        cancellation: Cancellation | None = None,
    ) -> None:
        self._settings = settings
        self._client_factory = client_factory  # None: the standard one (tests inject theirs)
        self._make_clock = make_clock or real_clock
        self._message = message
        self._status = status or message
        self._progress = progress
        self._cancellation = cancellation or Cancellation()
        self._clients: ClientFactory | None = None
        self._clock: Clock | None = None
        self._fleet: Fleet | None = None
        self._passwords: PasswordResolver | None = None

    # -- primitives ---------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def cancellation(self) -> Cancellation:
        return self._cancellation

    def clients(self) -> ClientFactory:
        """The AWS clients (built on first use, each client on first call)."""
        if self._clients is None:
            make = self._client_factory
            self._clients = make(self._settings) if make else ClientFactory(self._settings)
        return self._clients

    def ecs(self) -> ECSClient:
        return self.clients().ecs()

    def ecs_rollouts(self, within: float | None = None) -> ECSClient:
        """The deploy verbs' ECS client: one attempt per call, their gateway retries within
        the rollout's deadline (`aws.ClientFactory.ecs_rollouts`); `within`: no call's socket
        timeouts longer than that."""
        return self.clients().ecs_rollouts(within)

    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = self._make_clock(self._cancellation)
        return self._clock

    def message(self, text: str) -> None:
        self._message(text)

    def status(self, text: str) -> None:
        self._status(text)

    def progress(
        self, clock: Clock, total: int, label: str = ""
    ) -> AbstractContextManager[Observer]:
        return self._progress(clock, total, label=label)

    @abstractmethod
    def tenants(self) -> Listing: ...

    @abstractmethod
    def run_store(self) -> RunRecords: ...

    @abstractmethod
    def results(self) -> ResultSource: ...

    # -- the config bucket ----------------------------------------------------------------------
    def bucket(self) -> str:
        settings = self._settings
        require(settings, ["bucket"], message="no config bucket is set")
        assert settings.bucket is not None
        return settings.bucket

    def store(self) -> TenantStore:
        s = self._settings
        return TenantStore(
            self.clients().s3(),
            self.bucket(),
            s.prefix,
            s.kms_key_id,
            secrets_prefix=s.tenant_secrets_prefix,
        )

    def registry(self) -> TenantRegistry:
        return TenantRegistry(self.store())

    def lifecycle_records(self) -> RecordStore:
        s = self._settings
        return RecordStore(self.clients().s3(), self.bucket(), s.lifecycle_prefix, s.kms_key_id)

    def probe_records(self) -> ProbeRecords:
        s = self._settings
        return ProbeStore(self.clients().s3(), self.bucket(), s.runs_prefix, s.kms_key_id)

    # -- the services ---------------------------------------------------------------------------
    def fleet(self) -> Fleet:
        if self._fleet is None:
            routed = bool(self._settings.hosted_zone_id)
            clients = self.clients() if routed else None
            self._fleet = Fleet(
                self._settings,
                self.ecs_rollouts(),
                self.clock(),
                ecs_within=self.ecs_rollouts,
                route53=clients.route53() if clients else None,
                elbv2=lambda: self.clients().elbv2(),
                progress=self.message,
                status=self.status,
                ssm=lambda: self.clients().ssm(),
                cancelled=lambda: self._cancellation.level > 0,
            )
        return self._fleet

    def passwords(self) -> PasswordResolver:
        if self._passwords is None:
            self._passwords = PasswordResolver(self.clients())
        return self._passwords

    # -- runs -----------------------------------------------------------------------------------
    def ecs_target(self, task_definition: str | None = None) -> EcsTarget:
        """Where ECS tasks run: the settings' cluster, network and container, with
        `task_definition` (a run's revision) in place of the setting when given."""
        settings = self._settings
        if task_definition:
            settings = dataclasses.replace(settings, task_definition=task_definition)
        require(
            settings,
            ["cluster", "task_definition", "container"],
            "the ECS executor needs",
            alternative="or use --executor local",
        )
        return EcsTarget(
            cluster=str(settings.cluster),
            task_definition=str(settings.task_definition),
            container=str(settings.container),
            subnets=settings.subnets,
            security_groups=settings.security_groups,
            assign_public_ip=settings.assign_public_ip,
            launch_type=settings.launch_type,
            capacity_provider=settings.capacity_provider,
        )

    def executor(
        self,
        kind: str,
        run_id: str,
        tenants: Mapping[str, Tenant],
        target: EcsTarget | None = None,
    ) -> Executor:
        """How a run's jobs run: ECS tasks (`target`, else the settings'), local processes,
        or "none" (a run whose tasks cannot be asked about here: result objects only)."""
        if kind == "ecs":
            return EcsExecutor(self.ecs(), target or self.ecs_target(), run_id)
        if kind == "local":
            s = self._settings
            extra = dict(item.split("=", 1) for item in s.local_env)
            log_dir = Path(s.local_log_dir or Path.cwd() / "redmica-runs") / run_id
            return LocalExecutor(
                tenants,
                LocalTarget(
                    log_dir=log_dir,
                    workdir=s.local_workdir,
                    user=s.local_user,
                    extra_env=extra,
                    default_db_host=s.db_host,
                    # db.password_secret, read with the operator's credentials (clients are lazy).
                    passwords=self.passwords(),
                    incarnation_of=self._incarnation_reader(),
                ),
                results=self.results(),
                run_id=run_id,
            )
        if kind == "none":
            return NoExecutor()
        raise UsageError(f"unknown executor {kind!r} (ecs or local)")

    def _incarnation_reader(self) -> Callable[[str], str | None] | None:
        """A tenant's incarnation from the config bucket, read when a key is derived."""
        if not self._settings.bucket:
            return None

        def read(tenant_id: str) -> str | None:
            return self.registry().incarnations.of(tenant_id)

        return read

    # -- the lifecycle's database steps ---------------------------------------------------------
    def site(
        self, admin_user: str | None = None, admin_password: str | None = None, pg_bin: str = ""
    ) -> Site:
        """Where database steps run here: the administrator (the settings' db_admin_user with
        the libpq environment's password, or the admin task's master credentials), the
        endpoints the settings allow, the backups' bucket."""
        s = self._settings
        return Site(
            s3=self.clients().s3(),
            bucket=self.bucket(),
            backups_prefix=s.backups_prefix,
            kms_key_id=s.kms_key_id,
            access=DatabaseAccess.from_settings(s),
            connection_limit=s.db_connection_limit,
            admin_user=admin_user or s.db_admin_user,
            admin_password=admin_password,
            pg_bin=pg_bin,
            passwords=self.passwords(),
        )

    def runner(self, kind: str) -> Runner:
        """Where a lifecycle step runs: this machine's PostgreSQL client (local) or an ECS
        admin task started by the admin broker (ecs)."""
        if kind == "local":
            return LocalRunner(self.site(), self.store())
        if kind != "ecs":
            raise UsageError(f"unknown executor {kind!r} (ecs or local)")
        settings = self._settings
        # The admin task is started by the broker, never by the operator (docs/security.md).
        require(
            settings,
            ["admin_broker"],
            message="`--executor ecs` needs the setting admin_broker: the Lambda function that "
            "starts admin tasks (an operator may not start them)",
            alternative="or use --executor local on one machine",
        )
        clients = self.clients()
        return EcsRunner(
            self.ecs(),
            clients.s3(),
            LambdaLauncher(
                cast(LambdaInvoker, clients.client("lambda")), str(settings.admin_broker)
            ),
            self.ecs_target(),
            self.bucket(),
            settings.lifecycle_prefix,
            # Its own clock: a Ctrl-C meant for a run does not cut an admin task's wait short.
            self._make_clock(Cancellation()),
            kms_key_id=settings.kms_key_id,
            timeout=float(settings.task_timeout),
            poll_interval=settings.poll_interval,
            # Checked here too, so a document naming another server is refused before any
            # request is written (the admin task checks again with its own settings).
            access=DatabaseAccess.from_settings(settings),
        )


class AwsWorkspace(BaseWorkspace):
    """The workspace on real AWS (or moto): tenants, run records and results in the config
    bucket, boto3 clients built on first use."""

    # One per workspace: it remembers each record's ETag, so the conditional save after a
    # load (collect, resume) is matched against what this process read.
    _run_store: RunStore | None = None

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] | None = None, message: Callable[[str], None] = _discard
    ) -> AwsWorkspace:
        """Settings from REDMICA_* variables (and redmica.toml if one is found): the Lambda's."""
        return cls(load_settings({}, os.environ if env is None else env), message=message)

    def tenants(self) -> Listing:
        return self.store().load_all()

    def run_store(self) -> RunStore:
        if self._run_store is None:
            s = self._settings
            self._run_store = RunStore(
                self.clients().s3(), self.bucket(), s.runs_prefix, s.kms_key_id
            )
        return self._run_store

    def results(self) -> ResultStore:
        s = self._settings
        return ResultStore(self.clients().s3(), self.bucket(), s.runs_prefix, s.kms_key_id)

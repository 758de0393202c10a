"""`redmica migrate` as a library call: a `MigrationRequest` in, a `MigrationOutcome` out.

`run(request, workspace)` chooses the tenants (`selection.py`), builds the executor and the
run record, and drives the fan-out (`fanout.py`); it also plans (`dry_run`), resumes
(`resume`) and retries (`only_failed`). The CLI's `migrate`, `release` (one call per cell) and
the scheduled Lambda all call it, so a run started from any of them is the same run. How a run
is shown is `report.py`'s; collecting a run's results later is `collect.py`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.errors import OperationFailed, RedmicaError, UsageError
from redmica_ops.runs.collect import note_local_fingerprint, skip_current
from redmica_ops.runs.executors.ecs import check_overrides
from redmica_ops.runs.fanout import FanOut, FanOutOptions, describe_failure
from redmica_ops.runs.options import fanout_options, parse_command
from redmica_ops.runs.record import (
    RunOptions,
    RunRecord,
    RunState,
    RunTarget,
    Status,
    new_run_id,
    prepare_resume,
)
from redmica_ops.runs.report import MigrationPlan, exit_code_for, plan, plan_report, run_report
from redmica_ops.runs.selection import (
    Selection,
    counts_by_cell,
    new_record,
    only_failed,
    select_tenants,
)
from redmica_ops.tenants.selection import CellScope

if TYPE_CHECKING:
    from redmica_ops.report import Report
    from redmica_ops.runs.executors import Executor
    from redmica_ops.settings import Settings
    from redmica_ops.tenants.model import Tenant
    from redmica_ops.tenants.store import Listing
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class MigrationRequest:
    """What to migrate and how. Unset (None) pacing values come from the settings, or, on
    resume, from the run being resumed."""

    tenants: tuple[str, ...] = ()
    all_tenants: bool = False
    exclude: tuple[str, ...] = ()
    command: str | None = None  # shell words; default: setting migrate_command
    executor: str | None = None  # ecs | local; default: ecs (or the resumed run's)
    concurrency: int | None = None
    rate: float | None = None
    timeout: float | None = None
    max_failures: int | None = None
    canary: int | None = None
    dry_run: bool = False
    wait: bool = True
    resume: str | None = None  # run id
    only_failed: str | None = None  # run id
    # The revision to run the tasks with (release passes its new one); default: the one the
    # service runs.
    task_definition: str | None = None
    tenants_per_task: int | None = None  # default: setting tenants_per_task
    skip_current: bool = False  # leave out tenants already migrated with this fingerprint
    include_suspended: bool = False  # with all_tenants: suspended tenants too
    provisioning: bool = False  # the provisioning of the named tenants runs their migrations
    # Every tenant of this cell (with or without all_tenants), with the revision the cell runs
    # unless task_definition names one: `migrate --cell`, and release's gate for each cell.
    cell: str | None = None


@dataclass(frozen=True)
class RunStats:
    """How the run used the control plane (for the benchmarks and the curious)."""

    calls: dict[str, int]  # API calls by kind (RunTask, DescribeTasks, ...)
    poll_sizes: list[int]  # tasks asked about in each polling turn
    max_in_flight: int


@dataclass(frozen=True)
class MigrationOutcome:
    """Either the plan of a dry run or the record of a run (finished, launched, interrupted)."""

    record: RunRecord | None = None
    plan: MigrationPlan | None = None
    stats: RunStats | None = None
    # With cells: the run's tenants counted by status in each one's home cell.
    by_cell: dict[str, dict[str, int]] | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.record is None else exit_code_for(self.record)

    def report(
        self,
        every_tenant: bool = False,
        code_from_run: bool = True,
        pending_is_failure: bool = False,
    ) -> Report:
        """The plan, or the run (`report.run_report` says what the flags change)."""
        if self.plan is not None:
            return plan_report(self.plan)
        assert self.record is not None
        record, cells = self.record, self.by_cell
        return run_report(record, every_tenant, code_from_run, pending_is_failure, cells)


@dataclass
class _Start:
    """A run about to start (or resume), before anything is built for it."""

    kind: str
    command: list[str]
    run_id: str
    tenants: Mapping[str, Tenant]
    options: FanOutOptions
    selection: Selection = field(default_factory=lambda: Selection(order=[]))
    saved: RunRecord | None = None  # the run being resumed
    parent: str | None = None  # the run whose failed tenants this one retries

    @property
    def order(self) -> list[str]:
        return list(self.saved.tenants) if self.saved is not None else self.selection.order


def run(request: MigrationRequest, ws: Workspace) -> MigrationOutcome:
    """Run (or plan, or resume) a migration; the record is saved as it goes."""
    _check_choice(request)
    listing = ws.tenants()
    start = _resume(request, ws, listing) if request.resume else _start(request, ws, listing)
    if isinstance(start, RunRecord):  # finished: nothing to resume
        return _outcome(start, ws, listing)
    ecs = ws.ecs_target(_revision(request, start, ws)) if start.kind == "ecs" else None
    executor = ws.executor(start.kind, start.run_id, start.tenants, ecs)
    # Checked for a dry run too: everything the real run needs (settings, cluster, revision,
    # container, subnets), so a plan that passes is a run that can start.
    target = executor.preflight()
    if ecs is not None:
        check_overrides(ecs, start.order, start.command, start.options.tenants_per_task)
    if request.dry_run:
        return MigrationOutcome(plan=_plan(ws.settings, start, target))
    if start.saved is None:
        record = new_record(
            start.run_id, start.kind, start.selection, start.command, start.options, start.parent
        )
        record.target, order = target, start.selection.order
    else:
        record = start.saved
        order = prepare_resume(record, executor.find_launched(record.run_id))
        record.error = None
    ws.run_store().save(record)
    engine = _drive(request, ws, record, order, start.options, executor)
    note_local_fingerprint(record)
    if record.complete() and not engine.cancellation.level and record.state != RunState.LAUNCHED:
        record.state = RunState.FINISHED
        ws.run_store().save(record)
    stats = RunStats(dict(executor.stats.counts), list(engine.poll_sizes), engine.max_in_flight)
    return _outcome(record, ws, listing, stats)


def _check_choice(request: MigrationRequest) -> None:
    """One way of choosing the tenants, and at least one."""
    chosen = (request.resume, request.only_failed, request.all_tenants or request.tenants)
    if sum(bool(x) for x in chosen) > 1:
        raise UsageError("choose one of: tenant ids / --all, --resume, --only-failed")
    if request.cell is not None and (request.tenants or request.resume or request.only_failed):
        raise UsageError(
            "--cell chooses the tenants: give no tenant ids, --resume or --only-failed"
        )
    if not (any(chosen) or request.cell is not None):
        raise UsageError(
            "nothing to migrate: give tenant ids, --all, --resume or --only-failed",
            "see `redmica migrate --help`",
        )


def _resume(request: MigrationRequest, ws: Workspace, listing: Listing) -> _Start | RunRecord:
    """An earlier run to finish (its command, executor and pacing), or the run itself when
    it is finished and nothing is left to start."""
    assert request.resume is not None
    record = ws.run_store().load(request.resume)
    if record.state == RunState.FINISHED and not record.with_status(Status.NOT_STARTED):
        return record
    kind = request.executor or record.executor
    if kind != record.executor:
        raise UsageError(f"run {request.resume} used the {record.executor} executor")
    # A resumed run keeps its own pacing and failure policy unless the request overrides it.
    options = _options(request, ws.settings, record.command, record.options, canary=None)
    tenants = {s.tenant_id: s.tenant for s in listing.tenants}
    return _Start(_checked(kind), record.command, record.run_id, tenants, options, saved=record)


def _start(request: MigrationRequest, ws: Workspace, listing: Listing) -> _Start:
    """A new run: named tenants, every tenant, a cell's, or an earlier run's failed ones."""
    parent: str | None = None
    if request.only_failed:
        previous = ws.run_store().load(request.only_failed)
        ids, parent = only_failed(previous), previous.run_id
        kind = request.executor or previous.executor
        given = request.command
        command = previous.command if given is None else parse_command(given)
    else:
        ids, kind = list(request.tenants), request.executor or "ecs"
        # An explicit empty command is a mistake, never "the default".
        text = ws.settings.migrate_command if request.command is None else request.command
        command = parse_command(text)
    scope = None
    if request.cell is not None:
        cells = ws.fleet().cells
        cells.get(request.cell)  # an unknown cell is a usage error naming the cells
        scope = CellScope(cells, request.cell)
    selection = select_tenants(
        listing,
        ids,
        request.all_tenants or scope is not None,
        request.exclude,
        request.include_suspended,
        request.provisioning,
        scope,
        db_host=ws.settings.db_host,
    )
    options = _options(request, ws.settings, command, None, canary=request.canary)
    run_id = new_run_id()
    return _Start(
        _checked(kind), command, run_id, selection.tenants, options, selection, None, parent
    )


def _checked(kind: str) -> str:
    if kind not in ("ecs", "local"):
        raise UsageError(f"unknown executor {kind!r} (ecs or local)")
    return kind


def _options(
    request: MigrationRequest,
    settings: Settings,
    command: list[str],
    saved: RunOptions | None,
    canary: int | None,
) -> FanOutOptions:
    return fanout_options(
        settings,
        command,
        concurrency=request.concurrency,
        rate=request.rate,
        timeout=request.timeout,
        max_failures=request.max_failures,
        canary=canary,
        wait=request.wait,
        tenants_per_task=request.tenants_per_task,
        saved=saved,
    )


def _revision(request: MigrationRequest, start: _Start, ws: Workspace) -> str | None:
    """The revision to run: what the request names, else what the run being resumed used,
    else what the cell (or the tenants' cells, or the service) runs, never the family's newest
    by accident."""
    if request.task_definition:
        return request.task_definition
    if start.saved is not None and start.saved.target.task_definition:
        return start.saved.target.task_definition
    fleet = ws.fleet()
    if request.cell is not None:
        return fleet.revision(fleet.cells.get(request.cell))
    return fleet.revision_for(start.tenants.values())


def _plan(settings: Settings, start: _Start, target: RunTarget) -> MigrationPlan:
    fresh = start.saved is None
    skipped = start.selection.skipped if fresh else []
    invalid = start.selection.invalid if fresh else {}
    order = start.order
    return plan(settings, start.kind, start.command, start.options, order, skipped, invalid, target)


def _drive(
    request: MigrationRequest,
    ws: Workspace,
    record: RunRecord,
    order: list[str],
    options: FanOutOptions,
    executor: Executor,
) -> FanOut:
    """The fan-out of `order` (after --skip-current's probe), with the progress shown; an
    error interrupts the run with the hint to resume it."""
    store, run_id = ws.run_store(), record.run_id
    running = len(record.with_status(Status.RUNNING))
    ws.message(
        (f"[{request.cell}] " if request.cell else "")
        + f"run {run_id}: {len(order)} tenant(s) to migrate"
        + (f", {running} still running" if running else "")
        + f" with the {record.executor} executor (record: {store.location(run_id)})"
    )
    clock = ws.clock()
    with ws.progress(clock, len(order) + running, label=request.cell or "") as observer:
        engine = FanOut(
            executor,
            record,
            options,
            clock,
            store.save,
            ws.cancellation,
            observer,
            results=ws.results(),
        )
        try:
            if request.skip_current and record.parent_run is None and not request.resume:
                order = skip_current(record, order, options, engine, ws)
            engine.run(order)
        except RedmicaError as error:
            raise type(error)(
                f"run {run_id} interrupted: {error.message}",
                f"{error.hint + '; then ' if error.hint else ''}finish it with "
                f"`redmica migrate --resume {run_id}` (nothing runs twice)",
                error.problems,
            ) from error
        except Exception as error:
            raise OperationFailed(
                f"run {run_id} interrupted: {describe_failure(error)}",
                f"finish it with `redmica migrate --resume {run_id}` (nothing runs twice)",
            ) from error
    return engine


def _outcome(
    record: RunRecord, ws: Workspace, listing: Listing, stats: RunStats | None = None
) -> MigrationOutcome:
    """The run's outcome; with cells, its counts per cell from the listing the run read."""
    by_cell = counts_by_cell(record, listing, ws.fleet().cells) if ws.settings.cells else None
    return MigrationOutcome(record, stats=stats, by_cell=by_cell)

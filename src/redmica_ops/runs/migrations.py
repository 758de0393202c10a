"""`redmica migrate` as a library call: a `MigrationRequest` in, a `MigrationOutcome` out.

`run(request, workspace)` chooses the tenants, builds the executor and the run record, and
drives the fan-out (`fanout.py`); it also plans (`dry_run`), resumes (`resume`) and retries
(`only_failed`). The CLI's `migrate`, `release` and the scheduled Lambda all call it, so a
run started from any of them is the same run.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.errors import NotFound, OperationFailed, RedmicaError, UsageError
from redmica_ops.runs.executors import Executor, Job
from redmica_ops.runs.fanout import FanOutOptions, describe_failure
from redmica_ops.runs.record import FAILURES, RunRecord, Status, TenantRun, utcnow
from redmica_ops.tenants.selection import CellScope, Reason, Use, select

if TYPE_CHECKING:
    from redmica_ops.runs.cost import CostEstimate
    from redmica_ops.runs.executors.ecs import EcsTarget
    from redmica_ops.runs.fanout import FanOut
    from redmica_ops.runs.record import RunRecords
    from redmica_ops.settings import Settings
    from redmica_ops.tenants.model import Tenant
    from redmica_ops.tenants.store import Listing
    from redmica_ops.workspace import Workspace


RECENT_RUNS = 20  # collecting "every run" (and --skip-current) looks at this many newest runs


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


class NothingToMigrate(NotFound):
    """A cell with no tenant to migrate: `migrate --cell` reports it (exit 3); release's gate
    for that cell passes without a run."""


@dataclass(frozen=True)
class MigrationPlan:
    """A dry run: what would be launched, how fast, and what it would cost."""

    executor: str
    command: list[str]
    tenants: list[str]
    skipped: list[str]
    invalid: dict[str, str]
    options: FanOutOptions
    cost: CostEstimate | None  # None for the local executor (no Fargate time)
    launch_seconds: float
    waves: int
    task_definition: str | None = None  # the revision the tasks would run
    image: str | None = None

    def as_dict(self) -> dict[str, object]:
        o = self.options
        return {
            "run_id": None,
            "dry_run": True,
            "executor": self.executor,
            "command": self.command,
            "tenants": self.tenants,
            "skipped": self.skipped,
            "invalid": sorted(self.invalid),
            "pacing": {
                "rate": o.rate,
                "burst": o.burst,
                "concurrency": o.concurrency,
                "timeout": o.timeout,
                "max_failures": o.max_failures,
                "canary": o.canary,
            },
            "task_definition": self.task_definition,
            "image": self.image,
            "estimate": {
                **(self.cost.as_dict() if self.cost is not None else {}),
                "launch_seconds": round(self.launch_seconds, 1),
                "waves_of_concurrency": self.waves,
            },
        }


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

    @property
    def exit_code(self) -> int:
        return 0 if self.record is None else exit_code_for(self.record)


def run(request: MigrationRequest, ws: Workspace) -> MigrationOutcome:
    """Run (or plan, or resume) a migration; the record is saved as it goes."""
    from redmica_ops.runs.fanout import FanOut

    if (
        sum(
            bool(x)
            for x in (request.resume, request.only_failed, request.all_tenants or request.tenants)
        )
        > 1
    ):
        raise UsageError("choose one of: tenant ids / --all, --resume, --only-failed")
    if request.cell is not None and (request.tenants or request.resume or request.only_failed):
        raise UsageError(
            "--cell chooses the tenants: give no tenant ids, --resume or --only-failed"
        )
    wanted_any = request.all_tenants or request.tenants or request.cell is not None
    if not (request.resume or request.only_failed or wanted_any):
        raise UsageError(
            "nothing to migrate: give tenant ids, --all, --resume or --only-failed",
            "see `redmica migrate --help`",
        )
    settings = ws.settings
    run_store = ws.run_store()
    listing = ws.tenants()
    parent: str | None = None
    record: RunRecord | None = None
    selection = Selection(order=[])

    if request.resume:
        record = run_store.load(request.resume)
        if record.state == "finished" and not record.with_status(Status.NOT_STARTED):
            return MigrationOutcome(record)
        kind = request.executor or record.executor
        if kind != record.executor:
            raise UsageError(f"run {request.resume} used the {record.executor} executor")
        command = record.command
        run_id = record.run_id
        tenants = {s.tenant_id: s.tenant for s in listing.tenants}
    else:
        from redmica_ops.runs.record import new_run_id

        ids: list[str] = list(request.tenants)
        if request.only_failed:
            previous = run_store.load(request.only_failed)
            ids = only_failed(previous)
            parent = previous.run_id
            kind = request.executor or previous.executor
            command = (
                previous.command if request.command is None else parse_command(request.command)
            )
        else:
            kind = request.executor or "ecs"
            # An explicit empty command is a mistake, never "the default".
            text = settings.migrate_command if request.command is None else request.command
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
        )
        run_id = new_run_id()
        tenants = selection.tenants

    # A resumed run keeps its own pacing and failure policy unless the request overrides it.
    saved = record.options if record is not None else {}
    options = fanout_options(
        settings,
        command,
        concurrency=request.concurrency or _int(saved.get("concurrency")),
        rate=request.rate or _float(saved.get("rate")),
        timeout=request.timeout or _float(saved.get("timeout")),
        max_failures=request.max_failures or _int(saved.get("max_failures")),
        canary=request.canary if record is None else None,
        wait=request.wait,
        tenants_per_task=request.tenants_per_task or _int(saved.get("tenants_per_task")),
    )

    # The revision to run: what the request names, else what the run being resumed used,
    # else the revision the service runs, never the family's newest by accident.
    revision = request.task_definition
    if kind == "ecs" and not revision:
        used = record.target.get("task_definition") if record is not None else None
        fleet = ws.fleet()
        if used:
            revision = str(used)
        elif request.cell is not None:
            revision = fleet.revision(fleet.cells.get(request.cell))
        else:
            revision = fleet.revision_for(tenants.values())
    if kind not in ("ecs", "local"):
        raise UsageError(f"unknown executor {kind!r} (ecs or local)")
    ecs = ws.ecs_target(revision) if kind == "ecs" else None
    run_executor = ws.executor(kind, run_id, tenants, ecs)
    # Checked for a dry run too: everything the real run needs (settings, cluster, revision,
    # container, subnets), so a plan that passes is a run that can start.
    target = run_executor.preflight()
    if ecs is not None:
        order_to_check = list(record.tenants) if record else selection.order
        check_overrides(ecs, order_to_check, command, options.tenants_per_task)

    if request.dry_run:
        order = list(record.tenants) if record else selection.order
        return MigrationOutcome(
            plan=plan(
                settings,
                kind,
                command,
                options,
                order,
                skipped=[] if record else selection.skipped,
                invalid={} if record else selection.invalid,
                target=target,
            )
        )

    if record is None:
        record = new_record(run_id, kind, selection, command, options, parent)
        record.target = target
        order = selection.order
    else:
        order = prepare_resume(record, run_executor.find_launched(run_id))
        record.error = None
    run_store.save(record)
    running = sum(1 for r in record.tenants.values() if r.status == Status.RUNNING)
    ws.message(
        f"run {run_id}: {len(order)} tenant(s) to migrate"
        + (f", {running} still running" if running else "")
        + f" with the {kind} executor (record: {run_store.location(run_id)})"
    )
    clock = ws.clock()
    with ws.progress(clock, len(order) + running) as observer:
        engine = FanOut(
            run_executor,
            record,
            options,
            clock,
            run_store.save,
            ws.cancellation,
            observer,
            results=ws.results(),
        )
        try:
            if request.skip_current and record.parent_run is None and not request.resume:
                order = _skip_current(record, order, options, engine, run_executor, ws)
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
    _note_local_fingerprint(record)
    if record.complete() and engine.cancellation.level == 0 and record.state != "launched":
        record.state = "finished"
        run_store.save(record)
    stats = RunStats(dict(run_executor.stats.counts), list(engine.poll_sizes), engine.max_in_flight)
    return MigrationOutcome(record, stats=stats)


def _note_local_fingerprint(record: RunRecord) -> None:
    """Local runs know the fingerprint on this host: each success records it."""
    fingerprint = record.target.get("fingerprint")
    if record.executor == "local" and isinstance(fingerprint, str):
        for run in record.with_status(Status.SUCCEEDED):
            run.fingerprint = run.fingerprint or fingerprint


def last_fingerprints(
    store: RunRecords, limit: int = RECENT_RUNS
) -> tuple[dict[str, str], dict[str, str]]:
    """From the newest runs: (tenant -> fingerprint of its last success, image -> fingerprint)."""
    by_tenant: dict[str, str] = {}
    by_image: dict[str, str] = {}
    for run_id in store.list_ids()[:limit]:
        try:
            record = store.load(run_id)
        except RedmicaError:
            continue
        # The image a task reported (its metadata endpoint), else the one the run launched:
        # a task definition revision is immutable, so that is the image the task ran.
        launched = record.target.get("image")
        for run in record.tenants.values():
            if run.status == Status.SUCCEEDED and run.fingerprint:
                by_tenant.setdefault(run.tenant, run.fingerprint)
                image = run.image or (launched if isinstance(launched, str) else None)
                if image:
                    by_image.setdefault(image, run.fingerprint)
    return by_tenant, by_image


def _skip_current(
    record: RunRecord,
    order: list[str],
    options: FanOutOptions,
    engine: FanOut,
    executor: Executor,
    ws: Workspace,
) -> list[str]:
    """--skip-current: leave out tenants whose last success ran the same migrations.

    The fingerprint of what this run would apply is known on this host (local executor), or
    from an earlier task that ran the same image; otherwise one task (one batch) runs first
    and its result objects tell it. Returns the tenants still to run.
    """
    by_tenant, by_image = last_fingerprints(ws.run_store())
    target = record.target
    wanted = target.get("fingerprint") if record.executor == "local" else None
    if wanted is None and isinstance(target.get("image"), str):
        wanted = by_image.get(str(target["image"]))
    if wanted is None and order:
        probe = order[: max(1, options.tenants_per_task)]
        ws.message(f"--skip-current: the image's migrations are unknown; {probe[0]} goes first")
        engine.run(probe)
        order = order[len(probe) :]
        found = [record.tenants[t].fingerprint for t in probe]
        wanted = next((f for f in found if f), None)
        if engine.cancellation.level or wanted is None:
            if wanted is None:
                ws.message("--skip-current: no fingerprint came back; nothing is skipped")
            return order
    current = [t for t in order if wanted is not None and by_tenant.get(t) == wanted]
    for tenant in current:
        run = record.tenants[tenant]
        run.status, run.reason = Status.SKIPPED, f"current (migrations {wanted})"
        run.fingerprint = str(wanted)
    record.target["skipped_current"] = len(current)
    ws.message(f"--skip-current: skipped {len(current)} tenant(s) already migrated with {wanted}")
    return [t for t in order if t not in set(current)]


def collect_recent(ws: Workspace, limit: int = RECENT_RUNS) -> list[tuple[RunRecord, int]]:
    """Collect every recent run that is not complete: (record, tenants settled) for each.

    What a schedule calls (the Lambda's collect action, `runs collect` without a run id)."""
    store = ws.run_store()
    collected = []
    for run_id in store.list_ids()[:limit]:
        record = store.load(run_id)
        if not record.complete():
            collected.append((record, collect(record, ws)))
    return collected


def collect(record: RunRecord, ws: Workspace) -> int:
    """Merge a run's result objects (and what ECS still knows) into its record and save it.

    Safe to repeat (the Lambda's schedule does): returns how many tenants got a final status.
    """
    from redmica_ops.runs.fanout import FanOut

    if record.complete():
        return 0
    executor = ws.executor("none", record.run_id, {})
    settings = ws.settings
    if record.executor == "ecs" and settings.cluster and settings.container:
        revision = str(record.target.get("task_definition") or settings.task_definition or "")
        if revision:
            executor = ws.executor("ecs", record.run_id, {}, ws.ecs_target(revision))
    options = fanout_options(settings, record.command)
    engine = FanOut(executor, record, options, ws.clock(), lambda _r: None, results=ws.results())
    changed = engine.collect()
    if changed or record.state == "finished":
        ws.run_store().save(record)
    return changed


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def plan(
    settings: Settings,
    kind: str,
    command: list[str],
    options: FanOutOptions,
    order: list[str],
    skipped: list[str],
    invalid: dict[str, str],
    target: Mapping[str, object] | None = None,
) -> MigrationPlan:
    from redmica_ops.runs.cost import estimate

    # Local processes cost no Fargate time: no estimate to print.
    cost = (
        None
        if kind != "ecs"
        else estimate(
            len(order),
            settings.task_vcpu,
            settings.task_memory_gb,
            settings.task_minutes,
            settings.price_vcpu_minute,
            settings.price_gb_minute,
        )
    )
    launch_seconds = max(0, len(order) - options.burst) / options.rate
    waves = math.ceil(len(order) / options.concurrency) if order else 0
    facts = dict(target or {})
    return MigrationPlan(
        kind,
        command,
        order,
        skipped,
        invalid,
        options,
        cost,
        launch_seconds,
        waves,
        task_definition=_str(facts.get("task_definition")),
        image=_str(facts.get("image")),
    )


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def hints(record: RunRecord) -> list[str]:
    """What the operator can do next about a run, one line each."""
    failed = [r for r in record.tenants.values() if r.status in FAILURES]
    not_started = record.with_status(Status.NOT_STARTED)
    lines = []
    if failed:
        lines.append(f"retry the failed ones: redmica migrate --only-failed {record.run_id}")
    if record.state in ("interrupted", "running") or (not_started and not failed):
        lines.append(f"finish the run: redmica migrate --resume {record.run_id}")
    if record.state == "launched":
        lines.append(
            f"launched without waiting; follow it with `redmica runs show "
            f"{record.run_id}` or finish it with `redmica migrate --resume "
            f"{record.run_id}`"
        )
    return lines


def report_document(record: RunRecord) -> dict[str, object]:
    """The JSON document of a run: every tenant's result and the counts."""
    return {
        "run_id": record.run_id,
        "state": record.state,
        "tenants": [
            {
                "tenant": r.tenant,
                "status": str(r.status),
                "task_arn": r.task_arn,
                "exit_code": r.exit_code,
                "reason": r.reason,
                "attempts": r.attempts,
                "started_at": r.started_at,
                "stopped_at": r.stopped_at,
                "log_stream": r.log_stream,
                "image": r.image,
                "fingerprint": r.fingerprint,
                "tail": r.tail,
            }
            for r in sorted(record.tenants.values(), key=lambda r: r.tenant)
        ],
        "summary": record.summary(),
        "error": record.error,
    }


@dataclass
class Selection:
    order: list[str]  # to run, in order
    skipped: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)  # tenant -> why it cannot run
    tenants: dict[str, Tenant] = field(default_factory=dict)


def select_tenants(
    listing: Listing,
    ids: Sequence[str],
    all_tenants: bool,
    exclude: Sequence[str],
    include_suspended: bool = False,
    provisioning: bool = False,
    scope: CellScope | None = None,
) -> Selection:
    """The tenants to migrate. Suspended ones only with `include_suspended` or when named;
    provisioning ones only for their own provisioning (`provisioning`).

    With a cell `scope`, every tenant of that cell: another cell's tenants are not this run's,
    and a document that does not validate (so its cell cannot be read) counts against the home
    cell's run, failing it as it fails a run of every tenant.
    """
    if all_tenants == bool(ids):
        raise UsageError("give tenant ids or --all (not both)", "e.g. redmica migrate --all")
    selection = select(  # the one rule: tenants.selection
        listing,
        Use.MIGRATE,
        include_suspended=include_suspended or not all_tenants,
        include_provisioning=provisioning,
    )
    others: set[str] = set()
    if scope is not None:
        others = {s.tenant_id for s in listing.tenants if scope.reason(s, Use.MIGRATE)}
        if scope.cell != scope.cells.home.name:
            others |= {doc.tenant_id for doc in listing.invalid if doc.tenant_id}
    valid = {s.tenant_id: s.tenant for s in selection.eligible if s.tenant_id not in others}
    resting = {
        e.tenant_id
        for e in selection.excluded
        if e.tenant_id
        and e.tenant_id not in others
        and e.reason in (Reason.SUSPENDED, Reason.PROVISIONING)
    }
    invalid = {
        e.tenant_id: e.describe()
        for e in selection.excluded
        if e.tenant_id and e.tenant_id not in resting and e.tenant_id not in others
    }
    known = set(valid) | set(invalid) | resting
    wanted = sorted(known) if all_tenants else list(dict.fromkeys(ids))
    unknown = [t for t in [*wanted, *exclude] if t not in known | others]
    if unknown:
        raise NotFound(
            f"unknown tenant(s): {', '.join(unknown)}", "list tenants with `redmica tenant list`"
        )
    excluded = set(exclude) | resting
    order = [t for t in wanted if t not in excluded]
    if scope is not None and not order:
        raise NothingToMigrate(
            f"cell {scope.cell} has no tenants to migrate", "see `redmica cells list`"
        )
    return Selection(
        order=order,
        skipped=[t for t in wanted if t in excluded],
        invalid={t: invalid[t] for t in order if t in invalid},
        tenants={t: valid[t] for t in order if t in valid},
    )


def fanout_options(
    settings: Settings,
    command: list[str],
    *,
    concurrency: int | None = None,
    rate: float | None = None,
    timeout: float | None = None,
    max_failures: int | None = None,
    canary: int | None = None,
    wait: bool = True,
    tenants_per_task: int | None = None,
) -> FanOutOptions:
    return FanOutOptions(
        command=command,
        concurrency=concurrency or settings.concurrency,
        rate=rate or settings.launch_rate,
        burst=settings.launch_burst,
        timeout=float(timeout or settings.task_timeout),
        max_start_attempts=settings.max_start_attempts,
        poll_interval=settings.poll_interval,
        max_failures=max_failures,
        canary=canary,
        wait=wait,
        tenants_per_task=tenants_per_task or settings.tenants_per_task,
    )


def parse_command(text: str) -> list[str]:
    try:
        command = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"cannot parse the command: {exc}") from None
    if not command:
        raise UsageError("the migration command is empty")
    return command


def check_overrides(
    target: EcsTarget, order: Sequence[str], command: list[str], per_task: int = 1
) -> None:
    """Fail before launching anything if a task's ECS override would be too long."""
    from redmica_ops.runs.executors.ecs import MAX_OVERRIDE_CHARS, override_size

    longest = tuple(sorted(order, key=len, reverse=True)[: max(1, per_task)])
    if per_task > 1 and longest:
        job = Job(longest[0], 1, command, longest)
        if override_size(target, job) > MAX_OVERRIDE_CHARS:
            raise UsageError(
                f"the ECS task override of {per_task} tenants is longer than "
                f"{MAX_OVERRIDE_CHARS} characters",
                "lower --tenants-per-task or shorten the command",
            )
    too_long = [t for t in order if override_size(target, Job(t, 1, command)) > MAX_OVERRIDE_CHARS]
    if too_long:
        raise UsageError(
            f"the ECS task override for {too_long[0]} is longer than "
            f"{MAX_OVERRIDE_CHARS} characters",
            "shorten the command",
        )


def new_record(
    run_id: str,
    executor: str,
    selection: Selection,
    command: list[str],
    options: FanOutOptions,
    parent: str | None = None,
) -> RunRecord:
    now = utcnow().isoformat()
    record = RunRecord(
        run_id=run_id,
        executor=executor,
        command=command,
        created_at=now,
        updated_at=now,
        options={
            "concurrency": options.concurrency,
            "rate": options.rate,
            "burst": options.burst,
            "timeout": options.timeout,
            "max_failures": options.max_failures,
            "canary": options.canary,
            "max_start_attempts": options.max_start_attempts,
            "tenants_per_task": options.tenants_per_task,
            "wait": options.wait,
        },
        parent_run=parent,
    )
    for tenant in selection.order:
        record.tenants[tenant] = TenantRun(tenant)
    for tenant, why in selection.invalid.items():
        record.tenants[tenant] = TenantRun(
            tenant, Status.FAILED_TO_START, reason=f"invalid tenant document: {why}"
        )
    for tenant in selection.skipped:
        record.tenants[tenant] = TenantRun(tenant, Status.SKIPPED, reason="excluded")
    return record


def prepare_resume(record: RunRecord, found: dict[str, str]) -> list[str]:
    """Tenants of an earlier run still to do; launched-but-unrecorded tasks are re-attached."""
    order = []
    for tenant, run in sorted(record.tenants.items()):
        if run.status in (Status.PENDING, Status.NOT_STARTED):
            if tenant in found:
                run.status, run.task_arn, run.reason = Status.RUNNING, found[tenant], None
                run.attempts = max(run.attempts, 1)
            else:
                run.status, run.reason = Status.PENDING, None
                order.append(tenant)
    record.state = "running"
    return order


def only_failed(record: RunRecord) -> list[str]:
    failed = sorted(t for t, r in record.tenants.items() if r.status in FAILURES)
    if not failed:
        raise UsageError(f"run {record.run_id} has no failed tenants", "nothing to retry")
    return failed


def exit_code_for(record: RunRecord) -> int:
    if record.state == "interrupted":
        return 130
    if record.state == "launched":
        return 0
    return 0 if record.all_succeeded() else 1

"""`redmica migrate`: every tenant's migration as its own task, paced, collected, resumable."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.errors import UsageError

HELP_EPILOG = (
    "Exit codes: 0 every selected tenant succeeded; 1 some failed, failed to start, "
    "timed out or were not started; 2 bad input; 3 unknown tenant or run; 5 the run "
    "could not start (cluster, credentials); 130 interrupted (resume with --resume)."
)


@click.command(epilog=HELP_EPILOG)
@click.argument("tenant_ids", nargs=-1)
@click.option("--all", "all_tenants", is_flag=True, help="every tenant in the config bucket")
@click.option("--exclude", multiple=True, metavar="ID", help="leave this tenant out (repeat)")
@click.option(
    "--command",
    "command_text",
    metavar="CMD",
    help="command to run [default: setting migrate_command]",
)
@click.option(
    "--executor",
    type=click.Choice(["ecs", "local"]),
    default=None,
    help="ECS RunTask (default) or a local process per tenant",
)
@click.option("--concurrency", type=click.IntRange(1, 10_000), help="tasks in flight at most")
@click.option("--rate", type=click.FloatRange(min=0.01), help="launches per second")
@click.option("--timeout", type=click.FloatRange(min=1), help="seconds before a task is stopped")
@click.option(
    "--max-failures",
    type=click.IntRange(1),
    metavar="K",
    help="stop launching after K failures (running tasks finish)",
)
@click.option(
    "--canary",
    type=click.IntRange(1),
    metavar="N",
    help="migrate N tenants first; go on only if all succeed",
)
@click.option("--dry-run", is_flag=True, help="print the plan and the cost estimate; do nothing")
@click.option("--no-wait", is_flag=True, help="launch, save the record, print the run id")
@click.option("--resume", metavar="RUN_ID", help="re-attach to a run and finish it")
@click.option("--only-failed", metavar="RUN_ID", help="re-run the failed tenants of a run")
@global_options(hidden=True)
@pass_app
def migrate(
    app: Application,
    tenant_ids: tuple[str, ...],
    all_tenants: bool,
    exclude: tuple[str, ...],
    command_text: str | None,
    executor: str | None,
    concurrency: int | None,
    rate: float | None,
    timeout: float | None,
    max_failures: int | None,
    canary: int | None,
    dry_run: bool,
    no_wait: bool,
    resume: str | None,
    only_failed: str | None,
) -> None:
    """Migrate tenant databases: one task per tenant, paced to AWS's limits.

    Each tenant's task runs `redmica entrypoint run-tenant ID -- CMD` in the app image, so the
    task override carries the tenant id, never a password. Launches follow a token bucket
    (default: Fargate's 100 burst, 20/s) and a cap on tasks in flight; one polling loop
    collects every result; a failure never stops the others (unless --max-failures or
    --canary). The run record is kept in the config bucket (runs/<id>.json): Ctrl-C stops
    launching and waits (twice: stops the running tasks), then `--resume RUN_ID` finishes the
    run without starting anything twice.

    \b
    Examples:
      redmica migrate --all --dry-run
      redmica migrate --all --canary 5 --max-failures 10
      redmica migrate acme globex --command "bundle exec rake redmine:plugins:migrate"
      redmica migrate --only-failed 20261126T060000Z-1a2b3c
      redmica migrate --all --executor local --output json
    """
    record = run_migration(
        app,
        tenant_ids=tenant_ids,
        all_tenants=all_tenants,
        exclude=exclude,
        command_text=command_text,
        executor=executor,
        concurrency=concurrency,
        rate=rate,
        timeout=timeout,
        max_failures=max_failures,
        canary=canary,
        dry_run=dry_run,
        no_wait=no_wait,
        resume=resume,
        only_failed=only_failed,
    )
    if record is None:
        return
    from redmica_ops.runs import migrations as lib

    code = lib.exit_code_for(record)
    if code:
        raise click.exceptions.Exit(code)


def run_migration(
    app: Application,
    *,
    tenant_ids: tuple[str, ...] = (),
    all_tenants: bool = False,
    exclude: tuple[str, ...] = (),
    command_text: str | None = None,
    executor: str | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    timeout: float | None = None,
    max_failures: int | None = None,
    canary: int | None = None,
    dry_run: bool = False,
    no_wait: bool = False,
    resume: str | None = None,
    only_failed: str | None = None,
) -> Any:
    """Run (or plan, or resume) a migration and report it; None for a dry run.

    Shared by `migrate` and `release` (which gates a deploy on it).
    """
    from redmica_ops.runs import migrations as lib
    from redmica_ops.runs.fanout import FanOut
    from redmica_ops.runs.pacing import Cancellation
    from redmica_ops.runs.record import RunRecord, new_run_id

    if sum(bool(x) for x in (resume, only_failed, all_tenants or tenant_ids)) > 1:
        raise UsageError("choose one of: tenant ids / --all, --resume, --only-failed")
    if not (resume or only_failed or all_tenants or tenant_ids):
        raise UsageError(
            "nothing to migrate: give tenant ids, --all, --resume or --only-failed",
            "see `redmica migrate --help`",
        )
    settings = app.settings
    run_store = app.run_store()
    store = app.store()
    listing = store.load_all()
    parent: str | None = None
    record: RunRecord | None = None

    if resume:
        record = run_store.load(resume)
        if record.state == "finished":
            report(app, record)
            return record
        kind = executor or record.executor
        if kind != record.executor:
            raise UsageError(f"run {resume} used the {record.executor} executor")
        command = record.command
        run_id = record.run_id
        tenants = {s.tenant_id: s.tenant for s in listing.tenants}
    else:
        ids: list[str] = list(tenant_ids)
        if only_failed:
            previous = run_store.load(only_failed)
            ids = lib.only_failed(previous)
            parent = previous.run_id
            kind = executor or previous.executor
            command = previous.command if command_text is None else lib.parse_command(command_text)
        else:
            kind = executor or "ecs"
            command = lib.parse_command(command_text or settings.migrate_command)
        selection = lib.select_tenants(listing, ids, all_tenants, exclude)
        run_id = new_run_id()
        tenants = selection.tenants

    # A resumed run keeps its own pacing and failure policy unless a flag overrides it.
    saved: dict[str, Any] = record.options if record is not None else {}
    options = lib.fanout_options(
        settings,
        command,
        concurrency=concurrency or saved.get("concurrency"),
        rate=rate or saved.get("rate"),
        timeout=timeout or saved.get("timeout"),
        max_failures=max_failures or saved.get("max_failures"),
        canary=canary if record is None else None,
        wait=not no_wait,
    )

    if dry_run:
        order = list(record.tenants) if record else selection.order
        _print_plan(
            app,
            run_id,
            kind,
            command,
            options,
            order,
            skipped=[] if record else selection.skipped,
            invalid={} if record else selection.invalid,
        )
        return None

    run_executor = lib.build_executor(
        kind, settings, app.clients().ecs() if kind == "ecs" else None, run_id, tenants
    )
    target = run_executor.preflight()
    if record is None:
        if kind == "ecs":
            lib.check_overrides(settings, selection.order, command)
        record = lib.new_record(run_id, kind, selection, command, options, parent)
        record.target = target
        order = selection.order
    else:
        order = lib.prepare_resume(record, run_executor.find_launched(run_id))
    run_store.save(record)
    app.output.info(
        f"run {run_id}: {len(order)} tenant(s) to migrate with the {kind} executor"
        f" (record: s3://{run_store.bucket}/{run_store.key_for(run_id)})"
    )

    cancellation = Cancellation()
    clock = app.make_clock(cancellation)
    from redmica_ops.cli.progress import ProgressPrinter

    progress = ProgressPrinter(
        clock,
        total=len(order) + sum(1 for r in record.tenants.values() if r.status.value == "running"),
    )
    engine = FanOut(run_executor, record, options, clock, run_store.save, cancellation, progress)
    with _sigint_escalates(cancellation), progress:
        engine.run(order)
    report(app, record)
    return record


@contextlib.contextmanager
def _sigint_escalates(cancellation: Any) -> Iterator[None]:
    """While a run is going, Ctrl-C escalates the cancellation instead of raising."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        cancellation.escalate()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. inside a test runner thread)
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _print_plan(
    app: Application,
    run_id: str,
    kind: str,
    command: list[str],
    options: Any,
    order: list[str],
    skipped: list[str],
    invalid: dict[str, str],
) -> None:
    import math
    import shlex

    from redmica_ops.runs.cost import estimate

    settings = app.settings
    cost = estimate(
        len(order),
        settings.task_vcpu,
        settings.task_memory_gb,
        settings.task_minutes,
        settings.price_vcpu_minute,
        settings.price_gb_minute,
    )
    launch_seconds = max(0, len(order) - options.burst) / options.rate
    waves = math.ceil(len(order) / options.concurrency) if order else 0
    plan = {
        "run_id": None,
        "dry_run": True,
        "executor": kind,
        "command": command,
        "tenants": order,
        "skipped": skipped,
        "invalid": sorted(invalid),
        "pacing": {
            "rate": options.rate,
            "burst": options.burst,
            "concurrency": options.concurrency,
            "timeout": options.timeout,
            "max_failures": options.max_failures,
            "canary": options.canary,
        },
        "estimate": {
            **cost.as_dict(),
            "launch_seconds": round(launch_seconds, 1),
            "waves_of_concurrency": waves,
        },
    }
    if app.json:
        app.output.data(plan)
        return
    out = app.output
    out.text(f"plan (dry run): {len(order)} tenant(s) with the {kind} executor")
    out.text(f"  command:  {shlex.join(command)}")
    out.text(
        f"  pacing:   {options.rate:g}/s, burst {options.burst}, at most "
        f"{options.concurrency} in flight, timeout {options.timeout:g}s"
    )
    if options.canary:
        out.text(f"  canary:   the first {options.canary} tenant(s) must all succeed first")
    if options.max_failures:
        out.text(f"  stop launching after {options.max_failures} failure(s)")
    if skipped:
        out.text(f"  skipped:  {', '.join(skipped)}")
    for tenant, why in sorted(invalid.items()):
        out.text(f"  cannot run {tenant}: {why}")
    out.text(
        f"  launches take at least {launch_seconds:.0f}s; {waves} wave(s) of {options.concurrency}"
    )
    out.text(
        f"  cost:     {cost.total_usd:.4f} USD ({len(order)} x {cost.vcpu:g} vCPU x "
        f"{cost.memory_gb:g} GB x {cost.minutes:g} min)"
    )
    out.info("dry run: nothing was launched or written")


def report(app: Application, record: Any) -> None:
    from redmica_ops.runs.record import FAILURES, Status

    data = {
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
            }
            for r in sorted(record.tenants.values(), key=lambda r: r.tenant)
        ],
        "summary": record.summary(),
    }
    out = app.output
    failed = [r for r in record.tenants.values() if r.status in FAILURES]
    not_started = record.with_status(Status.NOT_STARTED)
    hints = []
    if failed:
        hints.append(f"retry the failed ones: redmica migrate --only-failed {record.run_id}")
    if record.state == "interrupted" or (not_started and not failed):
        hints.append(f"finish the run: redmica migrate --resume {record.run_id}")
    if record.state == "launched":
        hints.append(
            f"launched without waiting; follow it with `redmica runs show "
            f"{record.run_id}` or finish it with `redmica migrate --resume "
            f"{record.run_id}`"
        )
    if app.json:
        out.data(data)
        for hint in hints:  # stderr: stdout stays pure JSON
            out.info(hint)
        return
    counts = ", ".join(f"{n} {s}" for s, n in record.summary().items())
    out.info(f"run {record.run_id} {record.state}: {counts or 'no tenants'}")
    if failed:
        group = (record.target or {}).get("log_group")
        rows = []
        for run in sorted(failed, key=lambda r: r.tenant):
            if run.log_stream and group:
                logs = f"aws logs tail {group} --log-stream-names {run.log_stream}"
            else:
                logs = run.log_stream or ""
            rows.append([run.tenant, str(run.status), run.reason or "", logs])
        out.table(["tenant", "status", "reason", "logs"], rows)
    if record.state == "launched":
        out.text(record.run_id)
    for hint in hints:
        out.info(hint)

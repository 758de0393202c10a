"""How a migration run is shown: a dry run's plan, a run's summary and failures, one tenant,
the list of runs; and what a run means for an exit code and for what to do next.

Shared by everything that shows a run (`migrate`, `runs list/show/collect`, `release`'s gate,
the Lambda): each builds its `Report` here, so a run reads the same wherever it is shown.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.errors import JSONValue, NotFound
from redmica_ops.report import Line, Part, Report, Table, info, plain_json, text
from redmica_ops.runs.cost import CostEstimate, estimate
from redmica_ops.runs.record import FAILURES, RunRecord, RunState, RunTarget, Status

if TYPE_CHECKING:
    from redmica_ops.runs.fanout import FanOutOptions
    from redmica_ops.settings import Settings

TAIL_SHOWN = 5  # lines per failed tenant in a run's report; `runs show RUN TENANT` has all


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
    target: RunTarget = field(default_factory=RunTarget)  # the revision and image it would run

    def as_dict(self) -> dict[str, JSONValue]:
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
            "task_definition": self.target.task_definition,
            "image": self.target.image,
            "estimate": {
                **(self.cost.as_dict() if self.cost is not None else {}),
                "launch_seconds": round(self.launch_seconds, 1),
                "waves_of_concurrency": self.waves,
            },
        }


def plan(
    settings: Settings,
    kind: str,
    command: list[str],
    options: FanOutOptions,
    order: list[str],
    skipped: list[str],
    invalid: dict[str, str],
    target: RunTarget | None = None,
) -> MigrationPlan:
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
        target or RunTarget(),
    )


def exit_code_for(record: RunRecord) -> int:
    if record.state == RunState.INTERRUPTED:
        return 130
    if record.state == RunState.LAUNCHED:
        return 0
    return 0 if record.all_succeeded() else 1


def hints(record: RunRecord) -> list[str]:
    """What the operator can do next about a run, one line each."""
    failed = [r for r in record.tenants.values() if r.status in FAILURES]
    not_started = record.with_status(Status.NOT_STARTED)
    lines = []
    if failed:
        lines.append(f"retry the failed ones: redmica migrate --only-failed {record.run_id}")
    if record.state in (RunState.INTERRUPTED, RunState.RUNNING) or (not_started and not failed):
        lines.append(f"finish the run: redmica migrate --resume {record.run_id}")
    if record.state == RunState.LAUNCHED:
        lines.append(
            f"launched without waiting; follow it with `redmica runs show "
            f"{record.run_id}` or finish it with `redmica migrate --resume "
            f"{record.run_id}`"
        )
    return lines


def report_document(record: RunRecord) -> dict[str, JSONValue]:
    """The JSON document of a run: every tenant's result and the counts."""
    return {
        "run_id": record.run_id,
        "state": str(record.state),
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
        "summary": dict(record.summary()),
        "error": record.error,
    }


def plan_lines(plan: MigrationPlan) -> list[Line]:
    """A dry run: how many tenants, the command, the revision, the pacing, the cost."""
    options, cost, order = plan.options, plan.cost, plan.tenants
    lines = [
        f"plan (dry run): {len(order)} tenant(s) with the {plan.executor} executor",
        f"  command:  {shlex.join(plan.command)}",
    ]
    if plan.target.task_definition:
        revision = plan.target.task_definition.rsplit("/", 1)[-1]
        lines.append(f"  revision: {revision} (image {plan.target.image})")
    lines.append(
        f"  pacing:   {options.rate:g}/s, burst {options.burst}, at most "
        f"{options.concurrency} in flight, timeout {options.timeout:g}s"
    )
    if options.canary:
        lines.append(f"  canary:   the first {options.canary} tenant(s) must all succeed first")
    if options.max_failures:
        lines.append(f"  stop launching after {options.max_failures} failure(s)")
    if plan.skipped:
        lines.append(f"  skipped:  {', '.join(plan.skipped)}")
    lines += [f"  cannot run {tenant}: {why}" for tenant, why in sorted(plan.invalid.items())]
    lines += launch_lines(len(order), plan.launch_seconds, plan.waves, options)
    if cost is None:
        lines.append("  cost:     local processes, no Fargate time")
    else:
        lines.append(
            f"  cost:     {cost.total_usd:.4f} USD ({len(order)} x {cost.vcpu:g} vCPU x "
            f"{cost.memory_gb:g} GB x {cost.minutes:g} min)"
        )
    return [text(line) for line in lines]


def launch_lines(tenants: int, seconds: float, waves: int, options: FanOutOptions) -> list[str]:
    """What pacing means for this many tenants, in words that are true for it."""
    if tenants == 0:
        return []
    if seconds < 1:
        lines = [f"  launches: all {tenants} at once (within the burst of {options.burst})"]
    else:
        lines = [
            f"  launches: the first {options.burst} at once, the other "
            f"{tenants - options.burst} at {options.rate:g}/s: at least {seconds:.0f}s"
        ]
    if waves > 1:
        lines.append(
            f"  waves:    {waves} (at most {options.concurrency} tasks in flight at a time)"
        )
    return lines


def run_body(record: RunRecord, failure_table: bool = True) -> list[Part]:
    """The summary line, the failed tenants and (for --no-wait) the run id on stdout.

    `failure_table` False: the caller already shows every tenant's row (`runs show`), so only
    the command that reads each failed tenant's logs is added, not a second table.
    """
    counts = ", ".join(f"{n} {s}" for s, n in record.summary().items())
    body: list[Part] = [info(f"run {record.run_id} {record.state}: {counts or 'no tenants'}")]
    failed = sorted(
        (r for r in record.tenants.values() if r.status in FAILURES), key=lambda r: r.tenant
    )
    if failed:
        group = record.target.log_group
        rows: list[list[str | int | float | None]] = []
        for run in failed:
            if run.log_stream and group:
                logs = f"aws logs tail {group} --log-stream-names {run.log_stream}"
            else:
                logs = run.log_stream or ""
            rows.append([run.tenant, str(run.status), run.reason or "", logs])
        if failure_table:
            body.append(Table(("tenant", "status", "reason", "logs"), rows))
        else:
            body += [info(f"logs of {row[0]}: {row[3]}") for row in rows if row[3]]
        for run in failed:
            if run.tail:
                body.append(text(f"--- {run.tenant}: last lines of its output"))
                body += [text(f"  {line}") for line in run.tail[-TAIL_SHOWN:]]
    if record.state == RunState.INTERRUPTED and record.error:
        body.append(info(f"the run stopped on an error: {record.error}"))
    if record.state == RunState.LAUNCHED:
        body.append(text(record.run_id))
    return body


def run_table(record: RunRecord) -> Table:
    """Every tenant of a run: status, attempts, exit code, reason."""
    rows: list[list[str | int | float | None]] = [
        [
            r.tenant,
            str(r.status),
            r.attempts,
            "" if r.exit_code is None else r.exit_code,
            r.reason or "",
        ]
        for r in sorted(record.tenants.values(), key=lambda r: r.tenant)
    ]
    return Table(("tenant", "status", "attempts", "exit", "reason"), rows)


def plan_report(plan: MigrationPlan) -> Report:
    """A dry run's plan (exit 0: nothing ran)."""
    return Report(
        plain_json(plan.as_dict()),
        list(plan_lines(plan)),
        ["dry run: nothing was launched or written"],
    )


def run_report(
    record: RunRecord,
    every_tenant: bool = False,
    code_from_run: bool = True,
    pending_is_failure: bool = False,
    by_cell: dict[str, dict[str, int]] | None = None,
) -> Report:
    """A run's report.

    `every_tenant` adds the full table (`runs show`); `code_from_run` False: looking at a run
    is not the run (exit 0); `pending_is_failure` (`runs collect`): exit 1 while the run is not
    complete; `by_cell` (a setup with cells): a line and a JSON entry per cell with its counts.
    """
    body: list[Part] = [run_table(record)] if every_tenant else []
    body += run_body(record, failure_table=not every_tenant)
    code = exit_code_for(record) if code_from_run else 0
    if pending_is_failure and not record.complete():
        code = 1
    document = report_document(record)
    if by_cell is not None:
        document["cells"] = {cell: dict(counts) for cell, counts in by_cell.items()}
        for cell, counts in by_cell.items():
            summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            body.append(text(f"cell {cell}: {summary}"))
    return Report(document, body, hints(record), code)


def tenant_report(record: RunRecord, tenant: str) -> Report:
    """One tenant of a run: status, the whole captured tail, and where the full log is."""
    run = record.tenants.get(tenant)
    if run is None:
        raise NotFound(
            f"tenant {tenant!r} is not in run {record.run_id}",
            f"see the run's tenants with `redmica runs show {record.run_id}`",
        )
    group = record.target.log_group
    log: dict[str, object] | None = None
    if run.log_stream and group:
        log = {"group": group, "stream": run.log_stream}
    elif run.log_stream:
        log = {"file": run.log_stream}
    document: dict[str, object] = {**run.as_dict(), "run_id": record.run_id, "log": log}
    lines = [f"run {record.run_id}, tenant {tenant}: {run.status}"]
    if run.reason:
        lines.append(f"  reason:    {run.reason}")
    if run.exit_code is not None:
        lines.append(f"  exit code: {run.exit_code}")
    if run.image:
        lines.append(f"  image:     {run.image}")
    if log and "group" in log:
        lines.append(
            f"  full log:  CloudWatch Logs group {group}, stream {run.log_stream} "
            f"(aws logs tail {group} --log-stream-names {run.log_stream})"
        )
    elif log:
        lines.append(f"  full log:  {run.log_stream}")
    if run.tail:
        lines.append("--- last lines of its output (secrets masked):")
        lines += list(run.tail)
    elif run.status != Status.SUCCEEDED:
        lines.append("(no output captured yet)")
    return Report(plain_json(document), [text(line) for line in lines])


def runs_report(records: list[RunRecord]) -> Report:
    """`runs list`: the newest runs with their state and counts."""
    rows: list[list[str | int | float | None]] = [
        [r.run_id, str(r.state), r.executor, r.created_at, _counts(r)] for r in records
    ]
    document: list[JSONValue] = [
        {
            "run_id": r.run_id,
            "state": str(r.state),
            "executor": r.executor,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "parent_run": r.parent_run,
            "summary": dict(r.summary()),
        }
        for r in records
    ]
    return Report(document, [Table(("run", "state", "executor", "created", "tenants"), rows)])


def collected_report(pairs: list[tuple[RunRecord, int]]) -> Report:
    """`runs collect` of every recent run: what each collect settled; exit 1 while a run is
    not complete."""
    document: list[JSONValue] = [
        {
            "run_id": record.run_id,
            "state": str(record.state),
            "complete": record.complete(),
            "collected": changed,
            "summary": dict(record.summary()),
        }
        for record, changed in pairs
    ]
    rows: list[list[str | int | float | None]] = [
        [r.run_id, str(r.state), changed, _counts(r)] for r, changed in pairs
    ]
    pending = any(not record.complete() for record, _ in pairs)
    return Report(
        document, [Table(("run", "state", "collected", "tenants"), rows)], exit_code=int(pending)
    )


def _counts(record: RunRecord) -> str:
    return ", ".join(f"{n} {s}" for s, n in record.summary().items())

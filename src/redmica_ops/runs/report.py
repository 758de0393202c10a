"""How a migration run is shown: a dry run's plan, a run's summary and failures, one tenant.

Shared by everything that shows a run (`migrate`, `runs show`, `runs collect`, `release`'s
gate): each builds its `Report` here, so a run reads the same wherever it is shown.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from redmica_ops.errors import NotFound
from redmica_ops.report import Line, Part, Report, Table, info, plain_json, text
from redmica_ops.runs.migrations import hints, report_document
from redmica_ops.runs.record import FAILURES

if TYPE_CHECKING:
    from redmica_ops.runs.fanout import FanOutOptions
    from redmica_ops.runs.migrations import MigrationOutcome, MigrationPlan
    from redmica_ops.runs.record import RunRecord

TAIL_SHOWN = 5  # lines per failed tenant in a run's report; `runs show RUN TENANT` has all


def plan_lines(plan: MigrationPlan) -> list[Line]:
    """A dry run: how many tenants, the command, the revision, the pacing, the cost."""
    options, cost, order = plan.options, plan.cost, plan.tenants
    lines = [
        f"plan (dry run): {len(order)} tenant(s) with the {plan.executor} executor",
        f"  command:  {shlex.join(plan.command)}",
    ]
    if plan.task_definition:
        lines.append(f"  revision: {plan.task_definition.rsplit('/', 1)[-1]} (image {plan.image})")
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
        group = (record.target or {}).get("log_group")
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
    if record.state == "interrupted" and record.error:
        body.append(info(f"the run stopped on an error: {record.error}"))
    if record.state == "launched":
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


def migration_report(
    outcome: MigrationOutcome,
    every_tenant: bool = False,
    code_from_run: bool = True,
    pending_is_failure: bool = False,
) -> Report:
    """A dry run's plan or a run's report.

    `every_tenant` adds the full table (`runs show`); `code_from_run` False: looking at a run
    is not the run (exit 0); `pending_is_failure` (`runs collect`): exit 1 while the run is not
    complete.
    """
    if outcome.plan is not None:
        return Report(
            plain_json(outcome.plan.as_dict()),
            list(plan_lines(outcome.plan)),
            ["dry run: nothing was launched or written"],
            outcome.exit_code if code_from_run else 0,
        )
    record = outcome.record
    assert record is not None
    body: list[Part] = [run_table(record)] if every_tenant else []
    body += run_body(record, failure_table=not every_tenant)
    code = outcome.exit_code if code_from_run else 0
    if pending_is_failure and not record.complete():
        code = 1
    return Report(plain_json(report_document(record)), body, hints(record), code)


def tenant_report(record: RunRecord, tenant: str) -> Report:
    """One tenant of a run: status, the whole captured tail, and where the full log is."""
    run = record.tenants.get(tenant)
    if run is None:
        raise NotFound(
            f"tenant {tenant!r} is not in run {record.run_id}",
            f"see the run's tenants with `redmica runs show {record.run_id}`",
        )
    group = (record.target or {}).get("log_group")
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
    elif run.status != "succeeded":
        lines.append("(no output captured yet)")
    return Report(plain_json(document), [text(line) for line in lines])

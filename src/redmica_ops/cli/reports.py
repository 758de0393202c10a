"""Results of the run and deploy verbs, as `CommandResult`s: one JSON document, one text shape.

Shared by the command groups that show the same things: a migration run (`migrate`, `runs
show`, `release`), a rollout (`deploy`, `reload`, `rollback`, `release`, `tenant add
--activate`) and the service (`status`). No command module imports another's; they all
import from here.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output
    from redmica_ops.cli.result import Done, JSONValue
    from redmica_ops.deploy.model import RolloutReport
    from redmica_ops.deploy.release import ReleaseOutcome
    from redmica_ops.deploy.status import ServiceStatus
    from redmica_ops.runs.fanout import FanOutOptions
    from redmica_ops.runs.migrations import MigrationOutcome, MigrationPlan
    from redmica_ops.runs.record import RunRecord


def _json(value: object) -> JSONValue:
    """Round-trip through json so dataclass dicts with arbitrary values are plain JSON."""
    import json

    loaded: JSONValue = json.loads(json.dumps(value, default=str))
    return loaded


TAIL_SHOWN = 5  # lines per failed tenant in a run's report; `runs show RUN TENANT` has all


# -- migration runs --------------------------------------------------------------------------------
def render_plan(out: Output, plan: MigrationPlan) -> None:
    options, cost, order = plan.options, plan.cost, plan.tenants
    out.text(f"plan (dry run): {len(order)} tenant(s) with the {plan.executor} executor")
    out.text(f"  command:  {shlex.join(plan.command)}")
    if plan.task_definition:
        out.text(f"  revision: {plan.task_definition.rsplit('/', 1)[-1]} (image {plan.image})")
    out.text(
        f"  pacing:   {options.rate:g}/s, burst {options.burst}, at most "
        f"{options.concurrency} in flight, timeout {options.timeout:g}s"
    )
    if options.canary:
        out.text(f"  canary:   the first {options.canary} tenant(s) must all succeed first")
    if options.max_failures:
        out.text(f"  stop launching after {options.max_failures} failure(s)")
    if plan.skipped:
        out.text(f"  skipped:  {', '.join(plan.skipped)}")
    for tenant, why in sorted(plan.invalid.items()):
        out.text(f"  cannot run {tenant}: {why}")
    for line in launch_lines(len(order), plan.launch_seconds, plan.waves, options):
        out.text(line)
    if cost is None:
        out.text("  cost:     local processes, no Fargate time")
        return
    out.text(
        f"  cost:     {cost.total_usd:.4f} USD ({len(order)} x {cost.vcpu:g} vCPU x "
        f"{cost.memory_gb:g} GB x {cost.minutes:g} min)"
    )


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


def render_run(out: Output, record: RunRecord, failure_table: bool = True) -> None:
    """The summary line, the failed tenants and (for --no-wait) the run id on stdout.

    `failure_table` False: the caller already printed every tenant's row (`runs show`), so
    only the command that reads each failed tenant's logs is added, not a second table.
    """
    from redmica_ops.runs.record import FAILURES

    counts = ", ".join(f"{n} {s}" for s, n in record.summary().items())
    out.info(f"run {record.run_id} {record.state}: {counts or 'no tenants'}")
    failed = [r for r in record.tenants.values() if r.status in FAILURES]
    if failed:
        group = (record.target or {}).get("log_group")
        rows = []
        for run in sorted(failed, key=lambda r: r.tenant):
            if run.log_stream and group:
                logs = f"aws logs tail {group} --log-stream-names {run.log_stream}"
            else:
                logs = run.log_stream or ""
            rows.append([run.tenant, str(run.status), run.reason or "", logs])
        if failure_table:
            out.table(["tenant", "status", "reason", "logs"], rows)
        else:
            for tenant, _, _, logs in rows:
                if logs:
                    out.info(f"logs of {tenant}: {logs}")
        for run in sorted(failed, key=lambda r: r.tenant):
            if run.tail:
                out.text(f"--- {run.tenant}: last lines of its output")
                for line in run.tail[-TAIL_SHOWN:]:
                    out.text(f"  {line}")
    if record.state == "interrupted" and record.error:
        out.info(f"the run stopped on an error: {record.error}")
    if record.state == "launched":
        out.text(record.run_id)


def render_run_table(out: Output, record: RunRecord) -> None:
    rows = [
        [
            r.tenant,
            str(r.status),
            r.attempts,
            "" if r.exit_code is None else r.exit_code,
            r.reason or "",
        ]
        for r in sorted(record.tenants.values(), key=lambda r: r.tenant)
    ]
    out.table(["tenant", "status", "attempts", "exit", "reason"], rows)


@dataclass
class MigrationResult:
    """A dry run's plan or a run's report; `every_tenant` adds the full table (`runs show`)."""

    outcome: MigrationOutcome
    every_tenant: bool = False
    code_from_run: bool = True  # False: looking at a run is not the run (`runs show` exits 0)
    pending_is_failure: bool = False  # `runs collect`: exit 1 while the run is not complete

    @property
    def messages(self) -> list[str]:
        from redmica_ops.runs.migrations import hints

        if self.outcome.record is None:
            return ["dry run: nothing was launched or written"]
        return hints(self.outcome.record)

    def to_json(self) -> JSONValue:
        from redmica_ops.runs.migrations import report_document

        if self.outcome.plan is not None:
            return _json(self.outcome.plan.as_dict())
        assert self.outcome.record is not None
        return _json(report_document(self.outcome.record))

    def render_text(self, out: Output) -> None:
        if self.outcome.plan is not None:
            render_plan(out, self.outcome.plan)
            return
        assert self.outcome.record is not None
        if self.every_tenant:
            render_run_table(out, self.outcome.record)
        render_run(out, self.outcome.record, failure_table=not self.every_tenant)

    @property
    def exit_code(self) -> int:
        record = self.outcome.record
        if self.pending_is_failure and record is not None and not record.complete():
            return 1
        return self.outcome.exit_code if self.code_from_run else 0


def tenant_result(record: RunRecord, tenant: str) -> Done:
    """One tenant of a run: status, the whole captured tail, and where the full log is."""
    from redmica_ops.cli.result import Done
    from redmica_ops.errors import NotFound

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

    def text(out: Output) -> None:
        out.text(f"run {record.run_id}, tenant {tenant}: {run.status}")
        if run.reason:
            out.text(f"  reason:    {run.reason}")
        if run.exit_code is not None:
            out.text(f"  exit code: {run.exit_code}")
        if run.image:
            out.text(f"  image:     {run.image}")
        if log and "group" in log:
            out.text(
                f"  full log:  CloudWatch Logs group {group}, stream {run.log_stream} "
                f"(aws logs tail {group} --log-stream-names {run.log_stream})"
            )
        elif log:
            out.text(f"  full log:  {run.log_stream}")
        if run.tail:
            out.text("--- last lines of its output (secrets masked):")
            for line in run.tail:
                out.text(line)
        elif run.status != "succeeded":
            out.text("(no output captured yet)")

    return Done(_json(document), text)


# -- rollouts --------------------------------------------------------------------------------------
def render_rollout(out: Output, report: RolloutReport) -> None:
    from redmica_ops.deploy.model import revision_name

    if report.ok:
        out.success(
            f"{report.action}: {report.reason} "
            f"({revision_name(str(report.task_definition))}, "
            f"deployment {report.deployment_id})"
        )
        return
    # "deploy failed: <reason>"; the result word only when it adds something (timed out, ...).
    how = "" if report.result == "failed" else f" ({report.result.replace('_', ' ')})"
    out.info(f"error: {report.action} failed{how}: {report.reason}")
    if report.rolled_back_to:
        out.info(f"rolled back to {revision_name(report.rolled_back_to)}: {report.rollback_result}")
    elif report.result != "started":
        out.info("the service was NOT rolled back (--no-rollback, or nothing to go back to)")
    if report.events and report.result == "started":
        out.info("recent service events:")
        for message in report.events:
            out.info(f"  {message}")
    elif report.events:
        # They were printed as they happened ("event: ..."); not a second time.
        out.info("earlier service events: `redmica status --events 10`")
    if report.stopped_tasks:
        out.info("recently stopped tasks:")
        for line in report.stopped_tasks:
            out.info(f"  {line}")


@dataclass
class RolloutResult:
    """A deployment we started and followed: exit 1 for any failed rollout (rolled back or not)."""

    report: RolloutReport

    def to_json(self) -> JSONValue:
        return _json(self.report.as_dict())

    def render_text(self, out: Output) -> None:
        render_rollout(out, self.report)

    @property
    def exit_code(self) -> int:
        return 0 if self.report.ok else 1


@dataclass
class ReleaseResult:
    """The migration gate's run, then the deployment if the gate passed."""

    outcome: ReleaseOutcome

    def to_json(self) -> JSONValue:
        from redmica_ops.runs.migrations import report_document

        o = self.outcome
        document: dict[str, object] = (
            o.report.as_dict()
            if o.report is not None
            else {
                "action": "release",
                "ok": False,
                "result": "gate_failed",
                "reason": "the migration gate did not pass",
                "task_definition": o.task_definition,
                "previous_task_definition": o.previous_task_definition,
            }
        )
        document["migration"] = report_document(o.migration)
        return _json(document)

    def render_text(self, out: Output) -> None:
        from redmica_ops.deploy.model import revision_name

        o = self.outcome
        render_run(out, o.migration)
        if o.report is None:
            out.info(
                f"error: release stopped: the migration gate did not pass (run "
                f"{o.migration.run_id}); {revision_name(o.task_definition)} is registered but "
                "NOT deployed"
            )
            return
        render_rollout(out, o.report)

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code


# -- the service -----------------------------------------------------------------------------------
@dataclass
class StatusResult:
    status: ServiceStatus

    def to_json(self) -> JSONValue:
        return _json(self.status.as_dict())

    def render_text(self, out: Output) -> None:
        from redmica_ops.deploy.model import revision_name

        s = self.status
        out.text(
            f"service {s.service} ({s.status}): {revision_name(str(s.task_definition))}, "
            f"desired {s.desired}, running {s.running}, pending {s.pending}"
        )
        out.table(
            ["deployment", "status", "revision", "desired", "running", "pending", "rollout"],
            [
                [
                    v.id,
                    v.status,
                    revision_name(v.task_definition),
                    v.desired,
                    v.running,
                    v.pending,
                    v.rollout_state or "",
                ]
                for v in s.deployments
            ],
        )
        for arn, state in s.service_deployments or []:
            out.text(f"service deployment {arn.rsplit('/', 1)[-1]}: {state}")
        for event in s.events:
            out.text(f"{event.at}  {event.message}")

    @property
    def exit_code(self) -> int:
        return 0

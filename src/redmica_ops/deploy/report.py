"""How a rollout, a release and the service are shown: one JSON document, one text shape.

Shared by everything that shows them (`deploy`, `reload`, `rollback`, `release`, `status`,
`tenant add --activate`): each builds its `Report` here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redmica_ops.deploy.model import revision_name
from redmica_ops.report import Line, Part, Report, Table, info, plain_json, success, text
from redmica_ops.runs.migrations import report_document
from redmica_ops.runs.report import run_body

if TYPE_CHECKING:
    from redmica_ops.deploy.model import RolloutReport
    from redmica_ops.deploy.release import ReleaseOutcome
    from redmica_ops.deploy.status import ServiceStatus


def rollout_lines(report: RolloutReport) -> list[Line]:
    """A rollout we started and followed: what it did, and on failure what to look at."""
    if report.ok:
        return [
            success(
                f"{report.action}: {report.reason} "
                f"({revision_name(str(report.task_definition))}, "
                f"deployment {report.deployment_id})"
            )
        ]
    # "deploy failed: <reason>"; the result word only when it adds something (timed out, ...).
    how = "" if report.result == "failed" else f" ({report.result.replace('_', ' ')})"
    lines = [f"error: {report.action} failed{how}: {report.reason}"]
    if report.rolled_back_to:
        lines.append(
            f"rolled back to {revision_name(report.rolled_back_to)}: {report.rollback_result}"
        )
    elif report.result != "started":
        lines.append("the service was NOT rolled back (--no-rollback, or nothing to go back to)")
    if report.events and report.result == "started":
        lines.append("recent service events:")
        lines += [f"  {message}" for message in report.events]
    elif report.events:
        # They were printed as they happened ("event: ..."); not a second time.
        lines.append("earlier service events: `redmica status --events 10`")
    if report.stopped_tasks:
        lines.append("recently stopped tasks:")
        lines += [f"  {line}" for line in report.stopped_tasks]
    return [info(line) for line in lines]


def rollout_report(report: RolloutReport) -> Report:
    """Exit 1 for any failed rollout (rolled back or not)."""
    return Report(
        plain_json(report.as_dict()), list(rollout_lines(report)), [], 0 if report.ok else 1
    )


def release_report(outcome: ReleaseOutcome) -> Report:
    """The migration gate's run, then the deployment if the gate passed."""
    document: dict[str, object] = (
        outcome.report.as_dict()
        if outcome.report is not None
        else {
            "action": "release",
            "ok": False,
            "result": "gate_failed",
            "reason": "the migration gate did not pass",
            "task_definition": outcome.task_definition,
            "previous_task_definition": outcome.previous_task_definition,
        }
    )
    document["migration"] = report_document(outcome.migration)
    body = run_body(outcome.migration)
    if outcome.report is None:
        body.append(
            info(
                f"error: release stopped: the migration gate did not pass (run "
                f"{outcome.migration.run_id}); {revision_name(outcome.task_definition)} is "
                "registered but NOT deployed"
            )
        )
    else:
        body += rollout_lines(outcome.report)
    return Report(plain_json(document), body, [], outcome.exit_code)


def status_report(status: ServiceStatus) -> Report:
    """The service: revision and counts, its deployments, service deployments, events."""
    s = status
    body: list[Part] = [
        text(
            f"service {s.service} ({s.status}): {revision_name(str(s.task_definition))}, "
            f"desired {s.desired}, running {s.running}, pending {s.pending}"
        ),
        Table(
            ("deployment", "status", "revision", "desired", "running", "pending", "rollout"),
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
        ),
    ]
    body += [
        text(f"service deployment {arn.rsplit('/', 1)[-1]}: {state}")
        for arn, state in s.service_deployments or []
    ]
    body += [text(f"{event.at}  {event.message}") for event in s.events]
    return Report(plain_json(s.as_dict()), body)

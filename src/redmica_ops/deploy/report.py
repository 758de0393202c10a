"""How a rollout, a release and the service are shown: one JSON document, one text shape.

Shared by everything that shows them (`deploy`, `reload`, `rollback`, `release`, `status`,
`deploy --diff`, `tenant add --activate`): each builds its `Report` here. A rollout of the one
implicit cell (no `cells` setting, no --cell) is shown as the single service's; with cells, as a
table of the cells.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redmica_ops.deploy.model import revision_name
from redmica_ops.deploy.release import ReleaseOutcome, ReleasePlan
from redmica_ops.report import Line, Part, Report, Table, info, plain_json, success, text
from redmica_ops.runs.report import report_document, run_body

if TYPE_CHECKING:
    from redmica_ops.cells.status import FleetStatus, ServiceStatus
    from redmica_ops.cells.waves import CellResult, WaveReport
    from redmica_ops.deploy.model import RolloutReport
    from redmica_ops.deploy.plan import DeployPlan, FleetPlan


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
    # What to look at first, the verdict last: "deploy failed: <reason>" (the result word only
    # when it adds something: timed out, ...), so the end of a log says how it ended.
    how = "" if report.result == "failed" else f" ({report.result.replace('_', ' ')})"
    lines: list[str] = []
    if report.events and report.result == "started":
        lines.append("recent service events:")
        lines += [f"  {message}" for message in report.events]
    elif report.events:
        # They were printed as they happened ("event: ..."); not a second time.
        lines.append("earlier service events: `redmica status --events 10`")
    if report.stopped_tasks:
        lines.append(f"stopped tasks of deployment {report.deployment_id}:")
        lines += [f"  {line}" for line in report.stopped_tasks]
    if report.rolled_back_to:
        lines.append(
            f"rolled back to {revision_name(report.rolled_back_to)}: {report.rollback_result}"
        )
    elif report.result != "started":
        lines.append(
            "the service was NOT rolled back ("
            + (report.not_rolled_back or "--no-rollback, or nothing to go back to")
            + ")"
        )
    lines.append(f"error: {report.action} failed{how}: {report.reason}")
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


def fleet_status_report(status: FleetStatus) -> Report:
    """The single service as `status_report` shows it; with cells a row per cell, then each
    cell's recent events."""
    if status.implicit:
        return status_report(status.cells[0].service)
    rows = [c.as_dict() for c in status.cells]
    table = Table(
        ("cell", "service", "revision", "desired", "running", "pending", "deployments", "rollout"),
        [
            [
                c.cell,
                c.service.service,
                revision_name(str(c.service.task_definition)),
                c.service.desired,
                c.service.running,
                c.service.pending,
                len(c.service.deployments),
                str(row["rollout"] or ""),
            ]
            for c, row in zip(status.cells, rows, strict=True)
        ],
    )
    events = [
        text(f"[{c.cell}] {e.at}  {e.message}") for c in status.cells for e in c.service.events
    ]
    return Report(plain_json(status.as_dict()), [table, *events])


def wave_report(report: WaveReport) -> Report:
    """A rollout: the single service's shape for the implicit cell, else the cells' table."""
    if not report.implicit:
        return cells_report(report)
    cell = report.cells[0]
    if cell.status == "unchanged":  # a rollback to the revision the service runs
        return Report(
            {
                "action": report.action,
                "ok": True,
                "result": "unchanged",
                "reason": "the service already runs this revision",
                "task_definition": cell.revision,
            }
        )
    if report.action == "release":
        assert cell.migration is not None and cell.migration.record is not None
        assert cell.revision is not None and cell.previous is not None
        return _with_probe(
            release_report(
                ReleaseOutcome(cell.revision, cell.previous, cell.migration.record, cell.rollout)
            ),
            cell,
        )
    assert cell.rollout is not None
    return _with_probe(rollout_report(cell.rollout), cell)


def _with_probe(shown: Report, cell: CellResult) -> Report:
    """The single service's report with the site probe after its rollout (docs/probe.md): a
    failed probe fails the command even though the rollout itself succeeded."""
    gate = cell.probe
    if gate is None:
        return shown
    if isinstance(shown.document, dict):
        shown.document["probe"] = plain_json(gate.as_dict())
        shown.document["ok"] = shown.document.get("ok") and gate.ok
    if gate.ok:
        shown.body.append(success(f"sites: {gate.summary}"))
        return shown
    shown.body.append(info(f"error: the site probe failed: {gate.summary}"))
    if cell.undo and cell.previous:
        shown.body.append(info(f"rolled back to {revision_name(cell.previous)}: {cell.undo}"))
    else:
        shown.body.append(info("the service was NOT rolled back (--no-rollback)"))
    shown.exit_code = 1
    return shown


def _cell_row(cell: CellResult) -> list[str | int | float | None]:
    return [
        cell.cell,
        cell.wave,
        cell.status + (f" (undo: {cell.undo})" if cell.undo else ""),
        revision_name(cell.previous) if cell.previous else "",
        revision_name(cell.revision) if cell.revision else "",
        cell.detail,
    ]


def cells_report(report: WaveReport) -> Report:
    """A row per cell (wave, status, from, to, what happened), then the verdict."""
    body: list[Part] = [
        Table(
            ("cell", "wave", "status", "from", "to", "detail"),
            [_cell_row(cell) for cell in report.cells],
        )
    ]
    if report.ok:
        body.append(success(f"{report.action}: every cell succeeded ({len(report.cells)} cell(s))"))
    else:
        undone = [c.cell for c in report.cells if c.undo]
        body.append(
            info(
                f"error: {report.action} FAILED in wave {report.stopped_after_wave}; later "
                "waves were not started"
                + (f"; rolled back cell(s) {', '.join(undone)}" if undone else "")
            )
        )
    return Report(plain_json(report.as_dict()), body, [], 0 if report.ok else 1)


def plan_report(plan: DeployPlan | FleetPlan) -> Report:
    """`deploy --diff`: the changes on stdout; exit 0 no change, 1 changes."""
    return Report(plan.as_dict(), [text(line) for line in plan.lines()], [], plan.exit_code)


def release_plan_report(plan: ReleasePlan) -> Report:
    """`release --dry-run`: the gate, then each wave's cells, then what is NOT done."""
    r = plan.request
    policy = ", ".join(
        f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
        for name, value in (
            ("canary", r.canary),
            ("max failures", r.max_failures),
            ("concurrency", r.concurrency),
            ("migrate timeout", r.migrate_timeout),
        )
        if value is not None
    )
    body: list[Part] = [
        text(f"release plan: {plan.image} into container {plan.container}"),
        text(
            "gate: every tenant of "
            + ("the service" if plan.implicit else "a cell")
            + " migrates with the new revision first"
            + (f" ({policy})" if policy else "")
            + "; "
            + ("it deploys" if plan.implicit else "the cell deploys")
            + " only if every one succeeds"
            + ("" if r.rollback else " (--no-rollback: a failed rollout is left as it is)")
        ),
    ]
    waves = max((c.wave for c in plan.cells), default=0)
    for cell in plan.cells:
        where = f"service {cell.service} in cluster {cell.cluster}"
        if not plan.implicit:
            kind = "canary cell" if cell.canary else "cell"
            where = f"wave {cell.wave}/{waves}: {kind} {cell.cell} ({where})"
        invalid = f", {cell.invalid} invalid document(s) that fail its gate" if cell.invalid else ""
        body.append(
            text(
                f"{where}: runs {revision_name(cell.current)}; "
                f"{cell.tenants} tenant(s) to migrate{invalid}"
            )
        )
    body.append(success("dry run: nothing was registered, migrated or deployed"))
    return Report(plain_json(plan.as_dict()), body)

"""Deploy verbs across cells: the options they share and the per-cell report.

Used by `deploy`, `release`, `reload` and `rollback` when the `cells` setting names cells (or
--cell is given); without cells those commands behave as before, on the one `service`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from redmica_ops.cli.result import Done, JSONValue

if TYPE_CHECKING:
    from redmica_ops.cells.waves import MigrationOptions, WaveReport, WaveRequest
    from redmica_ops.cli.app import Application
    from redmica_ops.cli.output import Output

F = TypeVar("F", bound=Callable[..., Any])


def cell_options(waves: bool) -> Callable[[F], F]:
    """--cell (repeatable); with waves also --canary-cell and --max-parallel-cells."""

    def decorate(func: F) -> F:
        if waves:
            func = click.option(
                "--max-parallel-cells",
                type=click.IntRange(1),
                metavar="N",
                help="cells changed at once after the canary [default: setting, 1]",
            )(func)
            func = click.option(
                "--canary-cell",
                metavar="CELL",
                help="cell changed first, alone [default: setting canary_cell, else the first]",
            )(func)
        func = click.option(
            "--cell",
            "cells",
            multiple=True,
            metavar="CELL",
            help="only this cell (repeat for several) [default: every cell]",
        )(func)
        return func

    return decorate


def wants_cells(app: Application, cells: tuple[str, ...]) -> bool:
    return bool(cells or app.settings.cells)


def refuse_no_wait(no_wait: bool) -> None:
    from redmica_ops.errors import UsageError

    if no_wait:
        raise UsageError(
            "--no-wait cannot be used with cells: each wave waits for the previous one",
            "leave out --no-wait, or give a single service without the cells setting",
        )


def wave_request(
    app: Application,
    action: str,
    cells: tuple[str, ...],
    canary: str | None = None,
    max_parallel: int | None = None,
    **fields: Any,
) -> WaveRequest:
    from redmica_ops.cells.config import cell_map
    from redmica_ops.cells.waves import WaveRequest

    settings = app.settings
    known = cell_map(settings)
    names = tuple(c.name for c in known.select(cells)) if cells else tuple(known.names())
    canary = canary or settings.canary_cell
    if canary is not None and canary not in names:
        known.get(canary)  # unknown at all: a usage error naming the cells
        canary = None  # a canary outside the chosen cells: the first chosen one leads
    return WaveRequest(
        action=action,
        cells=names,
        canary=canary,
        max_parallel=max_parallel or settings.max_parallel_cells,
        **fields,
    )


def run(app: Application, request: WaveRequest, migrate: MigrationOptions | None = None) -> Done:
    from redmica_ops.cells.waves import cell_migrator, run_waves
    from redmica_ops.runs.pacing import sigint_escalates

    fleet = app.workspace().fleet()
    cells = fleet.cells.select(request.cells)
    ws = app.workspace()
    migrator = cell_migrator(ws, fleet.cells, migrate) if migrate is not None else None
    with sigint_escalates(ws.cancellation):
        report = run_waves(request, cells, fleet, migrator, app.output.info)
    return result(report)


def result(report: WaveReport) -> Done:
    from redmica_ops.deploy.model import revision_name

    def text(out: Output) -> None:
        rows = []
        for cell in report.cells:
            rows.append(
                [
                    cell.cell,
                    cell.wave,
                    cell.status + (f" (undo: {cell.undo})" if cell.undo else ""),
                    revision_name(cell.previous) if cell.previous else "",
                    revision_name(cell.revision) if cell.revision else "",
                    cell.detail,
                ]
            )
        out.table(["cell", "wave", "status", "from", "to", "detail"], rows)
        if report.ok:
            out.success(f"{report.action}: every cell succeeded ({len(report.cells)} cell(s))")
        else:
            undone = [c.cell for c in report.cells if c.undo]
            out.info(
                f"error: {report.action} FAILED in wave {report.stopped_after_wave}; later "
                "waves were not started"
                + (f"; rolled back cell(s) {', '.join(undone)}" if undone else "")
            )

    document: JSONValue = report.as_dict()  # type: ignore[assignment]
    return Done(document, text, code=0 if report.ok else 1)


def status(app: Application, cells: tuple[str, ...], events: int) -> Done:
    """Every cell's service: revision, counts, rollout state, recent events."""
    from redmica_ops.deploy.model import DeploymentView, event_time, revision_name

    fleet = app.workspace().fleet()
    chosen = fleet.cells.select(cells) if cells else list(fleet.cells.cells)
    rows: list[dict[str, JSONValue]] = []
    event_lines: list[str] = []
    for cell in chosen:
        service = fleet.deployer(cell).service()
        views = [DeploymentView.of(d) for d in service.get("deployments", [])]
        primary = next((v for v in views if v.status == "PRIMARY"), None)
        recent = [
            {"at": event_time(e), "message": str(e.get("message"))}
            for e in service.get("events", [])[:events]
        ]
        event_lines += [f"[{cell.name}] {e['at']}  {e['message']}" for e in recent]
        rows.append(
            {
                "cell": cell.name,
                "service": service.get("serviceName"),
                "status": service.get("status"),
                "task_definition": service.get("taskDefinition"),
                "desired": service.get("desiredCount"),
                "running": service.get("runningCount"),
                "pending": service.get("pendingCount"),
                "rollout": primary.rollout_state if primary else None,
                "deployments": len(views),
                "events": list(recent),
            }
        )

    def text(out: Output) -> None:
        out.table(
            [
                "cell",
                "service",
                "revision",
                "desired",
                "running",
                "pending",
                "deployments",
                "rollout",
            ],
            [
                [
                    r["cell"],
                    r["service"],
                    revision_name(str(r["task_definition"])),
                    r["desired"],
                    r["running"],
                    r["pending"],
                    r["deployments"],
                    r["rollout"] or "",
                ]
                for r in rows
            ],
        )
        for line in event_lines:
            out.text(line)

    document: JSONValue = {"cells": rows}
    return Done(document, text)

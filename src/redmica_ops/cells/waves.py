"""Rollouts in waves: the canary cell first, alone; then the other cells, `max_parallel` at a time.

Every deploying verb (deploy, reload, rollback, release) goes through `run_waves`, for one cell or
ten: a setup without the `cells` setting is one implicit cell, the `service` setting, and its
rollout is the one wave of that cell. The verb says what happens in each cell (`Step`); this
module orders the cells, starts each wave only when every cell of the previous one succeeded,
and on a failure stops: later waves are not touched, and every cell this rollout already
changed goes back to the revision it ran before (the failing cell is rolled back by its own
rollout, as `deploy` does).

With a probe (`deploy`/`release --max-probe-failures`, `probe/gate.py`), a wave whose cells all
succeeded is judged by its sites too: more failed sites than the budget fails the wave like a
failed deployment; its cells with failed sites are `probe_failed` and go back with the rest.

The implicit cell keeps the single service's behaviour: no "wave 1/1" lines, the state line of
the workspace, a `RedmicaError` raised (exit 3, 5, ...) rather than recorded as a cell's error,
and `--no-wait` allowed; with cells, each wave waits for the previous one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.cells.config import cell_map
from redmica_ops.deploy.image import record_images
from redmica_ops.deploy.model import RolloutReport
from redmica_ops.deploy.rollout import ServiceDeployer, roll_out
from redmica_ops.errors import Interrupted, RedmicaError, UsageError
from redmica_ops.runs.pacing import sigint_escalates
from redmica_ops.settings import require

if TYPE_CHECKING:
    from redmica_ops.cells.config import Cell
    from redmica_ops.cells.fleet import Fleet
    from redmica_ops.probe.model import ProbeGate, WaveProber
    from redmica_ops.runs.record import RunRecord
    from redmica_ops.workspace import Workspace

ACTIONS = ("deploy", "release", "reload", "rollback")


@dataclass(frozen=True)
class WaveOptions:
    """Which cells a rollout changes, and in what order (every request of a deploying verb)."""

    cells: tuple[str, ...] = ()  # none: every cell (the implicit one without cells)
    canary: str | None = None  # default: setting canary_cell, else the first chosen cell
    max_parallel: int | None = None  # default: setting max_parallel_cells


def plan_waves(cells: Sequence[Cell], canary: str | None, max_parallel: int) -> list[list[Cell]]:
    """[[canary], then the rest in order, `max_parallel` per wave]."""
    if max_parallel < 1:
        raise UsageError("--max-parallel-cells must be at least 1")
    if not cells:
        return []
    names = [c.name for c in cells]
    if canary is not None and canary not in names:
        raise UsageError(
            f"the canary cell {canary!r} is not among this rollout's cells ({', '.join(names)})"
        )
    first = next(c for c in cells if c.name == (canary or names[0]))
    rest = [c for c in cells if c is not first]
    return [[first]] + [rest[i : i + max_parallel] for i in range(0, len(rest), max_parallel)]


@dataclass(frozen=True)
class MigrationGate:
    """A cell's migration before its deploy: did every tenant of the cell migrate?"""

    ok: bool
    run_id: str | None
    summary: str
    exit_code: int = 0
    record: RunRecord | None = None  # None: nothing to migrate in the cell


@dataclass
class CellResult:
    cell: str
    wave: int
    status: str = "not_started"
    # succeeded | failed | rolled_back | migration_failed | probe_failed | not_started |
    # unchanged | error
    detail: str = ""
    previous: str | None = None
    revision: str | None = None
    migration: MigrationGate | None = None
    rollout: RolloutReport | None = None
    undo: str | None = None  # the result of rolling this cell back after another failed
    probe: ProbeGate | None = None  # its wave's site probe, when one ran

    @property
    def changed(self) -> bool:
        """Whether this rollout left the cell on another revision than it found (a cell whose
        sites failed the probe was deployed: it is put back like the others)."""
        deployed = self.status in ("succeeded", "probe_failed")
        return deployed and self.revision not in (None, self.previous)

    @property
    def moved(self) -> bool:
        """Changed, and the rollout was waited for (one not waited for is not judged yet):
        the cell now runs `revision` (deploy/image.py records its image)."""
        return self.changed and self.rollout is not None and self.rollout.result == "succeeded"

    def followed(self, rollout: RolloutReport) -> None:
        """The cell's status from the rollout that changed it."""
        self.rollout = rollout
        if rollout.ok:
            self.status, self.detail = "succeeded", rollout.reason
        elif rollout.rolled_back_to:
            self.status = "rolled_back"
            self.detail = (
                f"{rollout.result}: {rollout.reason}; rolled back ({rollout.rollback_result})"
            )
        else:
            self.status, self.detail = "failed", f"{rollout.result}: {rollout.reason}"

    def as_dict(self) -> dict[str, object]:
        return {
            "cell": self.cell,
            "wave": self.wave,
            "status": self.status,
            "detail": self.detail,
            "previous": self.previous,
            "revision": self.revision,
            "migration": None
            if self.migration is None
            else {
                "ok": self.migration.ok,
                "run_id": self.migration.run_id,
                "summary": self.migration.summary,
            },
            "rollout": None if self.rollout is None else self.rollout.as_dict(),
            "undo": self.undo,
            "probe": None if self.probe is None else self.probe.as_dict(),
        }


@dataclass
class WaveReport:
    action: str
    waves: list[list[str]]
    cells: list[CellResult] = field(default_factory=list)
    stopped_after_wave: int | None = None
    # The one implicit cell (no `cells` setting, no --cell): shown as the single service.
    implicit: bool = False

    @property
    def ok(self) -> bool:
        return self.stopped_after_wave is None

    def as_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "ok": self.ok,
            "waves": self.waves,
            "stopped_after_wave": self.stopped_after_wave,
            "cells": [c.as_dict() for c in self.cells],
        }


@dataclass
class CellRun:
    """One cell's part of a rollout, handed to the verb's step."""

    cell: Cell
    deployer: ServiceDeployer  # its messages name the cell when there are several
    result: CellResult
    implicit: bool
    timeout: float

    def say(self, text: str) -> None:
        self.deployer.progress(text)


Step = Callable[[CellRun], None]


def implicit_rollout(options: WaveOptions, fleet: Fleet) -> bool:
    """No `cells` setting and no --cell: the single service, shown as before cells."""
    return not fleet.cells.configured and not options.cells


def target_of(options: WaveOptions, ws: Workspace) -> str:
    """What a confirmation names; a missing setting or an unknown cell fails before anyone
    is asked, and before any AWS client is made."""
    settings = ws.settings
    cells = cell_map(settings)
    if not cells.configured and not options.cells:
        require(settings, ["cluster", "service"], "deployments need")
        return f"service {settings.service} in cluster {settings.cluster}"
    chosen = cells.select(options.cells) if options.cells else cells.cells
    return f"cell(s) {', '.join(c.name for c in chosen)} in waves"


def run_waves(
    action: str,
    options: WaveOptions,
    ws: Workspace,
    step: Step,
    *,
    timeout: float | None = None,
    wait: bool = True,
    undo: bool = True,
    probe: WaveProber | None = None,
) -> WaveReport:
    """Run `step` in each chosen cell, wave after wave; `undo`: put back what changed when a
    wave fails; `probe`: judge each deployed wave by its tenants' sites too."""
    if action not in ACTIONS:
        raise UsageError(f"unknown wave action {action!r}")
    fleet = ws.fleet()
    implicit = implicit_rollout(options, fleet)
    if not wait and not implicit:
        raise UsageError(
            "--no-wait cannot be used with cells: each wave waits for the previous one",
            "leave out --no-wait, or give a single service without the cells setting",
        )
    if not wait and probe is not None:
        raise UsageError(
            "--no-wait cannot be used with the probe: the sites are probed after the rollout",
            "leave out --no-wait, or turn the probe off (--no-probe)",
        )
    waves = waves_for(options, fleet)
    report = WaveReport(action, [[c.name for c in wave] for wave in waves], implicit=implicit)
    results = {
        c.name: CellResult(c.name, number)
        for number, wave in enumerate(waves, start=1)
        for c in wave
    }
    report.cells = [results[c.name] for wave in waves for c in wave]
    seconds = float(timeout if timeout is not None else ws.settings.deploy_timeout)

    def one(cell: Cell) -> None:
        deployer = fleet.service_deployer() if implicit else fleet.deployer(cell)
        # The reads and the registration before the rollout too: an ECS that stops answering
        # then fails the step after about `seconds`, not 8 attempts of a 20 s read timeout.
        with deployer.deadline_in(seconds):
            step(CellRun(cell, deployer, results[cell.name], implicit, seconds))

    def guarded(cell: Cell) -> None:
        _recorded(one, cell, results[cell.name])

    # A run of migrations (release) or of several cells: Ctrl-C asks them to stop first.
    escalate = not implicit or action == "release"
    with sigint_escalates(ws.cancellation) if escalate else contextlib.nullcontext():
        for number, wave in enumerate(waves, start=1):
            if implicit:
                one(wave[0])  # the single service: its errors are the command's
                deployed = results[wave[0].name].status in ("succeeded", "unchanged")
                if deployed and probe and _probe_failed(wave, results, probe, ws, action) and undo:
                    _undo(report, fleet, ws)
                continue
            names = ", ".join(c.name for c in wave)
            label = "canary " if number == 1 and len(waves) > 1 else ""
            ws.message(f"{action}: wave {number}/{len(waves)}: {label}cell(s) {names}")
            if len(wave) == 1:
                guarded(wave[0])
            else:
                with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                    list(pool.map(guarded, wave))
            failed = [c for c in wave if results[c.name].status not in ("succeeded", "unchanged")]
            if not failed and probe is not None:
                failed = _probe_failed(wave, results, probe, ws, action)
            if failed:
                report.stopped_after_wave = number
                ws.message(
                    f"{action}: wave {number} failed in cell(s) "
                    f"{', '.join(c.name for c in failed)}; later waves are not started"
                )
                if undo:
                    _undo(report, fleet, ws)
                break
    if implicit and report.cells[0].status not in ("succeeded", "unchanged"):
        report.stopped_after_wave = 1
    record_images(fleet, ws, [(c.cell, str(c.revision)) for c in report.cells if c.moved])
    return report


def _probe_failed(
    wave: list[Cell], results: dict[str, CellResult], probe: WaveProber, ws: Workspace, action: str
) -> list[Cell]:
    """Probe the wave's sites; a failed gate marks the cells with failed sites (every cell of
    the wave when the probe itself could not run) `probe_failed`, and returns them."""
    ws.message(f"{action}: probing the sites of cell(s) {', '.join(c.name for c in wave)}")
    gate = probe(wave)
    for cell in wave:
        results[cell.name].probe = gate
    if gate.ok:
        ws.message(f"{action}: {gate.summary}")
        return []
    bad = [c for c in wave if c.name in gate.by_cell] or list(wave)
    for cell in bad:
        result = results[cell.name]
        named = gate.by_cell.get(cell.name, ())
        result.status = "probe_failed"
        result.detail = (
            f"deployed, but its sites failed the probe: {', '.join(named)} (probe {gate.probe_id})"
            if named
            else gate.summary
        )
    ws.message(f"{action}: the probe failed: {gate.summary}")
    return bad


def _recorded(one: Callable[[Cell], None], cell: Cell, result: CellResult) -> None:
    """A cell's step whose error is that cell's (the wave goes on, then fails); Ctrl-C is the
    command's: it stops and says what goes on, nothing is undone."""
    try:
        one(cell)
    except Interrupted:
        raise
    except RedmicaError as exc:
        result.status, result.detail = "error", exc.message


def waves_for(options: WaveOptions, fleet: Fleet) -> list[list[Cell]]:
    """The chosen cells in waves; a canary outside the chosen cells: the first chosen leads."""
    cells = fleet.select(options.cells)
    names = [c.name for c in cells]
    canary = options.canary or fleet.settings.canary_cell
    if canary is not None and canary not in names:
        fleet.cells.get(canary)  # unknown at all: a usage error naming the cells
        canary = None
    return plan_waves(cells, canary, options.max_parallel or fleet.settings.max_parallel_cells)


def _undo(report: WaveReport, fleet: Fleet, ws: Workspace) -> None:
    """Put every cell this rollout moved to a new revision back on the one it ran before."""
    timeout = float(ws.settings.deploy_timeout)
    for result in report.cells:
        if not result.changed:
            continue
        ws.message(f"[{result.cell}] rolling back to the revision it ran before this release")
        try:
            undo = roll_out(
                fleet.deployer(fleet.cells.get(result.cell)),
                "rollback",
                result.previous,
                result.revision,
                timeout,
                rollback=False,
            )
        except RedmicaError as exc:
            result.undo = f"failed: {exc.message}"
            continue
        result.undo = undo.result
        if undo.ok:
            result.status = "rolled_back"

"""Releases in waves: the canary cell first, alone; then the other cells, `max_parallel` at a time.

Each wave starts only when every cell of the previous wave succeeded. A failure stops the
rollout: later waves are not touched, and every cell this release already changed goes back to
the revision it ran before (the failing cell is rolled back by its own rollout, as `deploy`
does). For a release, each cell's tenants are migrated with the cell's new revision before that
cell is deployed, so no tenant's database is behind the code serving it; a cell whose migration
fails is not deployed and stops the rollout like a failed deployment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from redmica_ops.errors import RedmicaError, UsageError

if TYPE_CHECKING:
    from redmica_ops.cells.config import Cell, CellMap
    from redmica_ops.deploy.model import RolloutReport
    from redmica_ops.workspace import Workspace

ACTIONS = ("deploy", "release", "reload", "rollback")


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


class Migrator(Protocol):
    """Migrate the tenants of one cell with a task definition (`release` only)."""

    def __call__(self, cell: Cell, task_definition: str) -> MigrationGate: ...


@dataclass(frozen=True)
class MigrationOptions:
    """The failure policy of `release` that each cell's migration gets."""

    max_failures: int | None = None
    canary: int | None = None
    concurrency: int | None = None
    timeout: float | None = None


def cell_migrator(ws: Workspace, cells: CellMap, options: MigrationOptions) -> Migrator:
    """Migrate the tenants of one cell (its own, not those moving away) with a revision."""
    from redmica_ops.runs import migrations
    from redmica_ops.tenants.selection import CellScope, Use, select

    def migrate(cell: Cell, task_definition: str) -> MigrationGate:
        chosen = select(ws.tenants(), Use.MIGRATE, scope=CellScope(cells, cell.name))
        ids = tuple(s.tenant_id for s in chosen.eligible)
        if not ids:
            return MigrationGate(True, None, "no tenants in the cell")
        request = migrations.MigrationRequest(
            tenants=ids,
            task_definition=task_definition,
            max_failures=options.max_failures,
            canary=options.canary,
            concurrency=options.concurrency,
            timeout=options.timeout,
        )
        outcome = migrations.run(request, ws)
        record = outcome.record
        counts = record.summary() if record is not None else {}
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        return MigrationGate(
            outcome.exit_code == 0,
            record.run_id if record is not None else None,
            f"{len(ids)} tenant(s): {summary or f'exit {outcome.exit_code}'}",
            outcome.exit_code,
        )

    return migrate


class CellDeployments(Protocol):
    """What waves need from a cell's service (cells.fleet.Fleet provides it)."""

    def revision(self, cell: Cell) -> str: ...

    def register(self, cell: Cell, container: str | None, image: str) -> tuple[str, str]: ...

    def roll(
        self,
        cell: Cell,
        action: str,
        task_definition: str | None,
        previous: str | None,
        rollback: bool,
        force: bool = False,
        timeout: float | None = None,
        wait: bool = True,
    ) -> RolloutReport: ...

    def previous_revision(self, cell: Cell, current: str, to: str | None) -> str: ...


@dataclass(frozen=True)
class WaveRequest:
    action: str  # deploy | release | reload | rollback
    cells: tuple[str, ...]  # in rollout order; the canary is taken out and goes first
    canary: str | None = None
    max_parallel: int = 1
    image: str | None = None  # deploy, release
    container: str | None = None
    to: str | None = None  # rollback: revision number, family:revision or ARN
    timeout: float | None = None
    rollback: bool = True  # undo the cells this rollout changed when one fails


@dataclass
class CellResult:
    cell: str
    wave: int
    status: str = "not_started"
    # succeeded | failed | rolled_back | migration_failed | not_started | unchanged | error
    detail: str = ""
    previous: str | None = None
    revision: str | None = None
    migration: MigrationGate | None = None
    rollout: RolloutReport | None = None
    undo: str | None = None  # the result of rolling this cell back after another failed

    @property
    def changed(self) -> bool:
        """Whether this rollout left the cell on another revision than it found."""
        return self.status == "succeeded" and self.revision not in (None, self.previous)

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
        }


@dataclass
class WaveReport:
    action: str
    waves: list[list[str]]
    cells: list[CellResult] = field(default_factory=list)
    stopped_after_wave: int | None = None

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


def run_waves(
    request: WaveRequest,
    cells: Sequence[Cell],
    deployments: CellDeployments,
    migrate: Migrator | None = None,
    progress: Callable[[str], None] = lambda text: None,
) -> WaveReport:
    if request.action not in ACTIONS:
        raise UsageError(f"unknown wave action {request.action!r}")
    if request.action in ("deploy", "release") and not request.image:
        raise UsageError(f"{request.action} needs an image")
    if request.action == "release" and migrate is None:
        raise UsageError("release needs a migrator")
    by_name = {c.name: c for c in cells}
    chosen = [by_name[name] for name in request.cells]
    waves = plan_waves(chosen, request.canary, request.max_parallel)
    report = WaveReport(request.action, [[c.name for c in wave] for wave in waves])
    results = {
        c.name: CellResult(c.name, number)
        for number, wave in enumerate(waves, start=1)
        for c in wave
    }
    report.cells = [results[c.name] for wave in waves for c in wave]

    def one(cell: Cell) -> None:
        result = results[cell.name]
        try:
            _one_cell(request, cell, result, deployments, migrate, progress)
        except RedmicaError as exc:
            result.status, result.detail = "error", exc.message

    for number, wave in enumerate(waves, start=1):
        names = ", ".join(c.name for c in wave)
        label = "canary " if number == 1 and len(waves) > 1 else ""
        progress(f"{request.action}: wave {number}/{len(waves)}: {label}cell(s) {names}")
        if len(wave) == 1:
            one(wave[0])
        else:
            with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                list(pool.map(one, wave))
        failed = [c for c in wave if results[c.name].status not in ("succeeded", "unchanged")]
        if failed:
            report.stopped_after_wave = number
            progress(
                f"{request.action}: wave {number} failed in cell(s) "
                f"{', '.join(c.name for c in failed)}; later waves are not started"
            )
            if request.rollback and request.action != "rollback":
                _undo(report, by_name, deployments, progress)
            break
    return report


def _one_cell(
    request: WaveRequest,
    cell: Cell,
    result: CellResult,
    deployments: CellDeployments,
    migrate: Migrator | None,
    progress: Callable[[str], None],
) -> None:
    action = request.action
    if action in ("deploy", "release"):
        assert request.image is not None
        result.previous, result.revision = deployments.register(
            cell, request.container, request.image
        )
    elif action == "rollback":
        result.previous = deployments.revision(cell)
        result.revision = deployments.previous_revision(cell, result.previous, request.to)
        if result.revision == result.previous:
            result.status, result.detail = "unchanged", "already on that revision"
            return
    else:
        result.previous = result.revision = deployments.revision(cell)
    if action == "release":
        assert migrate is not None and result.revision is not None
        progress(f"[{cell.name}] migrating the cell's tenants before deploying it")
        result.migration = migrate(cell, result.revision)
        if not result.migration.ok:
            result.status = "migration_failed"
            result.detail = f"migrations failed ({result.migration.summary}); cell NOT deployed"
            return
    rollout = deployments.roll(
        cell,
        action,
        None if action == "reload" else result.revision,
        result.previous,
        rollback=request.rollback and action in ("deploy", "release"),
        force=action == "reload",
        timeout=request.timeout,
    )
    result.rollout = rollout
    if rollout.ok:
        result.status, result.detail = "succeeded", rollout.reason
    elif rollout.rolled_back_to:
        result.status = "rolled_back"
        result.detail = (
            f"{rollout.result}: {rollout.reason}; rolled back ({rollout.rollback_result})"
        )
    else:
        result.status, result.detail = "failed", f"{rollout.result}: {rollout.reason}"


def _undo(
    report: WaveReport,
    by_name: dict[str, Cell],
    deployments: CellDeployments,
    progress: Callable[[str], None],
) -> None:
    """Put every cell this rollout moved to a new revision back on the one it ran before."""
    for result in report.cells:
        if not result.changed:
            continue
        progress(f"[{result.cell}] rolling back to the revision it ran before this release")
        try:
            undo = deployments.roll(
                by_name[result.cell], "rollback", result.previous, result.revision, rollback=False
            )
        except RedmicaError as exc:
            result.undo = f"failed: {exc.message}"
            continue
        result.undo = undo.result
        if undo.ok:
            result.status = "rolled_back"

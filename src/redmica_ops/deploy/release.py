"""`release`: migrate each cell's tenants with a new revision, then deploy it there if they all
succeeded; cell after cell in waves (the one implicit cell without the `cells` setting).

The new revision travels in the migration request (`MigrationRequest.task_definition`), so the
migration gate runs exactly the image that is then deployed. Each cell's gate is one migration
run of every tenant of that cell (`MigrationRequest(all_tenants=True, cell=...)`), the rule of
the single service: a document that does not validate counts against its home cell's gate
(docs/cells.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.cells.waves import (
    CellRun,
    MigrationGate,
    WaveOptions,
    WaveReport,
    implicit_rollout,
    run_waves,
    waves_for,
)
from redmica_ops.deploy.model import clone_with_image, container_name, revision_name
from redmica_ops.deploy.rollout import (
    MIGRATION_NOTE,
    RolloutInterrupted,
    register_image,
    roll_out,
)
from redmica_ops.errors import Interrupted
from redmica_ops.probe.gate import WaveProbe, wave_prober
from redmica_ops.probe.wiring import aws_site
from redmica_ops.runs import migrations
from redmica_ops.runs.report import exit_code_for
from redmica_ops.runs.selection import NothingToMigrate, select_tenants
from redmica_ops.tenants.selection import CellScope

if TYPE_CHECKING:
    from redmica_ops.cells.config import Cell
    from redmica_ops.cells.fleet import Fleet
    from redmica_ops.deploy.model import RolloutReport
    from redmica_ops.runs.record import RunRecord
    from redmica_ops.tenants.store import Listing
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class ReleaseRequest:
    image: str
    container: str | None = None
    # The migration gate's failure policy (see MigrationRequest).
    max_failures: int | None = None
    canary: int | None = None
    concurrency: int | None = None
    migrate_timeout: float | None = None
    # The deployment.
    timeout: float | None = None
    rollback: bool = True
    waves: WaveOptions = field(default_factory=WaveOptions)
    probe: WaveProbe = field(default_factory=WaveProbe)  # judge waves by their sites too


@dataclass(frozen=True)
class ReleaseOutcome:
    """The single service's release, as it is shown."""

    task_definition: str  # the new revision
    previous_task_definition: str
    migration: RunRecord
    report: RolloutReport | None  # None: the gate failed, nothing was deployed

    @property
    def exit_code(self) -> int:
        gate = exit_code_for(self.migration)
        if gate or self.report is None:
            return gate or 1
        return 0 if self.report.ok else 1


def gate(request: ReleaseRequest, one: CellRun, ws: Workspace) -> MigrationGate:
    """Migrate the cell's tenants with its new revision: did every one succeed?"""
    migration = migrations.MigrationRequest(
        all_tenants=True,
        cell=None if one.implicit else one.cell.name,
        max_failures=request.max_failures,
        canary=request.canary,
        concurrency=request.concurrency,
        timeout=request.migrate_timeout,
        task_definition=one.result.revision,
    )
    try:
        outcome = migrations.run(migration, ws)
    except NothingToMigrate:
        return MigrationGate(True, None, "no tenants in the cell")
    record = outcome.record
    assert record is not None  # not a dry run
    code = exit_code_for(record)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(record.summary().items()))
    return MigrationGate(
        code == 0,
        record.run_id,
        f"{len(record.tenants)} tenant(s): {summary or f'exit {code}'}",
        code,
        record,
    )


def run(request: ReleaseRequest, ws: Workspace) -> WaveReport:
    # Checked and built before any cell is touched: a bad probe option migrates nothing.
    prober = wave_prober(ws, aws_site(ws), request.probe)

    def step(one: CellRun) -> None:
        result = one.result
        result.previous, result.revision = register_image(
            ws.settings, one.deployer, request.container, request.image
        )
        if one.implicit:
            one.say("release: migrating every tenant with the new revision")
            one.say(MIGRATION_NOTE)
        else:
            one.say("migrating the cell's tenants before deploying it")
        result.migration = gate(request, one, ws)
        if not result.migration.ok:
            result.status = "migration_failed"
            result.detail = f"migrations failed ({result.migration.summary}); cell NOT deployed"
            return
        gate_passed = f"the migration gate passed: {result.migration.summary}" + (
            f" (run {result.migration.run_id})" if result.migration.run_id else ""
        )
        if ws.cancellation.level:
            # Ctrl-C while the gate ran, and every tenant had migrated anyway: stop here.
            raise Interrupted(
                f"interrupted (Ctrl-C) after {gate_passed}; "
                f"{revision_name(str(result.revision))} is registered but NOT deployed",
                "the tenants already run its migrations: deploy it with `redmica deploy "
                f"--image {request.image}` (or run this release again)",
            )
        if one.implicit:
            one.say("release: every tenant migrated; deploying")
        try:
            rollout = roll_out(
                one.deployer,
                "release",
                result.revision,
                result.previous,
                one.timeout,
                rollback=request.rollback,
            )
        except RolloutInterrupted as stopped:
            raise Interrupted(f"{stopped.message}; {gate_passed}", stopped.hint) from None
        result.followed(rollout)

    if not implicit_rollout(request.waves, ws.fleet()):
        ws.message(MIGRATION_NOTE)
    return run_waves(
        "release",
        request.waves,
        ws,
        step,
        timeout=request.timeout,
        undo=request.rollback,
        probe=prober,
    )


# -- release --dry-run: the plan, read-only --------------------------------------------------------
@dataclass(frozen=True)
class CellPlan:
    """One cell's part of a release, as it would go."""

    cell: str
    wave: int
    canary: bool  # the canary cell, alone in the first wave (with several cells)
    service: str
    cluster: str
    current: str  # the revision it runs: the new one is registered from it
    tenants: int  # to migrate in its gate
    invalid: int  # documents that do not validate: they fail its gate

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ReleasePlan:
    """`release --dry-run`: the gate, the waves, the cells and the image; nothing registered,
    migrated or deployed (only reads: the services, their task definitions, the tenants)."""

    image: str
    container: str
    implicit: bool  # the single service (no `cells` setting, no --cell)
    cells: list[CellPlan]
    request: ReleaseRequest

    def as_dict(self) -> dict[str, object]:
        r = self.request
        return {
            "dry_run": True,
            "action": "release",
            "image": self.image,
            "container": self.container,
            "gate": {
                "canary": r.canary,
                "max_failures": r.max_failures,
                "concurrency": r.concurrency,
                "migrate_timeout": r.migrate_timeout,
            },
            "rollback": r.rollback,
            "cells": [c.as_dict() for c in self.cells],
        }


def plan(request: ReleaseRequest, ws: Workspace) -> ReleasePlan:
    """What `run` would do with `request`, read from the services and the tenants (the listing
    read once); a container or an image the release would refuse is refused here too."""
    fleet = ws.fleet()
    implicit = implicit_rollout(request.waves, fleet)
    container = container_name(request.container, ws.settings.container)
    listing = ws.tenants()
    cells = []
    for number, wave in enumerate(waves_for(request.waves, fleet), start=1):
        for cell in wave:
            cells.append(
                _cell_plan(
                    request, fleet, cell, number, implicit, listing, container, ws.settings.db_host
                )
            )
    if len(cells) > 1:
        cells[0] = dataclasses.replace(cells[0], canary=True)
    return ReleasePlan(request.image, container, implicit, cells, request)


def _cell_plan(
    request: ReleaseRequest,
    fleet: Fleet,
    cell: Cell,
    wave: int,
    implicit: bool,
    listing: Listing,
    container: str,
    db_host: str | None,
) -> CellPlan:
    deployer = fleet.service_deployer() if implicit else fleet.deployer(cell)
    current = deployer.current_revision()
    definition, _ = deployer.task_definition(current)
    clone_with_image(definition, container, request.image)  # refuses a missing container
    scope = None if implicit else CellScope(fleet.cells, cell.name)
    try:
        chosen = select_tenants(listing, [], True, [], scope=scope, db_host=db_host)
    except NothingToMigrate:
        chosen = None
    target = deployer.target
    return CellPlan(
        cell.name,
        wave,
        False,
        target.service,
        target.cluster,
        current,
        len(chosen.order) if chosen else 0,
        len(chosen.invalid) if chosen else 0,
    )

"""`rollback`: each cell's service (the one implicit cell without the `cells` setting) back to
the previous task definition revision, or a given one, in waves.

It does not revert database migrations; the verb says so through the workspace's messages.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.cells.waves import CellRun, WaveOptions, WaveReport, implicit_rollout, run_waves
from redmica_ops.deploy.model import revision_name
from redmica_ops.deploy.rollout import MIGRATION_NOTE, ServiceDeployer, roll_out

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class RollbackRequest:
    to: str | None = None  # revision number, family:revision or ARN; default: the previous one
    timeout: float | None = None
    wait: bool = True
    waves: WaveOptions = field(default_factory=WaveOptions)


def rollback_target(deployer: ServiceDeployer, current: str, to: str | None) -> str:
    """The revision a rollback goes to: `to` (checked to exist, exit 3 with the revisions that
    do), else the previous one. The one place that chooses it."""
    return deployer.resolve_revision(current, to) if to else deployer.previous_revision(current)


def resolve_target(request: RollbackRequest, ws: Workspace) -> RollbackRequest:
    """The single service's `--to` as the ARN it names, checked to exist: asked before the
    confirmation, so an operator never agrees to a rollback that cannot happen. With cells,
    each cell resolves it in its own family during the rollout."""
    if request.to is None or not implicit_rollout(request.waves, ws.fleet()):
        return request
    deployer = ws.fleet().service_deployer()
    to = rollback_target(deployer, deployer.current_revision(), request.to)
    return dataclasses.replace(request, to=to)


def run(request: RollbackRequest, ws: Workspace) -> WaveReport:
    def step(one: CellRun) -> None:
        current = one.deployer.current_revision()
        target = rollback_target(one.deployer, current, request.to)
        one.result.previous, one.result.revision = current, target
        if target == current:
            one.result.status, one.result.detail = "unchanged", "already on that revision"
            if one.implicit:
                one.say(f"the service already runs {revision_name(target)}; nothing to do")
            return
        if one.implicit:
            one.say(MIGRATION_NOTE)
        one.result.followed(
            roll_out(
                one.deployer,
                "rollback",
                target,
                current,
                one.timeout,
                rollback=False,
                wait=request.wait,
            )
        )

    return run_waves(
        "rollback", request.waves, ws, step, timeout=request.timeout, wait=request.wait, undo=False
    )

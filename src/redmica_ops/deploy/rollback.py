"""`rollback`: each cell's service (the one implicit cell without the `cells` setting) back to
the revision that last completed a deployment of it, or a given one, in waves.

"Previous" is the last revision that completed a deployment of this service, as ECS's service
deployments say (a SUCCESSFUL one), older than the one it runs: a revision whose rollout failed,
was rolled back by the circuit breaker or by our timeout never completed one, so it is never
chosen, however recent (ACTIVE alone says nothing: failed revisions stay ACTIVE). Where ECS does
not say, or no such revision is left ACTIVE, the operator names one with --to.

It does not revert database migrations; the verb says so through the workspace's messages.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.cells.waves import CellRun, WaveOptions, WaveReport, implicit_rollout, run_waves
from redmica_ops.deploy.model import revision_name
from redmica_ops.deploy.rollout import MIGRATION_NOTE, ServiceDeployer, roll_out
from redmica_ops.errors import NotFound, UsageError

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
    do), else the last one that completed a deployment (`last_completed`). The one place that
    chooses it."""
    return deployer.resolve_revision(current, to) if to else last_completed(deployer, current)


def _number(arn: str) -> tuple[str, int]:
    family, _, number = revision_name(arn).rpartition(":")
    return family, int(number) if number.isdigit() else -1


def last_completed(deployer: ServiceDeployer, current: str) -> str:
    """The newest revision of the current one's family, older than it and still ACTIVE, whose
    deployment of this service completed (SUCCESSFUL); else NotFound with the hint --to.

    Older by number: after `rollback` from :5 to :4, :5 completed more recently than :4 did,
    and a second rollback must go on to :3, not back to :5."""
    family, number = _number(current)
    completed = deployer.completed_revisions()
    active = deployer.active_revisions(family)
    numbers = ", ".join(revision_name(arn).rpartition(":")[2] for arn in active[:20])
    hint = f"give one with --to REVISION (active revisions of {family}, newest first: {numbers})"
    if completed is None:
        raise NotFound(
            f"ECS does not say which revisions of {family} completed a deployment of service "
            f"{deployer.target.service} (no service-deployments API here)",
            hint,
        )
    by_name = {revision_name(arn): arn for arn in active}
    for arn in completed:
        their_family, their_number = _number(arn)
        if their_family == family and their_number < number and revision_name(arn) in by_name:
            return by_name[revision_name(arn)]
    raise NotFound(
        f"no revision of {family} older than {number} is known to have completed a deployment "
        f"of service {deployer.target.service} (and is still active)",
        hint,
    )


def resolve_target(request: RollbackRequest, ws: Workspace) -> RollbackRequest:
    """The single service's `--to` as the ARN it names, checked to exist: asked before the
    confirmation, so an operator never agrees to a rollback that cannot happen. With cells,
    `--to` is for one cell (resolved in its family during the rollout; several: exit 2), and
    every cell's target is chosen here first, so a cell that cannot choose (no such revision,
    nothing known to have completed) stops the rollback before any cell is touched, with the
    hint --to."""
    fleet = ws.fleet()
    if not implicit_rollout(request.waves, fleet):
        choose_in_every_cell(request, ws)
        return request
    if request.to is None:
        return request
    deployer = fleet.service_deployer()
    with deployer.deadline_in(timeout_of(request, ws)):
        to = rollback_target(deployer, deployer.current_revision(), request.to)
    return dataclasses.replace(request, to=to)


def choose_in_every_cell(request: RollbackRequest, ws: Workspace) -> None:
    """Each cell's target, chosen before any cell is touched: a cell that cannot choose (no
    such revision in its family, nothing known to have completed) raises NotFound (exit 3,
    hint --to) while every cell still runs what it ran; one --to for several cells is a usage
    error (exit 2): their families number revisions apart."""
    fleet = ws.fleet()
    cells = fleet.select(request.waves.cells)
    if request.to is not None and len(cells) > 1:
        # Each cell's service has its own family, so one --to names a different release in
        # each (or, as family:N, another family's): a trial's `rollback --to 1` left the cells
        # whose family's :1 they already ran on the new image and reported success.
        raise UsageError(
            f"--to names one revision, but this rollback acts on {len(cells)} cells "
            f"({', '.join(c.name for c in cells)}) whose task definition families number "
            "their revisions apart",
            "roll back one cell at a time with `redmica rollback --cell NAME --to REVISION`; "
            "plain `redmica rollback` picks each cell's own target where ECS can say which "
            "revision last completed a deployment",
        )
    for cell in cells:
        each = fleet.deployer(cell)
        with each.deadline_in(timeout_of(request, ws)):
            rollback_target(each, each.current_revision(), request.to)


def timeout_of(request: RollbackRequest, ws: Workspace) -> float:
    """What bounds the calls that choose a target, as the rollout's: --timeout or the
    setting."""
    return float(request.timeout if request.timeout is not None else ws.settings.deploy_timeout)


def run(request: RollbackRequest, ws: Workspace) -> WaveReport:
    if not implicit_rollout(request.waves, ws.fleet()):
        choose_in_every_cell(request, ws)

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

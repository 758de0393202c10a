"""`rollback`: the service back to the previous task definition revision (or a given one).

It does not revert database migrations; the verb says so through the workspace's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redmica_ops.deploy.model import RolloutReport
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class RollbackRequest:
    to: str | None = None  # revision number, family:revision or ARN; default: the previous one
    timeout: float | None = None
    wait: bool = True


@dataclass(frozen=True)
class RollbackOutcome:
    target: str  # the revision rolled back to (or already running)
    report: RolloutReport | None  # None: the service already ran it, nothing was done

    @property
    def exit_code(self) -> int:
        return 0 if self.report is None or self.report.ok else 1


def resolve_target(to: str, ws: Workspace) -> str:
    """The ARN `--to` names, checked to exist (exit 3 with the revisions that do): asked
    before the confirmation, so an operator never agrees to a rollback that cannot happen."""
    from redmica_ops.deploy.rollout import deployer_for

    d = deployer_for(ws)
    return d.resolve_revision(d.current_revision(), to)


def run(request: RollbackRequest, ws: Workspace) -> RollbackOutcome:
    from redmica_ops.deploy.model import revision_name
    from redmica_ops.deploy.rollout import (
        MIGRATION_NOTE,
        deployer_for,
        roll_out,
        timeout_or_default,
    )

    d = deployer_for(ws)
    current = d.current_revision()
    target = d.resolve_revision(current, request.to) if request.to else d.previous_revision(current)
    if target == current:
        ws.message(f"the service already runs {revision_name(target)}; nothing to do")
        return RollbackOutcome(target, None)
    ws.message(MIGRATION_NOTE)
    report = roll_out(
        d,
        "rollback",
        target,
        current,
        timeout_or_default(ws.settings, request.timeout),
        rollback=False,
        wait=request.wait,
    )
    return RollbackOutcome(target, report)

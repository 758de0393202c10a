"""`reload`: restart every task with the running revision (a forced new deployment)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redmica_ops.deploy.model import RolloutReport
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class ReloadRequest:
    timeout: float | None = None  # default: setting deploy_timeout
    wait: bool = True


def run(request: ReloadRequest, ws: Workspace) -> RolloutReport:
    from redmica_ops.deploy.rollout import deployer_for, roll_out, timeout_or_default

    d = deployer_for(ws)
    return roll_out(
        d,
        "reload",
        None,
        d.current_revision(),
        timeout_or_default(ws.settings, request.timeout),
        rollback=False,
        wait=request.wait,
        force=True,
    )

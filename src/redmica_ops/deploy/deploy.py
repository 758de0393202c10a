"""`deploy`: a new revision that differs only in one container's image, then a followed rollout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redmica_ops.deploy.model import RolloutReport
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class DeployRequest:
    image: str
    container: str | None = None  # default: setting container
    timeout: float | None = None  # default: setting deploy_timeout
    wait: bool = True
    rollback: bool = True  # roll back to the previous revision if the rollout fails


def run(request: DeployRequest, ws: Workspace) -> RolloutReport:
    from redmica_ops.deploy.rollout import (
        deployer_for,
        register_image,
        roll_out,
        timeout_or_default,
    )

    d = deployer_for(ws)
    current, new_arn = register_image(ws.settings, d, request.container, request.image)
    return roll_out(
        d,
        "deploy",
        new_arn,
        current,
        timeout_or_default(ws.settings, request.timeout),
        rollback=request.rollback,
        wait=request.wait,
    )

"""`reload`: restart every task with the running revision (a forced new deployment), in each
cell (the one implicit cell without the `cells` setting), in waves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.cells.waves import CellRun, WaveOptions, WaveReport, run_waves
from redmica_ops.deploy.rollout import roll_out

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class ReloadRequest:
    timeout: float | None = None  # default: setting deploy_timeout
    wait: bool = True
    waves: WaveOptions = field(default_factory=WaveOptions)


def run(request: ReloadRequest, ws: Workspace) -> WaveReport:
    def step(one: CellRun) -> None:
        current = one.deployer.current_revision()
        one.result.previous = one.result.revision = current
        one.result.followed(
            roll_out(
                one.deployer,
                "reload",
                None,
                current,
                one.timeout,
                rollback=False,
                wait=request.wait,
                force=True,
            )
        )

    return run_waves(
        "reload", request.waves, ws, step, timeout=request.timeout, wait=request.wait, undo=False
    )

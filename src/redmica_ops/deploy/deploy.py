"""`deploy`: a new revision that differs only in one container's image, then a followed rollout,
in each cell (the one implicit cell without the `cells` setting), in waves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.cells.waves import CellRun, WaveOptions, WaveReport, run_waves
from redmica_ops.deploy.rollout import register_image, roll_out
from redmica_ops.probe.gate import WaveProbe, wave_prober
from redmica_ops.probe.wiring import aws_site

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class DeployRequest:
    image: str
    container: str | None = None  # default: setting container
    timeout: float | None = None  # default: setting deploy_timeout
    wait: bool = True
    rollback: bool = True  # roll back to the previous revision if the rollout fails
    waves: WaveOptions = field(default_factory=WaveOptions)
    probe: WaveProbe = field(default_factory=WaveProbe)  # judge waves by their sites too


def run(request: DeployRequest, ws: Workspace) -> WaveReport:
    # Checked and built before any cell is touched: a bad probe option deploys nothing.
    prober = wave_prober(ws, aws_site(ws), request.probe)

    def step(one: CellRun) -> None:
        result = one.result
        result.previous, result.revision = register_image(
            ws.settings, one.deployer, request.container, request.image
        )
        one.result.followed(
            roll_out(
                one.deployer,
                "deploy",
                result.revision,
                result.previous,
                one.timeout,
                rollback=request.rollback,
                wait=request.wait,
            )
        )

    return run_waves(
        "deploy",
        request.waves,
        ws,
        step,
        timeout=request.timeout,
        wait=request.wait,
        undo=request.rollback,
        probe=prober,
    )

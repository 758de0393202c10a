"""`status`: each cell's service (the one implicit cell without the `cells` setting), its
deployments with counts and rollout state, and recent events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from redmica_ops.cells.status import (
    CellStatus,
    FleetStatus,
    ServiceEvent,
    ServiceStatus,
    service_status,
)
from redmica_ops.cells.waves import WaveOptions, implicit_rollout

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace

__all__ = ["FleetStatus", "ServiceEvent", "ServiceStatus", "StatusRequest", "run"]


@dataclass(frozen=True)
class StatusRequest:
    events: int = 10  # recent service events to include
    cells: tuple[str, ...] = ()  # none: every cell


def run(request: StatusRequest, ws: Workspace) -> FleetStatus:
    fleet = ws.fleet()
    if implicit_rollout(WaveOptions(request.cells), fleet):
        service = service_status(fleet.service_deployer(), request.events, True)
        return FleetStatus([CellStatus(fleet.cells.home.name, service)], implicit=True)
    return FleetStatus(
        [
            CellStatus(cell.name, service_status(fleet.deployer(cell), request.events, False))
            for cell in fleet.select(request.cells)
        ],
        implicit=False,
    )

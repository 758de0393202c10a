"""The state of the cells: each one's service (revision, counts, deployments, recent events),
its load, and the hostname routing to it.

`redmica status` shows a `FleetStatus`: with the `cells` setting (or --cell) one row per cell;
without, the one implicit cell as the single service it is (with the service-deployments API
where ECS has it). `cells list` shows `cell_loads`, `cells routes` `check_routes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from redmica_ops.cells.placement import loads
from redmica_ops.deploy.model import DeploymentView, event_time, views_of
from redmica_ops.deploy.rollout import ServiceDeployer
from redmica_ops.errors import JSONValue, UsageError
from redmica_ops.report import Part, Report, Table, plain_json, success, text

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class ServiceEvent:
    at: str
    message: str | None


@dataclass
class ServiceStatus:
    service: str | None
    status: str | None
    task_definition: str | None
    desired: int | None
    running: int | None
    pending: int | None
    deployments: list[DeploymentView] = field(default_factory=list)
    events: list[ServiceEvent] = field(default_factory=list)
    # (ARN, status) of the last day's service deployments, newest first (incl. ROLLBACK_*);
    # None where the service-deployments API is not available (or was not asked).
    service_deployments: list[tuple[str, str]] | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "service": self.service,
            "status": self.status,
            "task_definition": self.task_definition,
            "desired": self.desired,
            "running": self.running,
            "pending": self.pending,
            "deployments": [v.as_dict() for v in self.deployments],
            "events": [{"at": e.at, "message": e.message} for e in self.events],
            "service_deployments": None
            if self.service_deployments is None
            else [{"arn": arn, "status": st} for arn, st in self.service_deployments],
        }


def service_status(
    deployer: ServiceDeployer, events: int, service_deployments: bool
) -> ServiceStatus:
    """One service as ECS describes it; `service_deployments`: also the last day's service
    deployments (one more call)."""
    service = deployer.service()
    recent: list[tuple[str, str]] | None = None
    if service_deployments:
        found = deployer.gateway.service_deployments(datetime.now(UTC) - timedelta(days=1))
        recent = (
            None
            if found is None
            else [(str(s.get("serviceDeploymentArn")), str(s.get("status"))) for s in found]
        )
    return ServiceStatus(
        service=service.get("serviceName"),
        status=service.get("status"),
        task_definition=service.get("taskDefinition"),
        desired=service.get("desiredCount"),
        running=service.get("runningCount"),
        pending=service.get("pendingCount"),
        deployments=views_of(service),
        events=[
            ServiceEvent(event_time(e), e.get("message"))
            for e in service.get("events", [])[:events]
        ],
        service_deployments=recent,
    )


@dataclass
class CellStatus:
    cell: str
    service: ServiceStatus

    def as_dict(self) -> dict[str, object]:
        """The cell's row: its service's counts and rollout state, and its recent events."""
        s = self.service
        primary = next((v for v in s.deployments if v.status == "PRIMARY"), None)
        return {
            "cell": self.cell,
            "service": s.service,
            "status": s.status,
            "task_definition": s.task_definition,
            "desired": s.desired,
            "running": s.running,
            "pending": s.pending,
            "rollout": primary.rollout_state if primary else None,
            "deployments": len(s.deployments),
            "events": [{"at": e.at, "message": str(e.message)} for e in s.events],
        }


@dataclass
class FleetStatus:
    cells: list[CellStatus]
    implicit: bool  # the single service (no `cells` setting, no --cell)

    def as_dict(self) -> dict[str, object]:
        if self.implicit:
            return self.cells[0].service.as_dict()
        return {"cells": [c.as_dict() for c in self.cells]}


def cell_loads(ws: Workspace) -> Report:
    """`cells list`: each cell with its service, tenants, capacity and room (one listing read)."""
    fleet = ws.fleet()
    home = fleet.cells.home
    pairs = list(
        zip(
            fleet.cells.cells,
            loads(fleet.cells, ws.tenants().entries(), fleet.capacity),
            strict=True,
        )
    )
    document: list[JSONValue] = [
        {
            "cell": cell.name,
            "cluster": cell.cluster,
            "service": cell.service,
            "tenants": load.tenants,
            "capacity": load.capacity,
            "room": load.room,
            "home": cell == home,
        }
        for cell, load in pairs
    ]
    table = Table(
        ("cell", "cluster", "service", "tenants", "capacity", "room"),
        [
            [
                cell.name + (" (home)" if cell == home else ""),
                cell.cluster or "",
                cell.service or "",
                load.tenants,
                load.capacity,
                load.room,
            ]
            for cell, load in pairs
        ],
    )
    return Report(document, [table])


def check_routes(fix: bool, ws: Workspace) -> Report:
    """`cells routes`: each tenant's Route 53 record against its cell; `fix` repairs the drift.
    Exit 1 when drift remains."""
    fleet = ws.fleet()
    router = fleet.router()
    if router is None:
        raise UsageError(
            "routing is not managed here: hosted_zone_id is not set",
            "set REDMICA_HOSTED_ZONE_ID (and domain) to route tenants by hostname",
        )
    entries = ws.tenants().entries()
    findings = router.drift(entries, fleet.cells)
    changed = router.repair(findings, fleet.cells, "redmica cells routes --fix") if fix else 0
    remaining = router.drift(entries, fleet.cells) if fix else findings
    body: list[Part] = [text(("fixed: " if fix else "drift: ") + f.text()) for f in findings]
    if not findings:
        body.append(success(f"every tenant's record points at its cell ({len(entries)} tenants)"))
    elif fix and not remaining:
        body.append(success(f"{changed} record change(s) applied; no drift left"))
    document: JSONValue = {
        "findings": [plain_json(f.as_dict()) for f in findings],
        "changes": changed,
        "remaining": [plain_json(f.as_dict()) for f in remaining],
    }
    return Report(document, body, [], 1 if remaining else 0)

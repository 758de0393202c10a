"""`status`: the service, its deployments with counts and rollout state, and recent events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redmica_ops.deploy.model import DeploymentView
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class StatusRequest:
    events: int = 10  # recent service events to include


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
    # None where the service-deployments API is not available.
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


def run(request: StatusRequest, ws: Workspace) -> ServiceStatus:
    from redmica_ops.deploy.model import event_time, views_of
    from redmica_ops.deploy.rollout import deployer_for

    deployer = deployer_for(ws)
    service = deployer.service()
    since = datetime.now(UTC) - timedelta(days=1)
    found = deployer.gateway.service_deployments(since)
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
            for e in service.get("events", [])[: request.events]
        ],
        service_deployments=recent,
    )

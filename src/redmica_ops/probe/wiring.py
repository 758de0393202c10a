"""The probe wired to AWS: records in the config bucket, each cell's load balancer looked up
from its ECS service (the same lookup hostname routing uses, `cells.fleet.Fleet.target`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redmica_ops.cells.config import Cell
from redmica_ops.probe.record import ProbeStore
from redmica_ops.probe.run import ProbeSite
from redmica_ops.probe.transport import HttpTransport, Transport

if TYPE_CHECKING:
    from redmica_ops.workspace import AwsWorkspace


def aws_site(ws: AwsWorkspace, transport: Transport | None = None) -> ProbeSite:
    """Records in the workspace's bucket; balancers found through ECS and ELBv2 on first use.

    The balancer's listener is HTTPS (templates/cloudformation/redmica.yaml), so a cell's base
    URL is https://<its DNS name>; the transport speaks TLS as each tenant's host."""
    from redmica_ops.cells.fleet import Fleet

    settings = ws.settings
    fleet: list[Fleet] = []

    def balancer(cell: Cell) -> str:
        if not fleet:
            clients = ws.clients()
            fleet.append(Fleet(settings, ws.ecs(), ws.clock(), elbv2=clients.elbv2()))
        return f"https://{fleet[0].target(cell).dns_name.lower().rstrip('.')}"

    store = ProbeStore(ws.clients().s3(), ws.bucket(), settings.runs_prefix, settings.kms_key_id)
    return ProbeSite(transport or HttpTransport(), store, balancer)

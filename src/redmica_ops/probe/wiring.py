"""The probe wired to the workspace: records in the config bucket, each cell's load balancer
looked up from its ECS service by the workspace's fleet (the lookup hostname routing uses,
`cells.fleet.Fleet.target`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redmica_ops.cells.config import Cell
from redmica_ops.probe.run import ProbeSite
from redmica_ops.probe.transport import HttpTransport, Transport

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


def aws_site(ws: Workspace, transport: Transport | None = None) -> ProbeSite:
    """Records in the workspace's bucket; balancers found through ECS and ELBv2 on first use.

    The balancer's listener is HTTPS (templates/cloudformation/redmica.yaml), so a cell's base
    URL is https://<its DNS name>; the transport speaks TLS as each tenant's host."""

    def balancer(cell: Cell) -> str:
        return f"https://{ws.fleet().target(cell).dns_name.lower().rstrip('.')}"

    return ProbeSite(transport or HttpTransport(), ws.probe_records(), balancer)

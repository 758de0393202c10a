"""Removing a tenant's document (`redmica tenant remove` without --purge).

The database and attachments are not touched; on a versioned bucket the document can be
restored. With routing managed here, the host's record is deleted after the document (its
sub-domain read before, since the removed document cannot say it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.errors import JSONObject
from redmica_ops.report import Line, Report, info, success

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class RemoveRequest:
    tenant_id: str


@dataclass
class RemoveOutcome:
    tenant_id: str
    delete_marker: str | None  # None: an unversioned bucket (nothing to restore)
    unrouted: list[str] = field(default_factory=list)

    def report(self) -> Report:
        body: list[Line] = [success(f"removed tenant {self.tenant_id}")]
        if self.delete_marker:
            body.append(
                info(
                    f"to undo: `redmica tenant history {self.tenant_id}`, then "
                    f"`redmica tenant restore {self.tenant_id} VERSION_ID`"
                )
            )
        document: JSONObject = {
            "tenant": self.tenant_id,
            "removed": True,
            "delete_marker": self.delete_marker,
        }
        return Report(document, list(body), messages=list(self.unrouted))


def remove(request: RemoveRequest, ws: Workspace) -> RemoveOutcome:
    """Delete the document (conditional on the version read) and release its claims, then its
    routing record; exit 3 if there is no such tenant."""
    tenant_id = request.tenant_id
    registry = ws.registry()
    # Read once: the delete is conditional on this version, and its sub-domain is the record
    # to clean up (an invalid document names none that can be trusted).
    current = registry.existing(tenant_id)
    sub_domain = (
        current.tenant.sub_domain if current.tenant and ws.settings.hosted_zone_id else None
    )
    outcome = RemoveOutcome(tenant_id, registry.remove(tenant_id, current))
    if sub_domain is not None:
        unrouted = ws.fleet().unroute(sub_domain, f"tenant remove {tenant_id}")
        if unrouted:
            outcome.unrouted.append(unrouted)
    return outcome

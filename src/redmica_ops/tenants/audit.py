"""`redmica tenant claims check | repair | rebuild`: the claims against the documents, as
reports (the registry does the work: TenantRegistry.audit_claims and friends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redmica_ops.errors import JSONValue
from redmica_ops.report import Line, Report, info, success, text
from redmica_ops.tenants.registry import ClaimsAudit

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


def check(ws: Workspace) -> Report:
    """Every finding; exit 1 when anything needs attention."""
    audit = ws.registry().audit_claims()
    body: list[Line] = [text(line) for line in audit.lines()]
    body.append(
        info("claims match the documents" if audit.clean else f"{len(audit.lines())} finding(s)")
    )
    return Report(audit_document(audit), list(body), exit_code=0 if audit.clean else 1)


def repair(ws: Workspace) -> Report:
    """Release the orphan claims (each removal conditional on the version checked)."""
    registry = ws.registry()
    done = registry.repair_claims(registry.audit_claims())
    body: list[Line] = [text(line) for line in done]
    body.append(success(f"released {len(done)} orphan claim(s)"))
    return Report({"released": list(done)}, list(body))


def rebuild(ws: Workspace) -> Report:
    """Claim the values of documents written before claims existed."""
    done = ws.registry().rebuild_claims()
    body: list[Line] = [text(line) for line in done]
    body.append(success(f"created {len(done)} claim(s)"))
    return Report({"claimed": list(done)}, list(body))


def audit_document(audit: ClaimsAudit) -> dict[str, JSONValue]:
    return {
        "orphans": [
            {"field": h.claim.field, "value": h.claim.value, "owner": h.owner, "key": h.claim.key}
            for h in audit.orphans
        ],
        "unclaimed": [
            {"field": c.field, "value": c.value, "tenant": t, "key": c.key}
            for t, c in audit.unclaimed
        ],
        "contested": [
            {"field": h.claim.field, "value": h.claim.value, "tenant": t, "owner": h.owner}
            for t, h in audit.contested
        ],
    }

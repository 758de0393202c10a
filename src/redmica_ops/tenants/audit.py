"""`redmica tenant claims check | repair | rebuild`: the claims against the documents, as
reports (the registry does the work: TenantRegistry.audit_claims and friends)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from redmica_ops.errors import JSONValue
from redmica_ops.report import Line, Part, Report, counting, info, success, text
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


@dataclass(frozen=True)
class RebuildRequest:
    dry_run: bool = False  # say what would be claimed and the clashes; write nothing
    verbose: bool = False  # one line per claim (JSON always has them)


def rebuild(request: RebuildRequest, ws: Workspace) -> Report:
    """Claim the values of documents written before claims existed (oldest first), or with
    `dry_run` say what would be claimed and which clashes are decided for which tenant."""
    listing = ws.tenants()
    done = ws.registry().rebuild_claims(
        listing,
        dry_run=request.dry_run,
        progress=counting(ws.status, "claims rebuild: tenant"),
    )
    body: list[Part] = []
    if request.verbose:
        verb = "would claim" if done.dry_run else "claimed"
        body += [text(f"{verb} {what} for {tenant}") for tenant, what in done.claimed]
    # A clash is always shown: a tenant that is not served until one of the two changes.
    body += [text(f"clash: {what} of {tenant}: {why}") for tenant, what, why in done.clashes]
    tenants = len({tenant for tenant, _ in done.claimed})
    summary = f"{len(done.claimed)} claim(s) for {tenants} tenant(s) of {len(listing.tenants)}" + (
        f"; {len(done.clashes)} clash(es), each left to the tenant that keeps it"
        if done.clashes
        else ""
    )
    if done.dry_run:
        body.append(info(f"dry run: would create {summary}; nothing was written"))
    else:
        body.append(success(f"created {summary}"))
    document: dict[str, JSONValue] = {
        "dry_run": done.dry_run,
        "claimed": [
            f"{'would claim' if done.dry_run else 'claimed'} {w} for {t}" for t, w in done.claimed
        ],
        "clashes": [{"tenant": t, "value": w, "reason": why} for t, w, why in done.clashes],
    }
    return Report(document, body)


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

"""The container side: which tenants a starting container serves, and one tenant's environment.

At start the container renders every tenant's vhost. One bad document must not take 799 other
customers down, so (unless strict) an invalid tenant, or one that clashes with a tenant already
being served, is skipped and named loudly instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redmica_ops.container.vhosts import VhostSettings, render_vhosts
from redmica_ops.errors import Problem, ValidationFailed
from redmica_ops.tenants.model import Entry, conflicts_with
from redmica_ops.tenants.store import Listing


@dataclass
class ServePlan:
    text: str
    served: list[str]
    skipped: dict[str, list[Problem]] = field(default_factory=dict)


def plan_serve(listing: Listing, settings: VhostSettings, strict: bool) -> ServePlan:
    skipped: dict[str, list[Problem]] = {}
    for doc in listing.invalid:
        skipped[doc.tenant_id or doc.key] = doc.problems
    kept: list[Entry] = []
    for entry in sorted(listing.entries(), key=lambda e: e.tenant_id):
        clashes = conflicts_with(entry, kept)
        if clashes:
            skipped[entry.tenant_id] = clashes
        else:
            kept.append(entry)
    if strict and skipped:
        problems = [p for found in skipped.values() for p in found]
        raise ValidationFailed(
            problems,
            hint="without --strict these tenants are skipped",
            message=f"{len(skipped)} tenant(s) cannot be served (--strict)",
        )
    text = render_vhosts(kept, settings)
    return ServePlan(text, [e.tenant_id for e in kept], skipped)

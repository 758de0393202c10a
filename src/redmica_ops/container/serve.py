"""The container side: which tenants a starting container serves, and one tenant's environment.

At start the container renders every tenant's vhost. One bad document must not take 799 other
customers down, so (unless strict) a tenant that `tenants.selection` leaves out of serving (an
invalid document, a clash) is skipped and named loudly instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from redmica_ops.capacity import PoolSettings
from redmica_ops.container.vhosts import VhostSettings, derive_pool_for, render_vhosts
from redmica_ops.errors import Problem, ValidationFailed
from redmica_ops.tenants.model import Entry
from redmica_ops.tenants.selection import CellScope, ClaimOwner, Reason, Use, select
from redmica_ops.tenants.store import Listing


class PasswordSource(Protocol):
    """Reads the passwords of tenants whose document names a secret (tenants.passwords)."""

    def resolve_entries(
        self, entries: Iterable[Entry]
    ) -> tuple[dict[str, str], dict[str, list[Problem]]]: ...


@dataclass
class ServePlan:
    text: str
    served: list[str]
    pool: PoolSettings
    skipped: dict[str, list[Problem]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    other_cells: int = 0  # tenants left to the other cells


def plan_serve(
    listing: Listing,
    settings: VhostSettings,
    strict: bool,
    *,
    master_secret: str | None = None,
    passwords: PasswordSource | None = None,
    scope: CellScope | None = None,
    claim_owner: ClaimOwner | None = None,
    incarnations: Mapping[str, str] | None = None,
) -> ServePlan:
    """The vhosts to serve: every servable tenant, or with a cell scope that cell's."""
    selection = select(listing, Use.SERVE, claim_owner, scope=scope)
    others = selection.excluded_by(Reason.OTHER_CELL)
    skipped = {
        e.name: list(e.problems) for e in selection.excluded if e.reason is not Reason.OTHER_CELL
    }
    kept = selection.entries()
    resolved: dict[str, str] = {}
    if passwords is not None:
        # A secret that cannot be read sets its tenant aside, like an invalid document.
        resolved, failed = passwords.resolve_entries(kept)
        skipped.update(failed)
        kept = [e for e in kept if e.tenant_id not in failed]
    if strict and skipped:
        raise ValidationFailed(
            [p for found in skipped.values() for p in found],
            hint="without --strict these tenants are skipped",
            message=f"{len(skipped)} tenant(s) cannot be served (--strict)",
        )
    warnings = []
    limited = [e.tenant_id for e in kept if e.tenant.properties.limit_ips]
    if limited and not settings.trusted_proxies:
        # Fail closed, but say so: behind a load balancer these tenants see only its address.
        warnings.append(
            f"{len(limited)} tenant(s) with limit_ips ({', '.join(limited[:5])}) but no "
            "trusted_proxies: behind a load balancer they see its address, not the client's"
        )
    # A suspended or provisioning tenant gets a maintenance page and no process: the pool
    # is sized for the others.
    pool = derive_pool_for(settings, sum(1 for e in kept if e.tenant.served))
    text = render_vhosts(
        kept,
        settings,
        master_secret=master_secret,
        passwords=resolved,
        pool=pool,
        incarnations=incarnations,
    )
    return ServePlan(
        text,
        [e.tenant_id for e in kept],
        pool,
        skipped,
        warnings,
        other_cells=len(others),
    )

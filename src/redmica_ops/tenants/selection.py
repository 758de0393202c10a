"""The one rule for which tenants are served and migrated, and why the others are not.

Serve (`entrypoint serve`), render, migrate and doctor all ask `select(listing, use)`; none of
them decides on its own. A tenant is left out for a `Reason`, and each reason says which uses
it blocks, so a new tenant state (suspended, provisioning) is one more `Reason` member and every
reader honours it at once.

Clashes: when tenants share a value that must be unique (sub_domain, db.name, s3 bucket+folder),
one keeps it and the others are left out of serving, so a hostname is never shared. Who keeps it
is `precedence` (the established tenant; see `keeps_first`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from redmica_ops.errors import Problem
from redmica_ops.tenants.model import Entry, conflicts_with
from redmica_ops.tenants.store import Listing, StoredTenant


class Use(Enum):
    """What a tenant is selected for."""

    SERVE = "serve"
    MIGRATE = "migrate"


class Reason(Enum):
    """Why a tenant is left out; the value's second part is the uses it blocks."""

    # The document does not parse or validate: nothing can be done with it.
    INVALID = ("invalid", frozenset({Use.SERVE, Use.MIGRATE}))
    # It shares a unique value with a tenant that keeps it. Its own database is still its
    # own, so it is still migrated; only its site is not served.
    CLASH = ("clash", frozenset({Use.SERVE}))
    # Its life (docs/tenant-lifecycle.md): its host gets a maintenance page instead of the
    # application (render does that from the status), so it is still "served"; it is not
    # migrated in bulk: provisioning runs its own migrations, a suspended tenant only on request.
    PROVISIONING = ("provisioning", frozenset({Use.MIGRATE}))
    SUSPENDED = ("suspended", frozenset({Use.MIGRATE}))

    def __init__(self, label: str, blocks: frozenset[Use]) -> None:
        self.label = label
        self.blocks = blocks


@dataclass(frozen=True)
class Exclusion:
    """One document left out of a use, with the reason and the problems to show."""

    tenant_id: str | None  # None: a key not named like a tenant document
    key: str
    reason: Reason
    problems: Sequence[Problem]

    @property
    def name(self) -> str:
        return self.tenant_id or self.key

    def describe(self) -> str:
        return "; ".join(str(p) for p in self.problems)


Precedence = Callable[[StoredTenant], tuple[object, ...]]
"""Sort key: who keeps a clashing value (the first in this order keeps it)."""


def keeps_first(stored: StoredTenant) -> tuple[object, ...]:
    """By tenant id, so the same bucket always gives the same answer."""
    return (stored.tenant_id,)


@dataclass
class Selection:
    """The tenants fit for one use, and every other document with its reason."""

    use: Use
    eligible: list[StoredTenant] = field(default_factory=list)
    excluded: list[Exclusion] = field(default_factory=list)

    def entries(self) -> list[Entry]:
        return [stored.entry for stored in self.eligible]

    def excluded_by(self, reason: Reason) -> list[Exclusion]:
        return [e for e in self.excluded if e.reason is reason]

    @property
    def problems(self) -> list[Problem]:
        return [p for exclusion in self.excluded for p in exclusion.problems]


def classify(listing: Listing, precedence: Precedence = keeps_first) -> list[Exclusion]:
    """Every document that is not fine for every use, and why (sorted by tenant, then key)."""
    exclusions = [
        Exclusion(doc.tenant_id, doc.key, Reason.INVALID, doc.problems) for doc in listing.invalid
    ]
    for stored in listing.tenants:
        status = stored.tenant.status
        if status in ("provisioning", "suspended"):
            reason = Reason.PROVISIONING if status == "provisioning" else Reason.SUSPENDED
            why = Problem(stored.key, "status", f"the tenant is {status}")
            exclusions.append(Exclusion(stored.tenant_id, stored.key, reason, [why]))
    kept: list[Entry] = []
    for stored in sorted(listing.tenants, key=precedence):
        clashes = conflicts_with(stored.entry, kept)
        if clashes:
            exclusions.append(Exclusion(stored.tenant_id, stored.key, Reason.CLASH, clashes))
        else:
            kept.append(stored.entry)
    exclusions.sort(key=lambda e: (e.tenant_id or "", e.key))
    return exclusions


def select(
    listing: Listing,
    use: Use,
    precedence: Precedence = keeps_first,
    include_suspended: bool = False,
    include_provisioning: bool = False,
) -> Selection:
    """The tenants of `listing` fit for `use` (sorted by id), and the others with reasons.

    `include_suspended`: suspended tenants count as fit (`migrate --include-suspended`, or a
    tenant named on the command line); `include_provisioning`: so do provisioning ones (the
    migrations of their own provisioning)."""
    waived = {Reason.SUSPENDED} if include_suspended else set()
    if include_provisioning:
        waived.add(Reason.PROVISIONING)
    excluded = [
        e
        for e in classify(listing, precedence)
        if use in e.reason.blocks and e.reason not in waived
    ]
    left_out = {e.tenant_id for e in excluded if e.tenant_id}
    eligible = sorted(
        (s for s in listing.tenants if s.tenant_id not in left_out), key=lambda s: s.tenant_id
    )
    return Selection(use, eligible, excluded)

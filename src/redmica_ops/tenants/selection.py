"""The one rule for which tenants are served and migrated, and why the others are not.

Serve (`entrypoint serve`), render, migrate and doctor all ask `select(listing, use)`; none of
them decides on its own. A tenant is left out for a `Reason`, and each reason says which uses
it blocks, so a new tenant state (suspended, provisioning) is one more `Reason` member and every
reader honours it at once. A tenant that names no database host while the `db_host` setting is
unset cannot reach a database: it is fit for nothing (`no_database`; `tenant add` refuses it).

Clashes: when tenants share a value that must be unique (sub_domain, db.name, db.user and its
twin, db.password_secret, s3 bucket+folder), one keeps it and the others are left out of
serving, so a hostname is never shared. The keeper is the holder of the value's claim, else
the older document: never the newcomer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING

from redmica_ops.errors import Problem
from redmica_ops.tenants.model import Entry, Tenant, unique_values
from redmica_ops.tenants.store import Listing, StoredTenant

if TYPE_CHECKING:
    from redmica_ops.cells.config import CellMap


@dataclass(frozen=True)
class CellScope:
    """Select only one cell's tenants (docs/cells.md)."""

    cells: CellMap
    cell: str

    def reason(self, stored: StoredTenant, use: Use) -> tuple[Reason, list[Problem]] | None:
        tenant = stored.tenant
        if unknown := self.cells.unknown_cell(tenant):
            if use is Use.SERVE:
                return Reason.UNKNOWN_CELL, [Problem(stored.key, "property.cell", unknown)]
            return Reason.OTHER_CELL, []
        # A tenant being moved is served by both cells but migrated only by its new one.
        mine = (
            self.cells.serves(self.cell, tenant)
            if use is Use.SERVE
            else self.cells.cell_of(tenant) == self.cell
        )
        return None if mine else (Reason.OTHER_CELL, [])


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
    # With a cell scope (`serve --cell`, `migrate --cell`): another cell's tenant. Not a
    # problem, so it is not reported as one.
    OTHER_CELL = ("other_cell", frozenset({Use.SERVE, Use.MIGRATE}))
    # With a cell scope: the document names a cell that is not configured, so no cell serves it.
    UNKNOWN_CELL = ("unknown_cell", frozenset({Use.SERVE}))
    # Its life (docs/tenant-lifecycle.md): its host gets a maintenance page instead of the
    # application (render does that from the status), so it is still "served"; it is not
    # migrated in bulk: provisioning runs its own migrations, a suspended tenant only on request.
    PROVISIONING = ("provisioning", frozenset({Use.MIGRATE}))
    # No database host anywhere (no db.host, no db_host setting): its site would start without
    # RAILS_DB_HOST and its migrations would reach whatever the container's default is.
    NO_DATABASE = ("no_database", frozenset({Use.SERVE, Use.MIGRATE}))
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


NO_DB_HOST_HINT = "set the db_host setting (REDMICA_DB_HOST, or db_host in redmica.toml) or db.host"


def no_database(key: str, tenant: Tenant, db_host: str | None) -> Problem | None:
    """Why `tenant` cannot reach a database: it names no host and there is no default."""
    if tenant.db.host or db_host:
        return None
    return Problem(
        key, "db.host", "no database host: the document names none and db_host is not set"
    )


ClaimOwner = Callable[[str, object], str | None]
"""Who holds the claim on (field, value), if anyone (tenants/claims.py `ClaimStore.owner_of`)."""


def oldest_first(stored: StoredTenant) -> tuple[object, ...]:
    """The established tenant first: the older document, then the tenant id (deterministic)."""
    when = stored.last_modified or datetime.max.replace(tzinfo=UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when, stored.tenant_id)


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


def classify(
    listing: Listing, claim_owner: ClaimOwner | None = None, *, db_host: str | None
) -> list[Exclusion]:
    """Every document that is not fine for every use, and why (sorted by tenant, then key).

    `db_host` is the default database host (the setting): a tenant naming none while it is
    unset cannot reach a database, so it is never fit for anything.

    Of tenants sharing a unique value, the one holding its claim keeps it; when none of them
    does (documents older than claims), the older document keeps it. So a newcomer never takes
    an established customer's hostname. The claims of contested values only are read.
    """
    exclusions = [
        Exclusion(doc.tenant_id, doc.key, Reason.INVALID, doc.problems) for doc in listing.invalid
    ]
    for stored in listing.tenants:
        status = stored.tenant.status
        if status in ("provisioning", "suspended"):
            reason = Reason.PROVISIONING if status == "provisioning" else Reason.SUSPENDED
            resting = Problem(stored.key, "status", f"the tenant is {status}")
            exclusions.append(Exclusion(stored.tenant_id, stored.key, reason, [resting]))
        if unreachable := no_database(stored.key, stored.tenant, db_host):
            exclusions.append(
                Exclusion(stored.tenant_id, stored.key, Reason.NO_DATABASE, [unreachable])
            )
    users: dict[tuple[str, object], list[tuple[StoredTenant, str]]] = {}
    for stored in listing.tenants:
        for field_name, value, shown in unique_values(stored.tenant):
            users.setdefault((field_name, value), []).append((stored, shown))
    lost: dict[str, list[Problem]] = {}
    for (field_name, value), members in sorted(users.items(), key=lambda item: str(item[0])):
        if len(members) < 2:
            continue
        owner = claim_owner(field_name, value) if claim_owner else None
        tenants = [m for m, _ in members]
        keeper = next((t for t in tenants if t.tenant_id == owner), None) or min(
            tenants, key=oldest_first
        )
        why = "holds its claim" if keeper.tenant_id == owner else "the older document"
        for stored, shown in members:
            if stored is not keeper:
                lost.setdefault(stored.tenant_id, []).append(
                    Problem(
                        stored.key,
                        field_name,
                        f"{shown} is already used by tenant {keeper.tenant_id!r} "
                        f"({keeper.key}; {why})",
                    )
                )
    for stored in listing.tenants:
        if stored.tenant_id in lost:
            exclusions.append(
                Exclusion(stored.tenant_id, stored.key, Reason.CLASH, lost[stored.tenant_id])
            )
    exclusions.sort(key=lambda e: (e.tenant_id or "", e.key))
    return exclusions


def select(
    listing: Listing,
    use: Use,
    claim_owner: ClaimOwner | None = None,
    scope: CellScope | None = None,
    *,
    db_host: str | None,
    include_suspended: bool = False,
    include_provisioning: bool = False,
) -> Selection:
    """The tenants of `listing` fit for `use` (sorted by id), and the others with reasons.

    Clashes are judged across the whole bucket, before any cell scope: a hostname is never
    served by two tenants, whichever cells they are in. `include_suspended`: suspended tenants
    count as fit (`migrate --include-suspended`, or a tenant named on the command line);
    `include_provisioning`: so do provisioning ones (the migrations of their own provisioning).
    """
    waived = {Reason.SUSPENDED} if include_suspended else set()
    if include_provisioning:
        waived.add(Reason.PROVISIONING)
    excluded = [
        e
        for e in classify(listing, claim_owner, db_host=db_host)
        if use in e.reason.blocks and e.reason not in waived
    ]
    left_out = {e.tenant_id for e in excluded if e.tenant_id}
    if scope is not None:
        for stored in listing.tenants:
            if stored.tenant_id in left_out:
                continue
            found = scope.reason(stored, use)
            if found is not None:
                excluded.append(Exclusion(stored.tenant_id, stored.key, found[0], found[1]))
                left_out.add(stored.tenant_id)
        excluded.sort(key=lambda e: (e.tenant_id or "", e.key))
    eligible = sorted(
        (s for s in listing.tenants if s.tenant_id not in left_out), key=lambda s: s.tenant_id
    )
    return Selection(use, eligible, excluded)

"""Which tenants a migration run takes: named ones, every one, one cell's, or the failed ones
of an earlier run; and, with cells, how a run's results count per cell.

The rule of what is fit to migrate is `tenants.selection.select` (the one rule serve, render,
migrate and doctor share); this module turns it into a run's order, its skipped tenants and
the documents that cannot run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.errors import NotFound, UsageError
from redmica_ops.runs.options import run_options
from redmica_ops.runs.record import FAILURES, RunRecord, Status, TenantRun, utcnow
from redmica_ops.tenants.selection import CellScope, Reason, Use, select

if TYPE_CHECKING:
    from redmica_ops.cells.config import CellMap
    from redmica_ops.runs.fanout import FanOutOptions
    from redmica_ops.tenants.model import Tenant
    from redmica_ops.tenants.store import Listing


class NothingToMigrate(NotFound):
    """A cell with no tenant to migrate: `migrate --cell` reports it (exit 3); release's gate
    for that cell passes without a run."""


@dataclass
class Selection:
    order: list[str]  # to run, in order
    skipped: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)  # tenant -> why it cannot run
    tenants: dict[str, Tenant] = field(default_factory=dict)


def select_tenants(
    listing: Listing,
    ids: Sequence[str],
    all_tenants: bool,
    exclude: Sequence[str],
    include_suspended: bool = False,
    provisioning: bool = False,
    scope: CellScope | None = None,
    *,
    db_host: str | None,
) -> Selection:
    """The tenants to migrate. Suspended ones only with `include_suspended` or when named;
    provisioning ones only for their own provisioning (`provisioning`).

    With a cell `scope`, every tenant of that cell: another cell's tenants are not this run's,
    and a document that does not validate (so its cell cannot be read) counts against the home
    cell's run, failing it as it fails a run of every tenant.
    """
    if all_tenants == bool(ids):
        raise UsageError("give tenant ids or --all (not both)", "e.g. redmica migrate --all")
    selection = select(  # the one rule: tenants.selection
        listing,
        Use.MIGRATE,
        db_host=db_host,
        include_suspended=include_suspended or not all_tenants,
        include_provisioning=provisioning,
    )
    others = _other_cells(listing, scope)
    valid = {s.tenant_id: s.tenant for s in selection.eligible if s.tenant_id not in others}
    resting = {
        e.tenant_id
        for e in selection.excluded
        if e.tenant_id
        and e.tenant_id not in others
        and e.reason in (Reason.SUSPENDED, Reason.PROVISIONING)
    }
    invalid = {
        e.tenant_id: e.describe()
        for e in selection.excluded
        if e.tenant_id and e.tenant_id not in resting and e.tenant_id not in others
    }
    known = set(valid) | set(invalid) | resting
    wanted = sorted(known) if all_tenants else list(dict.fromkeys(ids))
    unknown = [t for t in [*wanted, *exclude] if t not in known | others]
    if unknown:
        raise NotFound(
            f"unknown tenant(s): {', '.join(unknown)}", "list tenants with `redmica tenant list`"
        )
    excluded = set(exclude) | resting
    order = [t for t in wanted if t not in excluded]
    if scope is not None and not order:
        raise NothingToMigrate(
            f"cell {scope.cell} has no tenants to migrate", "see `redmica cells list`"
        )
    return Selection(
        order=order,
        skipped=[t for t in wanted if t in excluded],
        invalid={t: invalid[t] for t in order if t in invalid},
        tenants={t: valid[t] for t in order if t in valid},
    )


def _other_cells(listing: Listing, scope: CellScope | None) -> set[str]:
    """The tenants a cell's run leaves out: other cells' (and invalid documents, whose cell
    cannot be read, unless this is the home cell)."""
    if scope is None:
        return set()
    others = {s.tenant_id for s in listing.tenants if scope.reason(s, Use.MIGRATE)}
    if scope.cell != scope.cells.home.name:
        others |= {doc.tenant_id for doc in listing.invalid if doc.tenant_id}
    return others


def only_failed(record: RunRecord) -> list[str]:
    failed = sorted(t for t, r in record.tenants.items() if r.status in FAILURES)
    if not failed:
        raise UsageError(f"run {record.run_id} has no failed tenants", "nothing to retry")
    return failed


def counts_by_cell(
    record: RunRecord, listing: Listing, cells: CellMap
) -> dict[str, dict[str, int]]:
    """cell -> status -> tenants of the run, each tenant in its home cell as the listing says
    ("(removed)" for one no longer there), for a setup with cells."""
    home = {s.tenant_id: cells.cell_of(s.tenant) for s in listing.tenants}
    by_cell: dict[str, dict[str, int]] = {name: {} for name in cells.names()}
    for tenant_id, run in sorted(record.tenants.items()):
        counts = by_cell.setdefault(home.get(tenant_id, "(removed)"), {})
        counts[str(run.status)] = counts.get(str(run.status), 0) + 1
    return {c: v for c, v in by_cell.items() if v}


def new_record(
    run_id: str,
    executor: str,
    selection: Selection,
    command: list[str],
    options: FanOutOptions,
    parent: str | None = None,
) -> RunRecord:
    """The record a new run starts with: a row for each tenant of its selection (those that
    cannot run already failed to start, the skipped ones skipped)."""
    now = utcnow().isoformat()
    record = RunRecord(
        run_id=run_id,
        executor=executor,
        command=command,
        created_at=now,
        updated_at=now,
        options=run_options(options),
        parent_run=parent,
    )
    for tenant in selection.order:
        record.tenants[tenant] = TenantRun(tenant)
    for tenant, why in selection.invalid.items():
        record.tenants[tenant] = TenantRun(
            tenant, Status.FAILED_TO_START, reason=f"invalid tenant document: {why}"
        )
    for tenant in selection.skipped:
        record.tenants[tenant] = TenantRun(tenant, Status.SKIPPED, reason="excluded")
    return record

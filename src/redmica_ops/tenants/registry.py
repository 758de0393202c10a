"""Tenant operations with the cross-tenant rules: what `redmica tenant ...` does, minus the CLI.

Uniqueness (sub_domain, db.name, s3 bucket+folder) is checked against the whole bucket before
any write. S3 has no transactions, so two *different* tenants created at the same instant with
the same sub_domain are not caught here; the conditional writes do guarantee that one tenant id
is never created twice and that no replace loses a concurrent change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import SecretStr

from redmica_ops.errors import (
    Conflict,
    NotFound,
    Problem,
    RedmicaError,
    UsageError,
    ValidationFailed,
)
from redmica_ops.tenants.model import (
    REDACTED,
    Entry,
    FieldChange,
    Tenant,
    conflicts_with,
    diff,
    find_conflicts,
)
from redmica_ops.tenants.store import (
    InvalidDocument,
    Listing,
    StoredTenant,
    TenantStore,
    WriteResult,
)


def keep_password_if_redacted(new: Tenant, old: Tenant | None) -> Tenant:
    """`tenant show` prints the password as ********; feeding that back keeps the stored one."""
    if new.db.password is None or new.db.password.get_secret_value() != REDACTED:
        return new
    if old is None or old.db.password is None:
        raise ValidationFailed(
            [
                Problem(
                    "(input)",
                    "db.password",
                    f"{REDACTED} is the redaction placeholder; give the real password",
                )
            ],
            before_writing=True,
        )
    return new.with_password(SecretStr(old.db.password_value()))


def _uniqueness_problems(candidates: Iterable[Entry], others: Iterable[Entry]) -> list[Problem]:
    """Clashes among the candidates, and between each candidate and the others."""
    candidate_list = list(candidates)
    other_list = list(others)
    problems = find_conflicts(candidate_list)
    for candidate in candidate_list:
        problems.extend(conflicts_with(candidate, other_list))
    return problems


def _invalid_warnings(invalid: list[InvalidDocument]) -> list[str]:
    if not invalid:
        return []
    keys = ", ".join(doc.key for doc in invalid[:5]) + (" ..." if len(invalid) > 5 else "")
    return [
        f"{len(invalid)} invalid document(s) in the bucket were not checked for uniqueness: "
        f"{keys} (see `redmica tenant list`)"
    ]


@dataclass
class Outcome:
    result: WriteResult | None
    changes: list[FieldChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class TenantRegistry:
    def __init__(self, store: TenantStore) -> None:
        self.store = store

    def _check_unique(self, tenant_id: str, tenant: Tenant, listing: Listing, source: str) -> None:
        others = [e for e in listing.entries() if e.tenant_id != tenant_id]
        problems = _uniqueness_problems([Entry(tenant_id, source, tenant)], others)
        if problems:
            raise Conflict(
                f"tenant {tenant_id!r} would clash with existing tenants; nothing was written",
                "sub_domain, db.name and s3 bucket+folder must be unique across tenants",
                problems,
            )

    def add(self, tenant_id: str, tenant: Tenant, source: str) -> Outcome:
        keep_password_if_redacted(tenant, None)
        listing = self.store.load_all()
        if tenant_id in listing.by_id() or any(d.tenant_id == tenant_id for d in listing.invalid):
            raise Conflict(
                f"tenant {tenant_id!r} already exists in s3://{self.store.bucket}/{self.store.prefix}",
                f"change it with `redmica tenant update {tenant_id} -f FILE`",
            )
        self._check_unique(tenant_id, tenant, listing, source)
        return Outcome(
            self.store.create(tenant_id, tenant), warnings=_invalid_warnings(listing.invalid)
        )

    def update(
        self, tenant_id: str, tenant: Tenant, source: str, expected: StoredTenant | None = None
    ) -> Outcome:
        """Replace a tenant, conditional on the ETag of `expected` (read now when not given)."""
        current = expected or self.store.get(tenant_id)
        tenant = keep_password_if_redacted(tenant, current.tenant)
        changes = diff(current.tenant, tenant)
        if not changes:
            return Outcome(None)
        listing = self.store.load_all()
        self._check_unique(tenant_id, tenant, listing, source)
        result = self.store.replace(tenant_id, tenant, current.etag)
        return Outcome(result, changes, _invalid_warnings(listing.invalid))

    def remove(self, tenant_id: str) -> str | None:
        if self.store.exists(tenant_id) is None:
            raise NotFound(
                f"tenant {tenant_id!r} not found", "list tenants with `redmica tenant list`"
            )
        return self.store.delete(tenant_id)

    def restore(self, tenant_id: str, version_id: str) -> Outcome:
        old = self.store.get(tenant_id, version_id)
        listing = self.store.load_all()
        current_etag = listing.etag_of(tenant_id)  # what the listing read: no second request
        self._check_unique(tenant_id, old.tenant, listing, f"{old.key}@{version_id}")
        current = listing.by_id().get(tenant_id)
        changes = diff(current.tenant, old.tenant) if current else []
        result = self.store.put_restored(tenant_id, old.tenant, current_etag)
        return Outcome(result, changes, _invalid_warnings(listing.invalid))

    # -- GitOps sync ----------------------------------------------------------------------------
    def plan_sync(self, desired: list[Entry], prune: bool) -> SyncPlan:
        seen: dict[str, Entry] = {}
        for entry in desired:
            if entry.tenant_id in seen:
                raise UsageError(
                    f"tenant {entry.tenant_id!r} is defined twice: "
                    f"{seen[entry.tenant_id].source} and {entry.source}"
                )
            seen[entry.tenant_id] = entry
        listing = self.store.load_all()
        current = listing.by_id()
        invalid = {d.tenant_id: d for d in listing.invalid if d.tenant_id}
        plan = SyncPlan(prune=prune)
        for entry in sorted(desired, key=lambda e: e.tenant_id):
            stored = current.get(entry.tenant_id)
            if stored is not None:
                tenant = keep_password_if_redacted(entry.tenant, stored.tenant)
                changes = diff(stored.tenant, tenant)
                if changes:
                    plan.changes.append(
                        PlannedChange(
                            Entry(entry.tenant_id, entry.source, tenant), stored.etag, changes
                        )
                    )
                else:
                    plan.unchanged.append(entry.tenant_id)
            elif entry.tenant_id in invalid:
                # Replacing an invalid document is a change: conditional on its ETag.
                plan.changes.append(PlannedChange(entry, invalid[entry.tenant_id].etag, []))
            else:
                keep_password_if_redacted(entry.tenant, None)
                plan.adds.append(entry)
        desired_ids = set(seen)
        plan.removals = sorted(
            [s.tenant_id for s in listing.tenants if s.tenant_id not in desired_ids]
            + [tid for tid in invalid if tid not in desired_ids]
        )
        remaining = (
            [] if prune else [e for e in listing.entries() if e.tenant_id not in desired_ids]
        )
        written = [*plan.adds, *(c.entry for c in plan.changes)]
        unchanged = [seen[tid] for tid in plan.unchanged]
        problems = _uniqueness_problems(written, [*unchanged, *remaining])
        if problems:
            raise Conflict(
                "the directory would leave clashing tenants; nothing was written",
                "sub_domain, db.name and s3 bucket+folder must be unique across "
                "tenants (use --prune if the clashing tenants should go)",
                problems,
            )
        plan.warnings = _invalid_warnings(
            [d for d in listing.invalid if d.tenant_id not in desired_ids]
        )
        return plan

    def apply_sync(self, plan: SyncPlan) -> list[str]:
        """Apply a plan in order (adds, changes, removals); stops at the first failure."""
        done: list[str] = []
        try:
            for entry in plan.adds:
                self.store.create(entry.tenant_id, entry.tenant)
                done.append(f"added {entry.tenant_id}")
            for change in plan.changes:
                self.store.replace(change.entry.tenant_id, change.entry.tenant, change.etag)
                done.append(f"changed {change.entry.tenant_id}")
            if plan.prune:
                for tenant_id in plan.removals:
                    self.store.delete(tenant_id)
                    done.append(f"removed {tenant_id}")
        except RedmicaError as exc:
            exc.message = (
                f"{exc.message} (applied before the failure: {', '.join(done) or 'nothing'})"
            )
            exc.hint = "run `redmica tenant sync` again: it plans from the current state"
            raise
        return done


@dataclass
class PlannedChange:
    entry: Entry
    etag: str
    changes: list[FieldChange]


@dataclass
class SyncPlan:
    prune: bool
    adds: list[Entry] = field(default_factory=list)
    changes: list[PlannedChange] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.adds or self.changes or (self.prune and self.removals))

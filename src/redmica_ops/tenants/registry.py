"""Tenant operations with the cross-tenant rules: what `redmica tenant ...` does, minus the CLI.

Uniqueness (sub_domain, db.name, db.user and its twin, db.password_secret, s3 bucket+folder) is
checked against the whole bucket before any write, for a clear message, and then *held* with claims
(tenants/claims.py): created with If-None-Match before the document is written, so two
different tenants created at the same instant with one sub_domain cannot both succeed.
Documents are written with If-None-Match / If-Match and removed with If-Match, so no write or
delete loses a concurrent change.

Order of steps, so that a crash leaves at worst an orphan claim (never a document whose unique
values are unclaimed): take the new claims, write or delete the document, release old claims.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from pydantic import SecretStr

from redmica_ops.errors import (
    Conflict,
    NotFound,
    Problem,
    RedmicaError,
    UsageError,
    ValidationFailed,
)
from redmica_ops.tenants.basis import Basis, StaleVersion, describe, require_tenant
from redmica_ops.tenants.claims import Claim, ClaimStore, HeldClaim
from redmica_ops.tenants.incarnations import Incarnations
from redmica_ops.tenants.model import (
    REDACTED,
    UNIQUE_FIELDS,
    Entry,
    FieldChange,
    Tenant,
    conflicts_with,
    diff,
    find_conflicts,
    is_redacted,
)
from redmica_ops.tenants.safeyaml import load_document
from redmica_ops.tenants.store import (
    InvalidDocument,
    Listing,
    StoredDocument,
    StoredTenant,
    TenantStore,
    WriteResult,
)


def redacted_password_problem(source: str) -> Problem:
    """The one `********` rule: it means "keep the stored password", so it needs one."""
    return Problem(
        source,
        "db.password",
        f"{REDACTED} is the redaction placeholder: it keeps the stored password, and there is "
        "none here (a new tenant, or a stored document too broken to read it from); give the "
        "real password",
    )


def keep_password_if_redacted(
    new: Tenant, old: Tenant | None, source: str = "(input)", old_password: str | None = None
) -> Tenant:
    """`tenant show` prints the password as ********; feeding that back keeps the stored one."""
    if not is_redacted(new):
        return new
    if old is not None:
        # A stored reference has no password to keep: give one (or keep the reference).
        stored = old.db.password.get_secret_value() if old.db.password is not None else None
    else:
        stored = old_password
    if stored is None:
        raise ValidationFailed([redacted_password_problem(source)], before_writing=True)
    return new.with_password(SecretStr(stored))


def password_in(raw: bytes) -> str | None:
    """The password of a stored document that does not validate, when it can still be read."""
    data, problems = load_document(raw, "(stored)")
    if problems or not isinstance(data, dict):
        return None
    db = data.get("db")
    password = db.get("password") if isinstance(db, dict) else None
    return password if isinstance(password, str) and password != REDACTED else None


def keep_cell(new: Tenant, old: Tenant) -> Tenant:
    """A document without property.cell keeps the stored cell; another cell needs `tenant move`
    (which restarts both cells and re-routes the host in a safe order)."""
    old_props, new_props = old.properties, new.properties
    if new_props.cell is None and new_props.moving_from is None:
        return new.in_cell(old_props.cell, old_props.moving_from)
    if (new_props.cell, new_props.moving_from) != (old_props.cell, old_props.moving_from):
        raise ValidationFailed(
            [
                Problem(
                    "(input)",
                    "property.cell",
                    f"changes the cell from {old_props.cell!r} to {new_props.cell!r}",
                )
            ],
            hint="move a tenant with `redmica tenant move TENANT --to CELL`",
        )
    return new


def _unchanged(new: Tenant, current: StoredDocument, source: str) -> bool:
    """Whether writing `new` over `current` would change nothing: then no change made since
    it was read can be lost (running one update twice stays "no changes", exit 0)."""
    if current.tenant is None:
        return False
    try:
        kept = keep_password_if_redacted(new, current.tenant, source)
        return not diff(current.tenant, keep_cell(kept, current.tenant))
    except ValidationFailed:
        return False


def _same_secret(new: Tenant, current: StoredDocument) -> bool:
    """Whether `new` keeps the password reference of a current document that was read as
    valid: the store's scope rule passed on it then, so it need not run again (a status
    change of the lifecycle)."""
    return current.tenant is not None and (
        new.db.password_secret == current.tenant.db.password_secret
    )


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


def _others(invalid: list[InvalidDocument], tenant_id: str) -> list[InvalidDocument]:
    """The invalid documents of other tenants (a repair replaces the tenant's own)."""
    return [d for d in invalid if d.tenant_id != tenant_id]


@dataclass
class Outcome:
    result: WriteResult | None
    changes: list[FieldChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # What the new document was based on (update: FILE's first line or --if-match), and the
    # version that was current when it was written (replaced, or kept when nothing changed).
    based_on: Basis | None = None
    previous: StoredDocument | None = None


@dataclass
class ClaimsAudit:
    """Claims against documents: what `doctor` reports and `tenant claims repair` fixes."""

    # Held for a tenant whose (valid) document does not use the value, or that does not exist.
    orphans: list[HeldClaim] = field(default_factory=list)
    # Values a valid document uses that nobody has claimed (documents older than claims).
    unclaimed: list[tuple[str, Claim]] = field(default_factory=list)
    # Values a document uses that another tenant holds: the document loses at serve time.
    contested: list[tuple[str, HeldClaim]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.orphans or self.unclaimed or self.contested)

    def lines(self) -> list[str]:
        return (
            [
                f"orphan claim: {h.claim.field} {h.claim.shown} held by {h.owner!r}, "
                "which does not use it"
                for h in self.orphans
            ]
            + [f"unclaimed: {c.field} {c.shown} of tenant {t!r}" for t, c in self.unclaimed]
            + [
                f"contested: tenant {t!r} uses {h.claim.field} {h.claim.shown}, "
                f"claimed by {h.owner!r}"
                for t, h in self.contested
            ]
        )


class TenantRegistry:
    def __init__(self, store: TenantStore, claims: ClaimStore | None = None) -> None:
        self.store = store
        self.claims = claims or ClaimStore(store.s3, store.bucket, store.prefix, store.kms_key_id)
        self.incarnations = Incarnations(store.s3, store.bucket, store.prefix, store.kms_key_id)

    def _check_unique(self, tenant_id: str, tenant: Tenant, listing: Listing, source: str) -> None:
        others = [e for e in listing.entries() if e.tenant_id != tenant_id]
        problems = _uniqueness_problems([Entry(tenant_id, source, tenant)], others)
        if problems:
            raise Conflict(
                f"tenant {tenant_id!r} would clash with existing tenants; nothing was written",
                f"{UNIQUE_FIELDS} must be unique across tenants",
                problems,
            )

    def check_unique(self, tenant_id: str, tenant: Tenant, listing: Listing, source: str) -> None:
        """Exit 4 (nothing written) when `tenant` would share a unique value with another."""
        self._check_unique(tenant_id, tenant, listing, source)

    def remove_copy(self, tenant_id: str, etag: str, tenant: Tenant | None) -> None:
        """Undo a `create_raw` (If-Match on what it wrote), releasing its claims."""
        self._delete(tenant_id, etag, tenant)

    # -- the steps every write goes through ------------------------------------------------------
    def _create(
        self,
        tenant_id: str,
        tenant: Tenant,
        source: str,
        incarnation: bool = True,
        checked: bool = False,
    ) -> WriteResult:
        """`checked`: the caller ran `check_writable` already (else it runs here, before any
        claim is taken)."""
        if not checked:
            self.store.check_writable(tenant, source)
        taken = self.claims.take(tenant_id, self.claims.claims_of(tenant), source)
        try:
            if incarnation:
                # Before the document: a new customer's backups and key are never a purged
                # one's (tenants/incarnations.py); a crash here leaves only an unused one.
                self.incarnations.begin(tenant_id)
            return self.store.create(tenant_id, tenant, checked=True)
        except BaseException:
            self._undo_claims(tenant_id, taken)
            raise

    def create_raw(
        self, tenant_id: str, raw: bytes, tenant: Tenant | None, source: str
    ) -> WriteResult:
        """Create a document from exact bytes (a renamed key keeps its text and comments):
        its claims first when it parses, then If-None-Match; a new incarnation, as for any
        id that is new to the bucket."""
        taken = self.claims.take(tenant_id, self.claims.claims_of(tenant), source) if tenant else []
        try:
            self.incarnations.begin(tenant_id)
            return self.store.put_raw(tenant_id, raw)
        except BaseException:
            self._undo_claims(tenant_id, taken)
            raise

    def _undo_claims(self, tenant_id: str, taken: list[Claim]) -> None:
        """Release claims taken for a write that failed, except those the tenant's current
        document uses: another process may have written it with the same values (claims are
        held per tenant id), or the failed write may in fact have been applied."""
        if not taken:
            return
        try:
            current = self.store.get_document(tenant_id)
        except NotFound:
            current = None
        except RedmicaError:
            return  # cannot tell: keep them; at worst orphans, which `claims repair` tidies
        in_use = (
            {c.key for c in self.claims.claims_of(current.tenant)}
            if current is not None and current.tenant is not None
            else set()
        )
        if current is not None and current.tenant is None:
            return  # unreadable document: whether it uses them is unknown
        self.claims.release(tenant_id, [c for c in taken if c.key not in in_use])

    def _replace(
        self,
        tenant_id: str,
        tenant: Tenant,
        etag: str,
        old: Tenant | None,
        source: str,
        checked: bool = False,
    ) -> WriteResult:
        if not checked:
            self.store.check_writable(tenant, source)
        new_claims = self.claims.claims_of(tenant)
        taken = self.claims.take(tenant_id, new_claims, source)
        try:
            result = self.store.replace(tenant_id, tenant, etag, checked=True)
        except BaseException:
            self._undo_claims(tenant_id, taken)
            raise
        self._release_unused(tenant_id, old, new_claims)
        return result

    def _release_unused(self, tenant_id: str, old: Tenant | None, keep: list[Claim]) -> None:
        if old is None:
            return  # an invalid document's values are unknown: `tenant claims repair` tidies up
        kept = {c.key for c in keep}
        self.claims.release(tenant_id, [c for c in self.claims.claims_of(old) if c.key not in kept])

    def _delete(self, tenant_id: str, etag: str, old: Tenant | None) -> str | None:
        marker = self.store.delete(tenant_id, etag)
        self._release_unused(tenant_id, old, [])
        return marker

    # -- commands -------------------------------------------------------------------------------
    def add(
        self, tenant_id: str, tenant: Tenant, source: str, listing: Listing | None = None
    ) -> Outcome:
        """Create a tenant that does not exist, unique against `listing` (the caller's read
        of the tenants, else read now) and then held by its claims."""
        self.store.key_for(tenant_id)  # the id is checked before anything is read
        keep_password_if_redacted(tenant, None, source)
        self.store.check_writable(tenant, source)
        listing = listing or self.store.load_all()
        if tenant_id in listing.by_id() or any(d.tenant_id == tenant_id for d in listing.invalid):
            raise Conflict(
                f"tenant {tenant_id!r} already exists in s3://{self.store.bucket}/{self.store.prefix}",
                f"change it with `redmica tenant update {tenant_id} -f FILE`",
            )
        self._check_unique(tenant_id, tenant, listing, source)
        return Outcome(
            self._create(tenant_id, tenant, source, checked=True),
            warnings=_invalid_warnings(listing.invalid),
        )

    def update(
        self,
        tenant_id: str,
        tenant: Tenant,
        source: str,
        expected: StoredDocument | StoredTenant | None = None,
        based_on: Basis | None = None,
        listing: Listing | None = None,
    ) -> Outcome:
        """Replace a tenant's document, valid or not, conditional on the ETag of `expected`
        (read now when not given). Replacing an invalid document is how one is repaired.

        `based_on` is the version the new document was made from (`tenant show`'s first line,
        or --if-match): unless the tenant is still at it, StaleVersion and nothing written.
        With neither, the document replaces whatever is current, and a warning says which.
        `listing`: the caller's read of the tenants (else read now, only when it changes)."""
        if isinstance(expected, StoredTenant):
            expected = expected.as_document()
        current = expected or self._current(tenant_id, based_on, source)
        if based_on is not None:
            require_tenant(tenant_id, based_on)
            # Stale, and writing would change something: a change made since would be lost.
            if not based_on.matches(current) and not _unchanged(tenant, current, source):
                raise StaleVersion(tenant_id, based_on, current, source)
        tenant = keep_password_if_redacted(
            tenant, current.tenant, source, None if current.tenant else password_in(current.raw)
        )
        if current.tenant is not None:
            tenant = keep_cell(tenant, current.tenant)
        if not _same_secret(tenant, current):
            self.store.check_writable(tenant, source)
        changes = diff(current.tenant, tenant) if current.tenant else []
        if current.tenant is not None and not changes:
            return Outcome(None, based_on=based_on, previous=current)
        listing = listing or self.store.load_all()
        self._check_unique(tenant_id, tenant, listing, source)
        result = self._replace(
            tenant_id, tenant, current.etag, current.tenant, source, checked=True
        )
        warnings = _invalid_warnings(_others(listing.invalid, tenant_id))
        if expected is None and based_on is None:
            warnings.insert(
                0,
                f"{source} names no version: it replaced {tenant_id}'s {describe(current)} "
                "whatever it was based on (changes below); a file from `redmica tenant show "
                f"{tenant_id}`, or --if-match VERSION, refuses a change made since (exit 4)",
            )
        return Outcome(result, changes, warnings, based_on, current)

    def _current(self, tenant_id: str, based_on: Basis | None, source: str) -> StoredDocument:
        try:
            return self.store.get_document(tenant_id)
        except NotFound:
            if based_on is None:
                raise
            raise StaleVersion(tenant_id, based_on, None, source) from None

    def remove(
        self, tenant_id: str, expected: StoredTenant | StoredDocument | None = None
    ) -> str | None:
        """Delete the document and release its claims. With `expected`, only if the document
        is still that version (a purge removes exactly the tenant whose database it dropped)."""
        current = expected if expected is not None else self.existing(tenant_id)
        return self._delete(tenant_id, current.etag, current.tenant)

    def existing(self, tenant_id: str) -> StoredDocument:
        """The tenant's document, valid or not; exit 3 when there is none."""
        try:
            return self.store.get_document(tenant_id)
        except NotFound:
            raise NotFound(
                f"tenant {tenant_id!r} not found", "list tenants with `redmica tenant list`"
            ) from None

    def restore(self, tenant_id: str, version_id: str, based_on: Basis | None = None) -> Outcome:
        """Make `version_id` current again. `based_on` (--if-match): only while the tenant is
        still at that version (StaleVersion, exit 4, nothing written)."""
        old = self.store.get(tenant_id, version_id)
        listing = self.store.load_all()
        current_etag = listing.etag_of(tenant_id)  # what the listing read: no second request
        if based_on is not None:
            try:
                current: StoredDocument | None = self.store.get_document(tenant_id)
            except NotFound:
                current = None
            # The write below is conditional on the listing's ETag: a change after this
            # check is refused there.
            if current is None or not based_on.matches(current):
                raise StaleVersion(tenant_id, based_on, current, "--if-match")
        now = listing.by_id().get(tenant_id)
        if now is not None:  # an old version does not move the tenant back to an old cell
            old = replace(
                old,
                tenant=old.tenant.in_cell(
                    now.tenant.properties.cell, now.tenant.properties.moving_from
                ),
            )
        self._check_unique(tenant_id, old.tenant, listing, f"{old.key}@{version_id}")
        changes = diff(now.tenant, old.tenant) if now else []
        source = f"{old.key}@{version_id}"
        if current_etag is None:
            result = self._create(tenant_id, old.tenant, source)
        else:
            result = self._replace(
                tenant_id, old.tenant, current_etag, now.tenant if now else None, source
            )
        return Outcome(
            result,
            changes,
            _invalid_warnings(_others(listing.invalid, tenant_id)),
            previous=now.as_document() if now is not None else None,
        )

    # -- claims ---------------------------------------------------------------------------------
    def held_claims(self) -> dict[str, HeldClaim]:
        """Every claim object and its holder, by claim key (read in parallel)."""
        held: dict[str, HeldClaim] = {}
        keys = [key for key, _ in self.claims.list_keys()]

        def fetch(key: str) -> HeldClaim | None:
            claim = self.claims.parse_key(key)
            return self.claims.holder(claim) if claim else None

        for found in self.store.parallel(fetch, keys):
            if found is not None:
                held[found.claim.key] = found
        return held

    def audit_claims(self, listing: Listing | None = None) -> ClaimsAudit:
        listing = listing or self.store.load_all()
        held = self.held_claims()
        audit = ClaimsAudit()
        used: dict[str, set[str]] = {}
        for stored in listing.tenants:
            for claim in self.claims.claims_of(stored.tenant):
                used.setdefault(claim.key, set()).add(stored.tenant_id)
                holder = held.get(claim.key)
                if holder is None:
                    audit.unclaimed.append((stored.tenant_id, claim))
                elif holder.owner != stored.tenant_id:
                    audit.contested.append((stored.tenant_id, holder))
        unreadable = {d.tenant_id for d in listing.invalid if d.tenant_id}
        for key, holder in sorted(held.items()):
            if holder.owner in unreadable:
                continue  # its document does not parse: whether it uses the value is unknown
            if holder.owner not in used.get(key, set()):
                audit.orphans.append(holder)
        return audit

    def repair_claims(self, audit: ClaimsAudit) -> list[str]:
        """Remove orphan claims (conditional on the ETag the audit read), except one its owner
        uses again since the audit: taking a claim one already holds does not rewrite it, so
        its ETag alone cannot tell (the owner's document is read again just before)."""
        done = []
        for holder in audit.orphans:
            if self._may_use(holder):
                continue
            try:
                self.claims.remove_orphan(holder)
            except Conflict:
                continue  # it changed since the audit: leave it to the next run
            done.append(f"released {holder.claim.field} {holder.claim.shown} ({holder.owner})")
        return done

    def _may_use(self, holder: HeldClaim) -> bool:
        """Whether the claim's owner uses its value now (or may: its document is unreadable)."""
        try:
            current = self.store.get_document(holder.owner)
        except (NotFound, UsageError):
            return False  # no such tenant (or an owner that is not a tenant id at all)
        except RedmicaError:
            return True  # the read failed: cannot tell, keep it for the next repair
        if current.tenant is None:
            return True
        return holder.claim.key in {c.key for c in self.claims.claims_of(current.tenant)}

    def rebuild_claims(
        self,
        listing: Listing | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> Rebuild:
        """Claim every unclaimed value of the valid documents (adopting documents written
        before claims existed). The older document claims first, as serve decides: a value
        another tenant holds (or an older one would claim) is a clash, left to its keeper.
        `dry_run`: read the claims once and say what would be written; write nothing."""
        from redmica_ops.tenants.selection import oldest_first

        listing = listing or self.store.load_all()
        held = {k: h.owner for k, h in self.held_claims().items()} if dry_run else {}
        owners = dict(held)
        result = Rebuild(dry_run)
        ordered = sorted(listing.tenants, key=oldest_first)
        for number, stored in enumerate(ordered, 1):
            for claim in self.claims.claims_of(stored.tenant):
                what = f"{claim.field} {claim.shown}"
                if dry_run:
                    owner = owners.setdefault(claim.key, stored.tenant_id)
                    created = owner == stored.tenant_id and claim.key not in held
                    clash = None if owner == stored.tenant_id else f"kept by tenant {owner!r}"
                else:
                    try:
                        taken = self.claims.take(stored.tenant_id, [claim], stored.key)
                        created, clash = bool(taken), None
                    except Conflict as error:
                        created, clash = False, error.message.split(";")[0]
                if created:
                    result.claimed.append((stored.tenant_id, what))
                elif clash:
                    # Left to its keeper: a clash, which list and doctor report.
                    result.clashes.append((stored.tenant_id, what, clash))
            if progress is not None:
                progress(number, len(ordered))
        return result

    # -- export / import ------------------------------------------------------------------------
    def export_documents(
        self, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, bytes]:
        """Every current document directly under the prefix as stored, by its name there
        (`acme.yaml`; `Cust-Upper.yaml` and `old.yml` too: an invalid one is still a customer's).

        Unlike the readers that serve, an export must be complete: one object that cannot be
        read fails the export, naming it, rather than leaving a silent gap in a backup.
        """
        prefix = self.store.prefix
        keys = [key for key, _ in self.store.list_keys()]

        def fetch(key: str) -> tuple[str, bytes] | None:
            try:
                return key[len(prefix) :], self.store.read_raw(key)
            except NotFound:
                return None  # removed since the listing

        return dict(found for found in self.store.parallel(fetch, keys, progress) if found)

    def plan_import(self, entries: list[Entry], listing: Listing) -> ImportPlan:
        """What importing `entries` creates. A tenant already in the bucket with the same
        content is skipped (an interrupted import is finished by running it again); any other
        document in the bucket refuses the import (exit 4): it loads only into an empty bucket."""
        current = listing.by_id()
        wanted = {e.tenant_id for e in entries}
        plan = ImportPlan()
        problems: list[Problem] = []
        for entry in sorted(entries, key=lambda e: e.tenant_id):
            stored = current.get(entry.tenant_id)
            if stored is None:
                plan.create.append(entry)
            elif stored.tenant == entry.tenant:
                plan.present.append(entry.tenant_id)
            else:
                problems.append(
                    Problem(stored.key, "", f"differs from {entry.source}: not this export's")
                )
        problems += [
            Problem(s.key, "", "is not in the export")
            for s in listing.tenants
            if s.tenant_id not in wanted
        ]
        problems += [Problem(d.key, "", "is an invalid document") for d in listing.invalid]
        if problems:
            raise Conflict(
                f"s3://{self.store.bucket}/{self.store.prefix} holds {len(problems)} tenant "
                "document(s) that are not this export's; import only loads into an empty bucket "
                "(or finishes its own interrupted import); nothing was written",
                "merge a directory of tenant files with `redmica tenant sync DIR --apply`",
                problems,
            )
        redacted = [
            redacted_password_problem(e.source) for e in plan.create if is_redacted(e.tenant)
        ]
        if redacted:
            raise ValidationFailed(redacted, before_writing=True)
        return plan

    def apply_import(
        self, plan: ImportPlan, progress: Callable[[int, int], None] | None = None
    ) -> list[str]:
        """Create each planned tenant with its claims, in order; on a failure say how far it
        got: running the import again skips what is already there."""
        done: list[str] = []
        try:
            for entry in plan.create:
                # Disaster recovery: the incarnations kept in the bucket (if any) still count;
                # none are made, so a tenant without one keeps the key it always had.
                self._create(entry.tenant_id, entry.tenant, entry.source, incarnation=False)
                done.append(entry.tenant_id)
                if progress is not None:
                    progress(len(done), len(plan.create))
        except RedmicaError as exc:
            exc.message = f"{exc.message} (imported before the failure: {len(done)} tenant(s))"
            exc.hint = "run the same import again: it skips what is already in the bucket"
            raise
        return done

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
        redacted: list[Problem] = []
        for entry in sorted(desired, key=lambda e: e.tenant_id):
            stored = current.get(entry.tenant_id)
            if stored is not None:
                tenant = keep_cell(
                    keep_password_if_redacted(entry.tenant, stored.tenant, entry.source),
                    stored.tenant,
                )
                changes = diff(stored.tenant, tenant)
                if changes:
                    plan.changes.append(
                        PlannedChange(
                            Entry(entry.tenant_id, entry.source, tenant),
                            stored.etag,
                            changes,
                            stored.tenant,
                        )
                    )
                else:
                    plan.unchanged.append(entry.tenant_id)
            elif entry.tenant_id in invalid:
                # Replacing an invalid document is a change: conditional on its ETag.
                if is_redacted(entry.tenant):
                    redacted.append(redacted_password_problem(entry.source))
                    continue
                plan.changes.append(PlannedChange(entry, invalid[entry.tenant_id].etag, [], None))
            else:
                if is_redacted(entry.tenant):
                    redacted.append(redacted_password_problem(entry.source))
                    continue
                plan.adds.append(entry)
        if redacted:
            raise ValidationFailed(redacted, before_writing=True)
        desired_ids = set(seen)
        plan.removals = sorted(
            [
                PlannedRemoval(s.tenant_id, s.etag, s.tenant)
                for s in listing.tenants
                if s.tenant_id not in desired_ids
            ]
            + [
                PlannedRemoval(tid, doc.etag, None)
                for tid, doc in invalid.items()
                if tid not in desired_ids
            ],
            key=lambda r: r.tenant_id,
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
                f"{UNIQUE_FIELDS} must be unique across tenants (use --prune if the "
                "clashing tenants should go)",
                problems,
            )
        plan.warnings = _invalid_warnings(
            [d for d in listing.invalid if d.tenant_id not in desired_ids]
        )
        return plan

    def apply_sync(
        self, plan: SyncPlan, progress: Callable[[int, int], None] | None = None
    ) -> list[str]:
        """Apply a plan in order (removals first when pruning, so values they free can be
        claimed; then adds and changes); stops at the first failure. Every step is
        conditional on what the plan read."""
        done = _Steps(plan.size, progress)
        try:
            if plan.prune:
                for removal in plan.removals:
                    self._delete(removal.tenant_id, removal.etag, removal.tenant)
                    done.append(f"removed {removal.tenant_id}")
            for entry in plan.adds:
                self._create(entry.tenant_id, entry.tenant, entry.source)
                done.append(f"added {entry.tenant_id}")
            for change in plan.changes:
                self._replace(
                    change.entry.tenant_id,
                    change.entry.tenant,
                    change.etag,
                    change.old,
                    change.entry.source,
                )
                done.append(f"changed {change.entry.tenant_id}")
        except RedmicaError as exc:
            exc.message = f"{exc.message} (applied before the failure: {done.said()})"
            exc.hint = "run `redmica tenant sync` again: it plans from the current state"
            raise
        return done


class _Steps(list[str]):
    """The steps a sync applied, counted as they happen (progress)."""

    def __init__(self, total: int, progress: Callable[[int, int], None] | None) -> None:
        super().__init__()
        self.total, self.progress = total, progress

    def append(self, step: str) -> None:
        super().append(step)
        if self.progress is not None:
            self.progress(len(self), self.total)

    def said(self) -> str:
        """Short, for an error message: a count and the last few, not 565 names."""
        if not self:
            return "nothing"
        return f"{len(self)} step(s), the last: {', '.join(self[-3:])}"


@dataclass
class Rebuild:
    """What `claims rebuild` claimed (or would), and the values left to another tenant."""

    dry_run: bool
    claimed: list[tuple[str, str]] = field(default_factory=list)  # (tenant, "field value")
    clashes: list[tuple[str, str, str]] = field(default_factory=list)  # (tenant, value, why)


@dataclass
class ImportPlan:
    create: list[Entry] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # already in the bucket, identical


@dataclass
class PlannedChange:
    entry: Entry
    etag: str
    changes: list[FieldChange]
    old: Tenant | None = None


@dataclass(frozen=True)
class PlannedRemoval:
    tenant_id: str
    etag: str
    tenant: Tenant | None


@dataclass
class SyncPlan:
    prune: bool
    adds: list[Entry] = field(default_factory=list)
    changes: list[PlannedChange] = field(default_factory=list)
    removals: list[PlannedRemoval] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.adds or self.changes or (self.prune and self.removals))

    @property
    def size(self) -> int:
        """How many tenants applying the plan changes (what --max-changes limits)."""
        return len(self.adds) + len(self.changes) + (len(self.removals) if self.prune else 0)

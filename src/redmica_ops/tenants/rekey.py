"""`redmica tenant rename-key`: move a document stored under a key that is not a tenant id
(`tenants/Cust-Upper.yaml`, `tenants/old.yml`) to `<prefix><new-id>.yaml`, conditionally.

Such a document is listed as invalid and never served; `tenant update ID` cannot reach it
because its key has no id. The move copies its bytes as stored (comments kept) only while the
old object is still the version the listing read (If-Match on the read and on the delete), and
never over an existing document or a value another tenant holds (exit 4, nothing written): a
clash is never resolved for the document that was not served. If the old object changed
between the copy and the delete, the copy is removed again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.aws import delete_object_if
from redmica_ops.errors import Conflict, JSONValue, NotFound, Problem, UsageError
from redmica_ops.report import Report, info, success, warn
from redmica_ops.tenants.store import Listing

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class RenameRequest:
    old: str  # the key's name under the prefix (Cust-Upper.yaml) or the whole key
    new_id: str
    dry_run: bool = False


@dataclass
class RenameOutcome:
    request: RenameRequest
    old_key: str
    new_key: str
    location: str  # s3://bucket
    problems: list[Problem] = field(default_factory=list)  # of the document under its new id
    version_id: str | None = None

    def report(self) -> Report:
        moved = f"{self.location}/{self.old_key} -> {self.new_key}"
        document: dict[str, JSONValue] = {
            "old_key": self.old_key,
            "new_key": self.new_key,
            "tenant": self.request.new_id,
            "dry_run": self.request.dry_run,
            "valid": not self.problems,
            "problems": [p.as_dict() for p in self.problems],
            "version_id": self.version_id,
        }
        if self.request.dry_run:
            lines = [info(f"would rename {moved}; nothing was written")]
        else:
            lines = [success(f"renamed {moved}")]
        new_id = self.request.new_id
        if self.problems:
            state = "would still be" if self.request.dry_run else "is still"
            lines.extend(
                warn(f"under its new id the document {state} invalid: {problem}")
                for problem in self.problems
            )
            lines.append(info(f"repair it after the rename with `redmica tenant edit {new_id}`"))
        elif self.request.dry_run:
            # A clash would have been refused (exit 4) before this report.
            lines.append(
                info(f"as {new_id} the document is valid and takes no value another tenant holds")
            )
        return Report(document, list(lines))


def rename_key(request: RenameRequest, ws: Workspace) -> RenameOutcome:
    registry = ws.registry()
    store = registry.store
    new_key = store.key_for(request.new_id)  # an invalid id is exit 2 before any read
    old_key = request.old if request.old.startswith(store.prefix) else store.prefix + request.old
    if "/" in old_key[len(store.prefix) :]:
        raise UsageError(f"{request.old}: give the document's name under {store.prefix}")
    listing = ws.tenants()
    etag = _old_etag(listing, old_key, request, f"s3://{store.bucket}")
    if (
        new_key == old_key
        or listing.etag_of(request.new_id) is not None
        or any(d.key == new_key for d in listing.invalid)
    ):
        raise Conflict(
            f"s3://{store.bucket}/{new_key} exists already; nothing was written",
            "pick another id (`redmica tenant list` shows the ids in use)",
        )
    # The bytes the listing saw, or a Conflict (exit 4) if someone changed them since.
    try:
        raw = store.read_raw(old_key, if_match=etag)
    except Conflict:
        raise Conflict(
            f"s3://{store.bucket}/{old_key} changed since it was listed; nothing was written",
            "list again and retry",
        ) from None
    source = f"s3://{store.bucket}/{new_key}"
    tenant, problems = store.parse(request.new_id, raw, source)
    if tenant is not None:
        registry.check_unique(request.new_id, tenant, listing, source)
    outcome = RenameOutcome(request, old_key, new_key, f"s3://{store.bucket}", problems)
    if request.dry_run:
        return outcome
    written = registry.create_raw(request.new_id, raw, tenant, source)
    try:
        delete_object_if(
            store.s3, store.bucket, old_key, etag, action=f"removing s3://{store.bucket}/{old_key}"
        )
    except Conflict:
        # Changed between the copy and the delete: the copy goes, the changed one stays.
        registry.remove_copy(request.new_id, written.etag, tenant)
        raise Conflict(
            f"s3://{store.bucket}/{old_key} changed while it was being renamed; "
            "nothing was renamed",
            "list again and retry",
        ) from None
    outcome.version_id = written.version_id
    return outcome


def _old_etag(listing: Listing, old_key: str, request: RenameRequest, where: str) -> str:
    """The ETag the listing read for the old key; only a document without a tenant id (or
    otherwise invalid) is renamed: a valid tenant's id is its identity (claims, database)."""
    if any(s.key == old_key for s in listing.tenants):
        raise UsageError(
            f"{where}/{old_key} is a valid tenant document: a tenant's id is not renamed",
            "rename-key is for documents under a key that is not a tenant id",
        )
    for doc in listing.invalid:
        if doc.key == old_key:
            return doc.etag
    raise NotFound(
        f"no document {where}/{old_key}",
        "see the keys with `redmica tenant list --status invalid`",
    )

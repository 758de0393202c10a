"""Deprovision (`tenant remove --purge`): final backup, drop, attachments, document — recorded.

Order, and why: the plan counts the attachments (with --delete/--archive-attachments a bucket
that cannot be listed refuses the purge); the final backup must succeed first (nothing is
dropped otherwise); with --archive-attachments the attachments are then copied to the archive
prefix and the copy is verified (same keys, same sizes), also before anything is dropped; then
the document is set `suspended` (conditionally), so a tenant whose database is gone is served
the maintenance page, never as a live application; then the database and both login roles; then,
only if asked, the attachments are deleted (their count is part of the plan the operator
confirmed; archived ones only after the verified copy); last the document (conditional on the
version whose database was dropped) with its uniqueness claims, so a failure half way leaves a
tenant that is still listed and can be purged again. Every step is appended to a deprovision
record under `<lifecycle_prefix>deprovisions/`, written conditionally each time.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from redmica_ops.aws import translate_errors
from redmica_ops.errors import (
    AwsError,
    Conflict,
    NotFound,
    OperationFailed,
    RedmicaError,
    UsageError,
)
from redmica_ops.lifecycle.common import (
    check_owns,
    claims_of_store,
    require_endpoint,
    set_status,
)
from redmica_ops.lifecycle.steps import Runner, Step, StepResult, guard_args
from redmica_ops.tenants.model import Tenant
from redmica_ops.tenants.registry import TenantRegistry
from redmica_ops.tenants.store import StoredTenant

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef


@dataclass(frozen=True)
class PurgeRequest:
    tenant_id: str
    delete_attachments: bool = False
    dry_run: bool = False
    # Copy the attachments to <archive_prefix><tenant>/<time>/ in their bucket, verify, delete.
    archive_attachments: bool = False
    archive_prefix: str = "archive/"


@dataclass
class PurgePlan:
    tenant_id: str
    database: str
    roles: list[str]
    database_exists: bool
    attachments: str  # s3://bucket/folder/
    attachment_count: int | None  # None: could not be counted (say why in `note`)
    delete_attachments: bool
    steps: list[str] = field(default_factory=list)
    note: str | None = None
    archive_to: str | None = None  # s3://bucket/prefix/ of the archive copy
    # Databases parked or left over by `restore-db --replace`: dropped with the live one.
    side_databases: list[str] = field(default_factory=list)
    owner: str | None = None  # the database's owner as the plan found it (None: absent)


@dataclass
class PurgeRecord:
    tenant: str
    started_at: str
    plan: dict[str, object]
    steps: list[dict[str, object]] = field(default_factory=list)
    state: str = "running"  # running | done | failed
    key: str = ""
    etag: str | None = None


COPY_OBJECT_LIMIT = 5 * 1024**3


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Attachments:
    """The tenant's attachment objects (s3.bucket / s3.folder) in its attachments bucket."""

    def __init__(self, s3: S3Client, bucket: str, folder: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = folder.rstrip("/") + "/"

    def keys(self) -> list[str]:
        return list(self.sizes(self.prefix))

    def sizes(self, prefix: str) -> dict[str, int]:
        """Every object under `prefix` with its size."""
        paginator = self.s3.get_paginator("list_objects_v2")
        with translate_errors(f"listing s3://{self.bucket}/{prefix}", self.bucket):
            return {
                obj["Key"]: obj.get("Size", 0)
                for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                for obj in page.get("Contents", [])
            }

    def archive(self, destination: str) -> dict[str, int]:
        """Copy every object to `destination` (same bucket, same relative keys), then check
        the copy: the same keys with the same sizes, or ArchiveMismatch. Returns what was
        archived (source key -> size); nothing is deleted here."""
        objects = self.sizes(self.prefix)
        for key, size in objects.items():
            target = destination + key[len(self.prefix) :]
            with translate_errors(f"copying s3://{self.bucket}/{key}", self.bucket):
                if size <= COPY_OBJECT_LIMIT:
                    self.s3.copy_object(
                        Bucket=self.bucket,
                        Key=target,
                        CopySource={"Bucket": self.bucket, "Key": key},
                    )
                else:  # CopyObject stops at 5 GB; the managed copy goes multipart
                    self.s3.copy({"Bucket": self.bucket, "Key": key}, self.bucket, target)
        copied = self.sizes(destination)
        want = {key[len(self.prefix) :]: size for key, size in objects.items()}
        have = {key[len(destination) :]: size for key, size in copied.items()}
        if want != have:
            missing = sorted(set(want) - set(have))
            differ = sorted(k for k in set(want) & set(have) if want[k] != have[k])
            raise OperationFailed(
                f"the archive copy under s3://{self.bucket}/{destination} does not match: "
                f"{len(want)} object(s) to archive, {len(have)} found, {len(missing)} missing, "
                f"{len(differ)} of another size; no attachment was deleted",
                "see the deprovision record; run the purge again",
            )
        return objects

    def delete(self, keys: list[str]) -> int:
        deleted = 0
        for start in range(0, len(keys), 1000):
            batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[start : start + 1000]]
            with translate_errors(f"deleting from s3://{self.bucket}/{self.prefix}", self.bucket):
                response = self.s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            errors = response.get("Errors", [])
            if errors:
                raise Conflict(f"{len(errors)} attachment(s) could not be deleted", "run again")
            deleted += len(batch)
        return deleted


def plan(
    registry: TenantRegistry, runner: Runner, attachments_s3: S3Client, request: PurgeRequest
) -> PurgePlan:
    stored = registry.store.get(request.tenant_id)
    tenant = stored.tenant
    require_endpoint(runner.access, stored)
    # A document with another tenant's names (written straight to the bucket, a clash) holds
    # none of their claims: refused here, and again where the drop runs.
    check_owns(registry.store, stored)
    attachments = Attachments(attachments_s3, tenant.s3.bucket, tenant.s3.folder)
    if request.archive_attachments and request.delete_attachments:
        raise UsageError(
            "choose one of --archive-attachments and --delete-attachments",
            "--archive-attachments deletes them too, after a verified copy",
        )
    if request.archive_attachments or request.delete_attachments:
        check_attachments_own(registry, request, stored)
    archive_to = None
    if request.archive_attachments:
        archive_to = archive_prefix_for(registry, request, attachments)
    count: int | None
    note = None
    try:
        count = len(attachments.keys())
    except RedmicaError as exc:
        if request.archive_attachments or request.delete_attachments:
            # What is archived or deleted must be known and confirmed before anything drops.
            flag = (
                "--archive-attachments" if request.archive_attachments else ("--delete-attachments")
            )
            raise AwsError(
                f"cannot list the attachments of tenant {request.tenant_id!r} in its s3.bucket "
                f"s3://{tenant.s3.bucket}/{attachments.prefix}: {exc.message}; nothing was done",
                f"check that the tenant's s3.bucket {tenant.s3.bucket!r} exists and that you may "
                f"list it (s3:ListBucket), or purge without {flag} to keep the attachments",
            ) from exc
        count, note = None, f"attachments not counted: {exc.message}"
    if request.dry_run and runner.where != "local":
        # A dry run writes and launches nothing: without a task the database is not seen.
        return dry_plan(request, tenant, stored.key, attachments, count, note, archive_to)
    state = runner.run(Step("inspect", request.tenant_id))
    if state.get("undroppable"):
        # Found now, not at the drop: nothing is backed up, suspended or dropped first.
        raise Conflict(
            f"tenant {request.tenant_id!r}: {state['undroppable']}",
            "see docs/tenant-lifecycle.md (Deprovision); nothing was done",
        )
    roles = [str(r) for r in state.get("roles") or []]  # type: ignore[union-attr]
    exists = state.get("owner") is not None
    here = f"s3://{tenant.s3.bucket}/{attachments.prefix}"
    steps = [
        "final backup (pg_dump -Fc to the backups prefix); stop here if it fails"
        if exists
        else f"no final backup: database {tenant.db.name} does not exist (an earlier purge "
        "dropped it, see its record); stop if it appears",
    ]
    if archive_to is not None:
        steps.append(
            f"copy the {count} attachment object(s) under {here} to "
            f"s3://{tenant.s3.bucket}/{archive_to} and verify the copy (keys and sizes); stop "
            "here if it differs"
        )
    sides = [str(s) for s in state.get("side_databases") or []]  # type: ignore[union-attr]
    also = f" with the parked database(s) {', '.join(sides)}" if sides else ""
    steps.append(f"drop database {tenant.db.name}{also} and role(s) {', '.join(roles) or '(none)'}")
    if archive_to is not None:
        steps.append(f"delete the {count} archived attachment object(s) under {here}")
    elif request.delete_attachments:
        steps.append(
            f"delete {count if count is not None else 'all'} attachment object(s) under {here}"
        )
    else:
        steps.append(f"keep the attachments under {here}")
    steps.append(
        f"remove the document {stored.key} (conditional on this version) and release its "
        "uniqueness claims"
    )
    return PurgePlan(
        request.tenant_id,
        tenant.db.name,
        roles,
        exists,
        f"s3://{tenant.s3.bucket}/{attachments.prefix}",
        count,
        request.delete_attachments,
        steps,
        note,
        f"s3://{tenant.s3.bucket}/{archive_to}" if archive_to else None,
        sides,
        str(state["owner"]) if exists else None,
    )


def dry_plan(
    request: PurgeRequest,
    tenant: Tenant,
    key: str,
    attachments: Attachments,
    count: int | None,
    note: str | None,
    archive_to: str | None,
) -> PurgePlan:
    """The plan from what can be read without an admin task (ECS executor, --dry-run)."""
    here = f"s3://{tenant.s3.bucket}/{attachments.prefix}"
    unknown = "unknown: a dry run launches no admin task"
    steps = [
        f"final backup of database {tenant.db.name} if it exists ({unknown}); stop if it fails",
        f"drop database {tenant.db.name}, any databases parked by restore-db --replace and "
        f"the role(s) {tenant.db.user}, {tenant.db.user}_2 that exist ({unknown})",
    ]
    if archive_to is not None:
        steps.insert(
            1,
            f"copy the {count} attachment object(s) under {here} to "
            f"s3://{tenant.s3.bucket}/{archive_to} and verify the copy",
        )
        steps.append(f"delete the {count} archived attachment object(s) under {here}")
    elif request.delete_attachments:
        steps.append(f"delete {count} attachment object(s) under {here}")
    else:
        steps.append(f"keep the attachments under {here}")
    steps.append(f"remove the document {key} and release its uniqueness claims")
    return PurgePlan(
        request.tenant_id,
        tenant.db.name,
        [],
        False,
        here,
        count,
        request.delete_attachments,
        steps,
        note or f"database and roles {unknown}; run without --dry-run to see them in the plan",
        f"s3://{tenant.s3.bucket}/{archive_to}" if archive_to else None,
    )


def check_attachments_own(
    registry: TenantRegistry, request: PurgeRequest, stored: StoredTenant
) -> None:
    """Before attachments are archived or deleted (exit 4 otherwise): the tenant holds the
    claim of its bucket and folder, and no other tenant's folder in that bucket, and no
    archive, lies inside it or holds it. Uniqueness compares folders as equal strings, so a
    document may name `shared` while another tenant's files are under `shared/acme/`."""
    tenant = stored.tenant
    bucket, folder = tenant.s3.bucket, tenant.s3.folder.rstrip("/") + "/"
    where = f"s3://{bucket}/{folder}"
    holder = claims_of_store(registry.store).owner_of("s3.folder", (bucket, tenant.s3.folder))
    if holder != request.tenant_id:
        raise Conflict(
            f"tenant {request.tenant_id!r} does not hold the claim on its attachments {where} ("
            + (f"tenant {holder!r} does" if holder else "nobody does")
            + "); nothing was done",
            "purge without --delete-attachments/--archive-attachments to keep them, or fix the "
            "document (`redmica tenant claims rebuild` adopts one older than claims)",
        )
    for other, theirs in overlapping(registry, bucket, folder, request.tenant_id):
        raise Conflict(
            f"the attachments {where} of tenant {request.tenant_id!r} overlap those of "
            f"tenant {other!r} (s3://{bucket}/{theirs}); nothing was done",
            "purge without --delete-attachments/--archive-attachments to keep them, and "
            "give each tenant a folder no other lies in",
        )
    # Archiving checks its own destination (archive_prefix_for); a deletion must not reach
    # the archives either.
    archive = request.archive_prefix if request.delete_attachments else None
    if archive and (archive.startswith(folder) or folder.startswith(archive)):
        raise Conflict(
            f"the attachments {where} of tenant {request.tenant_id!r} overlap the archive "
            f"prefix {archive!r} (other purges' archived attachments); nothing was done",
            "purge without --delete-attachments/--archive-attachments to keep them",
        )


def archive_prefix_for(
    registry: TenantRegistry, request: PurgeRequest, attachments: Attachments
) -> str:
    """Where this purge archives: `<archive_prefix><tenant>/<time>/`, refused if it lies in
    (or holds) any tenant's folder of that bucket, whose objects it would mix with or delete."""
    if not request.archive_prefix:
        raise UsageError(
            "--archive-attachments needs a non-empty attachments_archive_prefix",
            "set attachments_archive_prefix, e.g. archive/",
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    destination = f"{request.archive_prefix}{request.tenant_id}/{stamp}/"
    for other, folder in overlapping(registry, attachments.bucket, destination):
        raise UsageError(
            f"the archive s3://{attachments.bucket}/{destination} would lie in the folder "
            f"of tenant {other!r} ({folder}); nothing was done",
            "set attachments_archive_prefix to a prefix no tenant folder uses",
        )
    return destination


def overlapping(
    registry: TenantRegistry, bucket: str, prefix: str, but: str | None = None
) -> Iterator[tuple[str, str]]:
    """(tenant, folder) of each tenant but `but` whose folder in `bucket` lies in `prefix` or
    holds it. Both end with '/': `shared/` holds `shared/acme/`, not `shared-2/`."""
    for other in registry.store.load_all().tenants:
        if other.tenant_id == but or other.tenant.s3.bucket != bucket:
            continue
        folder = other.tenant.s3.folder.rstrip("/") + "/"
        if folder.startswith(prefix) or prefix.startswith(folder):
            yield other.tenant_id, folder


class RecordStore:
    def __init__(self, s3: S3Client, bucket: str, prefix: str, kms_key_id: str | None) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = f"{prefix}deprovisions/"
        self.kms_key_id = kms_key_id

    def save(self, record: PurgeRecord) -> None:
        body = json.dumps(
            {k: v for k, v in asdict(record).items() if k not in ("key", "etag")},
            indent=2,
            sort_keys=True,
        ).encode()
        params: dict[str, object] = {
            "Bucket": self.bucket,
            "Key": record.key,
            "Body": body,
            "ContentType": "application/json",
        }
        params.update({"IfMatch": record.etag} if record.etag else {"IfNoneMatch": "*"})
        if self.kms_key_id:
            params.update({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id})
        with translate_errors(f"writing s3://{self.bucket}/{record.key}", self.bucket):
            response = self.s3.put_object(**params)  # type: ignore[arg-type]
        record.etag = response["ETag"]

    def load(self, key: str) -> dict[str, object]:
        with translate_errors(f"reading s3://{self.bucket}/{key}", self.bucket):
            data: dict[str, object] = json.loads(
                self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            )
        return data


def purge(
    registry: TenantRegistry,
    runner: Runner,
    attachments_s3: S3Client,
    records: RecordStore,
    request: PurgeRequest,
    the_plan: PurgePlan,
    unroute: Callable[[str], str | None] | None = None,
) -> PurgeRecord:
    """Carry out a plan the operator confirmed; raise at the first failed step (recorded).

    `unroute(sub_domain)`: with cells, delete the tenant's routing record after the document
    (as `tenant remove` does); returns what it did."""
    stored = still_as_planned(registry, request, the_plan)
    tenant = stored.tenant
    record = new_record(records, request, the_plan)

    def step(name: str, action: object) -> StepResult:

        entry: dict[str, object] = {"step": name, "at": _now()}
        try:
            result = action() if callable(action) else {}
        except RedmicaError as exc:
            entry.update({"ok": False, "error": exc.message})
            record.steps.append(entry)
            record.state = "failed"
            records.save(record)
            raise
        entry.update({"ok": True, "result": result})
        record.steps.append(entry)
        records.save(record)
        return result

    if the_plan.database_exists:
        backup = step(
            "final backup",
            lambda: runner.run(
                Step(
                    "backup",
                    request.tenant_id,
                    {**guard_args(stored, None), "reason": "final before purge"},
                )
            ),
        )
        if not backup.get("key"):
            raise Conflict("the final backup did not report its object; nothing was dropped")
        drop_args = {}
    else:
        # Nothing to back up (a re-run after the drop); the drop step refuses if it appeared.
        step("final backup", lambda: {"skipped": "the database does not exist"})
        drop_args = {"expect": "absent"}
    attachments = Attachments(attachments_s3, tenant.s3.bucket, tenant.s3.folder)
    archived: dict[str, int] = {}
    if the_plan.archive_to is not None:
        archive_to = the_plan.archive_to
        step(
            "archive attachments (copy, verified)",
            lambda: archive_into(attachments, archive_to, tenant.s3.bucket, archived),
        )
    current = [stored]

    def suspend_first() -> StepResult:
        # From here on the database may be gone: the document must not be served as a live
        # application (render shows a suspended tenant's maintenance page), and a purge that
        # stops half way leaves it so. Conditional on the version read above.
        before = current[0].tenant.status
        current[0] = set_status(registry, current[0], "suspended", current[0].tenant.status_message)
        return {"status": f"{before} -> suspended"}

    step("suspend (maintenance page)", suspend_first)
    step(
        "drop database and roles",
        lambda: runner.run(
            Step(
                "drop",
                request.tenant_id,
                {**drop_args, **guard_args(current[0], the_plan.owner)},
            )
        ),
    )
    if the_plan.archive_to is not None:
        # Exactly what was copied and verified; anything written since stays (and is said).
        step(
            "delete archived attachments",
            lambda: {
                "deleted": attachments.delete(sorted(archived)),
                "left": len(attachments.keys()),
            },
        )
    elif request.delete_attachments:
        step("delete attachments", lambda: {"deleted": attachments.delete(attachments.keys())})
    else:
        step("keep attachments", None)

    step("remove document", lambda: remove_document(registry, request.tenant_id, current[0]))
    if unroute is not None:
        step("remove routing record", lambda: {"note": unroute(tenant.sub_domain)})
    record.state = "done"
    records.save(record)
    return record


def archive_into(
    attachments: Attachments, archive_to: str, bucket: str, archived: dict[str, int]
) -> StepResult:
    """Copy the attachments to `archive_to` (s3://bucket/prefix/), verified; `archived` gets
    what was copied (key: size), which is exactly what is deleted later."""
    archived.update(attachments.archive(archive_to.removeprefix(f"s3://{bucket}/")))
    return {"archive": archive_to, "objects": len(archived), "bytes": sum(archived.values())}


def still_as_planned(
    registry: TenantRegistry, request: PurgeRequest, the_plan: PurgePlan
) -> StoredTenant:
    """Before anything is done: the tenant still names the planned database and attachments,
    and provably owns them (exit 4 otherwise, nothing done)."""
    stored = registry.store.get(request.tenant_id)
    tenant = stored.tenant
    if tenant.db.name != the_plan.database:
        raise Conflict(
            f"tenant {request.tenant_id!r} now names database {tenant.db.name!r}, not "
            f"{the_plan.database!r} as in the plan; nothing was dropped",
            "look at the tenant again and run the purge again",
        )
    check_owns(registry.store, stored)
    here = f"s3://{tenant.s3.bucket}/{tenant.s3.folder.rstrip('/')}/"
    if here != the_plan.attachments:
        raise Conflict(
            f"tenant {request.tenant_id!r} now keeps its attachments in {here}, not "
            f"{the_plan.attachments} as in the plan; nothing was done",
            "look at the tenant again and run the purge again",
        )
    if request.archive_attachments or request.delete_attachments:
        check_attachments_own(registry, request, stored)
    return stored


def new_record(records: RecordStore, request: PurgeRequest, the_plan: PurgePlan) -> PurgeRecord:
    """The deprovision record, saved before the first step."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = PurgeRecord(
        request.tenant_id,
        _now(),
        {k: v for k, v in asdict(the_plan).items()},
        # The suffix: a re-run within the same second gets a record of its own.
        key=f"{records.prefix}{request.tenant_id}/{stamp}-{secrets.token_hex(3)}.json",
    )
    records.save(record)
    return record


def remove_document(registry: TenantRegistry, tenant_id: str, current: StoredTenant) -> StepResult:
    """The purge's last step on the bucket: the incarnation ends, then the document goes."""
    # The customer's data is gone: its incarnation ends first (a new customer given this
    # id starts a new one, so the backups kept from this one are never its `latest` and
    # its key is its own); a crash before the document goes leaves a suspended tenant
    # without one, which a re-run finishes.
    ended = registry.incarnations.end(tenant_id)
    # Conditional on the version whose database was dropped (If-Match); the registry
    # releases the tenant's uniqueness claims after the document is gone.
    try:
        marker = registry.remove(tenant_id, expected=current)
    except NotFound:
        return {"removed": False, "note": "already gone", "incarnation_ended": ended}
    return {
        "removed": True,
        "delete_marker": marker,
        "claims_released": True,
        "incarnation_ended": ended,
    }

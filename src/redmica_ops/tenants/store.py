"""TenantStore: tenant documents in the S3 config bucket, with conditional writes.

Creates use `If-None-Match: *` and replaces use `If-Match: <etag read>`, so two operators (or
two runbooks) can never silently overwrite each other. The bucket is expected to be versioned,
which gives `history` and `restore` for free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from redmica_ops.aws import delete_object_if, put_object_once, translate_errors
from redmica_ops.errors import (
    Conflict,
    NotFound,
    Problem,
    RedmicaError,
    UsageError,
    ValidationFailed,
)
from redmica_ops.tenants import rules
from redmica_ops.tenants.model import Entry, Tenant, parse_tenant_bytes
from redmica_ops.tenants.references import check_scope
from redmica_ops.tenants.safeyaml import MAX_DOCUMENT_BYTES, bounded

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SUFFIX = ".yaml"
CONTENT_TYPE = "application/yaml; charset=utf-8"
_T = TypeVar("_T")
_I = TypeVar("_I")


@dataclass(frozen=True)
class StoredTenant:
    tenant_id: str
    key: str
    tenant: Tenant
    etag: str
    version_id: str | None = None
    last_modified: datetime | None = None

    @property
    def entry(self) -> Entry:
        return Entry(self.tenant_id, self.key, self.tenant)

    def as_document(self) -> StoredDocument:
        """The same version as a StoredDocument (its raw bytes are not kept)."""
        return StoredDocument(
            self.tenant_id,
            self.key,
            b"",
            self.etag,
            self.tenant,
            [],
            self.version_id,
            self.last_modified,
        )


@dataclass(frozen=True)
class StoredDocument:
    """A tenant's current object as stored, valid or not (the repair path reads this)."""

    tenant_id: str
    key: str
    raw: bytes
    etag: str
    tenant: Tenant | None
    problems: list[Problem]
    version_id: str | None = None
    last_modified: datetime | None = None

    def as_stored(self, tenant: Tenant) -> StoredTenant:
        """This version as a StoredTenant, with its (valid) tenant."""
        return StoredTenant(
            self.tenant_id, self.key, tenant, self.etag, self.version_id, self.last_modified
        )


@dataclass(frozen=True)
class InvalidDocument:
    """A document in the bucket that does not validate (or is not named like a tenant)."""

    tenant_id: str | None
    key: str
    etag: str
    problems: list[Problem]


@dataclass
class Listing:
    tenants: list[StoredTenant] = field(default_factory=list)
    invalid: list[InvalidDocument] = field(default_factory=list)

    def entries(self) -> list[Entry]:
        return [stored.entry for stored in self.tenants]

    def by_id(self) -> dict[str, StoredTenant]:
        return {stored.tenant_id: stored for stored in self.tenants}

    def etag_of(self, tenant_id: str) -> str | None:
        """The current document's ETag, valid or not; None when there is none."""
        items: list[StoredTenant | InvalidDocument] = [*self.tenants, *self.invalid]
        return next((item.etag for item in items if item.tenant_id == tenant_id), None)


@dataclass(frozen=True)
class WriteResult:
    tenant_id: str
    key: str
    etag: str
    version_id: str | None


@dataclass(frozen=True)
class Version:
    version_id: str
    last_modified: datetime
    is_latest: bool
    is_delete_marker: bool
    size: int | None
    etag: str | None


class TenantStore:
    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        prefix: str = "tenants/",
        kms_key_id: str | None = None,
        max_workers: int = 16,
        secrets_prefix: str | None = None,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.kms_key_id = kms_key_id
        self.max_workers = max_workers
        # tenant_secrets_prefix: a db.password_secret outside it is a problem of the document
        # (the app task cannot read it). None: not checked (a store without settings).
        self.secrets_prefix = secrets_prefix

    def scope_problems(self, tenant: Tenant, source: str) -> list[Problem]:
        """What in `tenant` this deployment's roles cannot read (db.password_secret's prefix)."""
        reference = tenant.db.password_secret
        if reference is None or self.secrets_prefix is None:
            return []
        problem = check_scope(reference, self.secrets_prefix)
        return [Problem(source, "db.password_secret", problem)] if problem else []

    def check_writable(self, tenant: Tenant, source: str) -> None:
        """Refuse (exit 2, nothing written) a document the store would read back as invalid."""
        if problems := self.scope_problems(tenant, source):
            raise ValidationFailed(
                problems,
                hint="name a secret under tenant_secrets_prefix (REDMICA_TENANT_SECRETS_PREFIX "
                "or `tenant_secrets_prefix` in redmica.toml), which the task roles may read",
            )

    def parse(self, tenant_id: str, raw: bytes, source: str) -> tuple[Tenant | None, list[Problem]]:
        """parse_tenant_bytes, plus the rules that depend on this deployment's settings."""
        tenant, problems = parse_tenant_bytes(tenant_id, raw, source)
        if tenant is not None and (scoped := self.scope_problems(tenant, source)):
            return None, scoped
        return tenant, problems

    # -- naming -------------------------------------------------------------------------------
    def key_for(self, tenant_id: str) -> str:
        # Checked before any key is built: `../runs/x` must never reach S3 (exit 2, not 3).
        check_tenant_id(tenant_id)
        return f"{self.prefix}{tenant_id}{SUFFIX}"

    def tenant_id_for(self, key: str) -> str | None:
        name = key[len(self.prefix) :]
        if not name.endswith(SUFFIX):
            return None
        tenant_id = name[: -len(SUFFIX)]
        return tenant_id if rules.DNS_LABEL.fullmatch(tenant_id) else None

    # -- reading ------------------------------------------------------------------------------
    def list_keys(self) -> list[tuple[str, str]]:
        """(key, etag) of every document directly under the prefix, across all pages."""
        keys: list[tuple[str, str]] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        with translate_errors(f"listing s3://{self.bucket}/{self.prefix}", self.bucket):
            pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/")
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key == self.prefix:
                        continue  # a "folder" marker some consoles create
                    keys.append((key, obj.get("ETag", "")))
        return keys

    def _read(
        self, key: str, version_id: str | None = None, if_match: str | None = None
    ) -> tuple[bytes, dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        if if_match:
            kwargs["IfMatch"] = if_match  # a change since `if_match` was read is a Conflict
        action = f"reading s3://{self.bucket}/{key}" + (
            f" version {version_id}" if version_id else ""
        )
        with translate_errors(action, self.bucket):
            response = self.s3.get_object(**kwargs)
            body = response["Body"]
            # Read one byte past the limit so an oversized document is detected, not truncated.
            raw = bounded(body.read(MAX_DOCUMENT_BYTES + 1), response.get("ContentLength"))
            body.close()
        return raw, dict(response)

    def read_raw(self, key: str, if_match: str | None = None) -> bytes:
        return self._read(key, if_match=if_match)[0]

    def get_document(self, tenant_id: str, version_id: str | None = None) -> StoredDocument:
        """The tenant's object, parsed when it parses; NotFound when there is none."""
        key = self.key_for(tenant_id)
        try:
            raw, meta = self._read(key, version_id)
        except RedmicaError as error:
            # S3 answers a delete marker's version with 405 (moto: 404): say what it is.
            if version_id and (marker := self._delete_marker(tenant_id, version_id)):
                raise UsageError(
                    f"version {version_id} of tenant {tenant_id!r} is a delete marker (the "
                    f"tenant was removed at {marker}): it holds no document to restore",
                    f"restore the version before it: see `redmica tenant history {tenant_id}`",
                ) from None
            if not isinstance(error, NotFound):
                raise
            what = f"version {version_id} of tenant" if version_id else "tenant"
            raise NotFound(
                f"{what} {tenant_id!r} not found in s3://{self.bucket}/{self.prefix}",
                "list tenants with `redmica tenant list`"
                + (f"; versions with `redmica tenant history {tenant_id}`" if version_id else ""),
            ) from None
        tenant, problems = self.parse(tenant_id, raw, f"s3://{self.bucket}/{key}")
        return StoredDocument(
            tenant_id,
            key,
            raw,
            meta["ETag"],
            tenant,
            problems,
            meta.get("VersionId"),
            meta.get("LastModified"),
        )

    def _delete_marker(self, tenant_id: str, version_id: str) -> str | None:
        """When `version_id` is one of the tenant's delete markers: when it was made."""
        try:
            versions = self.history(tenant_id)
        except RedmicaError:
            return None  # cannot tell: the caller says "not found"
        for version in versions:
            if version.version_id == version_id and version.is_delete_marker:
                return version.last_modified.isoformat()
        return None

    def get(self, tenant_id: str, version_id: str | None = None) -> StoredTenant:
        document = self.get_document(tenant_id, version_id)
        if document.tenant is None:
            raise ValidationFailed(
                document.problems,
                hint=f"see it with `redmica tenant show {tenant_id}`; replace it with "
                f"`redmica tenant update {tenant_id} -f FILE` or `redmica tenant edit {tenant_id}`",
            )
        return document.as_stored(document.tenant)

    def load_all(self) -> Listing:
        """Every tenant, fetched in parallel (a bounded pool), invalid documents set aside."""
        listing = Listing()
        candidates: list[tuple[str, str]] = []
        etags: dict[str, str] = {}
        for key, etag in self.list_keys():
            etags[key] = etag
            tenant_id = self.tenant_id_for(key)
            if tenant_id is None:
                listing.invalid.append(
                    InvalidDocument(
                        None,
                        key,
                        etag,
                        [
                            Problem(
                                f"s3://{self.bucket}/{key}",
                                "",
                                "is not named like a tenant document "
                                f"({self.prefix}<tenant-id>{SUFFIX}): rename it with "
                                "`redmica tenant rename-key KEY NEW_ID`",
                            )
                        ],
                    )
                )
            else:
                candidates.append((tenant_id, key))

        def fetch(item: tuple[str, str]) -> StoredTenant | InvalidDocument | None:
            tenant_id, key = item
            try:
                raw, meta = self._read(key)
            except NotFound:
                return None  # removed between the listing and the read
            except Exception as error:
                # AccessDenied on one object (another KMS key), a read that ran out of retries,
                # a dropped stream: that document is unreadable, the other 799 are not.
                reason = error if isinstance(error, RedmicaError) else type(error).__name__
                problem = Problem(f"s3://{self.bucket}/{key}", "", f"cannot be read: {reason}")
                return InvalidDocument(tenant_id, key, etags.get(key, ""), [problem])
            tenant, problems = self.parse(tenant_id, raw, f"s3://{self.bucket}/{key}")
            if tenant is None:
                return InvalidDocument(tenant_id, key, meta["ETag"], problems)
            return StoredTenant(
                tenant_id,
                key,
                tenant,
                meta["ETag"],
                meta.get("VersionId"),
                meta.get("LastModified"),
            )

        for result in self.parallel(fetch, candidates):
            if isinstance(result, StoredTenant):
                listing.tenants.append(result)
            elif isinstance(result, InvalidDocument):
                listing.invalid.append(result)
        listing.tenants.sort(key=lambda s: s.tenant_id)
        listing.invalid.sort(key=lambda d: d.key)
        return listing

    def parallel(
        self,
        func: Callable[[_I], _T],
        items: Iterable[_I],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[_T]:
        """`func` over `items` on a bounded pool, results in order; `progress(done, total)`
        after each result (in order, so the count only grows)."""
        items = list(items)
        results: list[_T] = []
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_workers, len(items)))) as pool:
            for result in pool.map(func, items) if len(items) > 1 else map(func, items):
                results.append(result)
                if progress is not None:
                    progress(len(results), len(items))
        return results

    def exists(self, tenant_id: str) -> str | None:
        """The current ETag of the tenant's document, or None when there is none."""
        key = self.key_for(tenant_id)
        try:
            with translate_errors(f"checking s3://{self.bucket}/{key}", self.bucket):
                response = self.s3.head_object(Bucket=self.bucket, Key=key)
        except NotFound:
            return None
        return response["ETag"]

    def history(self, tenant_id: str) -> list[Version]:
        key = self.key_for(tenant_id)
        versions: list[Version] = []
        paginator = self.s3.get_paginator("list_object_versions")
        with translate_errors(f"listing versions of s3://{self.bucket}/{key}", self.bucket):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
                for item in page.get("Versions", []):
                    if item["Key"] == key:
                        versions.append(
                            Version(
                                item["VersionId"],
                                item["LastModified"],
                                item["IsLatest"],
                                False,
                                item.get("Size"),
                                item.get("ETag"),
                            )
                        )
                for marker in page.get("DeleteMarkers", []):
                    if marker["Key"] == key:
                        versions.append(
                            Version(
                                marker["VersionId"],
                                marker["LastModified"],
                                marker["IsLatest"],
                                True,
                                None,
                                None,
                            )
                        )
        # S3 lists each kind newest first; botocore splits versions from delete markers, and
        # timestamps can tie, so the latest goes first and ties keep the listing's order.
        versions.sort(key=lambda v: (v.is_latest, v.last_modified), reverse=True)
        return versions

    def versioning_enabled(self) -> bool:
        with translate_errors(f"reading versioning of s3://{self.bucket}", self.bucket):
            response = self.s3.get_bucket_versioning(Bucket=self.bucket)
        return response.get("Status") == "Enabled"

    # -- writing ------------------------------------------------------------------------------
    def _put(
        self, tenant_id: str, tenant: Tenant, if_match: str | None, checked: bool = False
    ) -> WriteResult:
        key = self.key_for(tenant_id)
        if not checked:  # the registry checks before it takes claims, and says so
            self.check_writable(tenant, f"s3://{self.bucket}/{key}")
        result = put_object_once(
            self.s3,
            self.bucket,
            key,
            tenant.to_yaml(redact=False).encode("utf-8"),
            if_match=if_match,
            content_type=CONTENT_TYPE,
            kms_key_id=self.kms_key_id,
            action=f"writing s3://{self.bucket}/{key}",
        )
        return WriteResult(tenant_id, key, result.etag, result.version_id)

    def put_raw(self, tenant_id: str, raw: bytes) -> WriteResult:
        """Create a document from exact bytes (import of an export); never overwrites."""
        key = self.key_for(tenant_id)
        try:
            result = put_object_once(
                self.s3,
                self.bucket,
                key,
                raw,
                content_type=CONTENT_TYPE,
                kms_key_id=self.kms_key_id,
                action=f"writing s3://{self.bucket}/{key}",
            )
        except Conflict:
            raise Conflict(
                f"tenant {tenant_id!r} already exists in s3://{self.bucket}/{self.prefix}",
                "import loads into an empty bucket; use `redmica tenant sync` to merge",
            ) from None
        return WriteResult(tenant_id, key, result.etag, result.version_id)

    def create(self, tenant_id: str, tenant: Tenant, checked: bool = False) -> WriteResult:
        try:
            return self._put(tenant_id, tenant, None, checked)
        except Conflict:
            raise Conflict(
                f"tenant {tenant_id!r} already exists in s3://{self.bucket}/{self.prefix}",
                f"change it with `redmica tenant update {tenant_id} -f FILE` or pick another id",
            ) from None

    def replace(
        self, tenant_id: str, tenant: Tenant, etag: str, checked: bool = False
    ) -> WriteResult:
        try:
            return self._put(tenant_id, tenant, etag, checked)
        except (Conflict, NotFound):
            raise Conflict(
                f"tenant {tenant_id!r} was changed or removed by someone else since it was read",
                f"nothing was overwritten; see `redmica tenant show {tenant_id}` and try again",
            ) from None

    def put_restored(self, tenant_id: str, tenant: Tenant, current_etag: str | None) -> WriteResult:
        try:
            return self._put(tenant_id, tenant, current_etag)
        except (Conflict, NotFound):
            raise Conflict(
                f"tenant {tenant_id!r} changed while it was being restored",
                "nothing was overwritten; try again",
            ) from None

    def delete(self, tenant_id: str, etag: str) -> str | None:
        """Delete the document if it is still the version read (If-Match); on a versioned
        bucket it stays restorable. A change since it was read is a Conflict: nothing removed."""
        key = self.key_for(tenant_id)
        try:
            return delete_object_if(
                self.s3, self.bucket, key, etag, action=f"removing s3://{self.bucket}/{key}"
            )
        except Conflict:
            raise Conflict(
                f"tenant {tenant_id!r} was changed since it was read; nothing was removed",
                f"see `redmica tenant show {tenant_id}` and try again",
            ) from None


def check_tenant_id(tenant_id: str) -> None:
    """A tenant id is a DNS label; anything else is a usage error before any S3 call."""
    if problem := rules.check_dns_label(tenant_id):
        raise UsageError(
            f"tenant id {problem}", "tenant ids are DNS labels, e.g. acme or acme-corp"
        )

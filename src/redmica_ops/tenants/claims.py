"""Uniqueness claims: one small object per value that must be unique across tenants.

S3 has no transactions, so checking "is this sub_domain free?" and then writing the document
races with another operator doing the same. A claim closes the race: before a tenant's document
is written, an object `<prefix>_claims/<field>/<value>` is created with `If-None-Match: *`
(body: the owner's tenant id). S3 lets exactly one such create succeed, so of ten operators
adding ten tenants with one sub_domain at the same instant, one gets it and nine get exit 4.
Claims are released (a conditional delete) when a change or removal stops using the value.

A crash between the steps leaves at worst an orphan claim (a value held by a tenant that does
not use it): `redmica doctor` reports it and `redmica tenant claims repair` removes it. Documents
written before claims existed are adopted with `redmica tenant claims rebuild`.

Claims live in the config bucket (under the tenant prefix, so the same bucket policy and IAM
scoping cover them) rather than in a DynamoDB table: the platform stays one bucket.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from redmica_ops.aws import delete_object_if, put_object_once, translate_errors
from redmica_ops.errors import Conflict, NotFound, Problem
from redmica_ops.tenants.model import UNIQUE_FIELDS, Tenant, unique_values

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CLAIMS_DIR = "_claims/"
# The field of a unique value -> the folder of its claims.
FOLDERS = {
    "property.sub_domain": "sub_domain",
    "db.name": "db_name",
    "s3.folder": "s3",
    "db.user": "db_role",
    "db.password_secret": "db_password_secret",
}
FIELDS = {folder: field for field, folder in FOLDERS.items()}
CONTENT_TYPE = "text/plain; charset=utf-8"
_TAKE_ATTEMPTS = 3


@dataclass(frozen=True)
class Claim:
    """One unique value: its field, its text and the key of its claim object."""

    field: str
    value: str
    shown: str
    key: str


@dataclass(frozen=True)
class HeldClaim:
    """A claim object as found in the bucket."""

    claim: Claim
    owner: str
    etag: str


def value_text(field: str, value: object) -> str:
    if field == "s3.folder" and isinstance(value, tuple):
        return "/".join(str(part) for part in value)
    return str(value)


class ClaimStore:
    def __init__(
        self, s3: S3Client, bucket: str, prefix: str = "tenants/", kms_key_id: str | None = None
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.root = f"{prefix}{CLAIMS_DIR}"
        self.kms_key_id = kms_key_id

    # -- naming -------------------------------------------------------------------------------
    def claim(self, field: str, value: object, shown: str = "") -> Claim:
        text = value_text(field, value)
        key = f"{self.root}{FOLDERS[field]}/{quote(text, safe='')}"
        return Claim(field, text, shown or repr(text), key)

    def claims_of(self, tenant: Tenant) -> list[Claim]:
        return [self.claim(field, value, shown) for field, value, shown in unique_values(tenant)]

    def parse_key(self, key: str) -> Claim | None:
        folder, sep, quoted = key[len(self.root) :].partition("/")
        if not key.startswith(self.root) or not sep or folder not in FIELDS or "/" in quoted:
            return None
        return self.claim(FIELDS[folder], unquote(quoted))

    # -- reading ------------------------------------------------------------------------------
    def holder(self, claim: Claim) -> HeldClaim | None:
        """Who holds `claim` now (None when nobody does)."""
        try:
            with translate_errors(f"reading s3://{self.bucket}/{claim.key}", self.bucket):
                response = self.s3.get_object(Bucket=self.bucket, Key=claim.key)
                body = response["Body"].read(256)
        except NotFound:
            return None
        return HeldClaim(claim, body.decode("utf-8", errors="replace").strip(), response["ETag"])

    def owner_of(self, field: str, value: object) -> str | None:
        held = self.holder(self.claim(field, value))
        return held.owner if held else None

    def list_keys(self) -> list[tuple[str, str]]:
        """(key, etag) of every claim object."""
        found: list[tuple[str, str]] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        with translate_errors(f"listing s3://{self.bucket}/{self.root}", self.bucket):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.root):
                found.extend((obj["Key"], obj.get("ETag", "")) for obj in page.get("Contents", []))
        return found

    # -- taking and releasing -----------------------------------------------------------------
    def take(self, tenant_id: str, claims: Iterable[Claim], source: str = "") -> list[Claim]:
        """Take every claim for `tenant_id`, or none: on a clash those taken here are released.

        Returns the claims this call created (a claim the tenant already held is not among
        them, so a caller undoing its work never releases what it held before).
        """
        created: list[Claim] = []
        try:
            for claim in claims:
                if self._take_one(tenant_id, claim, source):
                    created.append(claim)
        except Conflict:
            # Only when another tenant holds one: what this call created is not in use yet.
            self.release(tenant_id, created)
            raise
        return created

    def _take_one(self, tenant_id: str, claim: Claim, source: str) -> bool:
        body = tenant_id.encode("utf-8")
        for _ in range(_TAKE_ATTEMPTS):
            try:
                result = put_object_once(
                    self.s3,
                    self.bucket,
                    claim.key,
                    body,
                    content_type=CONTENT_TYPE,
                    kms_key_id=self.kms_key_id,
                    action=f"claiming {claim.field} {claim.shown}",
                )
                # replayed: it already held our id (ours from before, or our lost response).
                return not result.replayed
            except Conflict:
                held = self.holder(claim)
                if held is None:
                    continue  # released in between (or a 409 from a concurrent create): again
                if held.owner == tenant_id:
                    return False
                raise Conflict(
                    f"{claim.field} {claim.shown} is already claimed by tenant {held.owner!r}; "
                    "nothing was written",
                    f"{UNIQUE_FIELDS} must be unique across tenants",
                    [Problem(source or tenant_id, claim.field, f"{claim.shown} is taken")],
                ) from None
        raise Conflict(
            f"{claim.field} {claim.shown} kept changing while it was being claimed",
            "try again",
        )

    def release(self, tenant_id: str, claims: Sequence[Claim]) -> list[Claim]:
        """Release the claims `tenant_id` holds among `claims` (conditional deletes)."""
        released: list[Claim] = []
        for claim in claims:
            held = self.holder(claim)
            if held is None or held.owner != tenant_id:
                continue  # not ours (any more): never remove someone else's claim
            try:
                delete_object_if(
                    self.s3,
                    self.bucket,
                    claim.key,
                    held.etag,
                    action=f"releasing the claim on {claim.field} {claim.shown}",
                )
            except Conflict:
                continue  # it changed hands in between: it is not ours to remove
            released.append(claim)
        return released

    def remove_orphan(self, held: HeldClaim) -> None:
        delete_object_if(
            self.s3,
            self.bucket,
            held.claim.key,
            held.etag,
            action=f"removing the orphan claim on {held.claim.field} {held.claim.shown}",
        )

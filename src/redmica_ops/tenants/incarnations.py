"""A tenant id's incarnation: which customer's life of that id a backup or a key belongs to.

An id can be given to a new customer after a purge. Backups outlive the purge and the
secret_key_base was derived from the id alone, so the new customer would get the old one's
backups as `latest` and the same key. An incarnation is a random token made when the id is
added (`tenant add`, `restore-db --into`) and ended by the purge; each backup records it, a
restore accepts only the current one's backups, and the key is derived from it.

Where it lives, and why: not in the document. A document is untrusted input (whoever may edit
one tenant's document could write a previous customer's incarnation into it and make an
operator restore that customer's backup there). It is the *name* of an empty object
`<prefix>_incarnations/<tenant-id>/<token>`, created with If-None-Match by the registry and
deleted by the purge, next to the claims and under the same policies. A single ListObjectsV2 of
that folder (one page per 1,000 tenants) tells the container every tenant's incarnation at
serve time: no read per tenant. A tenant without one (added before incarnations existed) keeps
the key it always had and the backups it always had (their manifests name none). A plain
`tenant remove` keeps the incarnation, as it keeps the database: re-adding the id continues
that life; only the purge, which ends the data, ends it.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from redmica_ops.aws import delete_object_if, put_object_once, translate_errors
from redmica_ops.tenants import rules

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FOLDER = "_incarnations/"
TOKEN = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{16}")


def new_token(now: datetime | None = None) -> str:
    # Time first: when a crash left two for one id, the older (the first made) counts.
    return f"{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(8)}"


class Incarnations:
    def __init__(
        self, s3: S3Client, bucket: str, prefix: str = "tenants/", kms_key_id: str | None = None
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.root = f"{prefix}{FOLDER}"
        self.kms_key_id = kms_key_id

    def _list(self, prefix: str) -> dict[str, str]:
        """tenant id -> its incarnation (the oldest valid token) under `prefix`."""
        found: dict[str, str] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        with translate_errors(f"listing s3://{self.bucket}/{prefix}", self.bucket):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    tenant_id, _, token = obj["Key"][len(self.root) :].partition("/")
                    if not (rules.DNS_LABEL.fullmatch(tenant_id) and TOKEN.fullmatch(token)):
                        continue
                    if tenant_id not in found or token < found[tenant_id]:
                        found[tenant_id] = token
        return found

    def all(self) -> dict[str, str]:
        """Every tenant's incarnation, in one listing (what serve and render use)."""
        return self._list(self.root)

    def of(self, tenant_id: str) -> str | None:
        return self._list(f"{self.root}{tenant_id}/").get(tenant_id)

    def begin(self, tenant_id: str) -> str:
        """The id's incarnation, made now unless it has one (a re-add after a plain remove)."""
        current = self.of(tenant_id)
        if current is not None:
            return current
        token = new_token()
        put_object_once(
            self.s3,
            self.bucket,
            f"{self.root}{tenant_id}/{token}",
            b"",
            content_type="text/plain",
            kms_key_id=self.kms_key_id,
            action=f"recording the incarnation of tenant {tenant_id}",
        )
        return self.of(tenant_id) or token

    def end(self, tenant_id: str) -> list[str]:
        """Remove every incarnation object of the id (the purge): the next add starts anew."""
        prefix = f"{self.root}{tenant_id}/"
        found: list[tuple[str, str]] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        with translate_errors(f"listing s3://{self.bucket}/{prefix}", self.bucket):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                found.extend((obj["Key"], obj.get("ETag", "")) for obj in page.get("Contents", []))
        for key, etag in found:  # conditional, as every delete in the config bucket
            delete_object_if(
                self.s3, self.bucket, key, etag, action=f"ending the incarnation of {tenant_id}"
            )
        return [key[len(prefix) :] for key, _ in found]

"""One tenant's database as a `pg_dump -Fc` in S3: written, listed, checked and restored.

A backup is two objects under `<backups_prefix><tenant>/`: `<id>.dump` (SSE-KMS, S3-verified
SHA-256) and `<id>.json`, its manifest (size, checksum, database, rows per table, the tenant's
incarnation). The row counts are read from the dump itself (its COPY sections), so they describe
exactly what was dumped; a restore is accepted only when the restored database has the same
counts, counted as the restored tenant's own login.

A manifest is not trusted for where the dump is: the object's key is derived from the tenant
and the (validated) backup id, and the manifest's tenant, id and key, and the dump object's own
tenant and incarnation metadata, must all agree with that; a disagreement refuses the restore
(exit 4, nothing restored). A restore takes only backups of the tenant's current incarnation
(tenants/incarnations.py): after a purge, a new customer given the same id gets none of the
old customer's.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from redmica_ops.aws import translate_errors
from redmica_ops.errors import Conflict, NotFound, OperationFailed
from redmica_ops.lifecycle import database
from redmica_ops.lifecycle.database import row_counts
from redmica_ops.lifecycle.site import Site
from redmica_ops.lifecycle.sql import child_env, run_tool
from redmica_ops.tenants.model import Tenant

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BACKUP_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
_COPY = re.compile(r"^COPY (\S+) \(.*\) FROM stdin;$")


@dataclass(frozen=True)
class Backup:
    tenant: str
    backup_id: str
    key: str
    size: int
    sha256: str
    database: str
    created_at: str
    reason: str
    tables: dict[str, int] = field(default_factory=dict)
    incarnation: str | None = None  # the tenant's incarnation when it was taken

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def summary(self) -> dict[str, str | int]:
        return {
            "tenant": self.tenant,
            "backup": self.backup_id,
            "key": self.key,
            "size": self.size,
            "sha256": self.sha256,
            "database": self.database,
            "created_at": self.created_at,
            "reason": self.reason,
            "tables": len(self.tables),
            "rows": self.rows,
            "incarnation": self.incarnation or "",
        }


def new_backup_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def backup_key(backups_prefix: str, tenant_id: str, backup_id: str) -> str:
    """Where a backup's dump is: derived, never read from a manifest."""
    return f"{backups_prefix}{tenant_id}/{backup_id}.dump"


def _encryption(site: Site) -> dict[str, str]:
    params = {"ServerSideEncryption": "aws:kms"}
    if site.kms_key_id:
        params["SSEKMSKeyId"] = site.kms_key_id
    return params


def count_dump_rows(site: Site, path: Path) -> dict[str, int]:
    """Rows per table, read from the dump's data sections (one line per row in COPY text)."""
    process = subprocess.Popen(
        [site.tool("pg_restore"), "--data-only", "-f", "-", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    assert process.stdout is not None
    counts: dict[str, int] = {}
    table: str | None = None
    for raw in process.stdout:
        line = raw.rstrip(b"\n")
        if table is None:
            match = _COPY.match(line.decode("utf-8", errors="replace"))
            if match:
                table = match.group(1)
                counts[table] = 0
        elif line == b"\\.":
            table = None
        else:
            counts[table] += 1
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise OperationFailed(f"pg_restore could not read the dump: {stderr.decode()[:300]}")
    return counts


def dump(
    site: Site, tenant_id: str, tenant: Tenant, reason: str, incarnation: str | None = None
) -> Backup:
    """pg_dump -Fc as the tenant's own role, counted, checksummed, stored (never overwritten)."""
    backup_id = new_backup_id()
    key = backup_key(site.backups_prefix, tenant_id, backup_id)
    with tempfile.TemporaryDirectory(prefix="redmica-backup-") as tmp:
        path = Path(tmp) / "tenant.dump"
        run_tool(
            [site.tool("pg_dump"), "-Fc", "--no-owner", "--no-privileges", "-f", str(path)],
            site.login(tenant),
            tenant.db.name,
        )
        tables = count_dump_rows(site, path)
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        size = path.stat().st_size
        backup = Backup(
            tenant_id,
            backup_id,
            key,
            size,
            digest.hexdigest(),
            tenant.db.name,
            datetime.now(UTC).isoformat(),
            reason,
            tables,
            incarnation,
        )
        with (
            translate_errors(f"writing s3://{site.bucket}/{key}", site.bucket),
            path.open("rb") as body,
        ):
            site.s3.put_object(
                Bucket=site.bucket,
                Key=key,
                Body=body,
                ContentLength=size,
                ContentType="application/octet-stream",
                ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
                Metadata={
                    "sha256": backup.sha256,
                    "tenant": tenant_id,
                    **({"incarnation": incarnation} if incarnation else {}),
                },
                IfNoneMatch="*",
                **_encryption(site),  # type: ignore[arg-type]
            )
    manifest_key = key.removesuffix(".dump") + ".json"
    with translate_errors(f"writing s3://{site.bucket}/{manifest_key}", site.bucket):
        site.s3.put_object(
            Bucket=site.bucket,
            Key=manifest_key,
            Body=json.dumps(asdict(backup), indent=2, sort_keys=True).encode(),
            ContentType="application/json",
            IfNoneMatch="*",
            **_encryption(site),  # type: ignore[arg-type]
        )
    return backup


def backup_ids(s3: S3Client, bucket: str, backups_prefix: str, tenant_id: str) -> list[str]:
    """The ids of the tenant's manifests (named like a backup id), newest first."""
    prefix = f"{backups_prefix}{tenant_id}/"
    paginator = s3.get_paginator("list_objects_v2")
    with translate_errors(f"listing s3://{bucket}/{prefix}", bucket):
        names = [
            obj["Key"][len(prefix) :].removesuffix(".json")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
            if obj["Key"].endswith(".json")
        ]
    return sorted((n for n in names if BACKUP_ID.fullmatch(n)), reverse=True)


def read_manifest(
    s3: S3Client, bucket: str, backups_prefix: str, tenant_id: str, backup_id: str
) -> Backup:
    """The manifest of `backup_id`, accepted only if it says what its place says: this tenant,
    this id, the derived key (Conflict otherwise)."""
    key = backup_key(backups_prefix, tenant_id, backup_id).removesuffix(".dump") + ".json"
    with translate_errors(f"reading s3://{bucket}/{key}", bucket):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    known = {f for f in Backup.__dataclass_fields__}
    try:
        data = json.loads(body)
        backup = Backup(**{k: v for k, v in data.items() if k in known})
    except (ValueError, TypeError, AttributeError):
        backup = None
    expected = backup_key(backups_prefix, tenant_id, backup_id)
    if (
        backup is None
        or backup.tenant != tenant_id
        or backup.backup_id != backup_id
        or backup.key != expected
        or not isinstance(backup.tables, dict)
    ):
        raise Conflict(
            f"the manifest s3://{bucket}/{key} does not describe backup {backup_id} of tenant "
            f"{tenant_id!r} (its tenant, id or key differ from {expected}); nothing was "
            "restored",
            "someone wrote it by hand: look at it, and remove it if it is not a real backup",
        )
    return backup


def list_backups(s3: S3Client, bucket: str, backups_prefix: str, tenant_id: str) -> list[Backup]:
    """The tenant's backups (every incarnation's), newest first; manifests that do not check
    out are left out (a restore that names one refuses it)."""
    found: list[Backup] = []
    for backup_id in backup_ids(s3, bucket, backups_prefix, tenant_id):
        with contextlib.suppress(Conflict, NotFound):
            found.append(read_manifest(s3, bucket, backups_prefix, tenant_id, backup_id))
    return found


def find_backup(
    s3: S3Client,
    bucket: str,
    backups_prefix: str,
    tenant_id: str,
    backup_id: str,
    incarnation: str | None = None,
) -> Backup:
    """A backup of the tenant's current `incarnation` (None: a tenant from before them), by id
    or the newest ('latest'); a manifest that does not check out refuses (exit 4)."""
    if backup_id != "latest" and not BACKUP_ID.fullmatch(backup_id):
        # Not found (exit 3) like any other id that names no backup; the message says the form.
        raise NotFound(
            f"no backup {backup_id!r} of tenant {tenant_id!r}: a backup id looks like "
            "YYYYMMDDTHHMMSSZ-xxxxxx (or say 'latest')",
            f"list them with `redmica tenant backups {tenant_id}`",
        )
    ids = backup_ids(s3, bucket, backups_prefix, tenant_id)
    candidates = ids if backup_id == "latest" else [i for i in ids if i == backup_id]
    other_life = 0
    for candidate in candidates:
        backup = read_manifest(s3, bucket, backups_prefix, tenant_id, candidate)
        if backup.incarnation == incarnation:
            return backup
        other_life += 1
    raise NotFound(
        f"no backup {backup_id!r} of tenant {tenant_id!r}"
        + (
            f" ({other_life} backup(s) of this id belong to an earlier customer of it, before a "
            "purge; they are never restored into this one)"
            if other_life
            else ""
        ),
        f"list them with `redmica tenant backups {tenant_id}`",
    )


def check_object(site: Site, backup: Backup) -> None:
    """The dump object's own metadata names the same tenant and incarnation as its manifest."""
    with translate_errors(f"reading s3://{site.bucket}/{backup.key}", site.bucket):
        head = site.s3.head_object(Bucket=site.bucket, Key=backup.key)
    meta = head.get("Metadata", {})
    if meta.get("tenant") != backup.tenant or meta.get("incarnation") != backup.incarnation:
        raise Conflict(
            f"the dump s3://{site.bucket}/{backup.key} was not written for tenant "
            f"{backup.tenant!r} (its metadata names {meta.get('tenant')!r}); nothing was restored",
            "someone wrote it by hand: look at it",
        )


def restore(site: Site, backup: Backup, target: Tenant) -> dict[str, int]:
    """Restore into the target's (fresh, empty) database as its own role; verify rows, counted
    by that role too (whatever the dump planted runs with the tenant's rights only)."""
    check_object(site, backup)
    login = site.login(target)  # its password read once, where the step runs
    sql = site.psql(login)
    existing = sql.query(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname = 'public';\n",
        database=target.db.name,
    )
    if existing and int(existing[0][0]) > 0:
        raise Conflict(
            f"database {target.db.name!r} already has tables; a restore only goes into a "
            "fresh database",
            "restore into a new id (--into NEW_ID)",
        )
    with tempfile.TemporaryDirectory(prefix="redmica-restore-") as tmp:
        path = Path(tmp) / "tenant.dump"
        with translate_errors(f"reading s3://{site.bucket}/{backup.key}", site.bucket):
            response = site.s3.get_object(Bucket=site.bucket, Key=backup.key)
            digest = hashlib.sha256()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                for chunk in response["Body"].iter_chunks(1 << 20):
                    digest.update(chunk)
                    handle.write(chunk)
        if digest.hexdigest() != backup.sha256:
            raise OperationFailed(
                f"backup {backup.backup_id} does not match its checksum; nothing was restored"
            )
        run_tool(
            [
                site.tool("pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
                "-d",
                target.db.name,
                str(path),
            ],
            login,
            target.db.name,
        )
    counts = row_counts(sql, target.db.name, sorted(backup.tables))
    wrong = {
        t: (backup.tables[t], counts.get(t))
        for t in backup.tables
        if counts.get(t) != backup.tables[t]
    }
    if wrong:
        sample = ", ".join(f"{t}: {a} != {b}" for t, (a, b) in list(wrong.items())[:5])
        raise OperationFailed(f"restored row counts differ from the backup: {sample}")
    return counts


def replace_live(
    site: Site,
    backup: Backup,
    tenant: Tenant,
    stamp: str,
    tenant_id: str,
    expected_owner: str | None = None,
) -> dict[str, str | int]:
    """Restore `backup` over the tenant's live database without ever dropping it.

    Into a fresh database `<name>_restore_<stamp>` (owned by the live one's owner), verified by
    the manifest's row counts; only then the swap (database.swap): the live database is parked
    as `<name>_replaced_<stamp>` and the restored one takes its name. Any failure before the
    swap drops the fresh database (it never served anything) and leaves the live one as it was.
    """
    live = tenant.db.name
    sql = site.admin_sql(tenant)
    state = database.inspect(sql, live, sorted(database.login_pair(tenant.db.user)))
    if state.owner is None:
        raise NotFound(
            f"database {live!r} does not exist; there is nothing to replace",
            "restore into a new tenant with --into NEW_ID",
        )
    owner = database.check_owner(state, tenant.db.user, expected_owner, tenant_id)
    fresh = database.side_name(live, database.FRESH, stamp)
    parked = database.side_name(live, database.PARKED, stamp)
    # Targets of earlier attempts that failed before their swap never went live.
    leftovers = [n for n in database.side_databases(state) if database.FRESH in n]
    database.drop_fresh(sql, live, leftovers)
    database.create_owned_database(sql, fresh, owner)
    target = tenant.model_copy(update={"db": tenant.db.model_copy(update={"name": fresh})})
    try:
        counts = restore(site, backup, target)
        database.swap(sql, live, fresh, parked)
    except BaseException:
        # By name: after a swap that did commit, no database is called `fresh` any more.
        with contextlib.suppress(Exception):
            database.drop_fresh(sql, live, [fresh])
        raise
    return {
        "backup": backup.backup_id,
        "database": live,
        "parked": parked,
        "tables": len(counts),
        "rows": sum(counts.values()),
        "leftovers_dropped": len(leftovers),
    }

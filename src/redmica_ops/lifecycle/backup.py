"""Back up one tenant's database, list its backups, restore one into a fresh database.

`pg_dump -Fc` runs where the database is (this process or the admin task) as the tenant's own
role and lands in the config bucket under `backups/<tenant>/` (dumps.py). A restore goes into a
database that did not exist before (`--into NEW_ID`, a new tenant copied from the old one with
its own role, password, sub-domain and folder) and is accepted only if every table has the
row count the backup recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.errors import UsageError
from redmica_ops.lifecycle.common import (
    check_owns,
    check_roles_unused,
    incarnation_of,
    new_password,
    require_endpoint,
    set_status,
    verifier_of,
)
from redmica_ops.lifecycle.steps import Runner, Step, StepResult, guard_args
from redmica_ops.tenants.model import Tenant
from redmica_ops.tenants.registry import TenantRegistry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class BackupRequest:
    tenant_id: str
    reason: str = "manual"


@dataclass(frozen=True)
class RestoreRequest:
    tenant_id: str  # whose backup
    backup_id: str  # an id from `tenant backups`, or "latest"
    into: str  # the new tenant that receives it


@dataclass
class RestoreOutcome:
    tenant_id: str
    into: str
    result: StepResult
    done: list[str] = field(default_factory=list)


def backup(registry: TenantRegistry, runner: Runner, request: BackupRequest) -> StepResult:
    stored = registry.store.get(request.tenant_id)
    if stored.tenant.status == "provisioning":
        raise UsageError(
            f"tenant {request.tenant_id!r} is still provisioning; nothing to back up yet",
            f"finish it with `redmica tenant provision {request.tenant_id}`",
        )
    require_endpoint(runner.access, stored)
    # A document naming another tenant's database and login (and its password secret, which
    # the admin task can read) would put that tenant's data under this tenant's backups.
    check_owns(registry.store, stored)
    args = {**guard_args(stored, None), "reason": request.reason}
    return runner.run(Step("backup", request.tenant_id, args))


def copy_for(into: str, source: Tenant) -> Tenant:
    """The new tenant a restore creates: the source's settings, its own names and password."""
    name = into.replace("-", "_")
    # Its own password, in its document: never the source's secret (another login's).
    db = source.db.model_copy(
        update={"name": name, "user": name, "password": new_password(), "password_secret": None}
    )
    return source.model_copy(
        update={
            "db": db,
            "s3": source.s3.model_copy(update={"folder": into}),
            "properties": source.properties.model_copy(update={"sub_domain": into}),
            "status": "provisioning",
            "status_message": None,
        }
    )


def restore(
    registry: TenantRegistry,
    runner: Runner,
    request: RestoreRequest,
    s3: S3Client,
    backups_prefix: str,
) -> RestoreOutcome:
    """The backup is found (its manifest read) before anything is written: a wrong id or a
    tenant without backups leaves no half-made tenant behind."""
    from redmica_ops.lifecycle.dumps import find_backup

    if request.into == request.tenant_id:
        raise UsageError(
            "a restore never goes over the live database",
            "restore into a new tenant with --into NEW_ID, check it, then switch",
        )
    source = registry.store.get(request.tenant_id)
    require_endpoint(runner.access, source)  # the copy gets the same db.host/db.port
    found = find_backup(
        s3,
        registry.store.bucket,
        backups_prefix,
        request.tenant_id,
        request.backup_id,
        incarnation_of(registry.store, request.tenant_id),
    )
    outcome = RestoreOutcome(request.tenant_id, request.into, {})
    listing = registry.store.load_all()
    existing = listing.by_id().get(request.into)
    if existing is None:
        target = copy_for(request.into, source.tenant)
        check_roles_unused(request.into, target, listing)
        registry.add(request.into, target, f"(restore of {request.tenant_id})")
        outcome.done.append(f"tenant {request.into}: document created (provisioning)")
    elif existing.tenant.status != "provisioning":
        raise UsageError(
            f"tenant {request.into!r} exists and is {existing.tenant.status}; a restore only "
            "goes into a new tenant (or one left provisioning by a failed restore)",
            "pick another --into id",
        )
    stored = registry.store.get(request.into)
    owner, verifier = stored.tenant.db.user, verifier_of(stored.tenant)
    result = runner.run(
        Step(
            "create-database",
            request.into,
            {**guard_args(stored, None), "owner": owner, "verifier": verifier},
        )
    )
    outcome.done.extend(str(d) for d in result.get("done") or [])  # type: ignore[union-attr]
    outcome.result = runner.run(
        # The id found above, not "latest": a backup taken meanwhile is not the one checked.
        Step(
            "restore",
            request.into,
            {**guard_args(stored, None), "source": request.tenant_id, "backup": found.backup_id},
        )
    )
    outcome.done.append(
        f"restored backup {outcome.result.get('backup')}: {outcome.result.get('tables')} "
        f"tables, {outcome.result.get('rows')} rows, counts verified"
    )
    set_status(registry, stored, "active")
    outcome.done.append(f"tenant {request.into}: active")
    return outcome

"""Restore a backup over a tenant's live database (`tenant restore-db ID BACKUP --replace`).

The live database is never dropped and never restored into. Order, and why:
  1. checks, before anything is written: the tenant is active or suspended, the backup exists
     (it is this tenant's), the live database exists; the plan is shown and confirmed;
  2. a safety backup of the live database (`before replace`): must succeed, or nothing
     else happens;
  3. one `replace` step where the database is (dumps.replace_live): restore into a fresh
     database, verify every table's row count against the backup's manifest, then swap the
     names in one transaction; the old database stays, parked as `<name>_replaced_<stamp>`.
The document does not change (same name, same login), so no reload is needed; the tenant's
open connections are closed at the swap (suspend it first and none of its requests fails).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from redmica_ops.errors import NotFound, UsageError
from redmica_ops.lifecycle.common import (
    check_owns,
    incarnation_of,
    require_endpoint,
    require_status,
)
from redmica_ops.lifecycle.database import PARKED, side_name
from redmica_ops.lifecycle.dumps import Backup, find_backup
from redmica_ops.lifecycle.steps import Runner, Step, StepResult, guard_args
from redmica_ops.tenants.registry import TenantRegistry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class ReplaceRequest:
    tenant_id: str
    backup_id: str  # an id from `tenant backups`, or "latest"


@dataclass
class ReplacePlan:
    tenant_id: str
    database: str
    backup: str  # the backup id (resolved from "latest")
    backup_created_at: str
    tables: int
    rows: int
    parked_as: str
    status: str
    steps: list[str] = field(default_factory=list)
    warning: str | None = None
    owner: str | None = None  # the live database's owner, as the plan found it


@dataclass
class ReplaceOutcome:
    tenant_id: str
    safety_backup: str
    result: StepResult
    done: list[str] = field(default_factory=list)


def new_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")


def plan_replace(
    registry: TenantRegistry,
    runner: Runner,
    s3: S3Client,
    bucket: str,
    backups_prefix: str,
    request: ReplaceRequest,
    stamp: str | None = None,
) -> ReplacePlan:
    """Read-only: what a replace would do, or why it cannot (nothing is written)."""
    stored = registry.store.get(request.tenant_id)
    require_status(stored, ("active", "suspended"), "replace its database")
    require_endpoint(runner.access, stored)
    check_owns(registry.store, stored)
    backup: Backup = find_backup(
        s3,
        bucket,
        backups_prefix,
        request.tenant_id,
        request.backup_id,
        incarnation_of(registry.store, request.tenant_id),
    )
    tenant = stored.tenant
    state = runner.run(Step("inspect", request.tenant_id))
    if state.get("owner") is None:
        raise NotFound(
            f"database {tenant.db.name!r} of tenant {request.tenant_id!r} does not exist; "
            "there is nothing to replace",
            f"provision it (`redmica tenant provision {request.tenant_id}`) or restore into "
            "a new tenant with --into NEW_ID",
        )
    parked = side_name(tenant.db.name, PARKED, stamp or new_stamp())
    plan = ReplacePlan(
        request.tenant_id,
        tenant.db.name,
        backup.backup_id,
        backup.created_at,
        len(backup.tables),
        backup.rows,
        parked,
        tenant.status,
        owner=str(state["owner"]),
    )
    plan.steps = [
        f"back up the live database {tenant.db.name} (reason: before replace); stop if it fails",
        f"restore backup {backup.backup_id} ({backup.created_at}, {plan.tables} tables, "
        f"{plan.rows} rows) into a fresh database and verify every table's row count; stop "
        "(dropping only the fresh copy) if anything differs",
        f"swap in one transaction: the live database is parked as {parked} (kept, not "
        f"dropped), the restored one becomes {tenant.db.name}; open connections are closed",
    ]
    if tenant.status == "active":
        plan.warning = (
            f"tenant {request.tenant_id} is active: requests in flight at the swap fail once; "
            f"suspend it first (`redmica tenant suspend {request.tenant_id}` and a reload) for "
            "none to fail"
        )
    return plan


def replace(
    registry: TenantRegistry, runner: Runner, request: ReplaceRequest, plan: ReplacePlan
) -> ReplaceOutcome:
    """Carry out a confirmed plan: the safety backup first, then the replace step."""
    stored = registry.store.get(request.tenant_id)
    if stored.tenant.db.name != plan.database:
        raise UsageError(
            f"tenant {request.tenant_id!r} now names database {stored.tenant.db.name!r}, not "
            f"{plan.database!r} as in the plan; nothing was changed",
            "look at the tenant again and run the command again",
        )
    reason = f"before replace by {plan.backup}"
    safety = runner.run(
        Step("backup", request.tenant_id, {**guard_args(stored, None), "reason": reason})
    )
    outcome = ReplaceOutcome(request.tenant_id, str(safety.get("backup")), {})
    outcome.done.append(f"safety backup {outcome.safety_backup} of the live database")
    stamp = plan.parked_as.rsplit("_", 1)[-1]
    outcome.result = runner.run(
        Step(
            "replace",
            request.tenant_id,
            {"backup": plan.backup, "stamp": stamp, **guard_args(stored, plan.owner)},
        )
    )
    outcome.done.append(
        f"restored backup {plan.backup}: {outcome.result.get('tables')} tables, "
        f"{outcome.result.get('rows')} rows, counts verified"
    )
    outcome.done.append(
        f"swapped: {plan.database} is the restored database; the old one is parked as "
        f"{outcome.result.get('parked')}"
    )
    return outcome

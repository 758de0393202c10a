"""The lifecycle commands with what the workspace builds, each ending in a Report.

`tenant remove --purge` and `tenant restore-db --replace` each make a plan (read-only), which
the operator sees and confirms, then carry it out against that plan (lifecycle/purge.py and
lifecycle/replace.py check again that the tenant is still what the plan found). The question
between the two calls is the command line's; the rest is here, with the text of each step.
The other verbs (suspend, resume, backup, backups, restore-db --into, rotate-password) are one
call each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING

from redmica_ops.errors import JSONValue, UsageError
from redmica_ops.lifecycle.backup import BackupRequest, RestoreRequest, backup, restore
from redmica_ops.lifecycle.dumps import list_backups
from redmica_ops.lifecycle.provision import RELOAD_HINT
from redmica_ops.lifecycle.purge import PurgePlan, PurgeRecord, PurgeRequest, plan, purge
from redmica_ops.lifecycle.replace import (
    ReplaceOutcome,
    ReplacePlan,
    ReplaceRequest,
    plan_replace,
    replace,
)
from redmica_ops.lifecycle.rotate import RotateRequest, rotate
from redmica_ops.lifecycle.suspend import (
    ResumeRequest,
    StatusChange,
    SuspendRequest,
    resume,
    suspend,
)
from redmica_ops.report import Line, Report, Table, info, plain_json, success, warn

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


# -- tenant remove --purge ------------------------------------------------------------------------
def purge_request(
    ws: Workspace, tenant_id: str, delete: bool, archive: bool, dry_run: bool
) -> PurgeRequest:
    """The request with the settings' archive prefix."""
    return PurgeRequest(
        tenant_id,
        delete,
        dry_run,
        archive_attachments=archive,
        archive_prefix=ws.settings.attachments_archive_prefix,
    )


def plan_purge(ws: Workspace, request: PurgeRequest, executor: str) -> PurgePlan:
    """Read-only (a dry run launches nothing): what a purge would do, or why it cannot."""
    registry = ws.registry()
    return plan(registry, ws.runner(executor), registry.store.s3, request)


def purge_plan_lines(the_plan: PurgePlan) -> list[Line]:
    count = "unknown" if the_plan.attachment_count is None else the_plan.attachment_count
    lines = [info(f"purge plan for tenant {the_plan.tenant_id} ({count} attachment object(s)):")]
    lines.extend(info(f"  {number}. {step}") for number, step in enumerate(the_plan.steps, 1))
    if the_plan.note:
        lines.append(warn(the_plan.note))
    return lines


def dry_run_report(tenant_id: str, the_plan: PurgePlan | ReplacePlan) -> Report:
    """A dry run's document (its plan was shown before); nothing more to say."""
    return Report({"tenant": tenant_id, "dry_run": True, "plan": plain_json(asdict(the_plan))})


def carry_out_purge(
    ws: Workspace, request: PurgeRequest, executor: str, the_plan: PurgePlan
) -> Report:
    """The confirmed plan, step by step, each recorded in the deprovision record; with routing
    managed here, the host's record goes after the document."""
    registry = ws.registry()
    unroute = None
    if ws.settings.hosted_zone_id:
        fleet = ws.fleet()

        def unroute(sub_domain: str) -> str | None:
            return fleet.unroute(sub_domain, f"tenant remove --purge {request.tenant_id}")

    records = ws.lifecycle_records()
    runner = ws.runner(executor)
    record = purge(registry, runner, registry.store.s3, records, request, the_plan, unroute)
    return purge_report(record, registry.store.bucket)


def purge_report(record: PurgeRecord, bucket: str) -> Report:
    body: list[Line] = [info(f"  {step['step']}: {step_outcome(step)}") for step in record.steps]
    body.append(success(f"purged tenant {record.tenant}; record s3://{bucket}/{record.key}"))
    document: dict[str, JSONValue] = {
        "tenant": record.tenant,
        "purged": True,
        "record": record.key,
        "steps": plain_json(record.steps),
    }
    return Report(document, list(body))


def step_outcome(step: dict[str, object]) -> str:
    """What a recorded purge step did, in words: a skipped step says so, with why."""
    result = step.get("result")
    if isinstance(result, dict) and result.get("skipped"):
        return f"skipped ({result['skipped']})"
    return "ok"


# -- tenant restore-db --replace ------------------------------------------------------------------
def plan_replacement(ws: Workspace, request: ReplaceRequest, executor: str) -> ReplacePlan:
    """Read-only: what a replace would do, or why it cannot (nothing is written)."""
    registry = ws.registry()
    store = registry.store
    return plan_replace(
        registry, ws.runner(executor), store.s3, store.bucket, ws.settings.backups_prefix, request
    )


def replace_plan_lines(the_plan: ReplacePlan) -> list[Line]:
    lines = [info(f"replace plan for tenant {the_plan.tenant_id} (database {the_plan.database}):")]
    lines.extend(info(f"  {number}. {step}") for number, step in enumerate(the_plan.steps, 1))
    if the_plan.warning:
        lines.append(warn(the_plan.warning))
    return lines


def carry_out_replacement(
    ws: Workspace, request: ReplaceRequest, executor: str, the_plan: ReplacePlan
) -> Report:
    """The confirmed plan: safety backup, restore beside, verify, swap (lifecycle/replace.py)."""
    return replace_report(replace(ws.registry(), ws.runner(executor), request, the_plan), the_plan)


def replace_report(outcome: ReplaceOutcome, the_plan: ReplacePlan) -> Report:
    tenant_id = outcome.tenant_id
    body: list[Line] = [info(f"  {line}") for line in outcome.done]
    body.append(
        success(
            f"tenant {tenant_id}: database {the_plan.database} replaced by backup "
            f"{the_plan.backup}; the old one is parked as {outcome.result.get('parked')}"
        )
    )
    body.append(
        info(
            f"to undo: `redmica tenant restore-db {tenant_id} {outcome.safety_backup} "
            "--replace` (the safety backup)"
        )
    )
    document: dict[str, JSONValue] = {
        "tenant": tenant_id,
        "replaced": True,
        "backup": the_plan.backup,
        "safety_backup": outcome.safety_backup,
        "done": list(outcome.done),
        **plain_json_object(outcome.result),
    }
    return Report(document, list(body))


def plain_json_object(value: Mapping[str, object]) -> dict[str, JSONValue]:
    loaded = plain_json(value)
    assert isinstance(loaded, dict)
    return loaded


# -- the other lifecycle commands -----------------------------------------------------------------
def suspend_tenant(
    ws: Workspace, tenant_id: str, message: str | None, clear_message: bool
) -> Report:
    """`tenant suspend`: the maintenance page instead of the site (at the next render)."""
    if message is not None and clear_message:
        raise UsageError(
            "choose one of --message and --clear-message",
            "--message replaces the page's text; --clear-message removes it",
        )
    request = SuspendRequest(tenant_id, message, clear_message)
    return status_report(suspend(ws.registry(), request))


def resume_tenant(ws: Workspace, tenant_id: str) -> Report:
    """`tenant resume`: the site again (at the next render)."""
    return status_report(resume(ws.registry(), ResumeRequest(tenant_id)))


def status_report(change: StatusChange) -> Report:
    tenant_id, after = change.tenant_id, change.after
    if change.changed:
        line = success(f"tenant {tenant_id}: {change.before} -> {after}; {RELOAD_HINT}")
    else:
        line = info(f"tenant {tenant_id} is already {after}; nothing written")
    document: dict[str, JSONValue] = {
        "tenant": tenant_id,
        "before": change.before,
        "status": after,
        "changed": change.changed,
    }
    return Report(document, [line])


def backup_tenant(ws: Workspace, tenant_id: str, executor: str) -> Report:
    """`tenant backup`: a dump into the backups prefix, with its manifest."""
    registry = ws.registry()
    result = backup(registry, ws.runner(executor), BackupRequest(tenant_id))
    summary = {k: v for k, v in result.items() if k != "table_rows"}
    where = f"s3://{registry.store.bucket}/{summary['key']}"
    body = [
        success(
            f"backup {summary['backup']} of {tenant_id}: {summary['size']} bytes, "
            f"{summary['tables']} tables, {summary['rows']} rows"
        ),
        info(f"  {where} (sha256 {summary['sha256']})"),
    ]
    return Report(plain_json_object(summary), list(body))


def backups_of(ws: Workspace, tenant_id: str) -> Report:
    """`tenant backups`: newest first, also a purged tenant's (exit 3 with neither)."""
    store = ws.registry().store
    found = list_backups(store.s3, store.bucket, ws.settings.backups_prefix, tenant_id)
    if not found:
        # A purged tenant's backups stay listable; a name with neither is a typo (exit 3).
        store.get(tenant_id)
    rows = [b.summary() for b in found]
    table = Table(
        ("backup", "created", "bytes", "tables", "rows", "reason"),
        [
            [r["backup"], r["created_at"], r["size"], r["tables"], r["rows"], r["reason"]]
            for r in rows
        ],
    )
    return Report({"tenant": tenant_id, "backups": plain_json(rows)}, [table])


def restore_into(ws: Workspace, request: RestoreRequest, executor: str) -> Report:
    """`tenant restore-db --into NEW_ID`: a new tenant with the backup, row counts verified."""
    registry = ws.registry()
    store = registry.store
    outcome = restore(registry, ws.runner(executor), request, store.s3, ws.settings.backups_prefix)
    document: dict[str, JSONValue] = {
        "tenant": request.tenant_id,
        "into": request.into,
        "done": list(outcome.done),
        **plain_json_object(outcome.result),
    }
    return Report(document, [info(f"  {line}") for line in outcome.done])


def rotate_password(ws: Workspace, tenant_id: str, executor: str) -> Report:
    """`tenant rotate-password`: the other login role with a new password (never shown)."""
    outcome = rotate(ws.registry(), ws.runner(executor), RotateRequest(tenant_id))
    line = success(
        f"tenant {tenant_id}: login {outcome.previous_login} -> {outcome.login} with a new "
        f"password; {RELOAD_HINT}"
    )
    document: dict[str, JSONValue] = {
        "tenant": tenant_id,
        "previous_login": outcome.previous_login,
        "login": outcome.login,
        "version_id": outcome.version_id,
    }
    return Report(document, [line])

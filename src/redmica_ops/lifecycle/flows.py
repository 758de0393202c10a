"""The destructive lifecycle commands with what the workspace builds: plan, then carry out.

`tenant remove --purge` and `tenant restore-db --replace` each make a plan (read-only), which
the operator sees and confirms, then carry it out against that plan (lifecycle/purge.py and
lifecycle/replace.py check again that the tenant is still what the plan found). The question
between the two calls is the command line's; the rest is here, with the text of each step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING

from redmica_ops.errors import JSONValue
from redmica_ops.lifecycle.purge import PurgePlan, PurgeRecord, PurgeRequest, plan, purge
from redmica_ops.lifecycle.replace import (
    ReplaceOutcome,
    ReplacePlan,
    ReplaceRequest,
    plan_replace,
    replace,
)
from redmica_ops.report import Line, Report, info, plain_json, success, warn

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

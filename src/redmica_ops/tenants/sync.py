"""`redmica tenant sync`: make the bucket match a directory of tenant files (GitOps).

The plan is made from one read of the bucket and the validated files, and refused when larger
than the limit (a directory holding one file must never remove 799 tenants); applying it is
conditional on what the plan read (TenantRegistry.apply_sync). The command line asks between
plan and apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redmica_ops.errors import JSONValue, UsageError, ValidationFailed
from redmica_ops.report import Line, Report, counting, info, success, text
from redmica_ops.tenants.files import load_paths, summary
from redmica_ops.tenants.registry import SyncPlan

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class SyncRequest:
    directory: Path
    apply: bool
    prune: bool
    max_changes: int  # a larger plan is refused when applied


def plan(request: SyncRequest, ws: Workspace) -> SyncPlan:
    """Validate every file, then plan against the bucket; exit 2 with nothing written on a
    problem in any file, or a plan to apply larger than `max_changes`."""
    files = load_paths([request.directory], ws.settings.tenant_secrets_prefix)
    if files.problems:
        raise ValidationFailed(
            files.problems,
            message=summary(files.problems, files.files, written=request.apply),
        )
    the_plan = ws.registry().plan_sync(files.entries, prune=request.prune)
    for warning in the_plan.warnings:
        ws.message(f"warning: {warning}")
    if request.apply and not the_plan.empty and the_plan.size > request.max_changes:
        raise UsageError(
            f"the plan changes {the_plan.size} tenants, more than --max-changes "
            f"{request.max_changes}; nothing was written",
            "check the directory and the plan (run without --apply); raise --max-changes "
            "if it is right",
        )
    return the_plan


def question(the_plan: SyncPlan, ws: Workspace) -> str:
    """What the operator agrees to by applying the plan."""
    store = ws.registry().store
    removals = len(the_plan.removals) if the_plan.prune else 0
    return (
        f"apply {len(the_plan.adds)} add(s), {len(the_plan.changes)} change(s) and {removals} "
        f"removal(s) to s3://{store.bucket}/{store.prefix}"
    )


def apply(the_plan: SyncPlan, ws: Workspace) -> list[str]:
    return list(ws.registry().apply_sync(the_plan, counting(ws.status, "sync: applied")))


def plan_lines(the_plan: SyncPlan) -> list[Line]:
    """The plan as people read it: one line per tenant (stdout), then the counts."""
    lines: list[Line] = []
    for entry in the_plan.adds:
        lines.append(text(f"+ add     {entry.tenant_id}  ({entry.source})"))
    for change in the_plan.changes:
        lines.append(text(f"~ change  {change.entry.tenant_id}  ({change.entry.source})"))
        lines.extend(text(f"      {field_change.describe()}") for field_change in change.changes)
        if not change.changes:
            lines.append(text("      replaces an invalid document"))
    prune = the_plan.prune
    for removal in the_plan.removals:
        verb = "remove " if prune else "extra  "
        note = "" if prune else "  (only in the bucket; --prune removes it)"
        lines.append(text(f"- {verb} {removal.tenant_id}{note}"))
    lines.append(
        info(
            f"{len(the_plan.adds)} to add, {len(the_plan.changes)} to change, "
            f"{len(the_plan.removals) if prune else 0} to remove, "
            f"{len(the_plan.unchanged)} unchanged"
        )
    )
    return lines


def report(request: SyncRequest, the_plan: SyncPlan, done: list[str], shown: bool) -> Report:
    """`shown`: the plan was shown already (before the question), so it is not repeated."""
    body = [] if shown else plan_lines(the_plan)
    if the_plan.empty:
        body.append(info("the bucket already matches the directory"))
    elif request.apply:
        # One line per change (stdout), then the counts: never one line of 565 names.
        body += [text(step) for step in done]
        verbs = [step.split(" ", 1)[0] for step in done]
        counts = [f"{verbs.count(v)} {v}" for v in ("added", "changed", "removed") if v in verbs]
        body.append(success(f"applied {len(done)} change(s): {', '.join(counts)}"))
    else:
        body.append(info("plan only: nothing was changed; run again with --apply"))
    document: dict[str, JSONValue] = {
        "applied": request.apply,
        "prune": request.prune,
        "adds": [e.tenant_id for e in the_plan.adds],
        "changes": [
            {"tenant": c.entry.tenant_id, "changes": [f.as_dict() for f in c.changes]}
            for c in the_plan.changes
        ],
        "removals": [r.tenant_id for r in the_plan.removals],
        "unchanged": list(the_plan.unchanged),
        "done": list(done),
    }
    return Report(document, list(body))

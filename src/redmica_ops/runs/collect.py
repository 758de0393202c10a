"""Collecting runs: merge the result objects tasks wrote (and what ECS still knows) into a
run's record, for one run or every recent one (`runs collect`, `runs show`, the Lambda's
schedule); and fingerprints: what the recent runs say about them, so `migrate
--skip-current` leaves out tenants already migrated with the same migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redmica_ops.errors import RedmicaError
from redmica_ops.runs.fanout import FanOut, FanOutOptions
from redmica_ops.runs.options import fanout_options
from redmica_ops.runs.record import RunRecord, RunState, Status

if TYPE_CHECKING:
    from redmica_ops.runs.record import RunRecords
    from redmica_ops.workspace import Workspace

RECENT_RUNS = 20  # collecting "every run" (and --skip-current) looks at this many newest runs


def collect_recent(ws: Workspace, limit: int = RECENT_RUNS) -> list[tuple[RunRecord, int]]:
    """Collect every recent run that is not complete: (record, tenants settled) for each.

    What a schedule calls (the Lambda's collect action, `runs collect` without a run id)."""
    store = ws.run_store()
    collected = []
    for run_id in store.list_ids()[:limit]:
        record = store.load(run_id)
        if not record.complete():
            collected.append((record, collect(record, ws)))
    return collected


def collect(record: RunRecord, ws: Workspace) -> int:
    """Merge a run's result objects (and what ECS still knows) into its record and save it.

    Safe to repeat (the Lambda's schedule does): returns how many tenants got a final status.
    """
    if record.complete():
        return 0
    executor = ws.executor("none", record.run_id, {})
    settings = ws.settings
    if record.executor == "ecs" and settings.cluster and settings.container:
        revision = record.target.task_definition or settings.task_definition
        if revision:
            executor = ws.executor("ecs", record.run_id, {}, ws.ecs_target(revision))
    options = fanout_options(settings, record.command)
    engine = FanOut(executor, record, options, ws.clock(), lambda _r: None, results=ws.results())
    changed = engine.collect()
    if changed or record.state == RunState.FINISHED:
        ws.run_store().save(record)
    return changed


def last_fingerprints(
    store: RunRecords, limit: int = RECENT_RUNS
) -> tuple[dict[str, str], dict[str, str]]:
    """From the newest runs: (tenant -> fingerprint of its last success, image -> fingerprint)."""
    by_tenant: dict[str, str] = {}
    by_image: dict[str, str] = {}
    for run_id in store.list_ids()[:limit]:
        try:
            record = store.load(run_id)
        except RedmicaError:
            continue
        for run in record.tenants.values():
            if run.status == Status.SUCCEEDED and run.fingerprint:
                by_tenant.setdefault(run.tenant, run.fingerprint)
                # The image a task reported (its metadata endpoint), else the one the run
                # launched: a task definition revision is immutable, so that is what it ran.
                image = run.image or record.target.image
                if image:
                    by_image.setdefault(image, run.fingerprint)
    return by_tenant, by_image


def note_local_fingerprint(record: RunRecord) -> None:
    """Local runs know the fingerprint on this host: each success records it."""
    fingerprint = record.target.fingerprint
    if record.executor == "local" and fingerprint is not None:
        for run in record.with_status(Status.SUCCEEDED):
            run.fingerprint = run.fingerprint or fingerprint


def skip_current(
    record: RunRecord, order: list[str], options: FanOutOptions, engine: FanOut, ws: Workspace
) -> list[str]:
    """--skip-current: leave out tenants whose last success ran the same migrations.

    The fingerprint of what this run would apply is known on this host (local executor), or
    from an earlier task that ran the same image; otherwise one task (one batch) runs first
    and its result objects tell it. Returns the tenants still to run.
    """
    by_tenant, by_image = last_fingerprints(ws.run_store())
    target = record.target
    wanted = target.fingerprint if record.executor == "local" else None
    if wanted is None and target.image is not None:
        wanted = by_image.get(target.image)
    if wanted is None and order:
        probe = order[: max(1, options.tenants_per_task)]
        ws.message(f"--skip-current: the image's migrations are unknown; {probe[0]} goes first")
        engine.run(probe)
        order = order[len(probe) :]
        found = [record.tenants[t].fingerprint for t in probe]
        wanted = next((f for f in found if f), None)
        if engine.cancellation.level or wanted is None:
            if wanted is None:
                ws.message("--skip-current: no fingerprint came back; nothing is skipped")
            return order
    current = [t for t in order if wanted is not None and by_tenant.get(t) == wanted]
    for tenant in current:
        run = record.tenants[tenant]
        run.status, run.reason = Status.SKIPPED, f"current (migrations {wanted})"
        run.fingerprint = wanted
    target.skipped_current = len(current)
    ws.message(f"--skip-current: skipped {len(current)} tenant(s) already migrated with {wanted}")
    return [t for t in order if t not in set(current)]

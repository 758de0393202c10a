"""`redmica migrate` as a library: choose tenants, build the executor, run, resume, retry.

What a run does is in `fanout.py`; this module turns settings and a selection into a run
record and an executor, and handles `--resume` / `--only-failed`.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redmica_ops.errors import NotFound, UsageError
from redmica_ops.runs.executors import Executor, Job
from redmica_ops.runs.executors.ecs import (
    MAX_OVERRIDE_CHARS,
    EcsExecutor,
    EcsTarget,
    override_size,
)
from redmica_ops.runs.executors.local import LocalExecutor, LocalTarget
from redmica_ops.runs.fanout import FanOutOptions
from redmica_ops.runs.record import FAILURES, RunRecord, Status, TenantRun, utcnow
from redmica_ops.settings import Settings, require
from redmica_ops.tenants.model import Tenant
from redmica_ops.tenants.selection import Use, select
from redmica_ops.tenants.store import Listing


@dataclass
class Selection:
    order: list[str]  # to run, in order
    skipped: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)  # tenant -> why it cannot run
    tenants: dict[str, Tenant] = field(default_factory=dict)


def select_tenants(
    listing: Listing, ids: Sequence[str], all_tenants: bool, exclude: Sequence[str]
) -> Selection:
    if all_tenants == bool(ids):
        raise UsageError("give tenant ids or --all (not both)", "e.g. redmica migrate --all")
    selection = select(listing, Use.MIGRATE)  # the one rule: tenants.selection
    valid = {s.tenant_id: s.tenant for s in selection.eligible}
    invalid = {e.tenant_id: e.describe() for e in selection.excluded if e.tenant_id}
    known = set(valid) | set(invalid)
    wanted = sorted(known) if all_tenants else list(dict.fromkeys(ids))
    unknown = [t for t in [*wanted, *exclude] if t not in known]
    if unknown:
        raise NotFound(
            f"unknown tenant(s): {', '.join(unknown)}", "list tenants with `redmica tenant list`"
        )
    excluded = set(exclude)
    order = [t for t in wanted if t not in excluded]
    return Selection(
        order=order,
        skipped=[t for t in wanted if t in excluded],
        invalid={t: invalid[t] for t in order if t in invalid},
        tenants={t: valid[t] for t in order if t in valid},
    )


def fanout_options(settings: Settings, command: list[str], **overrides: Any) -> FanOutOptions:
    values: dict[str, Any] = {
        "command": command,
        "concurrency": settings.concurrency,
        "rate": settings.launch_rate,
        "burst": settings.launch_burst,
        "timeout": float(settings.task_timeout),
        "max_start_attempts": settings.max_start_attempts,
        "poll_interval": settings.poll_interval,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return FanOutOptions(**values)


def parse_command(text: str) -> list[str]:
    try:
        command = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"cannot parse the command: {exc}") from None
    if not command:
        raise UsageError("the migration command is empty")
    return command


def ecs_target(settings: Settings) -> EcsTarget:
    require(
        settings,
        ["cluster", "task_definition", "container"],
        "the ECS executor needs",
        alternative="or use --executor local",
    )
    return EcsTarget(
        cluster=str(settings.cluster),
        task_definition=str(settings.task_definition),
        container=str(settings.container),
        subnets=settings.subnets,
        security_groups=settings.security_groups,
        assign_public_ip=settings.assign_public_ip,
        launch_type=settings.launch_type,
        capacity_provider=settings.capacity_provider,
    )


def build_executor(
    kind: str, settings: Settings, ecs_client: Any, run_id: str, tenants: dict[str, Tenant]
) -> Executor:
    if kind == "ecs":
        return EcsExecutor(ecs_client, ecs_target(settings), run_id)
    if kind == "local":
        extra = dict(item.split("=", 1) for item in settings.local_env)
        log_dir = Path(settings.local_log_dir or Path.cwd() / "redmica-runs") / run_id
        return LocalExecutor(
            tenants,
            LocalTarget(
                log_dir=log_dir,
                workdir=settings.local_workdir,
                user=settings.local_user,
                extra_env=extra,
                default_db_host=settings.db_host,
            ),
        )
    raise UsageError(f"unknown executor {kind!r} (ecs or local)")


def check_overrides(settings: Settings, order: Sequence[str], command: list[str]) -> None:
    """Fail before launching anything if a tenant's ECS override would be too long."""
    target = ecs_target(settings)
    too_long = [t for t in order if override_size(target, Job(t, 1, command)) > MAX_OVERRIDE_CHARS]
    if too_long:
        raise UsageError(
            f"the ECS task override for {too_long[0]} is longer than "
            f"{MAX_OVERRIDE_CHARS} characters",
            "shorten the command",
        )


def new_record(
    run_id: str,
    executor: str,
    selection: Selection,
    command: list[str],
    options: FanOutOptions,
    parent: str | None = None,
) -> RunRecord:
    now = utcnow().isoformat()
    record = RunRecord(
        run_id=run_id,
        executor=executor,
        command=command,
        created_at=now,
        updated_at=now,
        options={
            "concurrency": options.concurrency,
            "rate": options.rate,
            "burst": options.burst,
            "timeout": options.timeout,
            "max_failures": options.max_failures,
            "canary": options.canary,
            "max_start_attempts": options.max_start_attempts,
            "wait": options.wait,
        },
        parent_run=parent,
    )
    for tenant in selection.order:
        record.tenants[tenant] = TenantRun(tenant)
    for tenant, why in selection.invalid.items():
        record.tenants[tenant] = TenantRun(
            tenant, Status.FAILED_TO_START, reason=f"invalid tenant document: {why}"
        )
    for tenant in selection.skipped:
        record.tenants[tenant] = TenantRun(tenant, Status.SKIPPED, reason="excluded")
    return record


def prepare_resume(record: RunRecord, found: dict[str, str]) -> list[str]:
    """Tenants of an earlier run still to do; launched-but-unrecorded tasks are re-attached."""
    order = []
    for tenant, run in sorted(record.tenants.items()):
        if run.status in (Status.PENDING, Status.NOT_STARTED):
            if tenant in found:
                run.status, run.task_arn, run.reason = Status.RUNNING, found[tenant], None
                run.attempts = max(run.attempts, 1)
            else:
                run.status, run.reason = Status.PENDING, None
                order.append(tenant)
    record.state = "running"
    return order


def only_failed(record: RunRecord) -> list[str]:
    failed = sorted(t for t, r in record.tenants.items() if r.status in FAILURES)
    if not failed:
        raise UsageError(f"run {record.run_id} has no failed tenants", "nothing to retry")
    return failed


def exit_code_for(record: RunRecord) -> int:
    if record.state == "interrupted":
        return 130
    if record.state == "launched":
        return 0
    return 0 if record.all_succeeded() else 1

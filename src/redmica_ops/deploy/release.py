"""`release`: migrate every tenant with a new revision, then deploy it if they all succeeded.

The new revision travels in the migration request (`MigrationRequest.task_definition`), so the
migration gate runs exactly the image that is then deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redmica_ops.deploy.model import RolloutReport
    from redmica_ops.runs.record import RunRecord
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class ReleaseRequest:
    image: str
    container: str | None = None
    # The migration gate's failure policy (see MigrationRequest).
    max_failures: int | None = None
    canary: int | None = None
    concurrency: int | None = None
    migrate_timeout: float | None = None
    # The deployment.
    timeout: float | None = None
    rollback: bool = True


@dataclass(frozen=True)
class ReleaseOutcome:
    task_definition: str  # the new revision
    previous_task_definition: str
    migration: RunRecord
    report: RolloutReport | None  # None: the gate failed, nothing was deployed

    @property
    def exit_code(self) -> int:
        from redmica_ops.runs.migrations import exit_code_for

        gate = exit_code_for(self.migration)
        if gate or self.report is None:
            return gate or 1
        return 0 if self.report.ok else 1


def run(request: ReleaseRequest, ws: Workspace) -> ReleaseOutcome:
    from redmica_ops.deploy.rollout import (
        MIGRATION_NOTE,
        deployer_for,
        register_image,
        roll_out,
        timeout_or_default,
    )
    from redmica_ops.runs import migrations

    d = deployer_for(ws)
    current, new_arn = register_image(ws.settings, d, request.container, request.image)
    ws.message("release: migrating every tenant with the new revision")
    ws.message(MIGRATION_NOTE)
    outcome = migrations.run(
        migrations.MigrationRequest(
            all_tenants=True,
            max_failures=request.max_failures,
            canary=request.canary,
            concurrency=request.concurrency,
            timeout=request.migrate_timeout,
            task_definition=new_arn,
        ),
        ws,
    )
    record = outcome.record
    assert record is not None  # not a dry run
    if migrations.exit_code_for(record) != 0:
        return ReleaseOutcome(new_arn, current, record, None)
    ws.message("release: every tenant migrated; deploying")
    report = roll_out(
        d,
        "release",
        new_arn,
        current,
        timeout_or_default(ws.settings, request.timeout),
        rollback=request.rollback,
    )
    return ReleaseOutcome(new_arn, current, record, report)

"""`redmica migrate`: every tenant's migration as its own task, paced, collected, resumable."""

from __future__ import annotations

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import (
    complete_cells,
    complete_runs,
    complete_tenants,
    global_options,
    pass_app,
)
from redmica_ops.cli.result import ReportResult
from redmica_ops.runs import migrations
from redmica_ops.runs.pacing import sigint_escalates

HELP_EPILOG = (
    "Exit codes: 0 every selected tenant succeeded; 1 some failed, failed to start, "
    "timed out or were not started; 2 bad input; 3 unknown tenant or run; 5 the run "
    "could not start (cluster, credentials); 130 interrupted (resume with --resume)."
)


@click.command(epilog=HELP_EPILOG)
@click.argument("tenant_ids", nargs=-1, shell_complete=complete_tenants)
@click.option("--all", "all_tenants", is_flag=True, help="every tenant in the config bucket")
@click.option("--exclude", multiple=True, metavar="ID", help="leave this tenant out (repeat)")
@click.option(
    "--include-suspended",
    is_flag=True,
    help="with --all or --cell, migrate suspended tenants too (skipped by default)",
)
@click.option(
    "--command",
    "command_text",
    metavar="CMD",
    help="command to run [default: setting migrate_command]",
)
@click.option(
    "--executor",
    type=click.Choice(["ecs", "local"]),
    default=None,
    help="ECS RunTask (default) or a local process per tenant",
)
@click.option("--concurrency", type=click.IntRange(1, 10_000), help="tasks in flight at most")
@click.option("--rate", type=click.FloatRange(min=0.01), help="launches per second")
@click.option("--timeout", type=click.FloatRange(min=1), help="seconds before a task is stopped")
@click.option(
    "--max-failures",
    type=click.IntRange(1),
    metavar="K",
    help="stop launching after K failures (running tasks finish)",
)
@click.option(
    "--canary",
    type=click.IntRange(1),
    metavar="N",
    help="migrate N tenants first; go on only if all succeed",
)
@click.option(
    "--task-definition",
    metavar="REVISION",
    help="family:revision or ARN to run [default: the revision the service runs]",
)
@click.option(
    "--tenants-per-task",
    type=click.IntRange(1, 100),
    metavar="K",
    help="tenants one task runs in turn [default: setting tenants_per_task]",
)
@click.option(
    "--skip-current",
    is_flag=True,
    help="leave out tenants already migrated with the same migrations (fingerprint)",
)
@click.option("--dry-run", is_flag=True, help="print the plan and the cost estimate; do nothing")
@click.option("--no-wait", is_flag=True, help="launch, save the record, print the run id")
@click.option(
    "--resume",
    metavar="RUN_ID",
    shell_complete=complete_runs,
    help="re-attach to a run and finish it",
)
@click.option(
    "--only-failed",
    metavar="RUN_ID",
    shell_complete=complete_runs,
    help="re-run the failed tenants of a run",
)
@click.option(
    "--cell",
    metavar="CELL",
    shell_complete=complete_cells,
    help="every tenant of this cell, with the revision the cell runs (docs/cells.md)",
)
@global_options(hidden=True)
@pass_app
def migrate(
    app: Application,
    tenant_ids: tuple[str, ...],
    all_tenants: bool,
    exclude: tuple[str, ...],
    include_suspended: bool,
    command_text: str | None,
    executor: str | None,
    concurrency: int | None,
    rate: float | None,
    timeout: float | None,
    max_failures: int | None,
    canary: int | None,
    task_definition: str | None,
    tenants_per_task: int | None,
    skip_current: bool,
    dry_run: bool,
    no_wait: bool,
    resume: str | None,
    only_failed: str | None,
    cell: str | None,
) -> ReportResult:
    """Migrate tenant databases: one task per tenant, paced to AWS's limits.

    Each tenant's task runs `redmica entrypoint run-tenant ID -- CMD` in the app image, so the
    task override carries the tenant id (and the run id), never a password. The task writes
    the tenant's result (exit code, image, the last output lines with secrets masked) to
    runs/<id>/results/ in the config bucket. Tasks run the revision the service runs (setting
    service), or --task-definition; never the family's newest by accident. Launches follow a
    token bucket (default: Fargate's 100 burst, 20/s) and a cap on tasks in flight; one
    polling loop collects every result; a failure never stops the others (unless
    --max-failures or --canary). The run record is kept in the config bucket
    (runs/<id>.json). A run is finished only when every tenant has a final status: Ctrl-C,
    an AWS error or a crash leaves it interrupted, and `--resume RUN_ID` finishes it without
    starting anything twice. --dry-run checks every setting the run needs and prints the
    revision and image it would run.

    \b
    Examples:
      redmica migrate --all --dry-run
      redmica migrate --all --canary 5 --max-failures 10
      redmica migrate acme globex --command "bundle exec rake redmine:plugins:migrate"
      redmica migrate --only-failed 20261126T060000Z-1a2b3c
      redmica migrate --all --executor local --output json
      redmica migrate --cell b --canary 2
      redmica migrate --all --tenants-per-task 5 --skip-current
    """
    request = migrations.MigrationRequest(
        tenants=tenant_ids,
        all_tenants=all_tenants,
        exclude=exclude,
        include_suspended=include_suspended,
        command=command_text,
        executor=executor,
        concurrency=concurrency,
        rate=rate,
        timeout=timeout,
        max_failures=max_failures,
        canary=canary,
        dry_run=dry_run,
        task_definition=task_definition,
        tenants_per_task=tenants_per_task,
        skip_current=skip_current,
        wait=not no_wait,
        resume=resume,
        only_failed=only_failed,
        cell=cell,
    )
    ws = app.workspace()
    with sigint_escalates(ws.cancellation):
        outcome = migrations.run(request, ws)
    return ReportResult(outcome.report())

"""`redmica deploy | reload | rollback | release | status`: rolling updates of the ECS service.

Each command builds its verb's request and dispatches to `redmica_ops.deploy.<verb>.run`; the
results are shown as the library builds them (`deploy/report.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from redmica_ops.cli import waves
from redmica_ops.cli.app import Application
from redmica_ops.cli.options import confirm, global_options, pass_app, yes_option

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output
    from redmica_ops.cli.result import CommandResult

F = TypeVar("F", bound=Callable[..., object])


WAIT_OPTIONS = [
    click.option(
        "--timeout",
        type=click.FloatRange(min=1),
        help="seconds to wait [default: setting deploy_timeout, 1800]",
    ),
    click.option("--no-wait", is_flag=True, help="start the deployment and return"),
]


def _target(app: Application, cells: tuple[str, ...]) -> str:
    """What a confirmation names: the cells in waves, or the one service."""
    if waves.wants_cells(app, cells):
        from redmica_ops.cells.config import cell_map

        known = cell_map(app.settings)
        names = [c.name for c in known.select(cells)] if cells else known.names()
        return f"cell(s) {', '.join(names)} in waves"
    return _service(app)


def _service(app: Application) -> str:
    """How a confirmation names the target; a missing setting fails before anyone is asked."""
    from redmica_ops.settings import require

    settings = app.settings
    require(settings, ["cluster", "service"], "deployments need")
    return f"service {settings.service} in cluster {settings.cluster}"


def wait_options(func: F) -> F:
    for option in reversed(WAIT_OPTIONS):
        func = option(func)
    return func


@click.command()
@click.option("--image", required=True, metavar="URI", help="the new container image")
@click.option("--container", help="container whose image changes [default: setting container]")
@wait_options
@click.option("--no-rollback", is_flag=True, help="on failure, leave the service as it is")
@yes_option
@waves.cell_options(waves=True)
@click.option(
    "--diff",
    "--dry-run",
    "diff",
    is_flag=True,
    help="show what would change and stop: exit 0 no change, 1 changes, 2 error",
)
@global_options(hidden=True)
@pass_app
def deploy(
    app: Application,
    image: str,
    container: str | None,
    timeout: float | None,
    no_wait: bool,
    no_rollback: bool,
    yes: bool,
    cells: tuple[str, ...],
    canary_cell: str | None,
    max_parallel_cells: int | None,
    diff: bool,
) -> CommandResult:
    """Deploy a new image: a new task definition revision, then a rolling update.

    The new revision equals the service's current one except the container's image (roles,
    environment, secrets, the log-router sidecar and sizes are kept). The update enables the
    deployment circuit breaker. redmica then follows the deployment it created: success only
    when that deployment completed; a failed, replaced or rolled-back rollout is a failure
    (exit 1), and the service is rolled back to the previous revision unless --no-rollback.
    Asks first on a terminal (--yes for scripts).

    With cells (docs/cells.md) the canary cell goes first, then the others in waves of
    --max-parallel-cells, each wave only after the previous one succeeded; a failure stops
    the rollout and rolls back every cell it changed, with a report per cell.

    --diff (or --dry-run) reads the service (with cells: each chosen cell's) and its task
    definition, prints the change (images, environment, secrets by name, sizes) and registers
    nothing: exit 0 when nothing would change, 1 when something would, 2 when it cannot tell
    (so CI can gate on it). --image must be an image reference with a tag or digest.

    \b
    Examples:
      redmica deploy --image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/redmica:2026.11.26
      redmica deploy --image registry.example.com/redmica:v6 --yes --timeout 900 --output json
      redmica deploy --image registry.example.com/redmica:v6 --canary-cell a --max-parallel-cells 2
      redmica deploy --image registry.example.com/redmica:v7 --diff
    """
    from redmica_ops.cli.result import ReportResult
    from redmica_ops.deploy import deploy as verb
    from redmica_ops.deploy.model import require_container_flag, require_image_reference
    from redmica_ops.deploy.report import rollout_report

    require_container_flag(container)  # an empty --container is never "the default"
    if diff:
        return _plan(app, image, container, cells)
    target = _target(app, cells)  # a missing setting fails first,
    require_image_reference(image)  # then a bad image, both before the question
    confirm(app, f"deploy {image} to {target}", yes)
    if waves.wants_cells(app, cells):
        waves.refuse_no_wait(no_wait)
        return waves.run(
            app,
            waves.wave_request(
                app,
                "deploy",
                cells,
                canary_cell,
                max_parallel_cells,
                image=image,
                container=container,
                timeout=timeout,
                rollback=not no_rollback,
            ),
        )

    request = verb.DeployRequest(
        image, container, timeout=timeout, wait=not no_wait, rollback=not no_rollback
    )
    return ReportResult(rollout_report(verb.run(request, app.workspace())))


def _plan(
    app: Application, image: str, container: str | None, cells: tuple[str, ...]
) -> CommandResult:
    from redmica_ops.cli.result import Done
    from redmica_ops.deploy import plan
    from redmica_ops.errors import ExitCode, RedmicaError

    request = plan.DiffRequest(image, container)
    outcome: plan.DeployPlan | plan.FleetPlan
    try:
        if waves.wants_cells(app, cells):
            fleet = app.workspace().fleet()
            chosen = fleet.cells.select(cells) if cells else list(fleet.cells.cells)
            outcome = plan.run_cells(request, fleet, chosen)
        else:
            outcome = plan.run(request, app.workspace())
    except RedmicaError as error:
        # --diff follows copilot's convention for CI gates: 2 means "could not tell".
        error.exit_code = ExitCode.USAGE
        raise
    lines = outcome.lines()

    def text(out: Output) -> None:
        for line in lines:
            out.text(line)

    return Done(outcome.as_dict(), text=text, code=outcome.exit_code)


@click.command()
@wait_options
@waves.cell_options(waves=True)
@global_options(hidden=True)
@pass_app
def reload(
    app: Application,
    timeout: float | None,
    no_wait: bool,
    cells: tuple[str, ...],
    canary_cell: str | None,
    max_parallel_cells: int | None,
) -> CommandResult:
    """Restart every task with the current revision (a forced new deployment).

    Containers read the tenant list when they start, so this is how a new or changed tenant's
    vhost goes live. Same waiting and reporting as `deploy`.

    \b
    Examples:
      redmica reload
      redmica reload --no-wait
      redmica reload --cell b
    """
    from redmica_ops.cli.result import ReportResult
    from redmica_ops.deploy import reload as verb
    from redmica_ops.deploy.report import rollout_report

    if waves.wants_cells(app, cells):
        waves.refuse_no_wait(no_wait)
        wave_request = waves.wave_request(
            app, "reload", cells, canary_cell, max_parallel_cells, timeout=timeout, rollback=False
        )
        return waves.run(app, wave_request)

    request = verb.ReloadRequest(timeout=timeout, wait=not no_wait)
    return ReportResult(rollout_report(verb.run(request, app.workspace())))


@click.command()
@click.option(
    "--to",
    "to",
    metavar="REVISION",
    help="revision number, family:revision or ARN [default: the previous revision]",
)
@wait_options
@yes_option
@waves.cell_options(waves=True)
@global_options(hidden=True)
@pass_app
def rollback(
    app: Application,
    to: str | None,
    timeout: float | None,
    no_wait: bool,
    cells: tuple[str, ...],
    canary_cell: str | None,
    max_parallel_cells: int | None,
    yes: bool,
) -> CommandResult:
    """Roll the service back to the previous task definition revision (or --to).

    The previous revision is the highest ACTIVE revision of the service's task definition
    family below the one it runs. This does not revert database migrations. Asks first on a
    terminal (--yes for scripts).

    \b
    Examples:
      redmica rollback
      redmica rollback --to 41 --yes
      redmica rollback --cell a
    """
    from redmica_ops.cli.result import Done, ReportResult
    from redmica_ops.deploy import rollback as verb
    from redmica_ops.deploy.model import require_revision_reference, revision_name
    from redmica_ops.deploy.report import rollout_report

    if to is not None:
        require_revision_reference(to)  # `--to ''` is a mistake, never "the previous one"
    target = _target(app, cells)
    if to is not None and not yes and app.interactive() and not waves.wants_cells(app, cells):
        # A revision that does not exist is said before the question, not after a yes (only
        # when someone will be asked: a refusal without a terminal still calls nothing).
        to = verb.resolve_target(to, app.workspace())
    what = f"revision {revision_name(to)}" if to else "the previous revision"
    confirm(app, f"roll {target} back to {what}", yes)
    if waves.wants_cells(app, cells):
        waves.refuse_no_wait(no_wait)
        request = waves.wave_request(
            app, "rollback", cells, canary_cell, max_parallel_cells, to=to, timeout=timeout
        )
        return waves.run(app, request)

    outcome = verb.run(verb.RollbackRequest(to, timeout, wait=not no_wait), app.workspace())
    if outcome.report is None:
        return Done(
            {
                "action": "rollback",
                "ok": True,
                "result": "unchanged",
                "reason": "the service already runs this revision",
                "task_definition": outcome.target,
            }
        )
    return ReportResult(rollout_report(outcome.report))


@click.command()
@click.option("--image", required=True, metavar="URI", help="the new container image")
@click.option("--container", help="container whose image changes [default: setting container]")
@click.option(
    "--max-failures",
    type=click.IntRange(1),
    metavar="K",
    help="migration gate: stop launching after K failures",
)
@click.option(
    "--canary", type=click.IntRange(1), metavar="N", help="migration gate: migrate N tenants first"
)
@click.option("--concurrency", type=click.IntRange(1), help="migration tasks in flight")
@click.option(
    "--migrate-timeout",
    type=click.FloatRange(min=1),
    help="seconds before a migration task is stopped",
)
@click.option("--timeout", type=click.FloatRange(min=1), help="seconds to wait for the deploy")
@click.option("--no-rollback", is_flag=True, help="on a failed deploy, leave the service as is")
@yes_option
@waves.cell_options(waves=True)
@global_options(hidden=True)
@pass_app
def release(
    app: Application,
    image: str,
    container: str | None,
    max_failures: int | None,
    canary: int | None,
    concurrency: int | None,
    migrate_timeout: float | None,
    timeout: float | None,
    no_rollback: bool,
    yes: bool,
    cells: tuple[str, ...],
    canary_cell: str | None,
    max_parallel_cells: int | None,
) -> CommandResult:
    """Release an image: migrate every tenant with it, then deploy it if they all succeeded.

    Registers the new revision, runs `migrate --all` with that revision's image as the gate
    (the failure policy options pass through), and deploys only if every tenant migrated.
    A rollback afterwards does not revert the migrations. Asks first on a terminal (--yes
    for scripts).

    With cells, the release goes cell by cell in waves (canary cell first): each cell's
    tenants are migrated with the cell's new revision, then that cell is deployed; a cell whose
    migrations fail is not deployed and stops the rollout, like a failed deployment.

    \b
    Examples:
      redmica release --image registry.example.com/redmica:v6 --canary 5 --max-failures 10
      redmica release --image registry.example.com/redmica:v6 --yes
      redmica release --image registry.example.com/redmica:v6 --canary-cell a
    """
    from redmica_ops.cli.result import ReportResult
    from redmica_ops.deploy import release as verb
    from redmica_ops.deploy.model import require_container_flag, require_image_reference
    from redmica_ops.deploy.report import release_report
    from redmica_ops.runs.pacing import sigint_escalates

    require_container_flag(container)  # an empty --container is never "the default"
    target = _target(app, cells)  # a missing setting fails first,
    require_image_reference(image)  # then a bad image, both before the question
    confirm(app, f"migrate every tenant with {image}, then deploy it to {target}", yes)
    if waves.wants_cells(app, cells):
        from redmica_ops.cells.waves import MigrationOptions
        from redmica_ops.deploy.rollout import MIGRATION_NOTE

        app.output.info(MIGRATION_NOTE)
        wave_request = waves.wave_request(
            app,
            "release",
            cells,
            canary_cell,
            max_parallel_cells,
            image=image,
            container=container,
            timeout=timeout,
            rollback=not no_rollback,
        )
        options = MigrationOptions(max_failures, canary, concurrency, migrate_timeout)
        return waves.run(app, wave_request, migrate=options)

    request = verb.ReleaseRequest(
        image,
        container,
        max_failures=max_failures,
        canary=canary,
        concurrency=concurrency,
        migrate_timeout=migrate_timeout,
        timeout=timeout,
        rollback=not no_rollback,
    )
    ws = app.workspace()
    with sigint_escalates(ws.cancellation):
        return ReportResult(release_report(verb.run(request, ws)))


@click.command()
@click.option(
    "--events",
    default=10,
    show_default=True,
    type=click.IntRange(0),
    help="recent service events to show",
)
@waves.cell_options(waves=False)
@global_options(hidden=True)
@pass_app
def status(app: Application, events: int, cells: tuple[str, ...]) -> CommandResult:
    """Show the service: deployments with counts and rollout state, and recent events.

    \b
    Examples:
      redmica status
      redmica status --output json | jq '.deployments'
      redmica status --cell a --events 0
    """
    from redmica_ops.cli.result import ReportResult
    from redmica_ops.deploy import status as verb
    from redmica_ops.deploy.report import status_report

    if waves.wants_cells(app, cells):
        return waves.status(app, cells, events)

    return ReportResult(status_report(verb.run(verb.StatusRequest(events), app.workspace())))

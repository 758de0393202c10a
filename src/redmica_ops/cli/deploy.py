"""`redmica deploy | reload | rollback | release | status`: rolling updates of the ECS service.

Each command builds its verb's request and dispatches to `redmica_ops.deploy.<verb>.run`; the
results are shown as the library builds them (`deploy/report.py`).
"""

from __future__ import annotations

import click

from redmica_ops.cells.waves import WaveOptions, target_of
from redmica_ops.cli.app import Application
from redmica_ops.cli.options import (
    cell_options,
    confirm,
    global_options,
    pass_app,
    probe_options,
    wait_options,
    wave_options,
    yes_option,
)
from redmica_ops.cli.result import ReportResult
from redmica_ops.deploy import deploy as deploy_verb
from redmica_ops.deploy import plan as plan_verb
from redmica_ops.deploy import release as release_verb
from redmica_ops.deploy import reload as reload_verb
from redmica_ops.deploy import rollback as rollback_verb
from redmica_ops.deploy import status as status_verb
from redmica_ops.deploy.model import (
    require_container_flag,
    require_image_reference,
    require_revision_reference,
    revision_name,
)
from redmica_ops.deploy.report import (
    fleet_status_report,
    plan_report,
    release_plan_report,
    wave_report,
)
from redmica_ops.probe.gate import WaveProbe


@click.command()
@click.option("--image", required=True, metavar="URI", help="the new container image")
@click.option("--container", help="container whose image changes [default: setting container]")
@wait_options
@click.option("--no-rollback", is_flag=True, help="on failure, leave the service as it is")
@yes_option
@wave_options
@probe_options
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
    waves: WaveOptions,
    probe: WaveProbe,
    diff: bool,
) -> ReportResult:
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

    With --max-probe-failures N (or the setting max_probe_failures) each wave's sites are
    probed once its cells are deployed (docs/probe.md): more than N failed sites stop the
    later waves, and the failed wave, like every cell already changed, is rolled back; the
    report names the failed tenants. --no-probe turns the setting's probe off.

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
      redmica deploy --image registry.example.com/redmica:v8 --max-probe-failures 0
    """
    require_container_flag(container)  # an empty --container is never "the default"
    ws = app.workspace()
    if diff:
        return ReportResult(
            plan_report(plan_verb.run(plan_verb.DiffRequest(image, container, waves.cells), ws))
        )
    target = target_of(waves, ws)  # a missing setting fails first,
    require_image_reference(image)  # then a bad image, both before the question
    confirm(app, f"deploy {image} to {target}", yes)
    request = deploy_verb.DeployRequest(
        image,
        container,
        timeout,
        wait=not no_wait,
        rollback=not no_rollback,
        waves=waves,
        probe=probe,
    )
    return ReportResult(wave_report(deploy_verb.run(request, ws)))


@click.command()
@wait_options
@yes_option
@wave_options
@global_options(hidden=True)
@pass_app
def reload(
    app: Application,
    timeout: float | None,
    no_wait: bool,
    yes: bool,
    waves: WaveOptions,
) -> ReportResult:
    """Restart every task with the current revision (a forced new deployment).

    Containers read the tenant list when they start, so this is how a new or changed tenant's
    vhost goes live. Same waiting and reporting as `deploy`. Every task restarts, so it asks
    first on a terminal (--yes for scripts).

    \b
    Examples:
      redmica reload --yes
      redmica reload --no-wait --yes
      redmica reload --cell b
    """
    ws = app.workspace()
    confirm(app, f"restart every task of {target_of(waves, ws)}", yes)
    request = reload_verb.ReloadRequest(timeout, wait=not no_wait, waves=waves)
    return ReportResult(wave_report(reload_verb.run(request, ws)))


@click.command()
@click.option(
    "--to",
    "to",
    metavar="REVISION",
    help="revision number, family:revision or ARN [default: the last revision that "
    "completed a deployment of the service; exit 3 where ECS cannot say]",
)
@wait_options
@yes_option
@wave_options
@global_options(hidden=True)
@pass_app
def rollback(
    app: Application,
    to: str | None,
    timeout: float | None,
    no_wait: bool,
    waves: WaveOptions,
    yes: bool,
) -> ReportResult:
    """Roll the service back to the revision that last completed a deployment (or --to).

    That is the last revision that completed a deployment of the service (ECS's service
    deployments: SUCCESSFUL), numbered below the one it runs and still ACTIVE; a revision that
    failed or was rolled back is never chosen, however recent. Where ECS cannot say (the
    sandbox), it exits 3 with the active revisions: give one with --to. With cells, --to goes
    with one cell (--cell NAME): each cell's family numbers its revisions apart. This does not
    revert database migrations. Asks first on a terminal (--yes for scripts).

    \b
    Examples:
      redmica rollback
      redmica rollback --to 41 --yes
      redmica rollback --cell a
    """
    if to is not None:
        require_revision_reference(to)  # `--to ''` is a mistake, never "the previous one"
    ws = app.workspace()
    request = rollback_verb.RollbackRequest(to, timeout, wait=not no_wait, waves=waves)
    target = target_of(waves, ws)
    if to is not None and not yes and app.interactive():
        # A revision that does not exist is said before the question, not after a yes (only
        # when someone will be asked: a refusal without a terminal still calls nothing).
        request = rollback_verb.resolve_target(request, ws)
    what = f"revision {revision_name(request.to)}" if request.to else "the last completed revision"
    confirm(app, f"roll {target} back to {what}", yes)
    return ReportResult(wave_report(rollback_verb.run(request, ws)))


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
@click.option(
    "--dry-run",
    is_flag=True,
    help="print the plan (gate, waves, cells, image) and stop: nothing registered or run",
)
@yes_option
@wave_options
@probe_options
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
    dry_run: bool,
    yes: bool,
    waves: WaveOptions,
    probe: WaveProbe,
) -> ReportResult:
    """Release an image: migrate every tenant with it, then deploy it if they all succeeded.

    Registers the new revision, runs `migrate --all` with that revision's image as the gate
    (the failure policy options pass through), and deploys only if every tenant migrated.
    A rollback afterwards does not revert the migrations. Asks first on a terminal (--yes
    for scripts).

    With cells, the release goes cell by cell in waves (canary cell first): each cell's
    tenants are migrated with the cell's new revision, then that cell is deployed; a cell whose
    migrations fail is not deployed and stops the rollout, like a failed deployment.

    With --max-probe-failures N (or the setting max_probe_failures) each wave's sites are
    probed once its cells are deployed (docs/probe.md): more than N failed sites stop the
    later waves and roll the deployed cells back, as a failed deployment does; the report
    names the failed tenants. --no-probe turns the setting's probe off.

    --dry-run prints the plan: the image and container, the gate's policy, each wave's cells
    with the revision they run and how many tenants each would migrate; it only reads.

    \b
    Examples:
      redmica release --image registry.example.com/redmica:v6 --canary 5 --max-failures 10
      redmica release --image registry.example.com/redmica:v6 --yes
      redmica release --image registry.example.com/redmica:v6 --canary-cell a
      redmica release --image registry.example.com/redmica@sha256:... --max-probe-failures 2
      redmica release --image registry.example.com/redmica:v6 --dry-run
    """
    require_container_flag(container)  # an empty --container is never "the default"
    ws = app.workspace()
    target = target_of(waves, ws)  # a missing setting fails first,
    require_image_reference(image)  # then a bad image, both before the question
    if not dry_run:
        confirm(app, f"migrate every tenant with {image}, then deploy it to {target}", yes)
    request = release_verb.ReleaseRequest(
        image,
        container,
        max_failures=max_failures,
        canary=canary,
        concurrency=concurrency,
        migrate_timeout=migrate_timeout,
        timeout=timeout,
        rollback=not no_rollback,
        waves=waves,
        probe=probe,
    )
    if dry_run:
        return ReportResult(release_plan_report(release_verb.plan(request, ws)))
    return ReportResult(wave_report(release_verb.run(request, ws)))


@click.command()
@click.option(
    "--events",
    default=10,
    show_default=True,
    type=click.IntRange(0),
    help="recent service events to show",
)
@cell_options(waves=False)
@global_options(hidden=True)
@pass_app
def status(app: Application, events: int, cells: tuple[str, ...]) -> ReportResult:
    """Show the service: deployments with counts and rollout state, and recent events.

    \b
    Examples:
      redmica status
      redmica status --output json | jq '.deployments'
      redmica status --cell a --events 0
    """
    request = status_verb.StatusRequest(events, cells)
    return ReportResult(fleet_status_report(status_verb.run(request, app.workspace())))

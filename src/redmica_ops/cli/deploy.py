"""`redmica deploy | reload | rollback | release | status`: rolling updates of the ECS service."""

from __future__ import annotations

from typing import Any

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.errors import UsageError

MIGRATION_NOTE = (
    "note: rolling back the service does not revert database migrations; the "
    "previous image then runs on the migrated schema"
)


def deployer(app: Application) -> Any:
    from redmica_ops.deploy import ServiceDeployer, ServiceTarget
    from redmica_ops.runs.pacing import Cancellation
    from redmica_ops.settings import require

    settings = app.settings
    require(settings, ["cluster", "service"], "deployments need")
    clock = app.make_clock(Cancellation())
    out = app.output
    return ServiceDeployer(
        app.clients().ecs(),
        ServiceTarget(str(settings.cluster), str(settings.service)),
        clock,
        progress=lambda text: out.info(text),
    )


def register_image(app: Application, d: Any, container: str | None, image: str) -> tuple[str, str]:
    """(the service's current revision, a new one that differs only in the image)."""
    name = container or app.settings.container
    if not name:
        raise UsageError("which container gets the image? give --container or set container")
    current = str(d.service()["taskDefinition"])
    new_arn, _ = d.register_with_image(current, name, image)
    d.progress(f"registered {new_arn.rsplit('/', 1)[-1]} ({name} -> {image})")
    return current, new_arn


def finish(app: Application, report: Any) -> None:
    """Print the final state; exit 1 for any failed rollout (rolled back or not)."""
    from redmica_ops.deploy import revision_name

    out = app.output
    if app.json:
        out.data(report.as_dict())
    elif report.ok:
        out.success(
            f"{report.action}: {report.reason} "
            f"({revision_name(str(report.task_definition))}, "
            f"deployment {report.deployment_id})"
        )
    else:
        out.info(f"error: {report.action} FAILED: {report.result}: {report.reason}")
        if report.rolled_back_to:
            out.info(
                f"rolled back to {revision_name(report.rolled_back_to)}: {report.rollback_result}"
            )
        elif report.result != "started":
            out.info("the service was NOT rolled back (--no-rollback, or nothing to go back to)")
        if report.events:
            out.info("recent service events:")
            for message in report.events:
                out.info(f"  {message}")
        if report.stopped_tasks:
            out.info("recently stopped tasks:")
            for line in report.stopped_tasks:
                out.info(f"  {line}")
    if not report.ok:
        raise click.exceptions.Exit(1)


def _timeout(app: Application, timeout: float | None) -> float:
    return float(timeout if timeout is not None else app.settings.deploy_timeout)


WAIT_OPTIONS = [
    click.option(
        "--timeout",
        type=click.FloatRange(min=1),
        help="seconds to wait [default: setting deploy_timeout, 1800]",
    ),
    click.option("--no-wait", is_flag=True, help="start the deployment and return"),
]


def wait_options(func: Any) -> Any:
    for option in reversed(WAIT_OPTIONS):
        func = option(func)
    return func


@click.command()
@click.option("--image", required=True, metavar="URI", help="the new container image")
@click.option("--container", help="container whose image changes [default: setting container]")
@wait_options
@click.option("--no-rollback", is_flag=True, help="on failure, leave the service as it is")
@global_options(hidden=True)
@pass_app
def deploy(
    app: Application,
    image: str,
    container: str | None,
    timeout: float | None,
    no_wait: bool,
    no_rollback: bool,
) -> None:
    """Deploy a new image: a new task definition revision, then a rolling update.

    The new revision equals the service's current one except the container's image (roles,
    environment, secrets, the log-router sidecar and sizes are kept). The update enables the
    deployment circuit breaker. redmica then follows the deployment it created: success only
    when that deployment completed; a failed, replaced or rolled-back rollout is a failure
    (exit 1), and the service is rolled back to the previous revision unless --no-rollback.

    \b
    Examples:
      redmica deploy --image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/redmica:2026.11.26
      redmica deploy --image registry.example.com/redmica:v6 --timeout 900 --output json
    """
    from redmica_ops.deploy import roll_out

    d = deployer(app)
    current, new_arn = register_image(app, d, container, image)
    report = roll_out(
        d,
        "deploy",
        new_arn,
        current,
        _timeout(app, timeout),
        rollback=not no_rollback,
        wait=not no_wait,
    )
    finish(app, report)


@click.command()
@wait_options
@global_options(hidden=True)
@pass_app
def reload(app: Application, timeout: float | None, no_wait: bool) -> None:
    """Restart every task with the current revision (a forced new deployment).

    Containers read the tenant list when they start, so this is how a new or changed tenant's
    vhost goes live. Same waiting and reporting as `deploy`.

    \b
    Examples:
      redmica reload
      redmica reload --no-wait
    """
    report = reload_service(app, timeout, no_wait)
    finish(app, report)


def reload_service(app: Application, timeout: float | None, no_wait: bool) -> Any:
    from redmica_ops.deploy import roll_out

    d = deployer(app)
    current = str(d.service()["taskDefinition"])
    return roll_out(
        d,
        "reload",
        None,
        current,
        _timeout(app, timeout),
        rollback=False,
        wait=not no_wait,
        force=True,
    )


@click.command()
@click.option(
    "--to",
    "to",
    metavar="REVISION",
    help="revision number, family:revision or ARN [default: the previous revision]",
)
@wait_options
@global_options(hidden=True)
@pass_app
def rollback(app: Application, to: str | None, timeout: float | None, no_wait: bool) -> None:
    """Roll the service back to the previous task definition revision (or --to).

    This does not revert database migrations.

    \b
    Examples:
      redmica rollback
      redmica rollback --to 41
    """
    from redmica_ops.deploy import roll_out

    d = deployer(app)
    current = str(d.service()["taskDefinition"])
    target = d.resolve_revision(current, to) if to else d.previous_revision(current)
    if target == current:
        app.output.info(f"the service already runs {target.rsplit('/', 1)[-1]}; nothing to do")
        return
    app.output.info(MIGRATION_NOTE)
    report = roll_out(
        d, "rollback", target, current, _timeout(app, timeout), rollback=False, wait=not no_wait
    )
    finish(app, report)


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
) -> None:
    """Release an image: migrate every tenant with it, then deploy it if they all succeeded.

    Registers the new revision, runs `migrate --all` with that revision's image as the gate
    (the failure policy options pass through), and deploys only if every tenant migrated.
    A rollback afterwards does not revert the migrations.

    \b
    Examples:
      redmica release --image registry.example.com/redmica:v6 --canary 5 --max-failures 10
    """
    from redmica_ops.cli.migrate import run_migration
    from redmica_ops.deploy import roll_out
    from redmica_ops.runs import migrations as lib

    d = deployer(app)
    current, new_arn = register_image(app, d, container, image)
    out = app.output
    out.info("release: migrating every tenant with the new revision")
    out.info(MIGRATION_NOTE)
    app.override("task_definition", new_arn)
    record = run_migration(
        app,
        all_tenants=True,
        max_failures=max_failures,
        canary=canary,
        concurrency=concurrency,
        timeout=migrate_timeout,
    )
    if lib.exit_code_for(record) != 0:
        out.info(
            f"error: release stopped: the migration gate did not pass (run "
            f"{record.run_id}); {new_arn.rsplit('/', 1)[-1]} is registered but NOT deployed"
        )
        raise click.exceptions.Exit(lib.exit_code_for(record))
    out.info("release: every tenant migrated; deploying")
    report = roll_out(
        d, "release", new_arn, current, _timeout(app, timeout), rollback=not no_rollback
    )
    finish(app, report)


@click.command()
@click.option(
    "--events",
    default=10,
    show_default=True,
    type=click.IntRange(0),
    help="recent service events to show",
)
@global_options(hidden=True)
@pass_app
def status(app: Application, events: int) -> None:
    """Show the service: deployments with counts and rollout state, and recent events.

    \b
    Examples:
      redmica status
      redmica status --output json | jq '.deployments'
    """
    from redmica_ops.deploy import DeploymentView, event_time, revision_name

    service = deployer(app).service()
    views = [DeploymentView.of(d) for d in service.get("deployments", [])]
    recent = [
        {"at": event_time(e), "message": e.get("message")}
        for e in service.get("events", [])[:events]
    ]
    if app.json:
        app.output.data(
            {
                "service": service.get("serviceName"),
                "status": service.get("status"),
                "task_definition": service.get("taskDefinition"),
                "desired": service.get("desiredCount"),
                "running": service.get("runningCount"),
                "pending": service.get("pendingCount"),
                "deployments": [v.as_dict() for v in views],
                "events": recent,
            }
        )
        return
    out = app.output
    out.text(
        f"service {service.get('serviceName')} ({service.get('status')}): "
        f"{revision_name(str(service.get('taskDefinition')))}, desired "
        f"{service.get('desiredCount')}, running {service.get('runningCount')}, pending "
        f"{service.get('pendingCount')}"
    )
    out.table(
        ["deployment", "status", "revision", "desired", "running", "pending", "rollout"],
        [
            [
                v.id,
                v.status,
                revision_name(v.task_definition),
                v.desired,
                v.running,
                v.pending,
                v.rollout_state or "",
            ]
            for v in views
        ],
    )
    for event in recent:
        out.text(f"{event['at']}  {event['message']}")

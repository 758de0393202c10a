"""`redmica entrypoint ...`: what the container runs (ENTRYPOINT ["redmica", "entrypoint"])."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.result import Done
from redmica_ops.container.keys import without_master
from redmica_ops.container.plan import VhostsRequest, install, plan_vhosts, serve_lines
from redmica_ops.errors import RedmicaError
from redmica_ops.lifecycle.admin_task import run_admin_request
from redmica_ops.runs.in_task import InTaskRequest, exec_plan, run_in_task


@click.group()
def entrypoint() -> None:
    """Container entry points: serve every tenant, or run a command as one tenant.

    \b
    Examples:
      redmica entrypoint serve
      redmica entrypoint run-tenant acme -- bundle exec rake db:migrate
    """


@command(entrypoint, "serve")
@click.option(
    "--strict",
    is_flag=True,
    help="refuse to start if any tenant is invalid (default: skip it loudly)",
)
@click.option("--no-check", is_flag=True, help="skip the Apache config test")
@click.option(
    "--cell",
    metavar="CELL",
    help="serve only this cell's tenants [default: setting cell; unset: every tenant]",
)
@pass_app
def serve(app: Application, strict: bool, no_check: bool, cell: str | None) -> Done:
    """Render every tenant's vhost from the config bucket, test it, then exec Apache.

    The Passenger pool is sized from the task's memory (the ECS task metadata endpoint, else
    the setting serve_memory_mib), never from the tenant count; explicit settings win, with a
    warning when they cannot fit (docs/capacity.md).

    Writes the vhosts file (setting vhosts_file) atomically with mode 0600, runs the Apache
    config test, and replaces this process with Apache in the foreground (setting
    serve_command), so signals from ECS reach Apache directly. An invalid tenant, or one
    clashing with another, is skipped with an error naming it and why, unless --strict.
    With --cell (or REDMICA_CELL), only the tenants whose property.cell names this cell (or
    that are moving away from it) are served; the others belong to other cells.

    \b
    Examples:
      redmica entrypoint serve
      REDMICA_CELLS=a=redmica-a,b=redmica-b redmica entrypoint serve --cell b
      REDMICA_SERVE_COMMAND="httpd -DFOREGROUND" redmica entrypoint serve --strict
    """
    settings = app.settings
    request = VhostsRequest(strict, cell=cell, serving=True, environ=app.env)
    plan = plan_vhosts(request, app.workspace())
    out = app.output
    for line in serve_lines(plan):
        out.info(line)
    target = Path(settings.vhosts_file)
    install(plan, target, not no_check, settings.apache_bin)
    out.info(plan.starting(target, settings.serve_command))
    # Apache and every Passenger process inherit this environment: never the master secret.
    app.exec_process(shlex.split(settings.serve_command), without_master(app.env))
    # Reached only when exec_process returns (tests): what this process would have become.
    return Done(plan.serving(target, settings.serve_command))


@command(entrypoint, "run-tenant", context_settings={"ignore_unknown_options": True})
@click.argument("tenant_id")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_app
def run_tenant(app: Application, tenant_id: str, argv: tuple[str, ...]) -> Done:
    """Run a command with one tenant's environment (what migration tasks run).

    Reads the tenant's document from the config bucket and execs the command with the same
    variables as the tenant's vhost (RAILS_DB, RAILS_DB_PASSWORD, S3_FOLDER_NAME, ...). So an
    ECS RunTask override carries only the tenant id, never a password. Inside a migrate run
    (REDMICA_RUN_ID set) it runs the command as a child instead, and writes the tenant's
    result (exit code, image, the last output lines with secrets masked) to
    runs/<run>/results/; TENANT_ID may then be several ids, comma-separated, run in turn.

    \b
    Examples:
      redmica entrypoint run-tenant acme -- bundle exec rake db:migrate redmine:plugins:migrate
      redmica entrypoint run-tenant acme -- bin/rails runner 'puts Project.count'
    """
    command_line = argv[1:] if argv and argv[0] == "--" else argv
    if not command_line:
        raise click.UsageError("give the command after --, e.g. -- bundle exec rake db:migrate")
    ids = tuple(t for t in tenant_id.split(",") if t)
    request = InTaskRequest(ids or (tenant_id,), command_line, app.env)
    ws = app.workspace()
    if request.run_id:
        outcome = run_in_task(request, ws, sys.stdout.buffer)
        return Done(outcome.as_dict(), code=outcome.exit_code)
    command_argv, env = exec_plan(request, ws)
    app.exec_process(command_argv, env)
    return Done({"tenant": tenant_id, "command": command_argv})


@command(entrypoint, "admin-sql")
@click.argument("request_id")
@pass_app
def admin_sql(app: Application, request_id: str) -> Done:
    """Run one tenant-lifecycle database step (what `--executor ecs` admin tasks run).

    Takes the step from the config bucket (lifecycle/requests/REQUEST_ID.json: read, then
    deleted, so it runs once; refused, with nothing run, when older than
    admin_request_max_age), reads the RDS-managed master secret (setting db_master_secret,
    from the task definition) from Secrets Manager with the task role, runs the step with
    psql / pg_dump / pg_restore and writes the result (lifecycle/results/REQUEST_ID.json).
    The admin broker starts this task; its override carries only REQUEST_ID.

    \b
    Examples:
      redmica entrypoint admin-sql 20261128T041500Z-acme-backup-1a2b3c4d
    """
    try:
        # A tenant whose password is in a secret: dumps and restores log in as the tenant
        # (the workspace's password resolver, with the task role).
        result = run_admin_request(request_id, app.workspace())
    except RedmicaError as error:
        app.output.info(f"admin-sql {request_id}: failed: {error.message}")
        raise
    app.output.info(f"admin-sql {request_id}: done ({', '.join(sorted(result))})")
    return Done({"request": request_id, "ok": True})

"""`redmica entrypoint ...`: what the container runs (ENTRYPOINT ["redmica", "entrypoint"])."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.result import Done
from redmica_ops.errors import UsageError

if TYPE_CHECKING:
    from redmica_ops.tenants.model import Tenant


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
    from redmica_ops.container.keys import MASTER_SECRET_ENV, master_secret, without_master
    from redmica_ops.container.memory import memory_budget
    from redmica_ops.container.serve import plan_serve
    from redmica_ops.container.vhosts import VhostSettings, write_private

    settings = app.settings
    master = master_secret(app.env)
    if master is None:
        raise UsageError(
            f"{MASTER_SECRET_ENV} is not set: tenants would start without a secret_key_base",
            "pass it with the task definition's `secrets` (see docs/container.md)",
        )
    out = app.output
    budget = memory_budget(settings, app.env)
    if budget.note:
        out.info(f"warning: {budget.note}")
    vhost_settings = VhostSettings.from_settings(settings, budget)
    store = app.workspace().store()
    out.info(f"entrypoint: reading tenants from s3://{store.bucket}/{store.prefix}")
    from redmica_ops.cells.config import cell_map
    from redmica_ops.tenants.selection import CellScope

    cell = cell or settings.cell
    scope = None
    if cell is not None:
        cells = cell_map(settings)
        cells.get(cell)  # an unknown cell is a usage error, before anything is written
        scope = CellScope(cells, cell)
    registry = app.workspace().registry()
    plan = plan_serve(
        store.load_all(),
        vhost_settings,
        strict,
        master_secret=master,
        passwords=app.workspace().passwords(),
        scope=scope,
        claim_owner=registry.claims.owner_of,
        # One listing for every tenant's incarnation (part of its key), no read per tenant.
        incarnations=registry.incarnations.all(),
    )
    pool = plan.pool
    out.info(
        f"entrypoint: pool {pool.max_pool_size} processes ({pool.pool_source}) from "
        f"{pool.memory_mib} MiB ({pool.memory_source}), {pool.process_mib} MiB each, "
        f"{pool.reserve_mib} MiB reserve; spawn {pool.spawn_method}, "
        f"min_instances {pool.min_instances}"
    )
    for warning in pool.warnings:
        out.info(f"warning: {warning}")
    for tenant_id, problems in plan.skipped.items():
        out.info(f"error: tenant {tenant_id} is NOT served:")
        for problem in problems:
            out.info(f"  {problem}")
    for warning in plan.warnings:
        out.info(f"warning: {warning}")
    target = Path(settings.vhosts_file)
    if no_check:
        write_private(target, plan.text)
    else:
        from redmica_ops.container.apache import config_checker

        write_private(target, plan.text, check=config_checker(settings.apache_bin))
    out.info(
        f"entrypoint: {len(plan.served)} tenant(s) in {target}"
        + (f" (cell {cell}; {plan.other_cells} in other cells)" if cell else "")
        + (f", {len(plan.skipped)} skipped" if plan.skipped else "")
        + f"; starting: {settings.serve_command}"
    )
    # Apache and every Passenger process inherit this environment: never the master secret.
    app.exec_process(shlex.split(settings.serve_command), without_master(app.env))
    # Reached only when exec_process returns (tests): what this process would have become.
    return Done(
        {
            "vhosts_file": str(target),
            "served": plan.served,
            "skipped": sorted(plan.skipped),
            "pool": pool.as_dict(),
            "cell": cell,
            "command": settings.serve_command,
        }
    )


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
    from redmica_ops.container.keys import master_secret
    from redmica_ops.tenants.environment import tenant_environment

    command_line = list(argv)
    if command_line and command_line[0] == "--":
        command_line = command_line[1:]
    if not command_line:
        raise click.UsageError("give the command after --, e.g. -- bundle exec rake db:migrate")
    tenant_ids = [t for t in tenant_id.split(",") if t]

    def environment(name: str, tenant: Tenant) -> dict[str, str]:
        """The tenant's variables; a password kept in a secret is read with this task's role."""
        from redmica_ops.tenants.passwords import password_of

        password = password_of(tenant, app.workspace().passwords())
        # The master secret is replaced by the tenant's own key (same name, as Rails reads it).
        master = master_secret(app.env)
        return tenant_environment(
            name,
            tenant,
            app.settings.db_host,
            master_secret=master,
            password=password,
            incarnation=app.workspace().registry().incarnations.of(name) if master else None,
        )

    run_id = app.env.get("REDMICA_RUN_ID")
    if len(tenant_ids) > 1 and not run_id:
        raise UsageError(
            "several tenants run in turn only inside a migrate run (REDMICA_RUN_ID)",
            "run one tenant at a time, or use `redmica migrate --tenants-per-task K`",
        )
    store = app.workspace().store()
    if not run_id:
        stored = store.get(tenant_id)
        env = {**app.env, **environment(tenant_id, stored.tenant)}
        app.output.info(f"entrypoint: running as tenant {tenant_id}: {shlex.join(command_line)}")
        app.exec_process(command_line, env)
        return Done({"tenant": tenant_id, "command": command_line})
    # Part of a migrate run: supervise each tenant's command in turn and leave its result in
    # the bucket, so the run knows it even after ECS has forgotten this task. One tenant's
    # failure never keeps the next from running.
    import sys

    from redmica_ops.errors import RedmicaError
    from redmica_ops.runs.record import utcnow
    from redmica_ops.runs.results import TenantResult, run_and_record

    def now() -> str:
        return utcnow().isoformat()

    attempt = int(app.env.get("REDMICA_ATTEMPT", "1") or "1")
    results = app.workspace().results()
    outcomes: dict[str, int | None] = {}
    for one in tenant_ids:
        try:
            stored = store.get(one)
            tenant_env = environment(one, stored.tenant)
        except RedmicaError as error:
            result = TenantResult(run_id, one, attempt, None, now(), now(), error=error.message)
        else:
            app.output.info(f"entrypoint: running as tenant {one}: {shlex.join(command_line)}")
            result = run_and_record(
                command_line,
                {**app.env, **tenant_env},
                run_id=run_id,
                tenant=one,
                attempt=attempt,
                app_root=app.settings.app_root,
                sink=sys.stdout.buffer,
                now=now,
            )
        key = results.put(result)
        outcomes[one] = result.exit_code
        where = f"s3://{app.workspace().bucket()}/{key}"
        app.output.info(f"entrypoint: {one} exited with {result.exit_code}; result: {where}")
    if len(tenant_ids) == 1:
        code = outcomes[tenant_ids[0]]
        code = 127 if code is None else code
        exit_code = code if code >= 0 else 128 - code
    else:
        exit_code = 0 if all(c == 0 for c in outcomes.values()) else 1
    return Done({"tenants": outcomes, "run_id": run_id}, code=exit_code)


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
    from redmica_ops.errors import RedmicaError
    from redmica_ops.lifecycle.admin_task import run_admin_request

    try:
        # A tenant whose password is in a secret: dumps and restores log in as the tenant
        # (the workspace's password resolver, with the task role).
        result = run_admin_request(request_id, app.workspace())
    except RedmicaError as error:
        app.output.info(f"admin-sql {request_id}: failed: {error.message}")
        raise
    app.output.info(f"admin-sql {request_id}: done ({', '.join(sorted(result))})")
    return Done({"request": request_id, "ok": True})

"""`redmica entrypoint ...`: what the container runs (ENTRYPOINT ["redmica", "entrypoint"])."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.result import Done
from redmica_ops.errors import UsageError


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
@pass_app
def serve(app: Application, strict: bool, no_check: bool) -> Done:
    """Render every tenant's vhost from the config bucket, test it, then exec Apache.

    The Passenger pool is sized from the task's memory (the ECS task metadata endpoint, else
    the setting serve_memory_mib), never from the tenant count; explicit settings win, with a
    warning when they cannot fit (docs/capacity.md).

    Writes the vhosts file (setting vhosts_file) atomically with mode 0600, runs the Apache
    config test, and replaces this process with Apache in the foreground (setting
    serve_command), so signals from ECS reach Apache directly. An invalid tenant, or one
    clashing with another, is skipped with an error naming it and why, unless --strict.

    \b
    Examples:
      redmica entrypoint serve
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
    store = app.store()
    out.info(f"entrypoint: reading tenants from s3://{store.bucket}/{store.prefix}")
    from redmica_ops.tenants.passwords import PasswordResolver

    plan = plan_serve(
        store.load_all(),
        vhost_settings,
        strict,
        master_secret=master,
        passwords=PasswordResolver(app.clients()),
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
    ECS RunTask override carries only the tenant id, never a password.

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
    stored = app.store().get(tenant_id)
    # The master secret is replaced by the tenant's own key (same name, as Rails reads it).
    password = None
    if stored.tenant.db.password_secret is not None:
        from redmica_ops.tenants.passwords import PasswordResolver

        password = PasswordResolver(app.clients()).resolve(stored.tenant.db.password_secret)
    tenant_env = tenant_environment(
        tenant_id,
        stored.tenant,
        app.settings.db_host,
        master_secret=master_secret(app.env),
        password=password,
    )
    env = {**app.env, **tenant_env}
    app.output.info(f"entrypoint: running as tenant {tenant_id}: {shlex.join(command_line)}")
    run_id = app.env.get("REDMICA_RUN_ID")
    if not run_id:
        app.exec_process(command_line, env)
        return Done({"tenant": tenant_id, "command": command_line})
    # Part of a migrate run: supervise the command and leave its result in the bucket, so
    # the run knows it even after ECS has forgotten this task.
    import sys

    from redmica_ops.runs.record import utcnow
    from redmica_ops.runs.results import run_and_record

    attempt = int(app.env.get("REDMICA_ATTEMPT", "1") or "1")
    result = run_and_record(
        command_line,
        env,
        run_id=run_id,
        tenant=tenant_id,
        attempt=attempt,
        app_root=app.settings.app_root,
        sink=sys.stdout.buffer,
        now=lambda: utcnow().isoformat(),
    )
    key = app.workspace().results().put(result)
    app.output.info(
        f"entrypoint: {tenant_id} exited with {result.exit_code}; result: s3://{app.bucket()}/{key}"
    )
    code = 127 if result.exit_code is None else result.exit_code
    return Done(
        {"tenant": tenant_id, "exit_code": result.exit_code, "result": key},
        code=code if code >= 0 else 128 - code,
    )

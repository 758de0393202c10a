"""`redmica tenant add`: create a tenant, never overwriting an existing one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app, provisioning_options
from redmica_ops.cli.result import Done, JSONValue, render_body
from redmica_ops.cli.tenant import tenant
from redmica_ops.errors import UsageError

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output

FLAG_FIELDS = (
    "db_name",
    "db_user",
    "db_host",
    "db_port",
    "s3_bucket",
    "s3_folder",
    "sub_domain",
    "language",
)


def _refuse_plain_password(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
    if value is not None:
        raise click.UsageError(
            "passwords are never accepted as a command-line value (they end up in shell "
            "history and `ps`); use --db-password-stdin or --generate-password",
            ctx,
        )


@command(tenant, "add", exclude_globals=("--db-host",))
@click.argument("tenant_id")
@click.option("-f", "--file", "file", metavar="FILE", help="tenant YAML document ('-' = stdin)")
@click.option("--db-name", help="PostgreSQL database name")
@click.option("--db-user", help="PostgreSQL user")
@click.option("--db-host", "db_host", help="database host (else the db_host setting)")
@click.option("--db-port", type=click.IntRange(1, 65535), help="database port")
@click.option("--s3-bucket", help="attachments bucket")
@click.option("--s3-folder", help="folder of this tenant in the attachments bucket")
@click.option("--sub-domain", help="sub-domain (DNS label) of the tenant's site")
@click.option(
    "--language",
    help="language of Redmine's default data at provisioning (property.language)",
)
@click.option(
    "--limit-ip",
    multiple=True,
    metavar="IP_OR_CIDR",
    help="allowed client address or network (repeat; none = all allowed)",
)
@click.option(
    "--db-password-stdin",
    "password_stdin",
    is_flag=True,
    help="read the password from the first line of stdin (on a terminal: a prompt, no echo)",
)
@click.option(
    "--generate-password", "generate", is_flag=True, help="generate a strong random password"
)
@click.option(
    "--show-generated-password",
    "show_generated",
    is_flag=True,
    help="print the generated password once, on stdout",
)
@click.option(
    "--activate",
    is_flag=True,
    help="then restart the service's tasks so the site goes live (`redmica reload`)",
)
@click.option(
    "--cell",
    metavar="CELL",
    help="put the tenant in this cell [default: property.cell, else the cell with most room]",
)
@click.option(
    "--provision",
    is_flag=True,
    help="then create its database and role, migrate and set its admin (`tenant provision`)",
)
@provisioning_options
@click.option("--db-password", hidden=True, expose_value=False, callback=_refuse_plain_password)
@pass_app
def add(
    app: Application,
    /,
    tenant_id: str,
    file: str | None,
    password_stdin: bool,
    generate: bool,
    show_generated: bool,
    activate: bool,
    limit_ip: tuple[str, ...],
    cell: str | None,
    provision: bool,
    executor: str,
    admin_login: str,
    admin_password_stdin: bool,
    **flags: Any,
) -> Done:
    """Create tenant TENANT_ID from a YAML file, stdin, or flags.

    The write is conditional (If-None-Match): if the tenant already exists nothing is written
    and the exit code is 4. sub_domain, db.name, db.user (and its twin <user>_2),
    db.password_secret and s3 bucket+folder must not be used by another tenant. A password is
    never taken from a flag value.

    \b
    Examples:
      redmica tenant add acme -f acme.yaml
      cat acme.yaml | redmica tenant add acme -f -
      redmica tenant add acme --db-name acme --db-user acme --s3-bucket my-attachments \\
          --s3-folder acme --sub-domain acme --limit-ip 203.0.113.0/24 --generate-password
      pass show db/acme | redmica tenant add acme --db-name acme ... --db-password-stdin
      redmica tenant add acme -f acme.yaml --provision --admin-login alice
      pass show redmine/acme-admin | redmica tenant add acme -f acme.yaml --provision \\
          --admin-password-stdin --language de

    --executor, --admin-login and --admin-password-stdin go with --provision (as in
    `tenant provision`; the language of the default data is --language).
    """
    from redmica_ops.cli.tenant import inputs

    given = [name for name in FLAG_FIELDS if flags.get(name) is not None] + (
        ["limit_ip"] if limit_ip else []
    )
    if file is not None and given:
        raise UsageError(
            f"-f/--file cannot be combined with field flags ({', '.join(given)})",
            "put every field in the file, or use only flags",
        )
    if password_stdin and generate:
        raise UsageError("choose one of --db-password-stdin and --generate-password")
    if password_stdin and file == inputs.STDIN:
        raise UsageError(
            "stdin cannot carry both the document (-f -) and the password",
            "put the password in the document, or the document in a file",
        )
    if admin_password_stdin and not provision:
        raise UsageError(
            "--admin-password-stdin goes with --provision",
            "add --provision, or set the password later with `redmica tenant provision`",
        )
    if admin_password_stdin and (password_stdin or file == inputs.STDIN):
        raise UsageError(
            "stdin cannot carry both the administrator's password and "
            + ("the database password" if password_stdin else "the document (-f -)"),
            "use --generate-password for the database password, or the document in a file",
        )
    if show_generated and not generate:
        raise UsageError("--show-generated-password needs --generate-password")
    if file is None and not given:
        raise UsageError(
            "nothing to add: give -f FILE or the field flags",
            "see `redmica tenant add --help` and `redmica tenant example`",
        )
    if file is None and not (password_stdin or generate):
        raise UsageError("the flag form needs --db-password-stdin or --generate-password")

    admin_password = None
    if admin_password_stdin:  # read now: an empty stdin writes nothing
        from redmica_ops.cli.tenant.lifecycle import read_secret_line

        admin_password = read_secret_line("administrator password")
    stdin = inputs.stdin_bytes()
    if file is not None:
        raw, source = inputs.read_document(file, stdin)
        data = inputs.parse_document(raw, source)
    else:
        source = "(flags)"
        data = inputs.flags_document({**flags, "limit_ip": limit_ip})
    generated = None
    if password_stdin:
        if app.interactive():
            # A person at a terminal: ask, and echo nothing (not even into the scrollback).
            password = app.read_secret(f"Database password for tenant {tenant_id}: ")
            if not password:
                raise UsageError("--db-password-stdin: no password was typed")
        else:
            password = inputs.read_password(stdin)
        inputs.set_password(data, password)
    elif generate:
        generated = inputs.generate_password()
        inputs.set_password(data, generated)
    new = inputs.validated(tenant_id, data, source, flag_form=file is None)
    if provision:
        if activate:
            raise UsageError("--provision activates the site itself; drop --activate")
        # Not served until provisioning is done (the host answers 503 meanwhile).
        new = new.with_status("provisioning")
        from redmica_ops.lifecycle.common import check_roles_unused
        from redmica_ops.lifecycle.provision import precheck

        # Refused before the document is written: exit 4, nothing changed anywhere.
        check_roles_unused(tenant_id, new, app.workspace().tenants())
        precheck(app.workspace().runner(executor), tenant_id, new)

    out = app.output
    fleet = None
    if app.settings.cells or cell is not None or app.settings.hosted_zone_id:
        fleet = app.workspace().fleet()
        fleet.routing_ready()  # every cell's load balancer now: a routing problem writes nothing
        new = fleet.assign(new, app.workspace().tenants().entries(), cell)
    outcome = app.workspace().registry().add(tenant_id, new, source)
    if fleet is not None:
        if fleet.cells.configured:
            out.info(f"tenant {tenant_id} is in cell {fleet.cells.cell_of(new)}")
        routed = fleet.route(new, f"tenant add {tenant_id}")
        if routed:
            out.info(routed)
    for warning in outcome.warnings:
        out.warn(warning)
    result = outcome.result
    assert result is not None
    if provision:
        from redmica_ops.cli.tenant.lifecycle import provision_tenant

        out.info(f"created tenant {tenant_id} (status: provisioning); provisioning it")
        return provision_tenant(app, tenant_id, executor, admin_login, admin_password, None)
    activation = None
    if activate and fleet is not None and fleet.cells.configured:
        # With cells only the tenant's own cell needs to restart.
        home = fleet.cells.get(fleet.cells.cell_of(new))
        out.info(f"created tenant {tenant_id}; activating: restarting cell {home.name}")
        current = fleet.revision(home)
        activation = fleet.roll(home, "reload", None, current, rollback=False, force=True)
    elif activate:
        from redmica_ops.deploy import reload

        out.info(f"created tenant {tenant_id}; activating: restarting the service's tasks")
        activation = reload.run(reload.ReloadRequest(), app.workspace()).cells[0].rollout
    payload: dict[str, JSONValue] = {
        "tenant": tenant_id,
        "created": True,
        "key": result.key,
        "version_id": result.version_id,
        "warnings": outcome.warnings,
    }
    if show_generated:
        payload["generated_password"] = generated
    if activation is not None:
        from redmica_ops.deploy.report import rollout_report

        payload["activation"] = rollout_report(activation).document
    location = f"s3://{app.workspace().bucket()}/{result.key}"

    def text(out: Output) -> None:
        out.success(
            f"created tenant {tenant_id} at {location}"
            + (f" (version {result.version_id})" if result.version_id else "")
        )
        if show_generated and generated:
            out.info("generated password (shown once, store it now):")
            out.text(generated)
        elif generated:
            out.info(
                "a random password was generated and stored; it is not shown "
                "(use --show-generated-password to see it once)"
            )
        if activation is None:
            out.info(
                "next: the site goes live when the service restarts its containers "
                "(`redmica reload`, or add with --activate)"
            )
        else:
            from redmica_ops.deploy.report import rollout_lines

            render_body(out, rollout_lines(activation))

    failed = activation is not None and not activation.ok
    return Done(payload, text, code=1 if failed else 0)

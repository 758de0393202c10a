"""`redmica tenant add`: create a tenant, never overwriting an existing one."""

from __future__ import annotations

from typing import Any, BinaryIO

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, complete_cells, pass_app, provisioning_options
from redmica_ops.cli.result import ReportResult
from redmica_ops.cli.tenant import tenant
from redmica_ops.cli.tenant.inputs import read_secret_line, stdin_bytes
from redmica_ops.errors import UsageError
from redmica_ops.lifecycle.provision import ProvisionOptions
from redmica_ops.tenants import inputs
from redmica_ops.tenants.add import AddRequest
from redmica_ops.tenants.add import add as run_add
from redmica_ops.tenants.inputs import AddFlags, check_add_flags


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
    shell_complete=complete_cells,
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
) -> ReportResult:
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
    fields = {**flags, "limit_ip": limit_ip}
    check_add_flags(
        AddFlags(
            file,
            inputs.fields_given(fields),
            password_stdin,
            generate,
            show_generated,
            admin_password_stdin,
            provision,
            activate,
        )
    )
    # Read now: an empty stdin writes nothing.
    admin_password = read_secret_line("administrator password") if admin_password_stdin else None
    stdin = stdin_bytes()
    if file is not None:
        raw, source = inputs.read_document(file, stdin)
        data = inputs.parse_document(raw, source)
    else:
        source = "(flags)"
        data = inputs.flags_document(fields)
    generated = inputs.generate_password() if generate else None
    if password_stdin:
        inputs.set_password(data, _database_password(app, tenant_id, stdin))
    elif generated is not None:
        inputs.set_password(data, generated)
    request = AddRequest(
        tenant_id,
        inputs.validated(tenant_id, data, source, flag_form=file is None),
        source,
        cell=cell,
        activate=activate,
        provision=ProvisionOptions(executor, admin_login, admin_password) if provision else None,
        generated_password=generated,
        show_generated=show_generated,
    )
    return ReportResult(run_add(request, app.workspace()).report())


def _database_password(app: Application, tenant_id: str, stdin: BinaryIO) -> str:
    if not app.interactive():
        return inputs.read_password(stdin)
    # A person at a terminal: ask, and echo nothing (not even into the scrollback).
    password = app.read_secret(f"Database password for tenant {tenant_id}: ")
    if not password:
        raise UsageError("--db-password-stdin: no password was typed")
    return password

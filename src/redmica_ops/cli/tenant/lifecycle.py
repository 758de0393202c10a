"""`redmica tenant provision | suspend | resume | backup | backups | restore-db | rotate-password`.

Thin dispatchers: each builds a typed request, calls `redmica_ops.lifecycle.<verb>`, and
returns a `Done`. Database steps run through a runner chosen by --executor: this machine's
PostgreSQL client (local) or an ECS one-off admin task (ecs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import (
    command,
    complete_tenants,
    confirm,
    executor_option,
    pass_app,
    provisioning_options,
    yes_option,
)
from redmica_ops.cli.result import ReportResult, render_body
from redmica_ops.cli.tenant import tenant
from redmica_ops.cli.tenant.inputs import read_secret_line
from redmica_ops.errors import UsageError
from redmica_ops.lifecycle import flows, provision
from redmica_ops.lifecycle.backup import RestoreRequest
from redmica_ops.lifecycle.provision import ProvisionOptions
from redmica_ops.lifecycle.replace import ReplaceRequest

if TYPE_CHECKING:
    pass


@command(tenant, "provision")
@click.argument("tenant_id", shell_complete=complete_tenants)
@provisioning_options
@click.option(
    "--language",
    help="language of the default data [default: property.language, else default_language]",
)
@pass_app
def provision_command(
    app: Application,
    tenant_id: str,
    executor: str,
    admin_login: str,
    admin_password_stdin: bool,
    language: str | None,
) -> ReportResult:
    """Create the tenant's database role and database, migrate, load defaults, set its admin.

    Every step checks what exists, so running it again after a failure finishes the job.
    While it runs the document says `status: provisioning` and the site answers 503. Exit 4
    if the database exists with another owner, or the role is another tenant's (nothing is
    changed); exit 2 if a name is a PostgreSQL reserved word.

    \b
    Examples:
      redmica tenant provision acme --admin-login alice
      redmica tenant provision acme --executor local --language de
      pass show redmine/acme-admin | redmica tenant provision acme --admin-password-stdin
    """
    password = read_secret_line("administrator password") if admin_password_stdin else None
    options = ProvisionOptions(executor, admin_login, password, language)
    return ReportResult(provision.run(tenant_id, options, app.workspace()).report())


@command(tenant, "suspend")
@click.argument("tenant_id", shell_complete=complete_tenants)
@click.option("--message", help="text of the maintenance page (plain sentence characters)")
@click.option(
    "--clear-message", is_flag=True, help="drop the page's message (without it, it is kept)"
)
@pass_app
def suspend_command(
    app: Application, tenant_id: str, message: str | None, clear_message: bool
) -> ReportResult:
    """Serve a maintenance page (503 + Retry-After) instead of the tenant's site.

    Its application is not spawned and its data is not touched; `migrate --all` skips it
    (unless --include-suspended). Takes effect at the next render of the vhosts. Suspending
    a suspended tenant again keeps its message unless --message or --clear-message is given.

    \b
    Examples:
      redmica tenant suspend acme --message "Back at 14:00 UTC"
      redmica tenant suspend acme && redmica reload
    """
    return ReportResult(flows.suspend_tenant(app.workspace(), tenant_id, message, clear_message))


@command(tenant, "resume")
@click.argument("tenant_id", shell_complete=complete_tenants)
@pass_app
def resume_command(app: Application, tenant_id: str) -> ReportResult:
    """Serve a suspended tenant's site again (at the next render of the vhosts).

    \b
    Examples:
      redmica tenant resume acme && redmica reload
    """
    return ReportResult(flows.resume_tenant(app.workspace(), tenant_id))


@command(tenant, "backup")
@click.argument("tenant_id", shell_complete=complete_tenants)
@executor_option
@pass_app
def backup_command(app: Application, tenant_id: str, executor: str) -> ReportResult:
    """Dump the tenant's database (pg_dump -Fc) into the config bucket's backups prefix.

    The dump is stored with SSE-KMS and an S3-verified SHA-256, next to a manifest with its
    size, checksum and the row count of every table (read from the dump itself).

    \b
    Examples:
      redmica tenant backup acme
      redmica tenant backup acme --executor local --output json
    """
    return ReportResult(flows.backup_tenant(app.workspace(), tenant_id, executor))


@command(tenant, "backups")
@click.argument("tenant_id", shell_complete=complete_tenants)
@pass_app
def backups_command(app: Application, tenant_id: str) -> ReportResult:
    """List a tenant's backups, newest first (also those of a purged tenant).

    Exit 3 if there is neither such a tenant nor any backup of it.

    \b
    Examples:
      redmica tenant backups acme
    """
    return ReportResult(flows.backups_of(app.workspace(), tenant_id))


@command(tenant, "restore-db")
@click.argument("tenant_id", shell_complete=complete_tenants)
@click.argument("backup_id")
@click.option("--into", "into", metavar="NEW_ID", help="the new tenant that receives it")
@click.option(
    "--replace",
    is_flag=True,
    help="replace the live database: safety backup, restore beside it, verify, swap (asks)",
)
@yes_option
@click.option("--dry-run", is_flag=True, help="with --replace: show the plan, change nothing")
@executor_option
@pass_app
def restore_db_command(
    app: Application,
    tenant_id: str,
    backup_id: str,
    into: str | None,
    replace: bool,
    yes: bool,
    dry_run: bool,
    executor: str,
) -> ReportResult:
    """Restore a backup into a fresh database, verified by row counts.

    --into NEW_ID creates tenant NEW_ID (a copy of TENANT_ID's document with its own database,
    role, password, sub-domain and folder), restores into it and checks every table's row
    count against the backup. --replace restores over the live database, never dropping it:
    after a safety backup of the live database, the backup is restored into a fresh database
    and verified, then the two swap names in one transaction; the old one is kept, parked as
    <db>_replaced_<time>. It asks first (--yes in scripts; --dry-run shows the plan).

    \b
    Examples:
      redmica tenant restore-db acme latest --into acme-restored
      redmica tenant restore-db acme 20261128T041500Z-1a2b3c --into acme-check
      redmica tenant restore-db acme 20261128T041500Z-1a2b3c --replace --dry-run
      redmica tenant restore-db acme 20261128T041500Z-1a2b3c --replace --yes
    """
    if replace and into:
        raise UsageError(
            "choose one of --into NEW_ID and --replace",
            "--into restores into a new tenant; --replace over this tenant's live database",
        )
    if (yes or dry_run) and not replace:
        raise UsageError("--yes and --dry-run go with --replace")
    if replace:
        return replace_database(app, tenant_id, backup_id, executor, yes, dry_run)
    if not into:
        raise UsageError(
            "give --into NEW_ID (a new tenant) or --replace (over the live database)",
            f"e.g. redmica tenant restore-db {tenant_id} {backup_id} --into {tenant_id}-restored",
        )
    request = RestoreRequest(tenant_id, backup_id, into)
    return ReportResult(flows.restore_into(app.workspace(), request, executor))


def replace_database(
    app: Application, tenant_id: str, backup_id: str, kind: str, yes: bool, dry_run: bool
) -> ReportResult:
    """`restore-db --replace`: plan, confirm, then carry it out (lifecycle/flows.py)."""
    ws = app.workspace()
    request = ReplaceRequest(tenant_id, backup_id)
    the_plan = flows.plan_replacement(ws, request, kind)
    if dry_run or not app.json:
        render_body(app.output, flows.replace_plan_lines(the_plan))
    if dry_run:
        return ReportResult(flows.dry_run_report(tenant_id, the_plan))
    confirm(
        app,
        f"replace the live database of tenant {tenant_id!r} with backup {the_plan.backup}",
        yes,
    )
    return ReportResult(flows.carry_out_replacement(ws, request, kind, the_plan))


@command(tenant, "rotate-password")
@click.argument("tenant_id", shell_complete=complete_tenants)
@executor_option
@pass_app
def rotate_command(app: Application, tenant_id: str, executor: str) -> ReportResult:
    """Give the tenant's other login role a new password and switch the document to it.

    Two login roles take turns (`acme`, `acme_2`): the one in use keeps its password, so no
    request fails while the containers reload. Reload after each rotation, and never rotate
    twice within one reload. The password is never shown. A password kept in a secret
    (db.password_secret) is refused: rotate it where it lives.

    \b
    Examples:
      redmica tenant rotate-password acme && redmica reload
    """
    return ReportResult(flows.rotate_password(app.workspace(), tenant_id, executor))


def purge_tenant(
    app: Application,
    tenant_id: str,
    kind: str,
    delete_attachments: bool,
    dry_run: bool,
    yes: bool,
    archive_attachments: bool = False,
) -> ReportResult:
    """`tenant remove --purge`: plan, confirm, then carry it out (lifecycle/flows.py)."""
    ws = app.workspace()
    request = flows.purge_request(ws, tenant_id, delete_attachments, archive_attachments, dry_run)
    the_plan = flows.plan_purge(ws, request, kind)
    if dry_run or not app.json:
        render_body(app.output, flows.purge_plan_lines(the_plan))
    if dry_run:
        return ReportResult(flows.dry_run_report(tenant_id, the_plan))
    confirm(app, f"purge tenant {tenant_id!r}: drop its database and roles for good", yes)
    return ReportResult(flows.carry_out_purge(ws, request, kind, the_plan))

"""`redmica tenant list | show | history`: read-only views, passwords always redacted."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, complete_cells, complete_tenants, pass_app
from redmica_ops.cli.result import Done, ReportResult, render_body
from redmica_ops.cli.tenant import tenant
from redmica_ops.tenants import views

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output


@command(tenant, "list")
@click.option(
    "--cell", shell_complete=complete_cells, help="only this cell's tenants (docs/cells.md)"
)
@click.option(
    "--status",
    type=click.Choice(views.STATUSES, case_sensitive=False),
    help="only tenants with this status (as the table shows it, in any case)",
)
@click.option(
    "--lifecycle", type=click.Choice(views.LIFECYCLES), help="only tenants in this lifecycle"
)
@pass_app
def list_(
    app: Application, cell: str | None, status: str | None, lifecycle: str | None
) -> ReportResult:
    """List every tenant in the config bucket (all pages, fetched in parallel).

    Each tenant has a status: ok, clash (it shares a sub_domain, db.name, db role, secret or s3
    folder with a tenant that keeps it, and is not served), no_database (it names no db.host
    and the db_host setting is not set: it cannot reach a database, and is not served) or
    invalid (the document cannot be read or does not validate; shown with its problems). The
    exit code is 1 when any tenant listed is not ok. Apart from that, its lifecycle: active,
    provisioning or suspended (docs/tenant-lifecycle.md; only active tenants get their
    application, the others a maintenance page), and its cell (a column when the `cells`
    setting is set). --cell and --lifecycle leave invalid documents out (their cell and
    lifecycle cannot be read).

    \b
    Examples:
      redmica tenant list
      redmica tenant list --status no_database
      redmica tenant list --cell b --lifecycle suspended
      redmica tenant list --output json | jq -r '.[] | select(.status != "ok") | .key'
      redmica tenant list --output json | jq -r '.[] | select(.lifecycle == "suspended") | .tenant'
    """
    request = views.ListRequest(cell, status, lifecycle)
    return ReportResult(views.listing_report(app.workspace(), request))


@command(tenant, "show")
@click.argument("tenant_id", shell_complete=complete_tenants)
@pass_app
def show(app: Application, tenant_id: str) -> Done | ReportResult:
    """Show one tenant's document (the password as ********).

    The output can be edited and fed back to `tenant update`: a password left as ********
    keeps the stored one, and the first line names the version shown, so the update is refused
    (exit 4) if the tenant changed in the meantime; keep that line. A document that does not
    validate is shown as stored (every `password:` value redacted) with its problems, exit code
    2: repair it with `tenant update` or `tenant edit`.

    \b
    Examples:
      redmica tenant show acme
      redmica tenant show acme > acme.yaml
      vi acme.yaml && redmica tenant update acme -f acme.yaml
    """
    report, error = views.show_report(app.workspace(), tenant_id)
    if error is None:
        return ReportResult(report)

    def broken(out: Output) -> None:
        render_body(out, report.body)
        out.error(error)

    # JSON: the document on stdout; text: the document as stored, then the error.
    return Done(report.document, broken, code=report.exit_code)


@command(tenant, "history")
@click.argument("tenant_id", shell_complete=complete_tenants)
@pass_app
def history(app: Application, tenant_id: str) -> ReportResult:
    """List the stored versions of a tenant's document, newest first.

    Needs a versioned bucket. Bring one back with `redmica tenant restore ID VERSION_ID`.

    \b
    Examples:
      redmica tenant history acme
      redmica tenant history acme --output json | jq -r '.[1].version_id'
    """
    return ReportResult(views.history_report(app.workspace(), tenant_id))

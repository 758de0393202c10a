"""`redmica tenant claims check | repair | rebuild`: the uniqueness claims of the tenants."""

from __future__ import annotations

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.result import ReportResult
from redmica_ops.cli.tenant import tenant
from redmica_ops.tenants import audit


@tenant.group()
def claims() -> None:
    """Check and repair the uniqueness claims (sub_domain, db.name, db roles, secret, s3 folder).

    Every value that must be unique across tenants is held by a claim object under
    <prefix>_claims/, created before the tenant's document is written. See docs/tenants.md.

    \b
    Examples:
      redmica tenant claims check
      redmica tenant claims repair
      redmica tenant claims rebuild
    """


@command(claims, "check")
@pass_app
def check(app: Application) -> ReportResult:
    """Compare the claims with the documents; exit 1 when anything needs attention.

    orphan: a claim held by a tenant that does not use the value (a crash between steps, or a
    tenant removed by hand): `tenant claims repair` releases it. unclaimed: a value of a
    document written before claims existed: `tenant claims rebuild` claims it. contested: a
    document uses a value another tenant holds: that document is not served (see
    `tenant list`); change one of the two.

    \b
    Examples:
      redmica tenant claims check --output json
    """
    return ReportResult(audit.check(app.workspace()))


@command(claims, "repair")
@pass_app
def repair(app: Application) -> ReportResult:
    """Release orphan claims (each removal conditional on the version checked).

    Only claims whose holder's valid document does not use the value are released; a claim
    held by a tenant whose document cannot be read is left alone.

    \b
    Examples:
      redmica tenant claims repair
    """
    return ReportResult(audit.repair(app.workspace()))


@command(claims, "rebuild")
@click.option(
    "--dry-run", is_flag=True, help="say what would be claimed and the clashes; write nothing"
)
@click.option("--verbose", "-v", is_flag=True, help="one line per claim (JSON always has them)")
@pass_app
def rebuild(app: Application, dry_run: bool, verbose: bool) -> ReportResult:
    """Claim the values of documents written before claims existed (run once after upgrading).

    For every valid document, oldest first, each unclaimed value is claimed for it; a value
    another tenant already holds is left with its holder (that is a clash: see `tenant list`).
    Prints each clash and one summary line (each claim with --verbose, and in --output json);
    --dry-run reads the claims once and says what would be claimed, writing nothing. Progress
    on stderr.

    \b
    Examples:
      redmica tenant claims rebuild --dry-run
      redmica tenant claims rebuild && redmica tenant claims check
    """
    request = audit.RebuildRequest(dry_run, verbose)
    return ReportResult(audit.rebuild(request, app.workspace()))

"""`redmica cells ...`: the cells, their load, and the hostname routing to them."""

from __future__ import annotations

import click

from redmica_ops.cells.status import cell_loads, check_routes
from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.result import ReportResult


@click.group()
def cells() -> None:
    """Cells: ECS services that each serve a share of the tenants (docs/cells.md).

    \b
    Examples:
      redmica cells list
      redmica cells routes --fix
    """


@command(cells, "list")
@pass_app
def list_cells(app: Application) -> ReportResult:
    """Each cell with its service, tenants, capacity and room for new tenants.

    \b
    Examples:
      redmica cells list
      redmica cells list --output json | jq '.[] | select(.room < 10)'
    """
    return ReportResult(cell_loads(app.workspace()))


@command(cells, "routes")
@click.option("--fix", is_flag=True, help="create, re-point and delete records to match")
@pass_app
def routes(app: Application, fix: bool) -> ReportResult:
    """Compare each tenant's Route 53 record with its cell; --fix repairs the drift.

    Finds tenants without a record, records pointing at another cell than the tenant's
    document says, and records pointing at a cell for a host no tenant has. Exit 1 when drift
    remains (none after a successful --fix).

    \b
    Examples:
      redmica cells routes
      redmica cells routes --fix --output json
    """
    return ReportResult(check_routes(fix, app.workspace()))

"""`redmica tenant move`: move a tenant to another cell without a moment it is not served."""

from __future__ import annotations

import click

from redmica_ops.cells.move import MoveRequest, nothing_to_do
from redmica_ops.cells.move import move as run_move
from redmica_ops.cli.app import Application
from redmica_ops.cli.options import (
    command,
    complete_cells,
    complete_tenants,
    confirm,
    pass_app,
    yes_option,
)
from redmica_ops.cli.result import ReportResult
from redmica_ops.cli.tenant import tenant


@command(tenant, "move")
@click.argument("tenant_id", shell_complete=complete_tenants)
@click.option(
    "--to",
    "to",
    required=True,
    metavar="CELL",
    shell_complete=complete_cells,
    help="the cell to move the tenant to",
)
@click.option(
    "--drain",
    type=click.FloatRange(min=0),
    help="seconds both cells serve after routing moved [default: setting move_drain, 60]",
)
@click.option("--force", is_flag=True, help="move even while the two cells run different images")
@yes_option
@pass_app
def move(
    app: Application, tenant_id: str, to: str, drain: float | None, force: bool, yes: bool
) -> ReportResult:
    """Move a tenant to another cell: serve it there, route it there, then stop the old cell.

    Order: the document names both cells and the target cell restarts (both serve the
    tenant, from the same database); the hostname's Route 53 record points at the target and
    is waited for until INSYNC; after the drain time the document names only the target and
    the source cell restarts without it. It refuses while the two cells run different images
    (a release in progress). A move that stopped half-way is finished by running it again.
    Asks first on a terminal (--yes for scripts).

    \b
    Examples:
      redmica tenant move acme --to b --yes
      redmica tenant move acme --to b --drain 300 --yes --output json
    """
    ws = app.workspace()
    drain_seconds = float(drain if drain is not None else app.settings.move_drain)
    request = MoveRequest(tenant_id, to, drain_seconds, force)
    done = nothing_to_do(ws, request)
    if done is not None:
        return ReportResult(done.report())
    confirm(app, f"move tenant {tenant_id} to cell {to} (restarts both cells)", yes)
    return ReportResult(run_move(request, ws).report())

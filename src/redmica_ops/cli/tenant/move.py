"""`redmica tenant move`: move a tenant to another cell without a moment it is not served."""

from __future__ import annotations

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, confirm, pass_app, yes_option
from redmica_ops.cli.output import Output
from redmica_ops.cli.result import Done
from redmica_ops.cli.tenant import tenant


@command(tenant, "move")
@click.argument("tenant_id")
@click.option("--to", "to", required=True, metavar="CELL", help="the cell to move the tenant to")
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
) -> Done:
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
    from redmica_ops.cells.move import MoveRequest, move_tenant

    fleet = app.workspace().fleet()
    fleet.cells.get(to)  # an unknown cell is a usage error before anyone is asked
    confirm(app, f"move tenant {tenant_id} to cell {to} (restarts both cells)", yes)
    request = MoveRequest(
        tenant_id, to, float(drain if drain is not None else app.settings.move_drain), force
    )
    report = move_tenant(
        request,
        app.workspace().store(),
        fleet.cells,
        fleet,
        fleet.router(),
        fleet.clock,
        app.output.info,
    )

    def text(out: Output) -> None:
        for step in report.steps:
            out.text(f"{'ok  ' if step.ok else 'FAIL'} {step.step:<13} {step.detail}")
        if report.ok:
            out.success(f"moved tenant {tenant_id}: {report.source} -> {report.target}")
        else:
            out.info(f"error: moving tenant {tenant_id} to {report.target} failed; see above")

    return Done(report.as_dict(), text, code=0 if report.ok else 1)

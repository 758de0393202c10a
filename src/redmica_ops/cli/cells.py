"""`redmica cells ...`: the cells, their load, and the hostname routing to them."""

from __future__ import annotations

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.output import Output
from redmica_ops.cli.result import Done, JSONValue


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
def list_cells(app: Application) -> Done:
    """Each cell with its service, tenants, capacity and room for new tenants.

    \b
    Examples:
      redmica cells list
      redmica cells list --output json | jq '.[] | select(.room < 10)'
    """
    from redmica_ops.cells.placement import loads

    fleet = app.workspace().fleet()
    table = loads(fleet.cells, app.workspace().tenants().entries(), fleet.capacity)
    pairs = list(zip(fleet.cells.cells, table, strict=True))
    rows: list[JSONValue] = []
    for cell, load in pairs:
        rows.append(
            {
                "cell": cell.name,
                "cluster": cell.cluster,
                "service": cell.service,
                "tenants": load.tenants,
                "capacity": load.capacity,
                "room": load.room,
                "home": cell == fleet.cells.home,
            }
        )

    def text(out: Output) -> None:
        out.table(
            ["cell", "cluster", "service", "tenants", "capacity", "room"],
            [
                [
                    cell.name + (" (home)" if cell == fleet.cells.home else ""),
                    cell.cluster or "",
                    cell.service or "",
                    load.tenants,
                    load.capacity,
                    load.room,
                ]
                for cell, load in pairs
            ],
        )

    return Done(rows, text)


@command(cells, "routes")
@click.option("--fix", is_flag=True, help="create, re-point and delete records to match")
@pass_app
def routes(app: Application, fix: bool) -> Done:
    """Compare each tenant's Route 53 record with its cell; --fix repairs the drift.

    Finds tenants without a record, records pointing at another cell than the tenant's
    document says, and records pointing at a cell for a host no tenant has. Exit 1 when drift
    remains (none after a successful --fix).

    \b
    Examples:
      redmica cells routes
      redmica cells routes --fix --output json
    """
    from redmica_ops.errors import UsageError

    fleet = app.workspace().fleet()
    router = fleet.router()
    if router is None:
        raise UsageError(
            "routing is not managed here: hosted_zone_id is not set",
            "set REDMICA_HOSTED_ZONE_ID (and domain) to route tenants by hostname",
        )
    entries = app.workspace().tenants().entries()
    findings = router.drift(entries, fleet.cells)
    changed = router.repair(findings, fleet.cells, "redmica cells routes --fix") if fix else 0
    remaining = router.drift(entries, fleet.cells) if fix else findings
    document: dict[str, JSONValue] = {
        "findings": [f.as_dict() for f in findings],
        "changes": changed,
        "remaining": [f.as_dict() for f in remaining],
    }

    def text(out: Output) -> None:
        for finding in findings:
            out.text(("fixed: " if fix else "drift: ") + finding.text())
        if not findings:
            out.success(f"every tenant's record points at its cell ({len(entries)} tenants)")
        elif fix and not remaining:
            out.success(f"{changed} record change(s) applied; no drift left")

    return Done(document, text, code=1 if remaining else 0)

"""`redmica runs list | show`: migrate runs recorded in the config bucket."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.result import Done

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output
    from redmica_ops.cli.reports import MigrationResult


@click.group()
def runs() -> None:
    """Look at migrate runs (records in the config bucket under runs/).

    \b
    Examples:
      redmica runs list
      redmica runs show 20261126T060000Z-1a2b3c --output json
    """


@command(runs, "list")
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1), help="newest runs to show"
)
@pass_app
def list_runs(app: Application, limit: int) -> Done:
    """List the newest runs with their state and counts.

    \b
    Examples:
      redmica runs list
      redmica runs list --limit 5 --output json
    """
    store = app.run_store()
    records = [store.load(run_id) for run_id in store.list_ids()[:limit]]

    def text(out: Output) -> None:
        rows = [
            [
                r.run_id,
                r.state,
                r.executor,
                r.created_at,
                ", ".join(f"{n} {s}" for s, n in r.summary().items()),
            ]
            for r in records
        ]
        out.table(["run", "state", "executor", "created", "tenants"], rows)

    return Done(
        [
            {
                "run_id": r.run_id,
                "state": r.state,
                "executor": r.executor,
                "created_at": r.created_at,
                "updated_at": r.updated_at,
                "parent_run": r.parent_run,
                "summary": r.summary(),
            }
            for r in records
        ],
        text,
    )


@command(runs, "show")
@click.argument("run_id")
@pass_app
def show_run(app: Application, run_id: str) -> MigrationResult:
    """Show one run: every tenant's status, and what to do about failures.

    \b
    Examples:
      redmica runs show 20261126T060000Z-1a2b3c
    """
    from redmica_ops.cli.reports import MigrationResult
    from redmica_ops.runs.migrations import MigrationOutcome

    record = app.run_store().load(run_id)
    return MigrationResult(MigrationOutcome(record), every_tenant=True, code_from_run=False)

"""`redmica runs list | show`: migrate runs recorded in the config bucket."""

from __future__ import annotations

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app


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
def list_runs(app: Application, limit: int) -> None:
    """List the newest runs with their state and counts.

    \b
    Examples:
      redmica runs list
      redmica runs list --limit 5 --output json
    """
    store = app.run_store()
    records = [store.load(run_id) for run_id in store.list_ids()[:limit]]
    if app.json:
        app.output.data(
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
            ]
        )
        return
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
    app.output.table(["run", "state", "executor", "created", "tenants"], rows)


@command(runs, "show")
@click.argument("run_id")
@pass_app
def show_run(app: Application, run_id: str) -> None:
    """Show one run: every tenant's status, and what to do about failures.

    \b
    Examples:
      redmica runs show 20261126T060000Z-1a2b3c
    """
    from redmica_ops.cli.migrate import report

    record = app.run_store().load(run_id)
    if not app.json:
        rows = [
            [
                r.tenant,
                str(r.status),
                r.attempts,
                "" if r.exit_code is None else r.exit_code,
                r.reason or "",
            ]
            for r in sorted(record.tenants.values(), key=lambda r: r.tenant)
        ]
        app.output.table(["tenant", "status", "attempts", "exit", "reason"], rows)
    report(app, record)

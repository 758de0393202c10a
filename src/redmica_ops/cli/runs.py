"""`redmica runs list | show | collect`: migrate runs recorded in the config bucket."""

from __future__ import annotations

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, complete_runs, complete_tenants, pass_app
from redmica_ops.cli.result import ReportResult
from redmica_ops.runs.collect import collect, collect_recent
from redmica_ops.runs.migrations import MigrationOutcome
from redmica_ops.runs.report import collected_report, runs_report, tenant_report


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
def list_runs(app: Application, limit: int) -> ReportResult:
    """List the newest runs with their state and counts.

    \b
    Examples:
      redmica runs list
      redmica runs list --limit 5 --output json
    """
    store = app.workspace().run_store()
    return ReportResult(runs_report([store.load(run_id) for run_id in store.list_ids()[:limit]]))


@command(runs, "show")
@click.argument("run_id", shell_complete=complete_runs)
@click.argument("tenant_id", required=False, shell_complete=complete_tenants)
@pass_app
def show_run(app: Application, run_id: str, tenant_id: str | None) -> ReportResult:
    """Show one run: every tenant's status and, for a failed one, its last output lines.

    A run that is not complete is collected first (as `runs collect` does): each tenant's
    result object, written by its task, is merged with what ECS still knows, so the results
    of a --no-wait run are complete whenever they are asked for. With TENANT: that tenant's
    whole captured output tail and where its full log is.

    \b
    Examples:
      redmica runs show 20261126T060000Z-1a2b3c
      redmica runs show 20261126T060000Z-1a2b3c acme
    """
    ws = app.workspace()
    record = ws.run_store().load(run_id)
    changed = collect(record, ws)
    if changed:
        ws.message(f"collected {changed} result(s) for run {run_id}")
    if tenant_id is not None:
        return ReportResult(tenant_report(record, tenant_id))
    outcome = MigrationOutcome(record)
    return ReportResult(outcome.report(every_tenant=True, code_from_run=False))


@command(runs, "collect")
@click.argument("run_id", required=False, shell_complete=complete_runs)
@pass_app
def collect_run(app: Application, run_id: str | None) -> ReportResult:
    """Merge a run's result objects and ECS's answers into its record; save it.

    Safe to repeat: the stack's schedule runs it (without RUN_ID: every recent run that is
    not complete) until each run is complete. Exit 0 when the run (every run) is complete,
    1 while tenants are still running.

    \b
    Examples:
      redmica runs collect 20261126T060000Z-1a2b3c --output json
      redmica runs collect
    """
    ws = app.workspace()
    if run_id is None:
        return ReportResult(collected_report(collect_recent(ws)))
    record = ws.run_store().load(run_id)
    changed = collect(record, ws)
    ws.message(f"collected {changed} result(s) for run {run_id}")
    outcome = MigrationOutcome(record)
    return ReportResult(outcome.report(code_from_run=False, pending_is_failure=True))

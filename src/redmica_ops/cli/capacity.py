"""`redmica capacity`: how many tasks a fleet needs, the pool to give them, and what it costs."""

from __future__ import annotations

import click

from redmica_ops.capacity import size_fleet
from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.cli.result import ReportResult
from redmica_ops.container.memory import MemoryBudget, pool_request


@click.command()
@click.option("--tenants", type=click.IntRange(0), required=True, help="number of tenants to serve")
@click.option(
    "--active-share",
    type=click.FloatRange(min=0, max=1, min_open=True),
    help="share of tenants active at once [default: setting active_share, 0.1]",
)
@click.option(
    "--task-size",
    "task_sizes",
    multiple=True,
    metavar="VCPUxGB",
    help="a Fargate task size to compare, e.g. 2x8 (repeatable) [default: 1x2 ... 16x120]",
)
@click.option(
    "--process-mib",
    type=click.IntRange(1),
    help="PSS of one app process [default: setting process_memory_mib, measured 160 direct]",
)
@click.option(
    "--spawn-method",
    type=click.Choice(["direct", "smart"]),
    help="PassengerSpawnMethod [default: setting spawn_method, direct]",
)
@click.option(
    "--processes-per-active-tenant",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="processes an active tenant keeps busy",
)
@global_options(hidden=True)
@pass_app
def capacity(
    app: Application,
    tenants: int,
    active_share: float | None,
    task_sizes: tuple[str, ...],
    process_mib: int | None,
    spawn_method: str | None,
    processes_per_active_tenant: int,
) -> ReportResult:
    """Size a fleet: tasks needed, pool settings, cold-start exposure, cost per tenant.

    For each task size: pool = (memory - memory_reserve_mib) / per-process cost; tenants per
    task = pool / (active share x processes per active tenant); tasks = tenants / tenants per
    task, rounded up. Monthly cost: vCPU x price_vcpu_minute + GB x price_gb_minute, x 60 x
    730 hours, per task (prices are settings, as for `redmica cost`). Cheapest first. See
    docs/capacity.md.

    \b
    Examples:
      redmica capacity --tenants 800
      redmica capacity --tenants 800 --active-share 0.2 --task-size 2x8 --output json
    """
    if process_mib is not None:
        app.overrides["process_memory_mib"] = process_mib
    if spawn_method is not None:
        app.overrides["spawn_method"] = spawn_method
    if active_share is not None:
        app.overrides["active_share"] = active_share
    settings = app.settings
    request = pool_request(settings, MemoryBudget(0, "task size"))
    sizing = size_fleet(tenants, task_sizes, request, settings, processes_per_active_tenant)
    return ReportResult(sizing.report())

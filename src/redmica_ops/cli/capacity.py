"""`redmica capacity`: how many tasks a fleet needs, the pool to give them, and what it costs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.cli.result import JSONValue

if TYPE_CHECKING:
    from redmica_ops.capacity import FleetPlan
    from redmica_ops.cli.output import Output


@dataclass
class CapacityResult:
    """Every task size's plan, cheapest first; the first one is the recommendation."""

    tenants: int
    active_share: float
    plans: list[FleetPlan]

    def to_json(self) -> JSONValue:
        plans: list[JSONValue] = [plan.as_dict() for plan in self.plans]  # type: ignore[misc]
        return {
            "tenants": self.tenants,
            "active_share": self.active_share,
            "recommended": plans[0] if plans else None,
            "plans": plans,
        }

    def render_text(self, out: Output) -> None:
        if not self.plans:
            return
        out.table(
            [
                "task",
                "pool",
                "tenants/task",
                "tasks",
                "room left",
                "cold tenants/task",
                "USD/month",
                "USD/tenant/month",
            ],
            [
                [
                    plan.size.label,
                    plan.pool.max_pool_size,
                    plan.room.tenants_per_task,
                    plan.tasks,
                    plan.room_left,
                    plan.cold_tenants_per_task,
                    f"{plan.monthly_usd:.2f}",
                    f"{plan.monthly_usd_per_tenant:.4f}",
                ]
                for plan in self.plans
            ],
        )
        best = self.plans[0]
        pool = best.pool
        lines = [
            "",
            f"cheapest: {best.tasks} task(s) of {best.size.label} for {self.tenants} tenants "
            f"({best.room.tenants_per_task} per task at {self.active_share:g} active), "
            f"{best.monthly_usd:.2f} USD/month, {best.monthly_usd_per_tenant:.4f} USD per "
            "tenant",
            f"pool settings per task: PassengerMaxPoolSize {pool.max_pool_size} "
            f"(({pool.memory_mib} - {pool.reserve_mib}) MiB / {pool.process_mib} MiB), "
            f"PassengerMaxInstancesPerApp {pool.max_instances_per_app}, "
            f"PassengerMinInstances {pool.min_instances}, "
            f"PassengerPoolIdleTime {pool.pool_idle_time}, "
            f"PassengerSpawnMethod {pool.spawn_method}, "
            f"PassengerMaxRequestQueueSize {pool.max_request_queue_size}",
            f"cold-start exposure: at most {pool.max_pool_size} tenant process(es) per task are "
            f"warm; the other {best.cold_tenants_per_task} tenants of a full task wait about "
            f"{best.cold_start_seconds:g} s on their first request after {pool.pool_idle_time} s "
            "idle or an eviction",
        ]
        lines += [f"warning: {warning}" for warning in pool.warnings]
        out.text("\n".join(lines))

    @property
    def exit_code(self) -> int:
        return 0


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
) -> CapacityResult:
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
    from redmica_ops.capacity import (
        FARGATE_TASK_SIZES,
        CapacityError,
        compare_task_sizes,
        parse_task_size,
    )
    from redmica_ops.container.memory import MemoryBudget, pool_request
    from redmica_ops.errors import UsageError

    if process_mib is not None:
        app.overrides["process_memory_mib"] = process_mib
    if spawn_method is not None:
        app.overrides["spawn_method"] = spawn_method
    if active_share is not None:
        app.overrides["active_share"] = active_share
    s = app.settings
    try:
        sizes = tuple(parse_task_size(text) for text in task_sizes) or FARGATE_TASK_SIZES
    except CapacityError as error:
        raise UsageError(f"--task-size: {error}", "e.g. --task-size 2x8 (2 vCPU, 8 GB)") from None
    request = pool_request(s, MemoryBudget(0, "task size"))
    plans = compare_task_sizes(
        tenants,
        sizes,
        request,
        active_share=s.active_share,
        price_vcpu_minute=s.price_vcpu_minute,
        price_gb_minute=s.price_gb_minute,
        processes_per_active_tenant=processes_per_active_tenant,
        cold_start_seconds=s.cold_start_seconds,
    )
    if not plans:
        raise UsageError(
            "no task size holds a single process after the reserve",
            "give a larger --task-size, or lower memory_reserve_mib / --process-mib",
        )
    return CapacityResult(tenants, s.active_share, plans)

"""`redmica cost`: what a batch of Fargate tasks costs, with the talk's per-minute prices."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.cli.result import Done
from redmica_ops.runs.cost import estimate

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output


@click.command()
@click.option("--tasks", type=click.IntRange(0), required=True, help="number of tasks")
@click.option(
    "--vcpu",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="vCPU per task [default: setting task_vcpu, 0.25]",
)
@click.option(
    "--memory-gb",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="memory (GB) per task [default: setting task_memory_gb, 0.5]",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="minutes each task runs [default: setting task_minutes, 4]",
)
@global_options(hidden=True)
@pass_app
def cost(
    app: Application, tasks: int, vcpu: float | None, memory_gb: float | None, minutes: float | None
) -> Done:
    """Estimate the Fargate cost of TASKS tasks.

    vCPU: tasks x vCPU x price_vcpu_minute x minutes; memory: tasks x GB x price_gb_minute x
    minutes. Prices are settings (defaults: 0.0008426666667 USD per vCPU-minute and
    0.00009216666667 USD per GB-minute, the figures from the talk).

    \b
    Examples:
      redmica cost --tasks 100 --vcpu 0.25 --memory-gb 0.5 --minutes 4
      redmica cost --tasks 800 --output json
    """
    s = app.settings
    result = estimate(
        tasks,
        vcpu or s.task_vcpu,
        memory_gb or s.task_memory_gb,
        minutes or s.task_minutes,
        s.price_vcpu_minute,
        s.price_gb_minute,
    )

    def text(out: Output) -> None:
        out.text(
            f"vCPU:   {result.tasks} x {result.vcpu:g} x {s.price_vcpu_minute} USD x "
            f"{result.minutes:g} min = {result.vcpu_usd:.7f} USD"
        )
        out.text(
            f"memory: {result.tasks} x {result.memory_gb:g} x {s.price_gb_minute:.14f} USD x "
            f"{result.minutes:g} min = {result.memory_usd:.7f} USD"
        )
        out.text(f"total:  {result.total_usd:.4f} USD")

    return Done(dict(result.as_dict()), text)

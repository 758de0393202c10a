"""A run's pacing: the fan-out options from the settings, the request and a resumed run's
record, and the options a record keeps (`RunOptions`); the migration command's words."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from redmica_ops.errors import UsageError
from redmica_ops.runs.fanout import FanOutOptions
from redmica_ops.runs.record import RunOptions

if TYPE_CHECKING:
    from redmica_ops.settings import Settings


def fanout_options(
    settings: Settings,
    command: list[str],
    *,
    concurrency: int | None = None,
    rate: float | None = None,
    timeout: float | None = None,
    max_failures: int | None = None,
    canary: int | None = None,
    wait: bool = True,
    tenants_per_task: int | None = None,
    saved: RunOptions | None = None,
) -> FanOutOptions:
    """What is given, else what the resumed run (`saved`) used, else the settings. The burst
    and the start attempts always come from the settings; a canary is never resumed."""
    if saved is not None:
        concurrency = concurrency or saved.concurrency
        rate = rate or saved.rate
        timeout = timeout or saved.timeout
        max_failures = max_failures or saved.max_failures
        tenants_per_task = tenants_per_task or saved.tenants_per_task
    return FanOutOptions(
        command=command,
        concurrency=concurrency or settings.concurrency,
        rate=rate or settings.launch_rate,
        burst=settings.launch_burst,
        timeout=float(timeout or settings.task_timeout),
        max_start_attempts=settings.max_start_attempts,
        poll_interval=settings.poll_interval,
        max_failures=max_failures,
        canary=canary,
        wait=wait,
        tenants_per_task=tenants_per_task or settings.tenants_per_task,
    )


def run_options(options: FanOutOptions) -> RunOptions:
    """What the record keeps of the options, for a resume."""
    return RunOptions(
        concurrency=options.concurrency,
        rate=options.rate,
        burst=options.burst,
        timeout=options.timeout,
        max_failures=options.max_failures,
        canary=options.canary,
        max_start_attempts=options.max_start_attempts,
        tenants_per_task=options.tenants_per_task,
        wait=options.wait,
    )


def parse_command(text: str) -> list[str]:
    try:
        command = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"cannot parse the command: {exc}") from None
    if not command:
        raise UsageError("the migration command is empty")
    return command

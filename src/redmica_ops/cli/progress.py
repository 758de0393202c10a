"""Progress of a migrate run on stderr: a live line on a terminal, plain lines otherwise.

Failures are printed as they happen in both modes; the summary (counts by status, rate, ETA)
is redrawn on a terminal and printed every `interval` seconds when piped.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from redmica_ops.runs.pacing import Clock
from redmica_ops.runs.record import FINAL, RunRecord, Status, TenantRun

SHOWN = ("succeeded", "failed", "failed_to_start", "timed_out", "stopped", "not_started")


class ProgressPrinter:
    def __init__(
        self,
        clock: Clock,
        total: int,
        stream: IO[str] | None = None,
        interval: float = 10.0,
        live: bool | None = None,
    ) -> None:
        self.clock = clock
        self.total = total
        self.stream = stream or sys.stderr
        self.interval = interval
        self.live = self.stream.isatty() if live is None else live
        self.started = clock.now()
        self.last_line = float("-inf")
        self._live: Any = None

    def __enter__(self) -> ProgressPrinter:
        if self.live:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            console = Console(file=self.stream, highlight=False, markup=False)
            self._live = Live(
                Text("starting..."), console=console, transient=True, refresh_per_second=4
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def _print(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    # -- Observer --------------------------------------------------------------------------------
    def launched(self, run: TenantRun) -> None:
        pass

    def finished(self, run: TenantRun) -> None:
        if run.status != Status.SUCCEEDED:
            self._print(
                f"  {run.tenant}: {run.status}" + (f" - {run.reason}" if run.reason else "")
            )

    def message(self, text: str) -> None:
        self._print(f"! {text}")

    def tick(self, record: RunRecord, in_flight: int, queued: int) -> None:
        now = self.clock.now()
        line = self.summary(record, in_flight, queued, now)
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(line))
        elif now - self.last_line >= self.interval:
            self.last_line = now
            self._print(line)

    def summary(self, record: RunRecord, in_flight: int, queued: int, now: float) -> str:
        runs = record.tenants.values()
        done = sum(1 for r in runs if r.status in FINAL and r.status != Status.SKIPPED)
        counts = record.summary()
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        remaining = self.total - done
        eta = f"{remaining / rate:.0f}s" if rate > 0 and remaining else "-"
        parts = [f"{counts[s]} {s}" for s in SHOWN if counts.get(s)]
        parts.append(f"{in_flight} running")
        if queued:
            parts.append(f"{queued} queued")
        return (
            f"[{elapsed:5.0f}s] {done}/{self.total} done: "
            + ", ".join(parts)
            + f"; {rate:.2f}/s, ETA {eta}"
        )

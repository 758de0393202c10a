"""Progress of long work on stderr: rich's live display on a terminal, lines otherwise.

`ProgressPrinter` follows a migrate run; `StatusLine` carries the messages of any command
and the state line of a rollout (deploy, reload, rollback, release).

For a run, failures are printed as they happen in both modes. On a terminal a bar shows the
counts by status, the rate and the ETA; when stderr is not a terminal (a log, CI) one summary
line is printed every `interval` seconds (10 by default). The counts never exceed the total and
the ETA is never negative, also when a resumed run starts with tenants already done.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

from redmica_ops.cli.output import colour_enabled
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
        *,
        label: str = "",
    ) -> None:
        self.clock = clock
        # "[cell] " before each line: a release's gates run cell after cell, in parallel waves.
        self.prefix = f"[{label}] " if label else ""
        self.total = max(total, 0)
        self.stream = stream or sys.stderr
        self.interval = interval
        self.live = self.stream.isatty() if live is None else live
        self.started = clock.now()
        self.last_line = float("-inf")
        self.finished_here = 0  # the rate counts this run's work, not a resumed run's past
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressPrinter:
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            colour = colour_enabled(self.stream)
            console = Console(
                file=self.stream,
                highlight=False,
                markup=False,
                force_terminal=True,
                color_system="auto" if colour else None,
                no_color=not colour,
            )
            self._progress = Progress(
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("{task.description}", markup=False),
                console=console,
                transient=True,
                refresh_per_second=4,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                f"{self.prefix}starting...", total=self.total or None
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None

    def _print(self, text: str) -> None:
        text = self.prefix + text
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    # -- Observer --------------------------------------------------------------------------------
    def launched(self, run: TenantRun) -> None:
        pass

    def finished(self, run: TenantRun) -> None:
        self.finished_here += 1
        if run.status != Status.SUCCEEDED:
            self._print(
                f"  {run.tenant}: {run.status}" + (f" - {run.reason}" if run.reason else "")
            )

    def message(self, text: str) -> None:
        self._print(f"! {text}")

    def tick(self, record: RunRecord, in_flight: int, queued: int) -> None:
        now = self.clock.now()
        if self._progress is not None:
            done, details = self.counts(record, in_flight, queued, now)
            self._progress.update(self._task, completed=done, description=self.prefix + details)
        elif now - self.last_line >= self.interval:
            self.last_line = now
            self._print(self.summary(record, in_flight, queued, now))

    def counts(self, record: RunRecord, in_flight: int, queued: int, now: float) -> tuple[int, str]:
        """How many are done (never above the total) and the rest of the line after it."""
        runs = record.tenants.values()
        done = sum(1 for r in runs if r.status in FINAL and r.status != Status.SKIPPED)
        done = min(done, self.total)
        counts = record.summary()
        elapsed = max(now - self.started, 1e-9)
        rate = self.finished_here / elapsed
        remaining = max(self.total - done, 0)
        eta = f"{remaining / rate:.0f}s" if rate > 0 and remaining > 0 else "-"
        parts = [f"{min(counts[s], self.total)} {s}" for s in SHOWN if counts.get(s)]
        # Tenants are counted; `in_flight` counts tasks (a task may migrate several tenants).
        parts.append(f"{min(in_flight, remaining)} task(s) running")
        if queued:
            parts.append(f"{min(queued, remaining)} tenant(s) queued")
        return done, ", ".join(parts) + f"; {rate:.2f}/s, ETA {eta}"

    def summary(self, record: RunRecord, in_flight: int, queued: int, now: float) -> str:
        done, details = self.counts(record, in_flight, queued, now)
        elapsed = max(now - self.started, 0.0)
        return f"[{elapsed:5.0f}s] {done}/{self.total} tenant(s) done: {details}"


class StatusLine:
    """One-line messages, and a state line that replaces itself (a rollout's deployments).

    On a terminal the state is rich's live display (a spinner and the line) under the messages;
    otherwise it is printed at most once every `interval` seconds, so a log gets a summary line
    every ~10 s rather than one per poll. Messages always print, above the live line.
    """

    def __init__(
        self,
        stream: Callable[[], IO[str]] = lambda: sys.stderr,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 10.0,
        live: bool | None = None,
    ) -> None:
        self._stream = stream
        self.clock = clock
        self.interval = interval
        self.live = stream().isatty() if live is None else live
        self.last_status = float("-inf")
        self._display: Any = None

    def message(self, text: str) -> None:
        if self._display is not None:
            self._display.console.print(text, markup=False, highlight=False)
            return
        stream = self._stream()  # looked up now: a live progress may have wrapped stderr
        stream.write(text + "\n")
        stream.flush()

    def status(self, text: str) -> None:
        if not self.live:
            now = self.clock()
            if now - self.last_status >= self.interval:
                self.last_status = now
                self.message(text)
            return
        from rich.spinner import Spinner

        if self._display is None:
            from rich.console import Console
            from rich.live import Live

            stream = self._stream()
            colour = colour_enabled(stream)
            console = Console(
                file=stream,
                highlight=False,
                markup=False,
                force_terminal=True,
                color_system="auto" if colour else None,
                no_color=not colour,
            )
            self._display = Live(console=console, transient=True, refresh_per_second=4)
            self._display.start()
        self._display.update(Spinner("dots", text=text))

    def close(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None

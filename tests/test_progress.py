"""Progress of a long run (cli/progress.py): counts never above the total, the ETA never
negative, a summary line every 10 s off a terminal, rich's live progress on one."""

from __future__ import annotations

import io
import re

import pytest

from redmica_ops.cli.progress import ProgressPrinter, StatusLine
from redmica_ops.runs.pacing import FakeClock
from redmica_ops.runs.record import RunRecord, Status, TenantRun


def _record(**statuses: Status) -> RunRecord:
    record = RunRecord("r1", "ecs", ["migrate"], "t0", "t0")
    record.tenants = {name: TenantRun(name, status) for name, status in statuses.items()}
    return record


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_resumed_run_never_counts_above_the_total_nor_a_negative_eta() -> None:
    clock = FakeClock()
    # Resumed: four tenants done before this run started, the printer was told 2 remain.
    record = _record(
        a=Status.SUCCEEDED,
        b=Status.SUCCEEDED,
        c=Status.SUCCEEDED,
        d=Status.SUCCEEDED,
        e=Status.RUNNING,
    )
    printer = ProgressPrinter(clock, total=2, stream=io.StringIO(), live=False)
    clock.sleep(5)
    line = printer.summary(record, in_flight=3, queued=1, now=clock.now())
    done, total = map(int, re.search(r"\] (\d+)/(\d+) tenant\(s\) done", line).groups())  # type: ignore[union-attr]
    assert done <= total == 2
    counted = r"(\d+) (?:succeeded|task\(s\) running|tenant\(s\) queued)"
    assert all(int(n) <= 2 for n in re.findall(counted, line))
    assert "ETA -;" not in line and not re.search(r"ETA -\d", line)
    assert line.endswith("ETA -")


def test_the_eta_comes_from_this_runs_rate() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    record = _record(a=Status.RUNNING, b=Status.RUNNING, c=Status.RUNNING, d=Status.RUNNING)
    with ProgressPrinter(clock, total=4, stream=stream, live=False) as printer:
        clock.sleep(10)
        record.tenants["a"].status = Status.SUCCEEDED
        printer.finished(record.tenants["a"])
        line = printer.summary(record, in_flight=3, queued=0, now=clock.now())
    assert "1/4 tenant(s) done" in line and "0.10/s, ETA 30s" in line


def test_off_a_terminal_one_summary_line_every_ten_seconds() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    record = _record(a=Status.RUNNING, b=Status.FAILED)
    with ProgressPrinter(clock, total=2, stream=stream) as printer:
        for _ in range(25):  # 25 ticks, one a second
            printer.tick(record, in_flight=1, queued=0)
            clock.sleep(1)
        printer.finished(TenantRun("b", Status.FAILED, reason="exited 1"))
    lines = stream.getvalue().splitlines()
    assert [line[:8] for line in lines[:3]] == ["[    0s]", "[   10s]", "[   20s]"]
    assert lines[-1] == "  b: failed - exited 1"  # failures as they happen
    assert "\x1b[" not in stream.getvalue()


@pytest.mark.parametrize("no_color", [False, True])
def test_on_a_terminal_a_live_progress_bar(monkeypatch: pytest.MonkeyPatch, no_color: bool) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    clock = FakeClock()
    stream = Terminal()
    record = _record(a=Status.SUCCEEDED, b=Status.FAILED, c=Status.RUNNING)
    with ProgressPrinter(clock, total=3, stream=stream) as printer:
        clock.sleep(4)
        printer.finished(TenantRun("b", Status.FAILED, reason="exited 1"))
        printer.tick(record, in_flight=1, queued=0)
        printer._progress.refresh()
    text = stream.getvalue()
    assert "2/3" in text and "1 succeeded, 1 failed, 1 task(s) running" in text
    assert "b: failed - exited 1" in text
    assert ("\x1b[3" in text) is not no_color  # colour (not cursor control) only without NO_COLOR


# -- a rollout's state line (deploy, reload, rollback, release) -----------------------------------
def test_off_a_terminal_the_rollout_state_is_a_line_every_ten_seconds() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    line = StatusLine(stream=lambda: stream, clock=clock.now, live=False)
    for second in range(25):
        line.status(f"PRIMARY app:2 running {second}")
        if second == 12:
            line.message("event: (service app) has started a deployment")
        clock.sleep(1)
    line.close()
    assert stream.getvalue().splitlines() == [
        "PRIMARY app:2 running 0",
        "PRIMARY app:2 running 10",
        "event: (service app) has started a deployment",
        "PRIMARY app:2 running 20",
    ]


def test_on_a_terminal_the_rollout_state_is_one_live_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    stream = Terminal()
    line = StatusLine(stream=lambda: stream)
    for count in range(3):
        line.status(f"PRIMARY app:2 running {count}")
    line.message("event: steady state")
    line.close()
    text = stream.getvalue()
    assert "event: steady state\n" in text
    assert "PRIMARY app:2 running 2" in text
    # A live line is redrawn in place: it never becomes three lines of the log.
    assert "PRIMARY app:2 running 0\n" not in text and "\x1b[?25l" in text  # cursor hidden


def test_a_cells_run_names_its_cell_and_counts_tenants_apart_from_tasks() -> None:
    """Issue #28: "0/3 done: 2 running" mixed tenants and tasks, and a release's gates, cell
    after cell, did not say whose line it was."""
    clock = FakeClock()
    stream = io.StringIO()
    record = RunRecord("r", "ecs", ["migrate"], "t0", "t0")
    for name in ("t1", "t2", "t3"):
        record.tenants[name] = TenantRun(name, Status.RUNNING)
    with ProgressPrinter(clock, total=3, stream=stream, live=False, label="b") as printer:
        printer.message("canary: 1 tenant(s) succeeded; migrating the rest")
        printer.tick(record, in_flight=2, queued=1)
        record.tenants["t1"].status = Status.FAILED
        printer.finished(record.tenants["t1"])
    lines = stream.getvalue().splitlines()
    assert all(line.startswith("[b] ") for line in lines), lines
    assert "[b] [    0s] 0/3 tenant(s) done: 2 task(s) running, 1 tenant(s) queued" in lines[1]
    assert lines[2] == "[b]   t1: failed"

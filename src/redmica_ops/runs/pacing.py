"""Time, pacing and cancellation for long runs: all injectable, so tests never sleep."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""

    def sleep(self, seconds: float) -> None: ...


class Cancellation:
    """Ctrl-C levels: 1 = stop launching, 2 = also stop what runs. Wakes a sleeping run."""

    def __init__(self) -> None:
        self.level = 0
        self.wake = threading.Event()

    def escalate(self) -> int:
        self.level = min(self.level + 1, 2)
        self.wake.set()
        return self.level


@contextlib.contextmanager
def sigint_escalates(cancellation: Cancellation) -> Iterator[None]:
    """While a run is going, Ctrl-C escalates the cancellation instead of raising."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        cancellation.escalate()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. inside a test runner thread)
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@dataclass
class RealClock:
    """Real time; a sleep ends early when the run is cancelled (Ctrl-C)."""

    cancellation: Cancellation | None = None

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.cancellation is None:
            time.sleep(seconds)
            return
        self.cancellation.wake.wait(seconds)
        self.cancellation.wake.clear()


@dataclass
class FakeClock:
    """For tests and simulations: sleeping just moves time forward."""

    current: float = 0.0
    slept: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.current

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.slept.append(seconds)
            self.current += seconds


class TokenBucket:
    """Client-side launch pacing: `burst` tokens, refilled at `rate` per second.

    Sized to the Fargate quota (100 burst, 20/s sustained) by default, so we launch as fast as
    AWS allows and no faster: a throttled launch costs a retry and, at scale, lost time.
    """

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock.now()
        self.slow_until = 0.0

    def _refill(self) -> None:
        now = self.clock.now()
        rate = self.rate / 2 if now < self.slow_until else self.rate
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * rate)
        self.updated = now

    def try_take(self) -> bool:
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until the next token."""
        self._refill()
        if self.tokens >= 1:
            return 0.0
        rate = self.rate / 2 if self.clock.now() < self.slow_until else self.rate
        return (1 - self.tokens) / rate

    def slow_down(self, seconds: float = 10.0) -> None:
        """After throttling from AWS: half the rate for a while, and drop the saved burst."""
        self._refill()
        self.tokens = min(self.tokens, 0.0)
        self.slow_until = self.clock.now() + seconds


def backoff(attempt: int, base: float = 5.0, cap: float = 60.0) -> float:
    """Delay before launch attempt `attempt + 1` after a failure to start."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))

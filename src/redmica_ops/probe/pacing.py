"""Sending the probes gently: a fleet-wide rate, a bound on requests in flight, and a smaller
bound per cell.

Why per cell: most tenants are idle and scaled to zero (PassengerMinInstances 0), so a probe
usually boots the tenant's process (~2.5 s and ~160 MiB, docs/capacity.md) in a task whose pool
is shared with the cell's active customers. `per_cell` caps how many tenants one cell boots at
once, so the probe never evicts more than that many idle processes at a time and never makes
the cell's tasks start pool-size processes together (what made the measured 30-cold-tenant
scan take ~40 s per request). The woken process idles out after PassengerPoolIdleTime. Cells
are interleaved, so a fleet of cells is probed in parallel at the same gentle pace per cell.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from redmica_ops.probe.model import SiteResult, SiteTarget
from redmica_ops.runs.pacing import Cancellation, Clock, TokenBucket

Check = Callable[[SiteTarget], SiteResult]


def interleave(targets: Sequence[SiteTarget]) -> list[SiteTarget]:
    """Round-robin over cells, each cell's tenants in their given order."""
    by_cell: dict[str, deque[SiteTarget]] = {}
    for target in targets:
        by_cell.setdefault(target.cell, deque()).append(target)
    ordered: list[SiteTarget] = []
    while by_cell:
        for cell in list(by_cell):
            ordered.append(by_cell[cell].popleft())
            if not by_cell[cell]:
                del by_cell[cell]
    return ordered


def probe_all(
    targets: Sequence[SiteTarget],
    check: Check,
    *,
    clock: Clock,
    rate: float,
    concurrency: int,
    per_cell: int,
    cancellation: Cancellation | None = None,
    done: Callable[[SiteResult], None] = lambda result: None,
) -> tuple[list[SiteResult], bool]:
    """Every target's result (in `targets` order) and whether a cancellation cut it short.

    Requests start no faster than `rate` per second (a burst of at most `per_cell`), with at
    most `concurrency` in flight and `per_cell` per cell. Waiting for a slot is waiting on the
    requests themselves; waiting for the rate is the injected clock's sleep.
    """
    bucket = TokenBucket(rate, per_cell, clock)
    pending = deque(interleave(targets))
    in_flight: dict[Future[SiteResult], SiteTarget] = {}
    busy: dict[str, int] = {}
    results: dict[int, SiteResult] = {}
    position = {id(t): i for i, t in enumerate(targets)}
    interrupted = False

    def collect(finished: set[Future[SiteResult]]) -> None:
        for future in finished:
            target = in_flight.pop(future)
            busy[target.cell] -= 1
            result = future.result()
            results[position[id(target)]] = result
            done(result)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="probe") as pool:
        while pending or in_flight:
            if cancellation is not None and cancellation.level and pending:
                interrupted = True
                pending.clear()
            ready = None
            if len(in_flight) < concurrency:
                ready = next((t for t in pending if busy.get(t.cell, 0) < per_cell), None)
            if ready is not None:
                delay = bucket.wait_time()
                if delay > 0:
                    clock.sleep(delay)
                    continue
                bucket.try_take()
                pending.remove(ready)
                busy[ready.cell] = busy.get(ready.cell, 0) + 1
                in_flight[pool.submit(check, ready)] = ready
                continue
            finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            collect(finished)
    return [results[i] for i in sorted(results)], interrupted

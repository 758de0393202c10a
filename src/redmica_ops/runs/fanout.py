"""Run one job per tenant: paced launches, one polling loop, every outcome classified.

The loop, per turn: launch while the token bucket, the in-flight cap and the failure policy
allow; poll every in-flight job in batches (the executor puts up to 100 in one DescribeTasks);
stop jobs past their timeout; save the run record now and then; sleep until the next token,
poll or back-off is due. Time comes from an injected clock and Ctrl-C from a Cancellation, so
the whole engine runs in tests without a real sleep.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redmica_ops.errors import RedmicaError
from redmica_ops.runs.executors import Executor, Job, Launched, LaunchFailed, TaskState
from redmica_ops.runs.pacing import Cancellation, Clock, TokenBucket, backoff
from redmica_ops.runs.record import FINAL, RunRecord, RunState, Status, TenantRun, utcnow
from redmica_ops.runs.results import ResultSource, merge_result
from redmica_ops.settings import DEFAULTS

MIN_SLEEP = 1e-3  # never busy-wait, whatever the arithmetic says
COUNTED_FAILURES = frozenset({Status.FAILED, Status.FAILED_TO_START, Status.TIMED_OUT})


@dataclass(frozen=True)
class FanOutOptions:
    command: list[str]
    # Defaults are the settings' own (one declaration, in settings.py).
    concurrency: int = DEFAULTS.concurrency
    rate: float = DEFAULTS.launch_rate
    burst: int = DEFAULTS.launch_burst
    timeout: float = float(DEFAULTS.task_timeout)
    max_failures: int | None = None
    canary: int | None = None
    max_start_attempts: int = DEFAULTS.max_start_attempts
    poll_interval: float = DEFAULTS.poll_interval
    wait: bool = True
    save_interval: float = 5.0
    tenants_per_task: int = 1  # K tenants run in turn by one task; timeout is per tenant


class Observer(Protocol):
    def launched(self, run: TenantRun) -> None: ...

    def finished(self, run: TenantRun) -> None: ...

    def message(self, text: str) -> None: ...

    def tick(self, record: RunRecord, in_flight: int, queued: int) -> None: ...


class SilentObserver:
    def launched(self, run: TenantRun) -> None:
        pass

    def finished(self, run: TenantRun) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def tick(self, record: RunRecord, in_flight: int, queued: int) -> None:
        pass


@dataclass
class _State:
    pending: deque[str]
    in_flight: dict[str, str] = field(default_factory=dict)  # handle -> (first) tenant
    batch: dict[str, tuple[str, ...]] = field(default_factory=dict)  # handle -> its tenants
    launched_at: dict[str, float] = field(default_factory=dict)  # tenant -> clock time
    ready_at: dict[str, float] = field(default_factory=dict)  # tenant -> not before
    timing_out: set[str] = field(default_factory=set)
    stopping: set[str] = field(default_factory=set)
    stop_launching: str | None = None  # why launching stopped
    canary: set[str] | None = None
    dirty: bool = True


def describe_failure(failure: BaseException) -> str:
    """One line for the record: a redmica error's message, else only the exception's type
    (an unknown exception's text might quote a secret)."""

    if isinstance(failure, RedmicaError):
        return failure.message
    if isinstance(failure, KeyboardInterrupt):
        return "interrupted"
    return f"unexpected error ({type(failure).__name__})"


class FanOut:
    def __init__(
        self,
        executor: Executor,
        record: RunRecord,
        options: FanOutOptions,
        clock: Clock,
        save: Callable[[RunRecord], None],
        cancellation: Cancellation | None = None,
        observer: Observer | None = None,
        results: ResultSource | None = None,
    ) -> None:
        self.executor = executor
        self.record = record
        self.options = options
        self.clock = clock
        self.save = save
        self.cancellation = cancellation or Cancellation()
        self.observer: Observer = observer or SilentObserver()
        self.results = results
        self.bucket = TokenBucket(options.rate, options.burst, clock)
        self.max_in_flight = 0
        self.poll_sizes: list[int] = []

    # -- the loop ------------------------------------------------------------------------------
    def run(self, order: list[str]) -> RunRecord:
        runs = self.record.tenants
        state = _State(pending=deque(t for t in order if runs[t].status == Status.PENDING))
        now = self.clock.now()
        self._reattach(state, now)
        if self.options.canary:
            state.canary = set(list(state.pending)[: self.options.canary])
        last_poll = now - self.options.poll_interval  # poll at once if re-attached
        last_save = float("-inf")
        failure: BaseException | None = None
        try:
            while True:
                self._handle_cancellation(state)
                if self.cancellation.level >= 3:
                    break
                self._launch(state)
                now = self.clock.now()
                polling = self.options.wait and state.in_flight
                # A little slack: a clock that slept exactly until the poll is due may land a
                # rounding error short of it, and must not spin.
                if polling and now - last_poll >= self.options.poll_interval - 1e-6:
                    self._poll(state)
                    last_poll = self.clock.now()
                self._enforce_timeouts(state)
                self._apply_policies(state)
                now = self.clock.now()
                if state.dirty and now - last_save >= self.options.save_interval:
                    self.save(self.record)
                    state.dirty, last_save = False, now
                self.observer.tick(self.record, len(state.in_flight), len(state.pending))
                if not state.in_flight and (state.stop_launching or not state.pending):
                    break
                if not self.options.wait and not state.pending:
                    break  # --no-wait: everything launched
                self.clock.sleep(self._next_wake(state, last_poll))
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._finish(state, failure)
        return self.record

    def _reattach(self, state: _State, now: float) -> None:
        groups: dict[str, list[str]] = {}
        for run in self.record.tenants.values():
            if run.status == Status.RUNNING and run.task_arn:
                groups.setdefault(run.task_arn, []).append(run.tenant)
        for handle, members in groups.items():  # re-attach (--resume, collect)
            state.in_flight[handle] = members[0]
            state.batch[handle] = tuple(members)
            state.launched_at[members[0]] = now

    def _members(self, state: _State, handle: str) -> tuple[str, ...]:
        return state.batch.get(handle) or (state.in_flight[handle],)

    def collect(self) -> int:
        """One look at every running tenant (its result object, else ECS); no launching.

        Returns how many tenants got a final status. The record's state becomes `finished`
        once every tenant has one; otherwise it keeps its state (launched, interrupted).
        """
        state = _State(pending=deque())
        self._reattach(state, self.clock.now())
        before = sum(1 for r in self.record.tenants.values() if r.status in FINAL)
        if self.results is not None:
            for handle in list(state.in_flight):
                members = self._members(state, handle)
                found = {}
                for tenant in members:
                    run = self.record.tenants[tenant]
                    result = self.results.get(self.record.run_id, tenant, run.attempts)
                    if result is not None:
                        found[tenant] = result
                for tenant, result in found.items():
                    merge_result(self.record.tenants[tenant], result)
                if len(found) == len(members):
                    state.in_flight.pop(handle)
                    state.batch.pop(handle, None)
        if state.in_flight:
            self._poll(state)
        after = sum(1 for r in self.record.tenants.values() if r.status in FINAL)
        if self.record.complete():
            self.record.state = RunState.FINISHED
        self.record.updated_at = utcnow().isoformat()
        return after - before

    def _finish(self, state: _State, failure: BaseException | None = None) -> None:
        """Settle the run's state. Finished means every tenant has a final status; anything
        else (an exception, Ctrl-C) leaves it `interrupted`, and `--resume` finishes it."""
        if failure is None:
            reason = state.stop_launching or "not launched"
            for tenant in state.pending:
                run = self.record.tenants[tenant]
                run.status = Status.NOT_STARTED
                run.reason = reason
        runs = self.record.tenants.values()
        complete = all(r.status in FINAL for r in runs)
        # A Ctrl-C that came when every tenant had already been launched and then finished
        # left nothing undone: the run is finished (nothing to --resume), not interrupted.
        left_undone = not complete or any(r.status == Status.NOT_STARTED for r in runs)
        if failure is not None:
            # Pending tenants stay pending and running ones running: resume picks them up.
            self.record.state = RunState.INTERRUPTED
            self.record.error = describe_failure(failure)
        elif self.cancellation.level and left_undone:
            self.record.state = RunState.INTERRUPTED
        elif not self.options.wait and state.in_flight:
            self.record.state = RunState.LAUNCHED
        elif complete:
            self.record.state = RunState.FINISHED
        else:
            self.record.state = RunState.INTERRUPTED
        self.record.updated_at = utcnow().isoformat()
        try:
            self.save(self.record)
        except Exception:
            if failure is None:
                raise
            # Saving failed too (the same expired credentials, say): the record in S3 keeps
            # its last state, `running`, which --resume accepts as well.

    # -- launching -----------------------------------------------------------------------------
    def _may_launch(self, state: _State) -> bool:
        if state.stop_launching or not state.pending or self.cancellation.level:
            return False
        return not (self.options.wait and len(state.in_flight) >= self.options.concurrency)

    def _next_ready(self, state: _State, taken: Sequence[str] = ()) -> str | None:
        now = self.clock.now()
        for tenant in state.pending:
            if tenant in taken or state.ready_at.get(tenant, 0.0) > now:
                continue
            if state.canary is not None and tenant not in state.canary:
                continue
            return tenant
        return None

    def _launch(self, state: _State) -> None:
        while self._may_launch(state):
            tenant = self._next_ready(state)
            if tenant is None or not self.bucket.try_take():
                return
            batch = [tenant]
            while len(batch) < max(1, self.options.tenants_per_task):
                more = self._next_ready(state, batch)
                if more is None:
                    break
                batch.append(more)
            runs = [self.record.tenants[t] for t in batch]
            for t in batch:
                state.pending.remove(t)
            # One attempt number for the task: its result objects are named after it.
            attempt = max(r.attempts for r in runs) + 1
            previous = {r.tenant: r.attempts for r in runs}
            for run in runs:
                run.attempts = attempt
            job = Job(tenant, attempt, self.options.command, tuple(batch) if len(batch) > 1 else ())
            result = self.executor.launch(job)
            state.dirty = True
            if isinstance(result, Launched):
                for run in runs:
                    run.status = Status.RUNNING
                    run.task_arn = result.handle
                    run.log_stream = result.streams.get(run.tenant, result.log_stream)
                    run.reason = None
                state.in_flight[result.handle] = tenant
                if len(batch) > 1:
                    state.batch[result.handle] = tuple(batch)
                state.launched_at[tenant] = self.clock.now()
                self.max_in_flight = max(self.max_in_flight, len(state.in_flight))
                for run in runs:
                    self.observer.launched(run)
            else:
                for run in runs:
                    self._launch_failed(state, run, result, previous[run.tenant])

    def _launch_failed(
        self, state: _State, run: TenantRun, result: LaunchFailed, previous: int
    ) -> None:
        run.reason = result.reason
        if result.throttled:
            # Not the tenant's fault: same attempt (same idempotency token) after a pause.
            run.attempts = previous
            self.bucket.slow_down()
            state.pending.appendleft(run.tenant)
            state.ready_at[run.tenant] = self.clock.now() + 1.0
        elif result.retryable and run.attempts < self.options.max_start_attempts:
            state.pending.append(run.tenant)
            state.ready_at[run.tenant] = self.clock.now() + backoff(run.attempts)
        else:
            self._final(state, run, Status.FAILED_TO_START, result.reason)

    # -- watching ------------------------------------------------------------------------------
    def _poll(self, state: _State) -> None:
        handles = list(state.in_flight)
        self.poll_sizes.append(len(handles))
        states = self.executor.poll(handles)
        for handle, task in states.items():
            if task.stopped and handle in state.in_flight:
                self._stopped(state, handle, task)
            elif not task.stopped and task.started_at:
                run = self.record.tenants[state.in_flight[handle]]
                if run.started_at != task.started_at:
                    run.started_at = task.started_at
                    state.dirty = True

    def _stopped(self, state: _State, handle: str, task: TaskState) -> None:
        members = self._members(state, handle)
        if len(members) > 1:
            self._batch_stopped(state, handle, members, task)
            return
        tenant = state.in_flight.pop(handle)
        state.batch.pop(handle, None)
        run = self.record.tenants[tenant]
        run.exit_code = task.exit_code
        run.stop_code = task.stop_code
        run.stopped_reason = task.stopped_reason
        run.started_at = task.started_at or run.started_at
        run.stopped_at = task.stopped_at or utcnow().isoformat()
        if task.tail:
            run.tail = list(task.tail)
        state.dirty = True
        result = None
        if self.results is not None and handle not in state.stopping | state.timing_out:
            result = self.results.get(self.record.run_id, tenant, run.attempts)
        if result is not None:
            # The tenant's own result: right even when ECS has forgotten the task.
            merge_result(run, result)
            self.observer.finished(run)
        elif handle in state.timing_out:
            self._final(
                state,
                run,
                Status.TIMED_OUT,
                f"stopped by redmica after the {self.options.timeout:g}s timeout",
            )
        elif handle in state.stopping:
            self._final(state, run, Status.STOPPED, "stopped by the operator (Ctrl-C twice)")
        elif task.missing:
            self._final(
                state,
                run,
                Status.FAILED,
                f"the task disappeared from ECS ({task.stopped_reason or 'MISSING'})",
            )
        elif task.never_started:
            why = task.stopped_reason or task.stop_code or "the task failed to start"
            if run.attempts < self.options.max_start_attempts and not state.stop_launching:
                run.status, run.reason, run.task_arn = Status.PENDING, why, None
                state.pending.append(tenant)
                state.ready_at[tenant] = self.clock.now() + backoff(run.attempts)
            else:
                self._final(state, run, Status.FAILED_TO_START, why)
        elif task.exit_code == 0:
            run.tail = None
            self._final(state, run, Status.SUCCEEDED, None)
        elif task.exit_code is not None:
            self._final(state, run, Status.FAILED, f"the migration exited with {task.exit_code}")
        else:
            why = task.stopped_reason or task.stop_code or "stopped without an exit code"
            self._final(state, run, Status.FAILED, why)

    def _batch_stopped(
        self, state: _State, handle: str, members: tuple[str, ...], task: TaskState
    ) -> None:
        """A task that ran several tenants in turn stopped: each gets its own outcome.

        A tenant's result object decides its status. Without one: the whole task never
        started (retried like a single task), or it stopped while that tenant ran (failed, as a
        migration may be half-applied), or before it began (not_started: --resume runs it). A
        task that exited 0 ran an image that writes no result objects: all succeeded.
        """
        state.in_flight.pop(handle)
        state.batch.pop(handle, None)
        state.dirty = True
        interrupted_one = False
        for tenant in members:
            run = self.record.tenants[tenant]
            run.stop_code = task.stop_code
            run.stopped_reason = task.stopped_reason
            run.started_at = run.started_at or task.started_at
            run.stopped_at = task.stopped_at or utcnow().isoformat()
            result = None
            if self.results is not None and handle not in state.stopping | state.timing_out:
                result = self.results.get(self.record.run_id, tenant, run.attempts)
            if result is not None:
                merge_result(run, result)
                self.observer.finished(run)
            elif handle in state.timing_out:
                limit = self.options.timeout * len(members)
                self._final(state, run, Status.TIMED_OUT, f"stopped by redmica after {limit:g}s")
            elif handle in state.stopping:
                self._final(state, run, Status.STOPPED, "stopped by the operator (Ctrl-C twice)")
            elif task.never_started and not task.missing:
                why = task.stopped_reason or task.stop_code or "the task failed to start"
                if run.attempts < self.options.max_start_attempts and not state.stop_launching:
                    run.status, run.reason, run.task_arn = Status.PENDING, why, None
                    state.pending.append(tenant)
                    state.ready_at[tenant] = self.clock.now() + backoff(run.attempts)
                else:
                    self._final(state, run, Status.FAILED_TO_START, why)
            elif task.exit_code == 0 and not task.missing:
                run.exit_code = 0
                self._final(state, run, Status.SUCCEEDED, None)
            elif not interrupted_one:
                interrupted_one = True
                how = task.stopped_reason or (
                    f"exit {task.exit_code}" if task.exit_code is not None else "no exit code"
                )
                run.exit_code = task.exit_code
                self._final(state, run, Status.FAILED, f"its task stopped while it ran ({how})")
            else:
                self._final(state, run, Status.NOT_STARTED, "its task stopped before it began")

    def _final(self, state: _State, run: TenantRun, status: Status, reason: str | None) -> None:
        run.status = status
        run.reason = reason
        state.dirty = True
        self.observer.finished(run)

    def _enforce_timeouts(self, state: _State) -> None:
        now = self.clock.now()
        for handle, tenant in list(state.in_flight.items()):
            if handle in state.timing_out or handle in state.stopping:
                continue
            limit = self.options.timeout * len(self._members(state, handle))
            if now - state.launched_at[tenant] > limit:
                state.timing_out.add(handle)
                self.executor.stop(handle, f"redmica: timed out after {self.options.timeout:g}s")
                self.observer.message(f"{tenant}: timed out, stopping its task")

    # -- policies --------------------------------------------------------------------------------
    def _apply_policies(self, state: _State) -> None:
        if state.stop_launching:
            return
        runs = self.record.tenants.values()
        failures = sum(1 for r in runs if r.status in COUNTED_FAILURES)
        limit = self.options.max_failures
        if limit is not None and failures >= limit:
            state.stop_launching = f"--max-failures {limit} reached"
            self.observer.message(
                f"{failures} failure(s): no new migrations start "
                f"(--max-failures {limit}); waiting for those running"
            )
        elif state.canary is not None:
            canary_runs = [self.record.tenants[t] for t in state.canary]
            if all(r.status in FINAL for r in canary_runs):
                if all(r.status == Status.SUCCEEDED for r in canary_runs):
                    self.observer.message(
                        f"canary: {len(canary_runs)} tenant(s) succeeded; migrating the rest"
                    )
                    state.canary = None
                else:
                    state.stop_launching = "canary failed"
                    self.observer.message("canary failed: the other tenants are not migrated")

    def _handle_cancellation(self, state: _State) -> None:
        level = self.cancellation.level
        if level >= 1 and not state.stop_launching:
            state.stop_launching = "interrupted (Ctrl-C)"
            self.observer.message(
                f"Ctrl-C: no new migrations start; waiting for {len(state.in_flight)} running "
                "(Ctrl-C again stops them)"
            )
        if level >= 2 and state.in_flight and not state.stopping:
            tenants = sorted(t for h in state.in_flight for t in self._members(state, h))
            self.observer.message(
                f"Ctrl-C again: stopping {len(tenants)} running migration(s): "
                f"{', '.join(tenants)} (their databases may be mid-migration)"
            )
            for handle in list(state.in_flight):
                state.stopping.add(handle)
                self.executor.stop(handle, "redmica: stopped by the operator")

    def _next_wake(self, state: _State, last_poll: float) -> float:
        now = self.clock.now()
        candidates = []
        if state.in_flight:
            candidates.append(last_poll + self.options.poll_interval - now)
        if self._may_launch(state):
            ready = [
                state.ready_at.get(t, 0.0)
                for t in state.pending
                if state.canary is None or t in state.canary
            ]
            if ready:
                earliest = min(ready)
                candidates.append(max(earliest - now, self.bucket.wait_time()))
        return max(MIN_SLEEP, min(candidates)) if candidates else self.options.poll_interval

"""The fan-out engine with a fake ECS client and a fake clock: every path, no real time."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import pytest

from redmica_ops.runs.executors import Job
from redmica_ops.runs.executors.ecs import EcsExecutor, EcsTarget, client_token, started_by
from redmica_ops.runs.fanout import FanOut, FanOutOptions
from redmica_ops.runs.pacing import Cancellation, FakeClock, TokenBucket, backoff
from redmica_ops.runs.record import RunRecord, Status, TenantRun, prepare_resume
from redmica_ops.runs.selection import Selection, new_record
from tests.ecs_support import CLUSTER, CONTAINER, FAMILY, FakeEcs

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

COMMAND = ["bundle", "exec", "rake", "db:migrate"]
TARGET = EcsTarget(CLUSTER, FAMILY, CONTAINER, subnets=("subnet-1",))


def names(n: int) -> list[str]:
    return [f"t{i:03d}" for i in range(n)]


class Run:
    """One engine run over fake ECS; keeps what each part saw."""

    def __init__(
        self,
        fake: FakeEcs,
        tenants: list[str],
        run_id: str = "20261126T060000Z-abc",
        cancellation: Cancellation | None = None,
        on_launch: Any = None,
        record: RunRecord | None = None,
        **options: Any,
    ) -> None:
        self.fake = fake
        self.clock = FakeClock()
        self.saves: list[str] = []
        self.executor = EcsExecutor(cast("ECSClient", fake), TARGET, run_id)
        self.executor.preflight()
        self.record = record or new_record(
            run_id, "ecs", Selection(order=tenants), COMMAND, FanOutOptions(command=COMMAND)
        )
        self.messages: list[str] = []
        outer = self

        class Observer:
            def launched(self, run: TenantRun) -> None:
                if on_launch:
                    on_launch(run)

            def finished(self, run: TenantRun) -> None:
                pass

            def message(self, text: str) -> None:
                outer.messages.append(text)

            def tick(self, record: RunRecord, in_flight: int, queued: int) -> None:
                pass

        opts = {"poll_interval": 10.0, **options}
        self.engine = FanOut(
            self.executor,
            self.record,
            FanOutOptions(command=COMMAND, **opts),
            self.clock,
            lambda r: self.saves.append(r.to_json()),
            cancellation,
            Observer(),
        )
        self.order = tenants

    def go(self, order: list[str] | None = None) -> RunRecord:
        return self.engine.run(self.order if order is None else order)

    def statuses(self) -> dict[str, str]:
        return {t: str(r.status) for t, r in self.record.tenants.items()}


def test_every_tenant_runs_once_and_results_are_collected() -> None:
    fake = FakeEcs(behaviour=lambda t, a: {"exit": 2} if t in ("t003", "t007") else {})
    run = Run(fake, names(60))
    record = run.go()
    assert record.summary() == {"failed": 2, "succeeded": 58}
    assert sorted(fake.attempts) == names(60) and set(fake.attempts.values()) == {1}
    assert record.tenants["t003"].exit_code == 2
    assert record.tenants["t003"].reason == "the migration exited with 2"
    assert record.state == "finished" and not record.all_succeeded()
    assert run.saves and '"state": "finished"' in run.saves[-1]


def test_describe_batches_are_ceil_in_flight_over_100() -> None:
    fake = FakeEcs(polls_to_stop=3)
    run = Run(fake, names(250), concurrency=250, rate=1000.0, burst=1000)
    run.go()
    assert run.engine.poll_sizes, "the engine polled"
    calls_per_poll = []
    index = 0
    for size in run.engine.poll_sizes:
        calls = math.ceil(size / 100)
        assert fake.describe_sizes[index : index + calls] == [
            min(100, size - 100 * i) for i in range(calls)
        ]
        index += calls
        calls_per_poll.append(calls)
    assert index == len(fake.describe_sizes)
    assert max(calls_per_poll) == 3


def test_in_flight_never_exceeds_concurrency() -> None:
    run = Run(FakeEcs(polls_to_stop=4), names(40), concurrency=7)
    record = run.go()
    assert run.engine.max_in_flight == 7
    assert record.summary() == {"succeeded": 40}


def test_launches_follow_the_token_bucket() -> None:
    fake = FakeEcs(polls_to_stop=1)
    run = Run(fake, names(30), rate=2.0, burst=10, concurrency=100, poll_interval=100.0)
    run.go()
    # 10 at once, then 20 more at 2/s: the last launch cannot happen before t = 10 s.
    assert run.clock.now() >= 10.0
    assert len(fake.run_task_calls) == 30


def test_token_bucket_refills_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=20.0, burst=100, clock=clock)
    assert sum(bucket.try_take() for _ in range(150)) == 100
    assert bucket.wait_time() == pytest.approx(0.05)
    clock.sleep(1.0)
    assert sum(bucket.try_take() for _ in range(50)) == 20
    bucket.slow_down(10.0)
    clock.sleep(1.0)
    assert sum(bucket.try_take() for _ in range(50)) == 10  # half rate while slowed


def test_run_task_failures_are_retried_with_back_off() -> None:
    def behaviour(tenant: str, attempt: int) -> dict[str, Any]:
        if tenant == "t001" and attempt == 1:
            return {"failure": "RESOURCE:MEMORY"}
        if tenant == "t002" and attempt < 3:
            return {"failure": "AGENT"}
        if tenant == "t003":
            return {"failure": "MISSING"}  # not a capacity problem: not retried
        return {}

    fake = FakeEcs(behaviour=behaviour)
    run = Run(fake, names(5), max_start_attempts=3)
    record = run.go()
    assert record.tenants["t001"].status == Status.SUCCEEDED
    assert record.tenants["t001"].attempts == 2
    assert record.tenants["t002"].status == Status.SUCCEEDED
    assert record.tenants["t002"].attempts == 3
    assert record.tenants["t003"].status == Status.FAILED_TO_START
    assert record.tenants["t003"].attempts == 1
    assert "MISSING" in (record.tenants["t003"].reason or "")
    assert run.clock.slept and run.clock.now() >= backoff(1) + backoff(2)
    tokens = [c["clientToken"] for c in fake.run_task_calls]
    assert len(tokens) == len(set(tokens)), "each attempt has its own idempotency token"


def test_capacity_failures_give_up_after_max_attempts() -> None:
    fake = FakeEcs(behaviour=lambda t, a: {"failure": "RESOURCE:CPU"} if t == "t000" else {})
    record = Run(fake, names(2), max_start_attempts=3).go()
    assert record.tenants["t000"].status == Status.FAILED_TO_START
    assert record.tenants["t000"].attempts == 3


def test_task_failed_to_start_is_retried_but_a_failed_migration_is_not() -> None:
    def behaviour(tenant: str, attempt: int) -> dict[str, Any]:
        if tenant == "t000" and attempt == 1:
            return {"never_started": True}
        if tenant == "t001":
            return {"never_started": True}
        if tenant == "t002":
            return {"exit": 1}
        return {}

    fake = FakeEcs(behaviour=behaviour)
    record = Run(fake, names(3), max_start_attempts=2).go()
    assert record.tenants["t000"].status == Status.SUCCEEDED
    assert record.tenants["t000"].attempts == 2
    assert record.tenants["t001"].status == Status.FAILED_TO_START
    assert "CannotPullContainerError" in (record.tenants["t001"].reason or "")
    assert record.tenants["t002"].status == Status.FAILED
    assert fake.attempts["t002"] == 1


def test_a_task_that_never_stops_times_out() -> None:
    fake = FakeEcs(behaviour=lambda t, a: {"stuck": True} if t == "t001" else {})
    run = Run(fake, names(3), timeout=600.0, poll_interval=30.0)
    record = run.go()
    assert record.tenants["t001"].status == Status.TIMED_OUT
    assert fake.stop_calls == [(record.tenants["t001"].task_arn, "redmica: timed out after 600s")]
    assert run.clock.now() > 600.0
    assert record.summary() == {"succeeded": 2, "timed_out": 1}


def test_max_failures_stops_launching_and_lets_running_finish() -> None:
    fake = FakeEcs(behaviour=lambda t, a: {"exit": 1} if t < "t003" else {}, polls_to_stop=3)
    run = Run(fake, names(20), concurrency=4, max_failures=2)
    record = run.go()
    assert record.summary()["failed"] >= 2
    not_started = record.with_status(Status.NOT_STARTED)
    assert not_started and all(r.reason == "--max-failures 2 reached" for r in not_started)
    assert all(fake.attempts.get(r.tenant) is None for r in not_started)
    assert not record.with_status(Status.RUNNING, Status.PENDING)
    assert any("--max-failures 2" in m for m in run.messages)


def test_canary_failure_keeps_the_rest_back() -> None:
    fake = FakeEcs(behaviour=lambda t, a: {"exit": 1} if t == "t001" else {})
    record = Run(fake, names(10), canary=3).go()
    assert sorted(fake.attempts) == ["t000", "t001", "t002"]
    assert record.summary() == {"failed": 1, "not_started": 7, "succeeded": 2}
    assert {r.reason for r in record.with_status(Status.NOT_STARTED)} == {"canary failed"}


def test_canary_success_lets_the_rest_go() -> None:
    fake = FakeEcs(polls_to_stop=2)
    run = Run(fake, names(10), canary=3)
    record = run.go()
    assert record.summary() == {"succeeded": 10}
    first_three = [
        c["overrides"]["containerOverrides"][0]["command"][1] for c in fake.run_task_calls[:3]
    ]
    assert first_three == names(3)
    assert len(fake.run_task_calls) == 10


def test_interrupt_stops_launching_then_resume_launches_nothing_twice() -> None:
    fake = FakeEcs(polls_to_stop=3)
    cancellation = Cancellation()
    launched: list[str] = []

    def on_launch(run: TenantRun) -> None:
        launched.append(run.tenant)
        if len(launched) == 4:
            cancellation.escalate()  # the operator's first Ctrl-C

    first = Run(
        fake,
        names(12),
        cancellation=cancellation,
        on_launch=on_launch,
        concurrency=100,
        rate=1.0,
        burst=4,
    )
    record = first.go()
    assert record.state == "interrupted"
    assert record.summary() == {"not_started": 8, "succeeded": 4}  # the running 4 finished
    assert any("Ctrl-C" in m for m in first.messages)

    saved = RunRecord.from_json(first.saves[-1])
    order = prepare_resume(saved, first.executor.find_launched(saved.run_id))
    assert order == names(12)[4:]
    second = Run(fake, names(12), record=saved)
    record = second.go(order)
    assert record.summary() == {"succeeded": 12}
    assert set(fake.attempts.values()) == {1}, "no tenant was launched twice"


def test_second_interrupt_stops_running_tasks_and_says_which() -> None:
    fake = FakeEcs(behaviour=lambda t, a: {"stuck": True})
    cancellation = Cancellation()

    def on_launch(run: TenantRun) -> None:
        if run.tenant == "t002":
            cancellation.escalate()
            cancellation.escalate()

    run = Run(fake, names(6), cancellation=cancellation, on_launch=on_launch)
    record = run.go()
    assert record.state == "interrupted"
    assert record.summary() == {"not_started": 3, "stopped": 3}
    assert sorted(task for task, _ in fake.stop_calls) == sorted(
        str(r.task_arn) for r in record.with_status(Status.STOPPED)
    )
    assert any("stopping 3 running migration(s): t000, t001, t002" in m for m in run.messages)


def test_resume_reattaches_a_task_the_crashed_run_never_recorded() -> None:
    fake = FakeEcs(polls_to_stop=2)
    crashed = Run(fake, names(3))
    # Simulate a crash right after RunTask for t000: ECS has the task, the record does not.
    crashed.executor.launch(Job("t000", 1, COMMAND))
    saved = RunRecord.from_json(crashed.record.to_json())
    assert saved.tenants["t000"].status == Status.PENDING
    order = prepare_resume(saved, crashed.executor.find_launched(saved.run_id))
    assert order == ["t001", "t002"]
    assert str(saved.tenants["t000"].status) == "running"
    record = Run(fake, names(3), record=saved).go(order)
    assert record.summary() == {"succeeded": 3}
    assert fake.attempts == {"t000": 1, "t001": 1, "t002": 1}


def test_idempotency_token_and_started_by() -> None:
    fake = FakeEcs()
    Run(fake, ["acme"], run_id="20261126T060000Z-abc123").go()
    call = fake.run_task_calls[0]
    assert call["clientToken"] == client_token("20261126T060000Z-abc123", "acme", 1)
    assert len(call["clientToken"]) <= 64
    assert call["startedBy"] == started_by("20261126T060000Z-abc123")
    assert len(call["startedBy"]) <= 36
    assert {"key": "redmica:tenant", "value": "acme"} in call["tags"]
    assert call["overrides"]["containerOverrides"][0] == {
        "name": CONTAINER,
        "command": ["run-tenant", "acme", "--", *COMMAND],
        # The run and attempt name the tenant's result object (issue 13); no secret.
        "environment": [
            {"name": "REDMICA_TENANT", "value": "acme"},
            {"name": "REDMICA_RUN_ID", "value": "20261126T060000Z-abc123"},
            {"name": "REDMICA_ATTEMPT", "value": "1"},
        ],
    }
    assert call["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    assert call["launchType"] == "FARGATE"


def test_no_wait_launches_everything_and_leaves_them_running() -> None:
    fake = FakeEcs(polls_to_stop=5)
    run = Run(fake, names(8), wait=False, concurrency=2)
    record = run.go()
    assert record.state == "launched"
    assert record.summary() == {"running": 8}
    assert len(fake.run_task_calls) == 8 and fake.describe_sizes == []

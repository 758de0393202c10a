"""A deploy's --timeout bounds every call it makes; polling starts fast and backs off; the
verdict is the last line (issue #28, item 12). With an injected clock: nothing sleeps."""

from __future__ import annotations

from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from redmica_ops.deploy.gateway import DeadlinePassed, ServiceGateway
from redmica_ops.deploy.model import ServiceTarget
from redmica_ops.deploy.report import rollout_lines
from redmica_ops.deploy.rollout import ServiceDeployer, roll_out
from redmica_ops.errors import AwsError
from redmica_ops.runs.pacing import FakeClock
from tests.ecs_support import FakeService, completes_after

OLD = "arn:aws:ecs:us-east-1:1:task-definition/redmica-app:5"


def server_error(operation: str) -> ClientError:
    response: Any = {
        "Error": {"Code": "ServerException", "Message": "boom"},
        "ResponseMetadata": {"HTTPStatusCode": 500},
    }
    return ClientError(response, operation)


class FailingAfterUpdate(FakeService):
    """ECS answers every DescribeServices with a 500 once our update went in."""

    def __init__(self) -> None:
        super().__init__(script=None)
        self.failed_calls = 0

    def describe_services(self, cluster: str, services: list[str]) -> dict[str, Any]:
        if self.updates:
            self.failed_calls += 1
            raise server_error("DescribeServices")
        return super().describe_services(cluster, services)


def deployer_of(fake: FakeService, clock: FakeClock, **kwargs: Any) -> ServiceDeployer:
    return ServiceDeployer(
        cast("Any", fake), ServiceTarget("c", "redmica"), clock, lambda text: None, **kwargs
    )


def test_a_failing_ecs_never_holds_a_rollout_past_its_timeout() -> None:
    fake = FailingAfterUpdate()
    clock = FakeClock()
    d = deployer_of(fake, clock)
    new, _ = d.register_with_image(OLD, "app", "redmica:6")
    report = roll_out(d, "deploy", new, OLD, timeout=5)
    assert not report.ok and report.result == "timed_out"
    assert "did not finish within 5s" in report.reason and "ServerException" in report.reason
    # 5 s following it, 5 s for the rollback (it fails the same way), 5 s for the verdict's
    # reads: never the SDK's 10 attempts with back-off per call, whatever --timeout says.
    assert clock.now() <= 15
    assert max(clock.slept) <= 8
    # The rollback could not even read the service: said, not raised.
    assert [u.get("taskDefinition") for u in fake.updates] == [new]
    assert report.rolled_back_to is None
    assert "the rollback could not go ahead: ECS still failing" in str(report.not_rolled_back)


def test_the_gateway_retries_within_the_deadline_and_no_further() -> None:
    clock = FakeClock()
    calls: list[float] = []

    class Ecs:
        def describe_services(self, **_: Any) -> Any:
            calls.append(clock.now())
            raise server_error("DescribeServices")

    gateway = ServiceGateway(cast("Any", Ecs()), ServiceTarget("c", "s"), clock)
    gateway.deadline = 5.0
    with pytest.raises(DeadlinePassed, match="ServerException"):
        gateway.service()
    assert clock.now() == 5.0  # the last back-off cut to what was left
    assert clock.slept == [0.5, 1.0, 2.0, 1.5]
    assert calls == [0.0, 0.5, 1.5, 3.5, 5.0]
    # Without a deadline (status, a registration): 8 attempts, then the AWS error (exit 5).
    calls.clear()
    gateway.deadline = None
    with pytest.raises(AwsError) as error:
        gateway.service()
    assert len(calls) == 8 and not isinstance(error.value, DeadlinePassed)


def test_an_error_that_is_not_transient_is_not_retried() -> None:
    clock = FakeClock()
    calls: list[int] = []

    class Ecs:
        def describe_services(self, **_: Any) -> Any:
            calls.append(1)
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeServices"
            )

    gateway = ServiceGateway(cast("Any", Ecs()), ServiceTarget("c", "s"), clock)
    gateway.deadline = 60.0
    with pytest.raises(AwsError, match="access denied"):
        gateway.service()
    assert calls == [1] and clock.slept == []


def test_the_rollouts_client_leaves_retries_to_the_gateway() -> None:
    """One attempt per call at the SDK level: botocore's own back-off (adaptive, 10 attempts)
    cannot be bounded by a deadline, so it is off for the deploy verbs' client only."""
    from redmica_ops.aws import ClientFactory
    from redmica_ops.settings import Settings

    clients = ClientFactory(Settings(region="us-east-1"))
    rollouts: Any = clients.ecs_rollouts().meta.config
    assert rollouts.retries == {"mode": "standard", "total_max_attempts": 1}
    assert rollouts.read_timeout <= 20 and rollouts.connect_timeout <= 5
    # The migrations' client (RunTask at scale) keeps the SDK's adaptive retries.
    default: Any = clients.ecs().meta.config
    assert default.retries["mode"] == "adaptive"
    assert clients.ecs() is not clients.ecs_rollouts()


def test_polling_starts_fast_and_backs_off_to_the_configured_interval() -> None:
    fake = FakeService(script=completes_after(6))
    clock = FakeClock()
    d = deployer_of(fake, clock, max_poll=5.0)  # the setting deploy_poll_interval
    new, _ = d.register_with_image(OLD, "app", "redmica:6")
    assert roll_out(d, "deploy", new, OLD, timeout=600).ok
    assert clock.slept == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_verdict_is_the_last_line_and_says_why_nothing_was_rolled_back() -> None:
    fake = FakeService(script=lambda s, o, p: None)
    clock = FakeClock()
    d = deployer_of(fake, clock)
    new, _ = d.register_with_image(OLD, "app", "redmica:6")
    report = roll_out(d, "deploy", new, OLD, timeout=30, rollback=False)
    lines = [line.text for line in rollout_lines(report)]
    assert lines[-1].startswith("error: deploy failed (timed out): deployment ")
    assert "the service was NOT rolled back (--no-rollback was given)" in lines
    # This deployment's stopped task, not an earlier deployment's.
    assert any("PendingMigrationError" in line for line in lines)
    assert not any("OutOfMemory" in line for line in lines)
    d = deployer_of(FakeService(script=lambda s, o, p: None), FakeClock())
    again = roll_out(d, "reload", None, OLD, timeout=30, rollback=False, force=True)
    assert "(nothing to go back to: it ran this revision before)" in " ".join(
        line.text for line in rollout_lines(again)
    )


def test_a_500_from_the_service_deployments_api_falls_back_at_once() -> None:
    """moto answers ListServiceDeployments with a 500 (not implemented): the deployment list
    decides, without a single retry (the SDK's 10 attempts took 28 s under --timeout 5)."""
    from datetime import UTC, datetime

    clock = FakeClock()
    calls: list[str] = []

    class Ecs:
        def list_service_deployments(self, **_: Any) -> Any:
            calls.append("ListServiceDeployments")
            raise server_error("ListServiceDeployments")

    gateway = ServiceGateway(cast("Any", Ecs()), ServiceTarget("c", "s"), clock)
    gateway.deadline = 5.0
    assert gateway.service_deployments(datetime.now(UTC)) is None
    assert gateway.completed_revisions() is None  # not asked again
    assert calls == ["ListServiceDeployments"] and clock.slept == []


class HangsAfterUpdate(FakeService):
    """An ECS endpoint that stops answering once our update went in (`kill -STOP` of the
    sandbox): each call then takes the client's whole read timeout, on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(script=None)
        self.clock = clock
        self.read_timeout = 20.0  # the rollouts client's own, without a deadline

    def hang(self) -> None:
        from botocore.exceptions import ReadTimeoutError

        self.clock.current += self.read_timeout
        raise ReadTimeoutError(endpoint_url="http://ecs")

    def describe_services(self, cluster: str, services: list[str]) -> dict[str, Any]:
        if self.updates:
            self.hang()
        return super().describe_services(cluster, services)

    def list_tasks(self, **_: Any) -> Any:
        self.hang()

    def list_service_deployments(self, **_: Any) -> Any:
        self.hang()


def test_a_hung_ecs_endpoint_holds_a_rollout_about_its_timeout_not_81s() -> None:
    """A trial's `deploy --timeout 4` took 81 s once ECS stopped answering: each call waited
    for the client's fixed 20 s read timeout. Within a deadline the gateway's client has
    socket timeouts no longer than it, and the rollback after a timeout a small bound."""
    clock = FakeClock()
    fake = HangsAfterUpdate(clock)
    bounds: list[float] = []

    def within(seconds: float) -> Any:
        bounds.append(seconds)
        fake.read_timeout = min(20.0, seconds)
        return fake

    d = deployer_of(fake, clock, ecs_within=within)
    new, _ = d.register_with_image(OLD, "app", "redmica:6")
    report = roll_out(d, "deploy", new, OLD, timeout=4)
    assert report.result == "timed_out" and report.rolled_back_to is None
    assert bounds and max(bounds) <= 4
    # The wait (4 s, plus the one call in flight), the rollback's bound, the reads': each
    # call cut to what its stage has, none started after its stage's deadline.
    assert clock.now() <= 4 * 4
    assert "the rollback could not go ahead" in str(report.not_rolled_back)


def test_the_rollback_after_a_timeout_is_followed_for_a_bounded_time_and_says_so() -> None:
    from redmica_ops.deploy.rollout import AFTER_TIMEOUT

    fake = FakeService(script=lambda s, o, p: None)  # never completes, ECS answers
    clock = FakeClock()
    said: list[str] = []
    d = ServiceDeployer(cast("Any", fake), ServiceTarget("c", "redmica"), clock, said.append)
    new, _ = d.register_with_image(OLD, "app", "redmica:6")
    report = roll_out(d, "deploy", new, OLD, timeout=600)
    assert report.result == "timed_out" and report.rolled_back_to == OLD
    # 600 s following it, then at most AFTER_TIMEOUT for the rollback (it goes on in ECS),
    # then the verdict's reads: not another 600 s.
    assert clock.now() <= 600 + AFTER_TIMEOUT + 1
    assert any(f"followed for {AFTER_TIMEOUT:g}s at most" in line for line in said), said


def test_the_rollouts_client_never_waits_longer_than_the_deadline_it_serves() -> None:
    from redmica_ops.aws import ClientFactory
    from redmica_ops.settings import Settings

    clients = ClientFactory(Settings(region="us-east-1"))
    short: Any = clients.ecs_rollouts(4).meta.config
    assert short.read_timeout == 4 and short.connect_timeout == 4
    assert short.retries == {"mode": "standard", "total_max_attempts": 1}
    long: Any = clients.ecs_rollouts(1800).meta.config
    assert long.read_timeout == 20 and long.connect_timeout == 5
    assert clients.ecs_rollouts(4) is clients.ecs_rollouts(4)  # built once per bound


def test_the_workspace_fleet_gives_its_deployers_the_bounded_client() -> None:
    """The one construction place (Workspace -> ClientFactory) builds the bounded clients."""
    from redmica_ops.cells.fleet import Fleet
    from redmica_ops.settings import Settings

    asked: list[float] = []

    def within(seconds: float) -> Any:
        asked.append(seconds)
        return FakeService()

    fleet = Fleet(
        Settings(region="us-east-1", cluster="c", service="s"),
        cast("Any", FakeService(script=None)),
        FakeClock(),
        ecs_within=within,
    )
    deployer = fleet.service_deployer()
    with deployer.deadline_in(7):
        assert deployer.gateway.ecs is not fleet.ecs
    assert asked == [7] and deployer.gateway.ecs is fleet.ecs


def test_an_ecs_that_hangs_before_the_rollout_fails_the_step_after_about_its_timeout() -> None:
    """The reads and the registration before a rollout are bounded too: ECS stopped 0.9 s into
    `deploy --timeout 4` (before UpdateService) held it 193 s (8 attempts of a 20 s read)."""
    from redmica_ops.cells.fleet import Fleet
    from redmica_ops.cells.waves import CellRun, WaveOptions, run_waves
    from redmica_ops.runs.pacing import Cancellation
    from redmica_ops.settings import Settings

    clock = FakeClock()
    fake = HangsAfterUpdate(clock)
    fake.updates.append({"taskDefinition": "hangs from the start"})

    def within(seconds: float) -> Any:
        fake.read_timeout = min(20.0, seconds)
        return fake

    class Workspace:
        settings = Settings(region="us-east-1", cluster="c", service="redmica")
        cancellation = Cancellation()

        def fleet(self) -> Fleet:
            return Fleet(self.settings, cast("Any", fake), clock, ecs_within=within)

        def message(self, text: str) -> None:
            pass

    def step(one: CellRun) -> None:
        one.deployer.current_revision()

    with pytest.raises(DeadlinePassed, match="ReadTimeoutError"):
        run_waves("deploy", WaveOptions(), cast("Any", Workspace()), step, timeout=4)
    assert clock.now() <= 4 + 4

"""Start a deployment, follow it until the model judges it, roll back on failure.

`ServiceDeployer` holds the gateway, the clock and the progress callback; `roll_out` is the
sequence every deploying verb (deploy, reload, rollback, release) shares. Rolling ECS
service updates never report a failed rollout as a success: see `model.judge`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from redmica_ops.deploy.gateway import DeadlinePassed, ServiceGateway
from redmica_ops.deploy.model import (
    DeploymentView,
    Outcome,
    RolloutReport,
    ServiceTarget,
    clone_with_image,
    container_name,
    judge,
    judge_service_deployment,
    require_image_reference,
    require_revision_reference,
    revision_name,
    views_of,
)
from redmica_ops.errors import Interrupted, NotFound, OperationFailed

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import ServiceTypeDef, TagTypeDef, TaskDefinitionTypeDef

    from redmica_ops.runs.pacing import Clock
    from redmica_ops.settings import Settings

Progress = Callable[[str], None]

MIGRATION_NOTE = (
    "note: rolling back the service does not revert database migrations; the "
    "previous image then runs on the migrated schema"
)


# The verdict's reads (events, stopped tasks) after the rollout's own time: seconds at most.
REPORT_BUDGET = 30.0
# After a timeout, the rollback is followed this long at most (or the timeout, if shorter):
# `--timeout` is what the operator can wait, and the rollback goes on in ECS after it (a hung
# ECS endpoint once held a `--timeout 4` deploy for 81 s).
AFTER_TIMEOUT = 30.0


def _quiet(_text: str) -> None:
    pass


def _never() -> bool:
    return False


class RolloutInterrupted(Interrupted):
    """Ctrl-C while a rollout was followed: ECS goes on with it; the message says so and how
    to watch or stop it (exit 130)."""

    def __init__(self, service: str, deployment_id: str, revision: str) -> None:
        super().__init__(
            f"interrupted: redmica stopped following deployment {deployment_id} of "
            f"{revision_name(revision)}, but the rollout goes on in ECS (service {service}); "
            "the circuit breaker still rolls it back if it fails",
            "watch it with `redmica status`; stop it with `redmica rollback` (back to the "
            "revision that last completed a deployment; --to REVISION where ECS cannot say "
            "which)",
        )
        self.service = service
        self.deployment_id = deployment_id
        self.revision = revision


class ServiceDeployer:
    def __init__(
        self,
        ecs: ECSClient,
        target: ServiceTarget,
        clock: Clock,
        progress: Progress | None = None,
        first_poll: float = 1.0,
        max_poll: float = 30.0,
        status: Progress | None = None,
        cancelled: Callable[[], bool] | None = None,
        ecs_within: Callable[[float], ECSClient] | None = None,
    ) -> None:
        self.gateway = ServiceGateway(ecs, target, clock)
        # The client whose socket timeouts fit a deadline (`deadline_in`); None: `ecs` always.
        self.ecs_within = ecs_within
        self.target = target
        self.clock = clock
        self.progress: Progress = progress or _quiet
        # The deployments' state line: replaced in place on a terminal, not one line per poll.
        self.status: Progress = status or self.progress
        # A fast rollout is seen fast: 1 s, 2 s, 4 s, ... up to `max_poll` (the setting
        # deploy_poll_interval).
        self.first_poll = min(first_poll, max_poll)
        self.max_poll = max_poll
        # Ctrl-C where it does not raise (a release's migrations, cells in threads).
        self.cancelled: Callable[[], bool] = cancelled or _never
        self.seen_events: set[str] = set()
        self.started_at: datetime | None = None  # when our last UpdateService was sent

    @contextlib.contextmanager
    def deadline_in(self, seconds: float) -> Iterator[None]:
        """No call of the gateway starts after `seconds` from now, inside this block, nor
        waits longer than `seconds` for an answer (the socket timeouts of `ecs_within`)."""
        gateway = self.gateway
        saved = gateway.deadline, gateway.ecs
        gateway.deadline = self.clock.now() + seconds
        if self.ecs_within is not None:
            gateway.ecs = self.ecs_within(seconds)
        try:
            yield
        finally:
            gateway.deadline, gateway.ecs = saved

    # -- reading --------------------------------------------------------------------------------
    def service(self) -> ServiceTypeDef:
        return self.gateway.service()

    def current_revision(self) -> str:
        return str(self.service()["taskDefinition"])

    def task_definition(self, arn: str) -> tuple[TaskDefinitionTypeDef, list[TagTypeDef]]:
        return self.gateway.task_definition(arn)

    def mark_seen_events(self, service: ServiceTypeDef) -> None:
        self.seen_events.update(e.get("id", "") for e in service.get("events", []))

    def new_events(self, service: ServiceTypeDef) -> list[str]:
        fresh = [e for e in service.get("events", []) if e.get("id") not in self.seen_events]
        self.mark_seen_events(service)
        return [str(e.get("message", "")) for e in reversed(fresh)]  # oldest first

    # -- changing -------------------------------------------------------------------------------
    def register_with_image(
        self, current_arn: str, container: str, image: str
    ) -> tuple[str, dict[str, object]]:
        """A new revision equal to the current one except `container`'s image."""
        definition, tags = self.task_definition(current_arn)
        params = clone_with_image(definition, container, image)
        if tags:
            params["tags"] = tags
        registered = self.gateway.register(params, str(definition.get("family")))
        return str(registered["taskDefinitionArn"]), params

    def start(
        self, task_definition: str | None, force: bool, rollback_on_failure: bool
    ) -> tuple[str, ServiceTypeDef]:
        """Update the service and return the id of the deployment this created."""
        before = self.service()
        self.mark_seen_events(before)
        old_ids = {d.get("id") for d in before.get("deployments", [])}
        config = copy.deepcopy(before.get("deploymentConfiguration") or {})
        config["deploymentCircuitBreaker"] = {"enable": True, "rollback": rollback_on_failure}
        # A minute of slack: the service deployment's createdAt is ECS's clock, not ours.
        self.started_at = datetime.now(UTC) - timedelta(minutes=1)
        service = self.gateway.update_service(config, task_definition, force)
        wanted = task_definition or service.get("taskDefinition")
        for deployment in service.get("deployments", []):
            if (
                deployment.get("status") == "PRIMARY"
                and deployment.get("id") not in old_ids
                and deployment.get("taskDefinition") == wanted
            ):
                return str(deployment["id"]), before
        raise OperationFailed(
            "ECS accepted the update but shows no new deployment for it",
            "check `redmica status`; nothing was rolled back",
        )

    # -- waiting --------------------------------------------------------------------------------
    def service_deployment_states(self) -> list[tuple[str, str]] | None:
        """(ARN, status) of the service deployments since our update, newest first; None
        where the API is unavailable (then the deployment list alone decides)."""
        if self.started_at is None:
            return None
        found = self.gateway.service_deployments(self.started_at)
        if found is None:
            return None
        return [(str(s.get("serviceDeploymentArn")), str(s.get("status"))) for s in found]

    def wait(
        self,
        deployment_id: str,
        previous_td: str | None,
        timeout: float,
        service_deployments: bool = True,
    ) -> Outcome:
        """Follow `deployment_id` to a verdict. `service_deployments`: also ask that API (off
        while waiting for a rollback, whose newest service deployment is the one undone)."""
        deadline = self.clock.now() + timeout
        delay = self.first_poll
        last_line = ""
        while True:
            if self.cancelled():
                raise KeyboardInterrupt  # as Ctrl-C where it raises: `roll_out` says what goes on
            try:
                outcome, views, last_line = self._look(
                    deployment_id, previous_td, service_deployments, last_line
                )
            except DeadlinePassed as passed:
                return Outcome(
                    False,
                    "timed_out",
                    f"deployment {deployment_id} did not finish within {timeout:g}s "
                    f"({passed.message})",
                    deployment_id,
                )
            if outcome is not None:
                return outcome
            if self.clock.now() >= deadline:
                return Outcome(
                    False,
                    "timed_out",
                    f"deployment {deployment_id} did not finish within {timeout:g}s",
                    deployment_id,
                    views,
                )
            self.clock.sleep(min(delay, max(0.0, deadline - self.clock.now())))
            delay = min(self.max_poll, delay * 2)

    def _look(
        self, deployment_id: str, previous_td: str | None, service_deployments: bool, last: str
    ) -> tuple[Outcome | None, list[DeploymentView], str]:
        """One look at the service: (the verdict or None, the deployments, the state line)."""
        service = self.service()
        views = views_of(service)
        for message in self.new_events(service):
            self.progress(f"event: {message}")
        line = " | ".join(v.line() for v in views)
        if line != last:
            self.status(line)
        outcome = judge(deployment_id, previous_td, service, views)
        if outcome is None and service_deployments:
            # The service-deployments API knows about a rollback before the list shows it.
            states = self.service_deployment_states()
            outcome = judge_service_deployment(deployment_id, states or [], views)
        return outcome, views, line

    def wait_for_revision(self, task_definition: str, timeout: float) -> Outcome:
        """Wait for the PRIMARY deployment of `task_definition` (a breaker rollback) to settle."""
        deadline = self.clock.now() + timeout
        while True:
            service = self.service()
            for deployment in service.get("deployments", []):
                if (
                    deployment.get("status") == "PRIMARY"
                    and deployment.get("taskDefinition") == task_definition
                ):
                    remaining = max(0.0, deadline - self.clock.now())
                    return self.wait(str(deployment["id"]), None, remaining, False)
            if self.clock.now() >= deadline:
                return Outcome(False, "timed_out", "the rollback deployment did not appear")
            self.clock.sleep(self.first_poll)

    def stopped_task_reasons(self, deployment_id: str, limit: int = 5) -> list[str]:
        """Why the tasks of `deployment_id` stopped: usually the real cause of a failed
        rollout (other deployments' tasks, earlier ones', say nothing about this one)."""
        try:
            tasks = self.gateway.stopped_tasks(deployment_id, limit)
        except Exception:  # best effort: the report must not fail on this
            return []
        reasons = []
        for task in tasks:
            containers = "; ".join(
                f"{c.get('name')}: {c.get('reason') or c.get('exitCode')}"
                for c in task.get("containers", [])
            )
            reasons.append(
                f"{revision_name(task.get('taskArn', '?'))}: "
                f"{task.get('stoppedReason', '?')} ({containers})"
            )
        return reasons

    def completed_revisions(self) -> list[str] | None:
        """The revisions whose deployment of this service completed, newest first; None where
        ECS does not say (no service-deployments API)."""
        return self.gateway.completed_revisions()

    def active_revisions(self, family: str) -> list[str]:
        return self.gateway.revisions(family)

    def resolve_revision(self, current_arn: str, to: str) -> str:
        family = str(self.task_definition(current_arn)[0]["family"])
        require_revision_reference(to)
        wanted = revision_name(to) if ":" in to else f"{family}:{to}"
        # Check against the family's revisions first: describing a missing one is a vague
        # ClientException, and the operator needs to see which revisions there are.
        active = self.gateway.revisions(wanted.rpartition(":")[0] or family)
        if wanted not in {revision_name(arn) for arn in active}:
            numbers = ", ".join(revision_name(arn).rpartition(":")[2] for arn in active[:20])
            raise NotFound(
                f"revision {wanted} does not exist or is not active",
                f"active revisions of {wanted.rpartition(':')[0]}: {numbers or 'none'} "
                "(newest first); give one with --to",
            )
        definition, _ = self.task_definition(wanted)
        return str(definition["taskDefinitionArn"])


def roll_out(
    deployer: ServiceDeployer,
    action: str,
    task_definition: str | None,
    previous_td: str | None,
    timeout: float,
    rollback: bool = True,
    wait: bool = True,
    force: bool = False,
) -> RolloutReport:
    """Start a deployment, wait for it, and on failure make sure the service is rolled back.

    Every call is bounded by `timeout`: the start and the wait by one, a rollback by another
    (then the verdict's reads by a few seconds); after a timeout, the rollback is followed for
    `min(timeout, AFTER_TIMEOUT)` at most (it goes on in ECS after that). Ctrl-C while waiting
    is `RolloutInterrupted`: ECS goes on with the rollout, and the message says how to watch or
    stop it."""
    with deployer.deadline_in(timeout):
        deployment_id, before = deployer.start(task_definition, force, rollback_on_failure=rollback)
    target_td = task_definition or str(before.get("taskDefinition"))
    report = RolloutReport(
        action,
        True,
        "started",
        f"deployment {deployment_id} started",
        target_td,
        previous_td,
        deployment_id,
    )
    deployer.progress(
        f"{action}: deployment {deployment_id} of {revision_name(target_td)} "
        f"started on {deployer.target.service}"
    )
    if not wait:
        return report
    try:
        with deployer.deadline_in(timeout):
            outcome = deployer.wait(deployment_id, previous_td, timeout)
    except KeyboardInterrupt:
        raise RolloutInterrupted(deployer.target.service, deployment_id, target_td) from None
    report.ok, report.result, report.reason = outcome.ok, outcome.result, outcome.reason
    report.deployments = outcome.deployments
    if outcome.ok:
        return report
    # After a timeout the rollback has a small bound of its own; after another failure (ECS
    # answers, the rollback most likely completes) the rollback has a `timeout` of its own.
    bound = min(timeout, AFTER_TIMEOUT) if outcome.result == "timed_out" else timeout
    with deployer.deadline_in(bound):
        try:
            _roll_back(deployer, report, outcome, previous_td, bound, rollback)
        except DeadlinePassed as passed:
            report.not_rolled_back = f"the rollback could not go ahead: {passed.message}"
    with deployer.deadline_in(min(bound, REPORT_BUDGET)):
        try:
            service = deployer.service()
        except DeadlinePassed:
            service = {}
        report.events = [str(e.get("message", "")) for e in service.get("events", [])[:10]]
        report.stopped_tasks = deployer.stopped_task_reasons(deployment_id)
    return report


def _roll_back(
    deployer: ServiceDeployer,
    report: RolloutReport,
    outcome: Outcome,
    previous_td: str | None,
    timeout: float,
    rollback: bool,
) -> None:
    """After a failed rollout: wait for the breaker's rollback, or roll back ourselves."""
    target_td = str(report.task_definition)
    can_go_back = previous_td is not None and previous_td != target_td
    rollback_outcome: Outcome | None = None
    following = ""
    if outcome.result == "timed_out":
        following = (
            f" (followed for {timeout:g}s at most; it goes on in ECS after that: `redmica status`)"
        )
    if outcome.breaker_rollback and can_go_back:
        deployer.progress(
            f"ECS's circuit breaker rolls back to {revision_name(str(previous_td))}; waiting for it"
        )
        rollback_outcome = deployer.wait_for_revision(str(previous_td), timeout)
    elif rollback and can_go_back:
        states = deployer.service_deployment_states()
        if states and deployer.gateway.stop_service_deployment(states[0][0]):
            # ECS undoes its own deployment (StopServiceDeployment, ROLLBACK).
            deployer.progress(
                f"asked ECS to roll back; waiting for {revision_name(str(previous_td))}" + following
            )
            rollback_outcome = deployer.wait_for_revision(str(previous_td), timeout)
        else:
            deployer.progress(f"rolling back to {revision_name(str(previous_td))}{following}")
            rollback_id, _ = deployer.start(previous_td, False, rollback_on_failure=False)
            rollback_outcome = deployer.wait(rollback_id, None, timeout, False)
    if rollback_outcome is not None:
        report.rolled_back_to = previous_td
        report.rollback_result = rollback_outcome.result
        report.deployments = rollback_outcome.deployments or report.deployments
    elif not can_go_back:
        report.not_rolled_back = "nothing to go back to: it ran this revision before"
    elif report.action == "rollback":
        report.not_rolled_back = (
            "a failed rollback is not undone; `redmica rollback --to REVISION` chooses another"
        )
    else:
        report.not_rolled_back = "--no-rollback was given"


# -- what the verbs share --------------------------------------------------------------------------
def register_image(
    settings: Settings, d: ServiceDeployer, container: str | None, image: str
) -> tuple[str, str]:
    """(the service's current revision, a new one that differs only in the image)."""

    require_image_reference(image)
    name = container_name(container, settings.container)
    current = d.current_revision()
    new_arn, _ = d.register_with_image(current, name, image)
    d.progress(f"registered {revision_name(new_arn)} ({name} -> {image})")
    return current, new_arn


def timeout_or_default(settings: Settings, timeout: float | None) -> float:
    return float(timeout if timeout is not None else settings.deploy_timeout)


__all__ = [
    "MIGRATION_NOTE",
    "DeploymentView",
    "RolloutInterrupted",
    "ServiceDeployer",
    "register_image",
    "roll_out",
    "timeout_or_default",
]

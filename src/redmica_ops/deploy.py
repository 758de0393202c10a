"""Rolling ECS service updates that never report a failed rollout as a success.

We track the deployment *we* created. Success: it is PRIMARY with rolloutState COMPLETED (or,
where rolloutState is absent, running == desired and no other deployment left). Failure: its
rolloutState is FAILED, it was replaced (the circuit breaker rolled back, or someone else
deployed), it disappeared, or the timeout passed. On failure we roll back to the previous
revision unless the circuit breaker already does, and wait for that too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redmica_ops.aws import translate_errors
from redmica_ops.errors import NotFound, OperationFailed, UsageError
from redmica_ops.runs.pacing import Clock

# Fields DescribeTaskDefinition returns that RegisterTaskDefinition does not accept.
READ_ONLY_FIELDS = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
    }
)


@dataclass(frozen=True)
class ServiceTarget:
    cluster: str
    service: str


@dataclass
class DeploymentView:
    id: str
    status: str
    task_definition: str
    desired: int
    running: int
    pending: int
    failed: int
    rollout_state: str | None
    rollout_reason: str | None

    @classmethod
    def of(cls, data: dict[str, Any]) -> DeploymentView:
        return cls(
            data.get("id", "?"),
            data.get("status", "?"),
            data.get("taskDefinition", "?"),
            int(data.get("desiredCount", 0)),
            int(data.get("runningCount", 0)),
            int(data.get("pendingCount", 0)),
            int(data.get("failedTasks", 0)),
            data.get("rolloutState"),
            data.get("rolloutStateReason"),
        )

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def line(self) -> str:
        state = f" {self.rollout_state}" if self.rollout_state else ""
        return (
            f"{self.status:<8} {revision_name(self.task_definition):<28} "
            f"desired {self.desired} running {self.running} pending {self.pending}{state}"
        )


def revision_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


@dataclass
class Outcome:
    ok: bool
    result: str  # succeeded | failed | rolled_back | timed_out | superseded | disappeared
    reason: str
    deployment_id: str | None = None
    deployments: list[DeploymentView] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    breaker_rollback: bool = False  # ECS's circuit breaker is (or was) rolling back


Progress = Callable[[str], None]


class ServiceDeployer:
    def __init__(
        self,
        ecs: Any,
        target: ServiceTarget,
        clock: Clock,
        progress: Progress | None = None,
        first_poll: float = 5.0,
        max_poll: float = 30.0,
    ) -> None:
        self.ecs = ecs
        self.target = target
        self.clock = clock
        self.progress = progress or (lambda text: None)
        self.first_poll = first_poll
        self.max_poll = max_poll
        self.seen_events: set[str] = set()

    # -- reading --------------------------------------------------------------------------------
    def service(self) -> dict[str, Any]:
        t = self.target
        with translate_errors(f"describing ECS service {t.service} in {t.cluster}"):
            response = self.ecs.describe_services(cluster=t.cluster, services=[t.service])
        services = [s for s in response.get("services", []) if s.get("status") != "INACTIVE"]
        if not services:
            raise NotFound(
                f"ECS service {t.service!r} not found in cluster {t.cluster!r}",
                "check the service and cluster settings (REDMICA_SERVICE, "
                "REDMICA_CLUSTER) and the region",
            )
        service: dict[str, Any] = services[0]
        return service

    def task_definition(self, arn: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
        with translate_errors(f"describing task definition {arn}"):
            response = self.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        return response["taskDefinition"], response.get("tags", [])

    def mark_seen_events(self, service: dict[str, Any]) -> None:
        self.seen_events.update(e.get("id", "") for e in service.get("events", []))

    def new_events(self, service: dict[str, Any]) -> list[str]:
        fresh = [e for e in service.get("events", []) if e.get("id") not in self.seen_events]
        self.mark_seen_events(service)
        return [str(e.get("message", "")) for e in reversed(fresh)]  # oldest first

    # -- changing -------------------------------------------------------------------------------
    def register_with_image(
        self, current_arn: str, container: str, image: str
    ) -> tuple[str, dict[str, Any]]:
        """A new revision equal to the current one except `container`'s image."""
        definition, tags = self.task_definition(current_arn)
        params = clone_with_image(definition, container, image)
        if tags:
            params["tags"] = tags
        with translate_errors(f"registering a new revision of {definition.get('family')}"):
            response = self.ecs.register_task_definition(**params)
        registered: dict[str, Any] = response["taskDefinition"]
        return str(registered["taskDefinitionArn"]), params

    def start(
        self, task_definition: str | None, force: bool, rollback_on_failure: bool
    ) -> tuple[str, dict[str, Any]]:
        """Update the service and return the id of the deployment this created."""
        before = self.service()
        self.mark_seen_events(before)
        old_ids = {d.get("id") for d in before.get("deployments", [])}
        config = copy.deepcopy(before.get("deploymentConfiguration") or {})
        config["deploymentCircuitBreaker"] = {"enable": True, "rollback": rollback_on_failure}
        kwargs: dict[str, Any] = {
            "cluster": self.target.cluster,
            "service": self.target.service,
            "deploymentConfiguration": config,
        }
        if task_definition:
            kwargs["taskDefinition"] = task_definition
        if force:
            kwargs["forceNewDeployment"] = True
        with translate_errors(f"updating ECS service {self.target.service}"):
            service = self.ecs.update_service(**kwargs)["service"]
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
    def wait(self, deployment_id: str, previous_td: str | None, timeout: float) -> Outcome:
        deadline = self.clock.now() + timeout
        delay = self.first_poll
        last_line = ""
        while True:
            service = self.service()
            views = [DeploymentView.of(d) for d in service.get("deployments", [])]
            events = self.new_events(service)
            for message in events:
                self.progress(f"event: {message}")
            line = " | ".join(v.line() for v in views)
            if line != last_line:
                self.progress(line)
                last_line = line
            outcome = self._judge(deployment_id, previous_td, service, views)
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
            delay = min(self.max_poll, delay * 1.5)

    def _judge(
        self,
        deployment_id: str,
        previous_td: str | None,
        service: dict[str, Any],
        views: list[DeploymentView],
    ) -> Outcome | None:
        ours = next((v for v in views if v.id == deployment_id), None)
        primary = next((v for v in views if v.status == "PRIMARY"), None)
        breaker = (service.get("deploymentConfiguration") or {}).get(
            "deploymentCircuitBreaker"
        ) or {}
        if ours is None:
            if primary is not None and previous_td and primary.task_definition == previous_td:
                return Outcome(
                    False,
                    "rolled_back",
                    "ECS rolled the deployment back (deployment circuit breaker)",
                    deployment_id,
                    views,
                    breaker_rollback=True,
                )
            return Outcome(
                False,
                "disappeared",
                f"deployment {deployment_id} disappeared",
                deployment_id,
                views,
            )
        if ours.rollout_state == "FAILED":
            reason = ours.rollout_reason or "the rollout failed"
            return Outcome(
                False,
                "failed",
                reason,
                deployment_id,
                views,
                breaker_rollback=bool(breaker.get("enable") and breaker.get("rollback")),
            )
        if ours.status != "PRIMARY":
            if primary is not None and previous_td and primary.task_definition == previous_td:
                return Outcome(
                    False,
                    "rolled_back",
                    "the service went back to "
                    f"{revision_name(previous_td)} (circuit breaker rollback)",
                    deployment_id,
                    views,
                    breaker_rollback=True,
                )
            other = revision_name(primary.task_definition) if primary else "?"
            return Outcome(
                False,
                "superseded",
                f"another deployment ({other}) replaced ours",
                deployment_id,
                views,
            )
        if ours.rollout_state == "COMPLETED":
            return Outcome(True, "succeeded", "deployment completed", deployment_id, views)
        if ours.rollout_state is None and ours.running == ours.desired and len(views) == 1:
            return Outcome(
                True,
                "succeeded",
                "all tasks running, no other deployment left",
                deployment_id,
                views,
            )
        return None

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
                    return self.wait(str(deployment["id"]), None, remaining)
            if self.clock.now() >= deadline:
                return Outcome(False, "timed_out", "the rollback deployment did not appear")
            self.clock.sleep(self.first_poll)

    def stopped_task_reasons(self, limit: int = 5) -> list[str]:
        """Why the service's recent tasks stopped: usually the real cause of a failed rollout."""
        t = self.target
        try:
            with translate_errors("listing stopped tasks"):
                arns = self.ecs.list_tasks(
                    cluster=t.cluster, serviceName=t.service, desiredStatus="STOPPED"
                ).get("taskArns", [])[:limit]
                if not arns:
                    return []
                tasks = self.ecs.describe_tasks(cluster=t.cluster, tasks=arns).get("tasks", [])
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

    def previous_revision(self, current_arn: str) -> str:
        definition, _ = self.task_definition(current_arn)
        family, revision = definition["family"], int(definition["revision"])
        with translate_errors(f"listing revisions of {family}"):
            response = self.ecs.list_task_definitions(
                familyPrefix=family, sort="DESC", status="ACTIVE"
            )
        for arn in response.get("taskDefinitionArns", []):
            name = revision_name(arn)
            fam, _, rev = name.rpartition(":")
            if fam == family and rev.isdigit() and int(rev) < revision:
                return str(arn)
        raise NotFound(
            f"no earlier active revision of {family} than {revision}", "give one with --to REVISION"
        )

    def resolve_revision(self, current_arn: str, to: str) -> str:
        if to.startswith("arn:") or ":" in to:
            definition, _ = self.task_definition(to)
        else:
            if not to.isdigit():
                raise UsageError(f"--to {to!r} is not a revision number, family:revision or ARN")
            family = self.task_definition(current_arn)[0]["family"]
            definition, _ = self.task_definition(f"{family}:{to}")
        return str(definition["taskDefinitionArn"])


def clone_with_image(definition: dict[str, Any], container: str, image: str) -> dict[str, Any]:
    params = {k: copy.deepcopy(v) for k, v in definition.items() if k not in READ_ONLY_FIELDS}
    names = [c.get("name") for c in params.get("containerDefinitions", [])]
    if container not in names:
        raise UsageError(
            f"container {container!r} is not in task definition "
            f"{definition.get('family')}:{definition.get('revision')}",
            f"containers there: {', '.join(str(n) for n in names)}",
        )
    for item in params["containerDefinitions"]:
        if item.get("name") == container:
            item["image"] = image
    return params


def event_time(event: dict[str, Any]) -> str:
    when = event.get("createdAt")
    return when.isoformat() if isinstance(when, datetime) else str(when or "")


@dataclass
class RolloutReport:
    action: str
    ok: bool
    result: str
    reason: str
    task_definition: str | None
    previous_task_definition: str | None
    deployment_id: str | None = None
    rolled_back_to: str | None = None
    rollback_result: str | None = None
    deployments: list[DeploymentView] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    stopped_tasks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["deployments"] = [d.as_dict() for d in self.deployments]
        return data


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
    """Start a deployment, wait for it, and on failure make sure the service is rolled back."""
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
    outcome = deployer.wait(deployment_id, previous_td, timeout)
    report.ok, report.result, report.reason = outcome.ok, outcome.result, outcome.reason
    report.deployments = outcome.deployments
    if outcome.ok:
        return report
    can_go_back = previous_td is not None and previous_td != target_td
    if outcome.breaker_rollback and can_go_back:
        deployer.progress(
            f"ECS's circuit breaker rolls back to {revision_name(str(previous_td))}; waiting for it"
        )
        report.rolled_back_to = previous_td
        rollback_outcome = deployer.wait_for_revision(str(previous_td), timeout)
        report.rollback_result = rollback_outcome.result
        report.deployments = rollback_outcome.deployments or report.deployments
    elif rollback and can_go_back:
        deployer.progress(f"rolling back to {revision_name(str(previous_td))}")
        rollback_id, _ = deployer.start(previous_td, False, rollback_on_failure=False)
        rollback_outcome = deployer.wait(rollback_id, None, timeout)
        report.rolled_back_to = previous_td
        report.rollback_result = rollback_outcome.result
        report.deployments = rollback_outcome.deployments or report.deployments
    service = deployer.service()
    report.events = [str(e.get("message", "")) for e in service.get("events", [])[:10]]
    report.stopped_tasks = deployer.stopped_task_reasons()
    return report

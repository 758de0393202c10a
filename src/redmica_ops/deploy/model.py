"""What a deployment looks like and the one rule that judges it: no AWS calls here.

We track the deployment *we* created. Success: it is PRIMARY with rolloutState COMPLETED (or,
where rolloutState is absent, running == desired and no other deployment left). Failure: its
rolloutState is FAILED, it was replaced (the circuit breaker rolled back, or someone else
deployed), it disappeared, or the timeout passed (the waiting loop in `rollout.py`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from redmica_ops.errors import UsageError
from redmica_ops.tenants import rules

if TYPE_CHECKING:
    from mypy_boto3_ecs.type_defs import (
        DeploymentTypeDef,
        ServiceEventTypeDef,
        ServiceTypeDef,
        TaskDefinitionTypeDef,
    )

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
    def of(cls, data: DeploymentTypeDef) -> DeploymentView:
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

    def as_dict(self) -> dict[str, object]:
        return self.__dict__.copy()

    def line(self) -> str:
        state = f" {self.rollout_state}" if self.rollout_state else ""
        return (
            f"{self.status:<8} {revision_name(self.task_definition):<28} "
            f"desired {self.desired} running {self.running} pending {self.pending}{state}"
        )


def revision_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def views_of(service: ServiceTypeDef) -> list[DeploymentView]:
    return [DeploymentView.of(d) for d in service.get("deployments", [])]


@dataclass
class Outcome:
    ok: bool
    result: str  # succeeded | failed | rolled_back | timed_out | superseded | disappeared
    reason: str
    deployment_id: str | None = None
    deployments: list[DeploymentView] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    breaker_rollback: bool = False  # ECS's circuit breaker is (or was) rolling back


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
    stopped_tasks: list[str] = field(default_factory=list)  # of this deployment's tasks
    # Why a failed rollout was left as it is (--no-rollback, nothing to go back to, ...).
    not_rolled_back: str | None = None

    def as_dict(self) -> dict[str, object]:
        data = dict(self.__dict__)
        data["deployments"] = [d.as_dict() for d in self.deployments]
        return data


# Service deployment states that mean "this rollout is being, or was, undone".
ROLLBACK_STATES = frozenset(
    {"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"}
)


def judge_service_deployment(
    deployment_id: str, states: list[tuple[str, str]], views: list[DeploymentView]
) -> Outcome | None:
    """The verdict from the service-deployments API (newest first: (arn, status)), or None."""
    if not states:
        return None
    arn, status = states[0]
    if status in ROLLBACK_STATES:
        return Outcome(
            False,
            "rolled_back",
            f"ECS service deployment {arn} is {status}",
            deployment_id,
            views,
            breaker_rollback=True,
        )
    if status in ("STOPPED", "STOP_REQUESTED"):
        return Outcome(
            False, "failed", f"ECS service deployment {arn} is {status}", deployment_id, views
        )
    return None


def judge(
    deployment_id: str,
    previous_td: str | None,
    service: ServiceTypeDef,
    views: list[DeploymentView],
) -> Outcome | None:
    """The verdict on our deployment, or None while it is still going."""
    ours = next((v for v in views if v.id == deployment_id), None)
    primary = next((v for v in views if v.status == "PRIMARY"), None)
    breaker: Mapping[str, object] = (service.get("deploymentConfiguration") or {}).get(
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
                f"the service went back to {revision_name(previous_td)} (circuit breaker rollback)",
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


_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# The reference grammar of the OCI distribution spec (as docker's `reference` package):
# [domain[:port]/]path[:tag][@digest].
IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?"
)


def check_image_reference(value: str) -> str | None:
    """None if `value` is an image reference with a tag or digest; else what is wrong."""

    match = IMAGE_REFERENCE.fullmatch(value)
    if not value or match is None or len(match.group("name")) > 255:
        return f"{rules.show(value)} is not a container image reference (REPOSITORY:TAG or @DIGEST)"
    if not match.group("tag") and not match.group("digest"):
        return (
            f"{rules.show(value)} has no tag or digest (it would mean :latest, which does not "
            "say what runs)"
        )
    return None


def require_image_reference(image: str) -> None:
    """The usage error for an --image that is not a reference (checked before any question)."""
    if problem := check_image_reference(image):
        raise UsageError(
            f"--image {problem}",
            "e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/redmica:2026.11.26",
        )


def require_container_flag(container: str | None) -> None:
    """An empty --container is a mistake, never "the default" (as for `migrate --command`)."""
    if container is not None and not container.strip():
        raise UsageError(
            "--container is empty; nothing was changed",
            "give the container's name, or leave --container out to use the setting "
            "container (REDMICA_CONTAINER or `container` in redmica.toml)",
        )


def container_name(container: str | None, setting: str | None) -> str:
    """--container, else the setting `container`."""
    require_container_flag(container)
    name = container or setting
    if not name:
        raise UsageError(
            "which container gets the image?",
            "give --container NAME, or set REDMICA_CONTAINER or `container` in redmica.toml",
        )
    return name


_REVISION = r"[1-9][0-9]{0,9}"
_FAMILY = r"[A-Za-z0-9_-]{1,255}"
REVISION_REFERENCE = re.compile(
    rf"{_REVISION}|{_FAMILY}:{_REVISION}"
    rf"|arn:aws(?:-[a-z]+)*:ecs:[a-z0-9-]+:\d{{12}}:task-definition/{_FAMILY}:{_REVISION}"
)


def require_revision_reference(to: str) -> None:
    """`rollback --to`: a revision number, family:revision or a task definition ARN (an empty
    value is a mistake, never "the previous revision"). Checked before any question."""

    if not REVISION_REFERENCE.fullmatch(to):
        raise UsageError(
            f"--to {rules.show(to)} is not a revision number, family:revision or task "
            "definition ARN; nothing was changed",
            "e.g. --to 41 (of the service's family), --to redmica-app:41 or --to "
            "arn:aws:ecs:REGION:ACCOUNT:task-definition/redmica-app:41; leave --to out for "
            "the previous revision",
        )


def clone_with_image(
    definition: TaskDefinitionTypeDef, container: str, image: str
) -> dict[str, object]:
    """RegisterTaskDefinition's parameters for a copy of `definition` with a new image."""
    # Every path that registers a revision comes through here (one service or a cell's).
    require_image_reference(image)
    params: dict[str, object] = {
        k: copy.deepcopy(v) for k, v in definition.items() if k not in READ_ONLY_FIELDS
    }
    containers = definition.get("containerDefinitions", [])
    names = [c.get("name") for c in containers]
    if container not in names:
        raise UsageError(
            f"container {container!r} is not in task definition "
            f"{definition.get('family')}:{definition.get('revision')}",
            f"containers there: {', '.join(str(n) for n in names)}",
        )
    cloned = [dict(copy.deepcopy(c)) for c in containers]
    for item in cloned:
        if item.get("name") == container:
            item["image"] = image
    params["containerDefinitions"] = cloned
    return params


def event_time(event: ServiceEventTypeDef) -> str:
    when = event.get("createdAt")
    return when.isoformat() if isinstance(when, datetime) else str(when or "")

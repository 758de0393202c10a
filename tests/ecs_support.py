"""ECS test helpers: a moto cluster with a task definition, exit codes per tenant, and a fake
ECS client for what moto does not simulate (RunTask failures[], stop codes, stuck tasks)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

CLUSTER = "test-cluster"
FAMILY = "redmica-app"
CONTAINER = "app"
LOG_GROUP = "/redmica/app"


def create_ecs_target() -> dict[str, str]:
    """Inside mock_aws: a cluster, a Fargate task definition, a subnet. Returns settings env."""
    ecs = boto3.client("ecs", region_name="us-east-1")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(
        family=FAMILY,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": CONTAINER,
                "image": "example/redmica:1",
                "memory": 512,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": LOG_GROUP,
                        "awslogs-region": "us-east-1",
                        "awslogs-stream-prefix": "migrate",
                    },
                },
            }
        ],
    )
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    return {
        "REDMICA_CLUSTER": CLUSTER,
        "REDMICA_TASK_DEFINITION": FAMILY,
        "REDMICA_CONTAINER": CONTAINER,
        "REDMICA_SUBNETS": subnet,
        # moto runs no container (no result objects): one tenant per task, as these tests
        # count tasks per tenant. Batches are tested in test_batches.py.
        "REDMICA_TENANTS_PER_TASK": "1",
    }


def tenant_of_overrides(overrides: dict[str, Any]) -> str:
    env = overrides["containerOverrides"][0]["environment"]
    return str(next(e["value"] for e in env if e["name"] == "REDMICA_TENANT"))


@dataclass
class MotoEcsSpy:
    """Records every RunTask that reached moto and gives chosen tenants an exit code."""

    exit_codes: dict[str, int] = field(default_factory=dict)
    launched: list[str] = field(default_factory=list)
    task_definitions: list[str] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    throttle_run_task_every: int = 0
    throttle_describe_every: int = 0
    throttled: dict[str, int] = field(default_factory=lambda: {"RunTask": 0, "DescribeTasks": 0})


@contextmanager
def moto_ecs_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoEcsSpy]:
    from moto.ecs.exceptions import ECSException
    from moto.ecs.models import EC2ContainerServiceBackend

    spy = MotoEcsSpy()
    original_run = EC2ContainerServiceBackend.run_task
    original_describe = EC2ContainerServiceBackend.describe_tasks
    run_calls = itertools.count(1)
    describe_calls = itertools.count(1)

    def run_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        if spy.throttle_run_task_every and next(run_calls) % spy.throttle_run_task_every == 0:
            spy.throttled["RunTask"] += 1
            raise ECSException("ThrottlingException", "Rate exceeded")
        tasks = original_run(self, *args, **kwargs)
        for task in tasks:
            tenant = tenant_of_overrides(task.overrides)
            spy.launched.append(tenant)
            spy.task_definitions.append(task.task_definition_arn)
            spy.overrides.append(json.loads(json.dumps(task.overrides)))
            for container in task.containers:
                container.exitCode = spy.exit_codes.get(tenant, 0)
        return tasks

    def describe_tasks(self: Any, *args: Any, **kwargs: Any) -> Any:
        if spy.throttle_describe_every and next(describe_calls) % spy.throttle_describe_every == 0:
            spy.throttled["DescribeTasks"] += 1
            raise ECSException("ThrottlingException", "Rate exceeded")
        return original_describe(self, *args, **kwargs)

    monkeypatch.setattr(EC2ContainerServiceBackend, "run_task", run_task)
    monkeypatch.setattr(EC2ContainerServiceBackend, "describe_tasks", describe_tasks)
    yield spy


# -- a fake ECS client -----------------------------------------------------------------------
@dataclass
class FakeTask:
    arn: str
    tenant: str
    polls_left: int  # describes until it stops (-1: never stops on its own)
    exit_code: int | None = 0
    stop_code: str | None = "EssentialContainerExited"
    reason: str | None = None
    stopped: bool = False


Behaviour = Callable[[str, int], dict[str, Any]]


@dataclass
class FakeEcs:
    """Duck-types the ECS client. `behaviour(tenant, attempt)` returns how a launch goes:
    {"failure": "RESOURCE:MEMORY"} | {"never_started": True} | {"exit": 3} | {"stuck": True}."""

    behaviour: Behaviour = lambda tenant, attempt: {}
    polls_to_stop: int = 2
    tasks: dict[str, FakeTask] = field(default_factory=dict)
    run_task_calls: list[dict[str, Any]] = field(default_factory=list)
    describe_sizes: list[int] = field(default_factory=list)
    stop_calls: list[tuple[str, str]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def describe_clusters(self, clusters: list[str]) -> dict[str, Any]:
        return {"clusters": [{"clusterName": clusters[0], "status": "ACTIVE"}]}

    def describe_task_definition(self, taskDefinition: str) -> dict[str, Any]:
        return {
            "taskDefinition": {
                "family": FAMILY,
                "revision": 1,
                "networkMode": "awsvpc",
                "taskDefinitionArn": f"arn:aws:ecs:::task-definition/{FAMILY}:1",
                "containerDefinitions": [{"name": CONTAINER}],
            }
        }

    def run_task(self, **params: Any) -> dict[str, Any]:
        self.run_task_calls.append(params)
        tenant = tenant_of_overrides(params["overrides"])
        attempt = self.attempts[tenant] = self.attempts.get(tenant, 0) + 1
        plan = self.behaviour(tenant, attempt)
        if "failure" in plan:
            return {"tasks": [], "failures": [{"reason": plan["failure"], "detail": "fake"}]}
        arn = f"arn:aws:ecs:us-east-1:1:task/{CLUSTER}/t{next(self.counter)}"
        task = FakeTask(
            arn,
            tenant,
            -1 if plan.get("stuck") else self.polls_to_stop,
            exit_code=plan.get("exit", 0),
        )
        if plan.get("never_started"):
            task.exit_code, task.stop_code = None, "TaskFailedToStart"
            task.reason = "CannotPullContainerError: pull access denied"
        self.tasks[arn] = task
        return {"tasks": [{"taskArn": arn}], "failures": []}

    def describe_tasks(self, cluster: str, tasks: list[str], **_: Any) -> dict[str, Any]:
        assert len(tasks) <= 100, "DescribeTasks takes at most 100 tasks"
        self.describe_sizes.append(len(tasks))
        found = []
        for arn in tasks:
            task = self.tasks[arn]
            if not task.stopped and task.polls_left > 0:
                task.polls_left -= 1
                task.stopped = task.polls_left == 0
            found.append(self._describe(task))
        return {"tasks": found, "failures": []}

    def _describe(self, task: FakeTask) -> dict[str, Any]:
        tags = [{"key": "redmica:tenant", "value": task.tenant}]
        if not task.stopped:
            return {
                "taskArn": task.arn,
                "lastStatus": "RUNNING",
                "tags": tags,
                "startedAt": "2026-11-26T06:00:00+00:00",
            }
        container: dict[str, Any] = {"name": CONTAINER}
        if task.exit_code is not None:
            container["exitCode"] = task.exit_code
        if task.reason:
            container["reason"] = task.reason
        return {
            "taskArn": task.arn,
            "lastStatus": "STOPPED",
            "stopCode": task.stop_code,
            "stoppedReason": task.reason or "Essential container in task exited",
            "containers": [container],
            "tags": tags,
        }

    def stop_task(self, cluster: str, task: str, reason: str) -> dict[str, Any]:
        self.stop_calls.append((task, reason))
        fake = self.tasks[task]
        fake.stopped, fake.exit_code, fake.stop_code = True, None, "UserInitiated"
        fake.reason = reason
        return {}

    def list_tasks(
        self,
        cluster: str,
        startedBy: str,
        desiredStatus: str,
        **_: Any,
    ) -> dict[str, Any]:
        arns = [t.arn for t in self.tasks.values() if (desiredStatus == "STOPPED") == t.stopped]
        return {"taskArns": arns}


# -- a fake ECS service for rollouts ---------------------------------------------------------
Script = Callable[["FakeService", dict[str, Any], int], None]


@dataclass
class FakeService:
    """Duck-types the ECS calls of deploy.py. After each update_service, `script(self,
    deployment, poll)` runs on every DescribeServices to move the rollout along."""

    script: Script | None = None
    task_definition: str = "arn:aws:ecs:us-east-1:1:task-definition/redmica-app:5"
    desired: int = 2
    breaker_rollback: bool = True
    deployments: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    registered: list[dict[str, Any]] = field(default_factory=list)
    polls: int = 0
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    def __post_init__(self) -> None:
        for revision in (3, 4, 5):
            arn = f"arn:aws:ecs:us-east-1:1:task-definition/redmica-app:{revision}"
            self.definitions[arn] = {
                "taskDefinitionArn": arn,
                "family": "redmica-app",
                "revision": revision,
                "status": "ACTIVE",
                "containerDefinitions": [
                    {"name": "app", "image": f"redmica:{revision}"},
                    {"name": "log_router", "image": "fluent-bit:1"},
                ],
            }
        self.deployments = [
            self._deployment(self.task_definition, "PRIMARY", "COMPLETED", running=self.desired)
        ]

    def _deployment(
        self, td: str, status: str, rollout: str | None, running: int = 0
    ) -> dict[str, Any]:
        deployment = {
            "id": f"ecs-svc/{next(self.ids)}",
            "status": status,
            "taskDefinition": td,
            "desiredCount": self.desired,
            "runningCount": running,
            "pendingCount": self.desired - running,
            "failedTasks": 0,
        }
        if rollout is not None:
            deployment["rolloutState"] = rollout
        return deployment

    def event(self, message: str) -> None:
        self.events.insert(
            0,
            {
                "id": f"e{len(self.events)}",
                "message": message,
                "createdAt": "2026-11-26T06:00:00+00:00",
            },
        )

    def _service(self) -> dict[str, Any]:
        primary = next(d for d in self.deployments if d["status"] == "PRIMARY")
        return {
            "serviceName": "redmica",
            "status": "ACTIVE",
            "taskDefinition": primary["taskDefinition"],
            "desiredCount": self.desired,
            "runningCount": primary["runningCount"],
            "pendingCount": primary["pendingCount"],
            "deployments": json.loads(json.dumps(self.deployments)),
            "events": list(self.events),
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": True, "rollback": self.breaker_rollback}
            },
        }

    def describe_services(self, cluster: str, services: list[str]) -> dict[str, Any]:
        self.polls += 1
        if self.script and self.updates:
            ours = next((d for d in self.deployments if d["id"] == self.updates[-1]["id"]), None)
            self.script(self, ours or {}, self.polls)
        return {"services": [self._service()], "failures": []}

    def update_service(self, **kwargs: Any) -> dict[str, Any]:
        td = kwargs.get("taskDefinition") or next(
            d["taskDefinition"] for d in self.deployments if d["status"] == "PRIMARY"
        )
        self.breaker_rollback = kwargs["deploymentConfiguration"]["deploymentCircuitBreaker"][
            "rollback"
        ]
        for deployment in self.deployments:
            deployment["status"] = "ACTIVE"
        new = self._deployment(td, "PRIMARY", "IN_PROGRESS")
        self.deployments.insert(0, new)
        self.updates.append({**kwargs, "id": new["id"]})
        self.polls = 0
        return {"service": self._service()}

    def describe_task_definition(self, taskDefinition: str, **_: Any) -> dict[str, Any]:
        arn = taskDefinition
        if not arn.startswith("arn:"):
            arn = f"arn:aws:ecs:us-east-1:1:task-definition/{arn}"
        return {"taskDefinition": json.loads(json.dumps(self.definitions[arn])), "tags": []}

    def register_task_definition(self, **params: Any) -> dict[str, Any]:
        self.registered.append(params)
        revision = 1 + max(d["revision"] for d in self.definitions.values())
        arn = f"arn:aws:ecs:us-east-1:1:task-definition/redmica-app:{revision}"
        self.definitions[arn] = {
            **params,
            "taskDefinitionArn": arn,
            "revision": revision,
            "status": "ACTIVE",
        }
        return {"taskDefinition": self.definitions[arn]}

    def list_task_definitions(self, **_: Any) -> dict[str, Any]:
        arns = sorted(self.definitions, key=lambda a: self.definitions[a]["revision"], reverse=True)
        return {"taskDefinitionArns": arns}

    def list_tasks(self, **_: Any) -> dict[str, Any]:
        return {
            "taskArns": [
                "arn:aws:ecs:us-east-1:1:task/c/dead0",
                "arn:aws:ecs:us-east-1:1:task/c/dead1",
            ]
        }

    def describe_tasks(self, **_: Any) -> dict[str, Any]:
        ours = self.updates[0]["id"] if self.updates else "ecs-svc/none"
        return {
            "tasks": [
                {
                    # A task of an earlier deployment: nothing to do with this rollout.
                    "taskArn": "arn:aws:ecs:us-east-1:1:task/c/dead0",
                    "startedBy": "ecs-svc/earlier",
                    "stoppedReason": "Scaling activity initiated by (deployment ecs-svc/earlier)",
                    "containers": [{"name": "app", "exitCode": 137, "reason": "OutOfMemory"}],
                },
                {
                    "taskArn": "arn:aws:ecs:us-east-1:1:task/c/dead1",
                    "startedBy": ours,  # ECS: a service's task is started by its deployment
                    "stoppedReason": "Essential container in task exited",
                    "containers": [
                        {
                            "name": "app",
                            "exitCode": 1,
                            "reason": "ActiveRecord::PendingMigrationError",
                        }
                    ],
                },
            ]
        }


def completes_after(polls: int) -> Script:
    def script(service: FakeService, ours: dict[str, Any], poll: int) -> None:
        if ours and poll >= polls:
            ours.update(rolloutState="COMPLETED", runningCount=service.desired, pendingCount=0)
            service.deployments[:] = [ours]

    return script


# -- moto: the service-deployments API and rollouts --------------------------------------------
@dataclass
class SimulatedServiceDeployment:
    arn: str
    service: str  # the service's ARN
    cluster: str  # the cluster's ARN
    task_definition: str
    source: str | None  # the revision the service ran when it started
    created_at: datetime
    status: str
    finished_at: datetime | None = None

    @property
    def revision_arn(self) -> str:
        # One service revision per deployment here; ECS shares one between deployments of the
        # same configuration, which changes nothing for the callers.
        return self.arn.replace(":service-deployment/", ":service-revision/")

    def brief(self) -> dict[str, Any]:
        brief: dict[str, Any] = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service,
            "clusterArn": self.cluster,
            "createdAt": self.created_at,
            "startedAt": self.created_at,
            "targetServiceRevisionArn": self.revision_arn,
            "status": self.status,
        }
        if self.finished_at is not None:
            brief["finishedAt"] = self.finished_at
        return brief


class MotoServiceDeployments:
    """THE one place the tests make moto roll services over and answer the service-deployments
    API (moto 5.2 has neither: a deployment never leaves IN_PROGRESS, and ListServiceDeployments,
    DescribeServiceDeployments, DescribeServiceRevisions and StopServiceDeployment are answered
    with HTTP 500).

    What real ECS does, and this does: every deployment (CreateService, an UpdateService that
    changes the revision or forces a new deployment) is a service deployment targeting a service
    revision that names the task definition. One that completes is SUCCESSFUL (here at once: the
    new deployment is PRIMARY and COMPLETED, the old ones gone). One that fails with the circuit
    breaker's rollback on becomes ROLLBACK_SUCCESSFUL and the old revision is PRIMARY again (no
    new service deployment); without the rollback it is STOPPED and stays FAILED. One still
    IN_PROGRESS when another starts is STOPPED. StopServiceDeployment with ROLLBACK on an
    IN_PROGRESS one makes it ROLLBACK_SUCCESSFUL and puts the source revision back.

    `outcomes[image]` chooses how a rollout of a revision with that image goes: "fail" (its
    tasks fail, the breaker acts) or "hang" (it never finishes); any other image succeeds.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.ecs.models import EC2ContainerServiceBackend
        from moto.ecs.responses import EC2ContainerServiceResponse

        self.outcomes: dict[str, str] = {}
        self.deployments: list[SimulatedServiceDeployment] = []
        self.calls: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._new = itertools.count(1)  # ecs-svc/newN, as the golden transcripts recorded them
        self._start = datetime.now(UTC)
        original_create = EC2ContainerServiceBackend.create_service
        original_update = EC2ContainerServiceBackend.update_service
        sim = self

        def create_service(backend: Any, *args: Any, **kwargs: Any) -> Any:
            service = original_create(backend, *args, **kwargs)
            if service.task_definition:
                sim._record(service, service.task_definition, None, "SUCCESSFUL")
            return service

        def update_service(backend: Any, properties: dict[str, Any]) -> Any:
            # moto pops these from the dict it is given: read them first.
            changed = properties.get("task_definition") or properties.get("force_new_deployment")
            config = properties.get("deployment_configuration") or {}
            breaker = config.get("deploymentCircuitBreaker") or {}
            name = str(properties.get("service", "")).split("/")[-1]
            before = backend._get_service(properties.get("cluster", "default"), name)
            source = before.task_definition
            service = original_update(backend, properties)
            if changed:
                sim._rolled(backend, service, source, bool(breaker.get("rollback")))
            return service

        def respond(action: str, answer: Callable[[Any], dict[str, Any]]) -> Callable[[Any], Any]:
            def handler(response: Any) -> Any:
                from moto.core.responses import ActionResult

                sim.calls[action] = sim.calls.get(action, 0) + 1
                return ActionResult(answer(response))

            return handler

        monkeypatch.setattr(EC2ContainerServiceBackend, "create_service", create_service)
        monkeypatch.setattr(EC2ContainerServiceBackend, "update_service", update_service)
        for action, answer in (
            ("list_service_deployments", self._list),
            ("describe_service_deployments", self._describe),
            ("describe_service_revisions", self._revisions),
            ("stop_service_deployment", self._stop),
        ):
            monkeypatch.setattr(
                EC2ContainerServiceResponse, action, respond(action, answer), raising=False
            )

    # -- rollouts ------------------------------------------------------------------------------
    def _record(
        self, service: Any, task_definition: str, source: str | None, status: str
    ) -> SimulatedServiceDeployment:
        # Seconds apart, in order: the newest is the last made, whatever the machine's speed.
        at = self._start + timedelta(seconds=next(self._ids))
        number = len(self.deployments)
        arn = service.arn.replace(":service/", ":service-deployment/") + f"/sd{number}"
        record = SimulatedServiceDeployment(
            arn, service.arn, service.cluster_arn, task_definition, source, at, status
        )
        if status != "IN_PROGRESS":
            record.finished_at = at
        self.deployments.append(record)
        return record

    def _images(self, backend: Any, task_definition: str) -> set[str]:
        definition = backend.describe_task_definition(task_definition)
        return {str(c.get("image")) for c in definition.container_definitions}

    def _rolled(self, backend: Any, service: Any, source: str, breaker_rollback: bool) -> None:
        for earlier in self.deployments:
            if earlier.service == service.arn and earlier.status == "IN_PROGRESS":
                earlier.status, earlier.finished_at = "STOPPED", datetime.now(UTC)
        images = self._images(backend, service.task_definition)
        outcome = next((self.outcomes[i] for i in images if i in self.outcomes), "succeed")
        old = dict(service.deployments[0], status="ACTIVE")
        new = {
            **old,
            "id": f"ecs-svc/new{next(self._new)}",
            "taskDefinition": service.task_definition,
            "status": "PRIMARY",
            "rolloutState": "COMPLETED",
            "runningCount": service.desired_count,  # (pendingCount as moto has it)
        }
        if outcome == "hang":
            new.update(rolloutState="IN_PROGRESS", runningCount=0)
            service.deployments = [new, old]
            self._record(service, service.task_definition, source, "IN_PROGRESS")
        elif outcome == "fail" and breaker_rollback:
            failed = {**new, "status": "ACTIVE", "rolloutState": "FAILED", "runningCount": 0}
            failed["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
            back = {**old, "id": f"ecs-svc/back{next(self._new)}", "status": "PRIMARY"}
            back.update(taskDefinition=source, rolloutState="COMPLETED")
            service.deployments = [back, failed]
            self._record(service, service.task_definition, source, "ROLLBACK_SUCCESSFUL")
            service.task_definition = source
        elif outcome == "fail":
            new.update(rolloutState="FAILED", runningCount=0)
            new["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
            service.deployments = [new, old]
            self._record(service, service.task_definition, source, "STOPPED")
        else:
            service.deployments = [new]
            self._record(service, service.task_definition, source, "SUCCESSFUL")

    # -- the API ---------------------------------------------------------------------------------
    def _list(self, response: Any) -> dict[str, Any]:
        name = str(response._get_param("service")).split("/")[-1]
        wanted = response._get_param("status") or []
        after = (response._get_param("createdAt") or {}).get("after")
        if isinstance(after, datetime):  # moto parses it naive, in UTC
            after = after.replace(tzinfo=after.tzinfo or UTC).timestamp()
        found = [
            d.brief()
            for d in reversed(self.deployments)  # newest first
            if d.service.endswith(f"/{name}")
            and (not wanted or d.status in wanted)
            and (after is None or d.created_at.timestamp() > float(after))
        ]
        return {"serviceDeployments": found[: int(response._get_param("maxResults") or 20)]}

    def _find(self, arn: str) -> SimulatedServiceDeployment | None:
        return next((d for d in self.deployments if d.arn == arn), None)

    def _describe(self, response: Any) -> dict[str, Any]:
        found = []
        for arn in response._get_param("serviceDeploymentArns"):
            if (record := self._find(arn)) is not None:
                detail = record.brief()
                detail["targetServiceRevision"] = {"arn": record.revision_arn}
                found.append(detail)
        return {"serviceDeployments": found, "failures": []}

    def _revisions(self, response: Any) -> dict[str, Any]:
        by_revision = {d.revision_arn: d for d in self.deployments}
        revisions = [
            {
                "serviceRevisionArn": arn,
                "serviceArn": by_revision[arn].service,
                "clusterArn": by_revision[arn].cluster,
                "taskDefinition": by_revision[arn].task_definition,
            }
            for arn in response._get_param("serviceRevisionArns")
            if arn in by_revision
        ]
        return {"serviceRevisions": revisions, "failures": []}

    def _stop(self, response: Any) -> dict[str, Any]:
        from moto.core.exceptions import JsonRESTError

        arn = response._get_param("serviceDeploymentArn")
        record = self._find(arn)
        if record is None or record.status != "IN_PROGRESS" or record.source is None:
            raise JsonRESTError("InvalidParameterException", "the deployment is not in progress")
        record.status, record.finished_at = "ROLLBACK_SUCCESSFUL", datetime.now(UTC)
        backend = response.ecs_backend
        service = next(s for s in backend.services.values() if s.arn == record.service)
        back = dict(service.deployments[0], id=f"ecs-svc/back{next(self._new)}")
        back.update(taskDefinition=record.source, status="PRIMARY", rolloutState="COMPLETED")
        back.update(runningCount=service.desired_count, pendingCount=0)
        service.deployments = [back]
        service.task_definition = record.source
        return {"serviceDeploymentArn": arn}

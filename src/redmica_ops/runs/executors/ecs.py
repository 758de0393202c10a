"""One tenant's migration as an ECS RunTask: idempotent, tagged, password-free.

The container override carries only the tenant id and the command; the task itself reads the
tenant's document (`redmica entrypoint run-tenant ID -- CMD`). RunTask's clientToken is derived
from (run, tenant, attempt), so a retried call never starts a migration twice, and startedBy +
tags name the run and tenant, so a crashed CLI can find its tasks again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from redmica_ops.aws import error_code, translate, translate_errors
from redmica_ops.errors import AwsError, JSONObject, UsageError
from redmica_ops.runs.executors import CallStats, Job, Launched, LaunchFailed, TaskState
from redmica_ops.runs.record import RunTarget

MAX_OVERRIDE_CHARS = 8192
DESCRIBE_BATCH = 100
RETRYABLE_FAILURES = re.compile(r"^(RESOURCE:|AGENT|CAPACITY|UNAVAILABLE)", re.I)
NEVER_STARTED = re.compile(
    r"CannotPullContainer|ResourceInitializationError|CannotStartContainer|"
    r"CannotCreateVolume|TaskFailedToStart|ResourceNotFound|InternalError|Timeout waiting",
    re.I,
)
if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import ContainerTypeDef, TaskTypeDef

TENANT_TAG = "redmica:tenant"
RUN_TAG = "redmica:run"


@dataclass(frozen=True)
class EcsTarget:
    cluster: str
    task_definition: str
    container: str
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: bool = False
    launch_type: str = "FARGATE"
    capacity_provider: str | None = None


def started_by(run_id: str) -> str:
    return f"redmica-{run_id}"[:36]


def client_token(run_id: str, tenant: str, attempt: int) -> str:
    return hashlib.sha256(f"{run_id}:{tenant}:{attempt}".encode()).hexdigest()[:64]


def overrides_for(target: EcsTarget, job: Job, run_id: str = "") -> JSONObject:
    # The image's ENTRYPOINT is ["redmica", "entrypoint"]; only the tenant id travels here,
    # with the run and attempt that `run-tenant` names its result object after.
    environment = [{"name": "REDMICA_TENANT", "value": job.tenant}]
    if run_id:
        environment += [
            {"name": "REDMICA_RUN_ID", "value": run_id},
            {"name": "REDMICA_ATTEMPT", "value": str(job.attempt)},
        ]
    return {
        "containerOverrides": [
            {
                "name": target.container,
                # Several tenants run in turn: `run-tenant a,b,c -- CMD`.
                "command": ["run-tenant", ",".join(job.tenants), "--", *job.command],
                "environment": environment,
            }
        ]
    }


def override_size(target: EcsTarget, job: Job, run_id: str = "x" * 24) -> int:
    return len(json.dumps(overrides_for(target, job, run_id), separators=(",", ":")))


def check_overrides(
    target: EcsTarget, order: Sequence[str], command: list[str], per_task: int = 1
) -> None:
    """Fail before launching anything if a task's ECS override would be too long."""
    longest = tuple(sorted(order, key=len, reverse=True)[: max(1, per_task)])
    if per_task > 1 and longest:
        job = Job(longest[0], 1, command, longest)
        if override_size(target, job) > MAX_OVERRIDE_CHARS:
            raise UsageError(
                f"the ECS task override of {per_task} tenants is longer than "
                f"{MAX_OVERRIDE_CHARS} characters",
                "lower --tenants-per-task or shorten the command",
            )
    too_long = [t for t in order if override_size(target, Job(t, 1, command)) > MAX_OVERRIDE_CHARS]
    if too_long:
        raise UsageError(
            f"the ECS task override for {too_long[0]} is longer than "
            f"{MAX_OVERRIDE_CHARS} characters",
            "shorten the command",
        )


def _iso(value: object) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if value else None


def run_task_params(target: EcsTarget, job: Job, run_id: str) -> JSONObject:
    """RunTask's parameters for one job of a run: idempotent (clientToken), tagged, placed."""
    params: JSONObject = {
        "cluster": target.cluster,
        "taskDefinition": target.task_definition,
        "count": 1,
        "overrides": overrides_for(target, job, run_id),
        "startedBy": started_by(run_id),
        "clientToken": client_token(run_id, ",".join(job.tenants), job.attempt),
        "tags": [
            {"key": RUN_TAG, "value": run_id},
            {"key": TENANT_TAG, "value": job.tenant},
        ],
    }
    if target.capacity_provider:
        params["capacityProviderStrategy"] = [
            {"capacityProvider": target.capacity_provider, "weight": 1}
        ]
    else:
        params["launchType"] = target.launch_type
    if target.subnets:
        params["networkConfiguration"] = {
            "awsvpcConfiguration": {
                "subnets": list(target.subnets),
                "securityGroups": list(target.security_groups),
                "assignPublicIp": "ENABLED" if target.assign_public_ip else "DISABLED",
            }
        }
    return params


def poll_tasks(
    ecs: ECSClient, target: EcsTarget, handles: Sequence[str], stats: CallStats | None = None
) -> dict[str, TaskState]:
    """The state of each task (DescribeTasks in batches); a throttled batch waits a turn."""
    stats = stats or CallStats()
    states: dict[str, TaskState] = {}
    handles = list(handles)
    for start in range(0, len(handles), DESCRIBE_BATCH):
        batch = handles[start : start + DESCRIBE_BATCH]
        stats.add("DescribeTasks")
        try:
            with translate_errors("describing migration tasks"):
                response = ecs.describe_tasks(cluster=target.cluster, tasks=batch)
        except AwsError as error:
            if "throttling" not in error.message:
                raise
            # Still throttled after the SDK's retries: these tasks are polled next time.
            stats.add("DescribeTasks throttled")
            continue
        for task in response.get("tasks", []):
            state = task_state(task, target.container)
            states[state.handle] = state
        for failure in response.get("failures", []):
            arn = failure.get("arn", "")
            if arn in batch and arn not in states:
                states[arn] = TaskState(
                    arn, stopped=True, missing=True, stopped_reason=failure.get("reason")
                )
    return states


def task_state(task: TaskTypeDef, container_name: str) -> TaskState:
    """What a described task says: running, or stopped with the container's exit code."""
    arn = task["taskArn"]
    if task.get("lastStatus") != "STOPPED":
        return TaskState(arn, stopped=False, started_at=_iso(task.get("startedAt")))
    empty: ContainerTypeDef = {}
    container = next(
        (c for c in task.get("containers", []) if c.get("name") == container_name),
        empty,
    )
    exit_code = container.get("exitCode")
    stop_code = task.get("stopCode")
    reasons = " ".join(
        str(x) for x in (stop_code, task.get("stoppedReason"), container.get("reason")) if x
    )
    never_started = stop_code == "TaskFailedToStart" or (
        exit_code is None and bool(NEVER_STARTED.search(reasons))
    )
    return TaskState(
        arn,
        stopped=True,
        exit_code=exit_code,
        stop_code=stop_code,
        stopped_reason=task.get("stoppedReason") or container.get("reason"),
        never_started=never_started,
        started_at=_iso(task.get("startedAt")),
        stopped_at=_iso(task.get("stoppedAt")),
    )


def stop_task(
    ecs: ECSClient, target: EcsTarget, handle: str, reason: str, stats: CallStats | None = None
) -> None:
    if stats is not None:
        stats.add("StopTask")
    with translate_errors("stopping a migration task"):
        ecs.stop_task(cluster=target.cluster, task=handle, reason=reason[:255])


class EcsExecutor:
    name = "ecs"

    def __init__(self, ecs: ECSClient, target: EcsTarget, run_id: str) -> None:
        self.ecs = ecs
        self.target = target
        self.run_id = run_id
        self.stats = CallStats()
        self.log_group: str | None = None
        self.log_prefix: str | None = None
        self.firelens_prefix: str | None = None

    # -- checks before anything is launched ----------------------------------------------------
    def preflight(self) -> RunTarget:
        t = self.target
        with translate_errors(f"describing ECS cluster {t.cluster}"):
            clusters = self.ecs.describe_clusters(clusters=[t.cluster])
        found = [c for c in clusters.get("clusters", []) if c.get("status") == "ACTIVE"]
        if not found:
            raise AwsError(
                f"ECS cluster {t.cluster!r} not found or not active",
                "check the cluster setting (REDMICA_CLUSTER) and the region",
            )
        try:
            with translate_errors(f"describing task definition {t.task_definition}"):
                definition = self.ecs.describe_task_definition(taskDefinition=t.task_definition)[
                    "taskDefinition"
                ]
        except AwsError as exc:
            raise AwsError(
                f"task definition {t.task_definition!r} not found ({exc.message})",
                "check the task_definition setting (family[:revision] or ARN)",
            ) from exc
        containers = {c["name"]: c for c in definition.get("containerDefinitions", [])}
        if t.container not in containers:
            raise UsageError(
                f"container {t.container!r} is not in task definition "
                f"{definition.get('family')}:{definition.get('revision')}",
                f"containers there: {', '.join(sorted(containers))}",
            )
        if definition.get("networkMode") == "awsvpc" and not t.subnets:
            raise UsageError(
                "the task definition uses awsvpc networking but no subnets are set",
                "set subnets (REDMICA_SUBNETS=subnet-a,subnet-b)",
            )
        log = containers[t.container].get("logConfiguration")
        if log is not None and log.get("logDriver") == "awslogs":
            options = log.get("options", {})
            self.log_group = options.get("awslogs-group")
            self.log_prefix = options.get("awslogs-stream-prefix")
        elif log is not None and log.get("logDriver") == "awsfirelens":
            # FireLens' CloudWatch output names a stream <log_stream_prefix><tag>, the tag
            # being <container>-firelens-<task id>.
            options = log.get("options", {})
            self.log_group = options.get("log_group_name")
            self.firelens_prefix = options.get("log_stream_prefix", "")
        return RunTarget(
            cluster=t.cluster,
            task_definition=definition.get("taskDefinitionArn"),
            image=containers[t.container].get("image"),
            container=t.container,
            log_group=self.log_group,
        )

    # -- launching -------------------------------------------------------------------------------
    def launch(self, job: Job) -> Launched | LaunchFailed:
        if override_size(self.target, job, self.run_id) > MAX_OVERRIDE_CHARS:
            return LaunchFailed(
                f"the task override exceeds ECS's {MAX_OVERRIDE_CHARS} "
                "characters (shorten the command)",
                retryable=False,
            )
        self.stats.add("RunTask")
        try:
            response = self.ecs.run_task(**run_task_params(self.target, job, self.run_id))
        except Exception as exc:
            code = error_code(exc)
            if code in ("ThrottlingException", "Throttling", "TooManyRequestsException"):
                return LaunchFailed("ECS throttled RunTask", retryable=True, throttled=True)
            if code in ("ServerException", "500", "503", "ServiceUnavailableException"):
                return LaunchFailed(f"ECS error {code}", retryable=True)
            if code in ("InvalidParameterException", "ClientException"):
                message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))
                return LaunchFailed(f"ECS refused the task: {message[:200]}", retryable=False)
            translated = translate(exc, f"launching the migration task of {job.tenant}")
            if translated is None:
                raise
            raise translated from exc
        tasks = response.get("tasks", [])
        if tasks:
            arn = tasks[0]["taskArn"]
            return Launched(arn, self._stream(arn))
        failures = response.get("failures", [])
        reason = "; ".join(
            f"{f.get('reason', '?')}" + (f" ({f['detail']})" if f.get("detail") else "")
            for f in failures
        )
        retryable = any(RETRYABLE_FAILURES.match(f.get("reason", "")) for f in failures)
        return LaunchFailed(reason or "RunTask returned no task", retryable=retryable)

    def _stream(self, arn: str) -> str | None:
        task_id = arn.rsplit("/", 1)[-1]
        if self.firelens_prefix is not None and self.log_group:
            return f"{self.firelens_prefix}{self.target.container}-firelens-{task_id}"
        if not self.log_prefix:
            return None
        return f"{self.log_prefix}/{self.target.container}/{task_id}"

    # -- watching --------------------------------------------------------------------------------
    def poll(self, handles: Sequence[str]) -> dict[str, TaskState]:
        return poll_tasks(self.ecs, self.target, handles, self.stats)

    def stop(self, handle: str, reason: str) -> None:
        stop_task(self.ecs, self.target, handle, reason, self.stats)

    def find_launched(self, run_id: str) -> dict[str, str]:
        arns: list[str] = []
        for desired in ("RUNNING", "STOPPED"):
            token: str | None = None
            while True:
                kwargs: JSONObject = {
                    "cluster": self.target.cluster,
                    "startedBy": started_by(run_id),
                    "desiredStatus": desired,
                }
                if token:
                    kwargs["nextToken"] = token
                self.stats.add("ListTasks")
                with translate_errors("listing the run's tasks"):
                    response = self.ecs.list_tasks(**kwargs)
                arns.extend(response.get("taskArns", []))
                token = response.get("nextToken")
                if not token:
                    break
        found: dict[str, str] = {}
        for start in range(0, len(arns), DESCRIBE_BATCH):
            self.stats.add("DescribeTasks")
            with translate_errors("describing the run's tasks"):
                described = self.ecs.describe_tasks(
                    cluster=self.target.cluster,
                    tasks=arns[start : start + DESCRIBE_BATCH],
                    include=["TAGS"],
                )
            for task in described.get("tasks", []):
                for tenant in _tenants_of(task):
                    if tenant not in found or task.get("lastStatus") != "STOPPED":
                        found[tenant] = task["taskArn"]
        return found


def _tenants_of(task: TaskTypeDef) -> list[str]:
    """The tenants a task runs: from its command (a batch), else its tag or environment."""
    for override in task.get("overrides", {}).get("containerOverrides", []):
        command = override.get("command", [])
        if len(command) > 2 and command[0] == "run-tenant" and command[2] == "--":
            return [t for t in command[1].split(",") if t]
    for tag in task.get("tags", []):
        if tag.get("key") == TENANT_TAG:
            return [str(tag.get("value"))]
    for override in task.get("overrides", {}).get("containerOverrides", []):
        for env in override.get("environment", []):
            if env.get("name") == "REDMICA_TENANT":
                return [str(env.get("value"))]
    return []

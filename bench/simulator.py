"""A simulated ECS control plane that enforces AWS's quotas, on a virtual clock.

It duck-types the ECS client calls `redmica migrate` makes. Every call costs a latency in
virtual time; RunTask and DescribeTasks have API token buckets, and task launches the Fargate
launch bucket; beyond them it answers ThrottlingException like AWS. Each task runs for a
duration drawn from a distribution, a few exit non-zero. Because time is virtual, a 5,000-task
run that would take 25 minutes of real time simulates in seconds, deterministically: the
report states it this way (virtual seconds; no scaling factor needed).

Reusable by tests: `SimulatedEcs(clock=FakeClock())` with small quotas.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from redmica_ops.runs.pacing import FakeClock


@dataclass
class Bucket:
    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class Quotas:
    """Per account and region. Fargate launches: 100 burst, 20/s (AWS's published quota).
    API buckets: RunTask 100 burst / 40 per s, DescribeTasks 100 burst / 20 per s."""

    launch_rate: float = 20.0
    launch_burst: float = 100.0
    run_task_rate: float = 40.0
    run_task_burst: float = 100.0
    describe_rate: float = 20.0
    describe_burst: float = 100.0


@dataclass
class SimTask:
    arn: str
    tenant: str
    started: float
    duration: float
    exit_code: int
    stopped_by_user: bool = False


def throttling(operation: str) -> ClientError:
    error: Any = {
        "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(error, operation)


@dataclass
class SimulatedEcs:
    clock: FakeClock
    quotas: Quotas = field(default_factory=Quotas)
    latency: float = 0.030
    duration_range: tuple[float, float] = (180.0, 300.0)  # 3-5 minutes, as in the talk
    failure_share: float = 0.01
    seed: int = 7
    tasks: dict[str, SimTask] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)
    launches_by_tenant: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        q = self.quotas
        self.launch_bucket = Bucket(q.launch_rate, q.launch_burst)
        self.run_task_bucket = Bucket(q.run_task_rate, q.run_task_burst)
        self.describe_bucket = Bucket(q.describe_rate, q.describe_burst)
        self.ids = itertools.count(1)
        self.exits: dict[str, int] = {}
        self.durations: dict[str, float] = {}

    def plan(self, tenants: list[str]) -> None:
        """Fix each tenant's task duration and exit code up front (same for every client)."""
        for tenant in tenants:
            self.durations[tenant] = self.random.uniform(*self.duration_range)
            self.exits[tenant] = 1 if self.random.random() < self.failure_share else 0

    def _call(self, operation: str, bucket: Bucket | None) -> None:
        self.clock.current += self.latency
        self.calls[operation] = self.calls.get(operation, 0) + 1
        if bucket is not None and not bucket.take(self.clock.current):
            self.throttled[operation] = self.throttled.get(operation, 0) + 1
            raise throttling(operation)

    # -- the ECS API subset ----------------------------------------------------------------------
    def describe_clusters(self, clusters: list[str]) -> dict[str, Any]:
        self._call("DescribeClusters", None)
        return {"clusters": [{"clusterName": clusters[0], "status": "ACTIVE"}]}

    def describe_task_definition(self, taskDefinition: str, **_: Any) -> dict[str, Any]:
        self._call("DescribeTaskDefinition", None)
        return {
            "taskDefinition": {
                "family": "app",
                "revision": 1,
                "networkMode": "awsvpc",
                "taskDefinitionArn": "arn:aws:ecs:::task-definition/app:1",
                "containerDefinitions": [{"name": "app"}],
            }
        }

    def run_task(self, **params: Any) -> dict[str, Any]:
        self._call("RunTask", self.run_task_bucket)
        if not self.launch_bucket.take(self.clock.current):
            self.throttled["FargateLaunch"] = self.throttled.get("FargateLaunch", 0) + 1
            raise throttling("RunTask")
        env = params["overrides"]["containerOverrides"][0]["environment"]
        tenant = next(e["value"] for e in env if e["name"] == "REDMICA_TENANT")
        self.launches_by_tenant[tenant] = self.launches_by_tenant.get(tenant, 0) + 1
        arn = f"arn:aws:ecs:us-east-1:1:task/sim/{next(self.ids)}"
        self.tasks[arn] = SimTask(
            arn,
            tenant,
            self.clock.current,
            self.durations.get(tenant, 240.0),
            self.exits.get(tenant, 0),
        )
        return {"tasks": [{"taskArn": arn}], "failures": []}

    def describe_tasks(self, cluster: str, tasks: list[str], **_: Any) -> dict[str, Any]:
        assert len(tasks) <= 100
        self._call("DescribeTasks", self.describe_bucket)
        now = self.clock.current
        described: list[dict[str, Any]] = []
        for arn in tasks:
            task = self.tasks[arn]
            done = task.stopped_by_user or now >= task.started + task.duration
            if not done:
                described.append({"taskArn": arn, "lastStatus": "RUNNING"})
                continue
            container: dict[str, Any] = {"name": "app"}
            if not task.stopped_by_user:
                container["exitCode"] = task.exit_code
            described.append(
                {
                    "taskArn": arn,
                    "lastStatus": "STOPPED",
                    "stopCode": "UserInitiated"
                    if task.stopped_by_user
                    else "EssentialContainerExited",
                    "containers": [container],
                }
            )
        return {"tasks": described, "failures": []}

    def stop_task(self, cluster: str, task: str, reason: str) -> dict[str, Any]:
        self._call("StopTask", None)
        self.tasks[task].stopped_by_user = True
        return {}

    def list_tasks(self, **_: Any) -> dict[str, Any]:
        self._call("ListTasks", None)
        return {"taskArns": []}

    # -- the ideal ---------------------------------------------------------------------------------
    def lower_bound(self, tenants: list[str]) -> float:
        """The fastest the quotas allow for this workload: each task starts as soon as the
        launch bucket allows (in the given order) and runs its duration; the run ends when
        the last one ends."""
        q = self.quotas
        end = 0.0
        for index, tenant in enumerate(tenants):
            start = max(0.0, (index + 1 - q.launch_burst) / q.launch_rate)
            end = max(end, start + self.durations[tenant])
        return end

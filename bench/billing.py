"""Fargate's billing on the simulated control plane: what a migration run costs (issue 13).

Billing, as AWS documents it for Fargate: per second with a one-minute minimum, from the
start of the image pull to the task's stop. A task's life here: ~15 s of provisioning (not
billed), ~25 s of image pull and container start (billed), then each of its K tenants'
migrations in turn (15-25 s each, 1% failing). Every tenant's result object is written as
its task's `run-tenant` would, so the fan-out, the batches and --skip-current run exactly the
code the CLI runs (`runs.migrations.run`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.simulator import SimTask, SimulatedEcs
from redmica_ops.runs.results import MemoryResults, TenantResult

PROVISIONING_S = 15.0  # before the pull: not billed
PULL_S = 25.0  # image pull and container start: billed
MIGRATION_S = (15.0, 25.0)  # one tenant's migration
MINIMUM_S = 60.0
VCPU, MEMORY_GB = 0.25, 0.5
PRICE_VCPU_S = 0.0008426666667 / 60
PRICE_GB_S = 0.00009216666667 / 60
TALK_USD_PER_100 = 0.1027  # 100 tasks x 4 min at the same size (the talk's figure)


@dataclass
class BilledTask:
    tenants: list[str]
    attempt: int
    run_id: str
    written: bool = False


@dataclass
class BillingEcs(SimulatedEcs):
    """The simulator with Fargate's billing and per-tenant result objects."""

    results: MemoryResults = field(default_factory=MemoryResults)
    image: str = "registry.example.com/redmica:v1"
    fingerprint: str = "mig-120-0123456789abcdef"
    batches: dict[str, BilledTask] = field(default_factory=dict)

    def plan(self, tenants: list[str]) -> None:
        for tenant in tenants:
            self.durations[tenant] = self.random.uniform(*MIGRATION_S)
            self.exits[tenant] = 1 if self.random.random() < self.failure_share else 0

    def describe_task_definition(self, taskDefinition: str, **_: Any) -> dict[str, Any]:
        response = super().describe_task_definition(taskDefinition)
        response["taskDefinition"]["containerDefinitions"] = [{"name": "app", "image": self.image}]
        return response

    def run_task(self, **params: Any) -> dict[str, Any]:
        response = super().run_task(**params)
        arn = response["tasks"][0]["taskArn"]
        container = params["overrides"]["containerOverrides"][0]
        env = {e["name"]: e["value"] for e in container["environment"]}
        tenants = container["command"][1].split(",")
        for tenant in tenants[1:]:  # the parent counted the first
            self.launches_by_tenant[tenant] = self.launches_by_tenant.get(tenant, 0) + 1
        task = self.tasks[arn]
        task.duration = PROVISIONING_S + PULL_S + sum(self.durations[t] for t in tenants)
        task.exit_code = 1 if any(self.exits[t] for t in tenants) else 0
        self.batches[arn] = BilledTask(tenants, int(env["REDMICA_ATTEMPT"]), env["REDMICA_RUN_ID"])
        return response

    def describe_tasks(self, cluster: str, tasks: list[str], **_: Any) -> dict[str, Any]:
        now = self.clock.current
        for arn in tasks:  # what each task's run-tenant wrote before it stopped
            task, batch = self.tasks[arn], self.batches[arn]
            if not batch.written and now >= task.started + task.duration:
                batch.written = True
                for tenant in batch.tenants:
                    code = self.exits[tenant]
                    self.results.put(
                        TenantResult(
                            batch.run_id,
                            tenant,
                            batch.attempt,
                            code,
                            "",
                            "",
                            image=self.image,
                            fingerprint=self.fingerprint,
                            tail=["rake aborted!"] if code else [],
                        )
                    )
        return super().describe_tasks(cluster, tasks)

    # -- the bill ----------------------------------------------------------------------------------
    def billed_seconds(self, task: SimTask) -> float:
        running = task.duration - PROVISIONING_S
        return max(MINIMUM_S, math.ceil(running))

    def bill(self) -> dict[str, float]:
        seconds = sum(self.billed_seconds(t) for t in self.tasks.values())
        usd = seconds * (VCPU * PRICE_VCPU_S + MEMORY_GB * PRICE_GB_S)
        return {"task_seconds": seconds, "vcpu_seconds": seconds * VCPU, "usd": usd}

    def batch_lower_bound(self, tenants: list[str], per_task: int) -> float:
        """The fastest the launch quota allows for these tasks of `per_task` tenants."""
        q = self.quotas
        end = 0.0
        batches = [tenants[i : i + per_task] for i in range(0, len(tenants), per_task)]
        for index, batch in enumerate(batches):
            start = max(0.0, (index + 1 - q.launch_burst) / q.launch_rate)
            duration = PROVISIONING_S + PULL_S + sum(self.durations[t] for t in batch)
            end = max(end, start + duration)
        return end

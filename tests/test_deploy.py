"""Rolling updates: every rollout path with a fake ECS service, the registration with moto."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.cli.app import Application
from redmica_ops.deploy.model import ServiceTarget, clone_with_image
from redmica_ops.deploy.rollout import ServiceDeployer, roll_out
from redmica_ops.runs.pacing import FakeClock
from tests.conftest import Invoke
from tests.ecs_support import FakeService, completes_after

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

OLD = "arn:aws:ecs:us-east-1:1:task-definition/redmica-app:5"
NEW_IMAGE = "registry.example.com/redmica:v6"


def deployer(fake: FakeService) -> tuple[ServiceDeployer, list[str], FakeClock]:
    lines: list[str] = []
    clock = FakeClock()
    return (
        ServiceDeployer(
            cast("ECSClient", fake), ServiceTarget("c", "redmica"), clock, lines.append
        ),
        lines,
        clock,
    )


def new_revision(fake: FakeService, d: ServiceDeployer) -> str:
    arn, _ = d.register_with_image(OLD, "app", NEW_IMAGE)
    return arn


def test_success_when_our_deployment_completes() -> None:
    fake = FakeService(script=completes_after(3))
    d, lines, clock = deployer(fake)
    new = new_revision(fake, d)
    report = roll_out(d, "deploy", new, OLD, timeout=600)
    assert report.ok and report.result == "succeeded"
    assert report.deployment_id == fake.updates[0]["id"]
    assert len(fake.updates) == 1 and fake.updates[0]["taskDefinition"] == new
    assert fake.updates[0]["deploymentConfiguration"]["deploymentCircuitBreaker"] == {
        "enable": True,
        "rollback": True,
    }
    assert clock.slept == [1.0, 2.0]  # a fast rollout is seen fast; no real sleep
    assert any("IN_PROGRESS" in line for line in lines)


def test_rollout_failed_then_breaker_rolls_back_is_a_failure() -> None:
    def script(service: FakeService, ours: dict[str, Any], poll: int) -> None:
        if ours.get("taskDefinition") != OLD and poll == 2:
            ours.update(rolloutState="FAILED", rolloutStateReason="tasks failed to start")
            service.event("(service redmica) deployment failed: tasks failed to start.")
            back = service._deployment(OLD, "PRIMARY", "IN_PROGRESS")
            ours["status"] = "ACTIVE"
            service.deployments.insert(0, back)
        elif poll >= 4:
            primary = service.deployments[0]
            primary.update(rolloutState="COMPLETED", runningCount=service.desired)
            service.deployments[:] = [primary]

    fake = FakeService(script=script)
    d, lines, _ = deployer(fake)
    report = roll_out(d, "deploy", new_revision(fake, d), OLD, timeout=600)
    assert not report.ok and report.result == "failed"
    assert report.reason == "tasks failed to start"
    assert report.rolled_back_to == OLD and report.rollback_result == "succeeded"
    assert len(fake.updates) == 1, "the breaker rolled back: no second update from us"
    assert any("deployment failed" in e for e in report.events)
    # Only this deployment's stopped tasks: an earlier deployment's OutOfMemory says nothing.
    assert len(report.stopped_tasks) == 1 and "PendingMigrationError" in report.stopped_tasks[0]
    assert any("event: (service redmica) deployment failed" in line for line in lines)


def test_our_deployment_replaced_by_breaker_rollback_is_never_success() -> None:
    def script(service: FakeService, ours: dict[str, Any], poll: int) -> None:
        if poll == 2 and ours:
            # The breaker replaced our deployment with one for the old revision, which is
            # already complete: running == desired. A naive waiter would say "success".
            service.deployments[:] = [
                service._deployment(OLD, "PRIMARY", "COMPLETED", running=service.desired)
            ]

    fake = FakeService(script=script)
    d, _, _ = deployer(fake)
    report = roll_out(d, "deploy", new_revision(fake, d), OLD, timeout=600)
    assert not report.ok and report.result == "rolled_back"
    assert report.rolled_back_to == OLD and report.rollback_result == "succeeded"


def test_never_stabilising_times_out_and_we_roll_back() -> None:
    def script(service: FakeService, ours: dict[str, Any], poll: int) -> None:
        if ours.get("taskDefinition") == OLD:  # our rollback deployment completes
            ours.update(rolloutState="COMPLETED", runningCount=service.desired)
            service.deployments[:] = [ours]

    fake = FakeService(script=script)
    d, _, clock = deployer(fake)
    new = new_revision(fake, d)
    report = roll_out(d, "deploy", new, OLD, timeout=120)
    assert not report.ok and report.result == "timed_out"
    assert "did not finish within 120s" in report.reason
    assert [u.get("taskDefinition") for u in fake.updates] == [new, OLD]
    assert (
        fake.updates[1]["deploymentConfiguration"]["deploymentCircuitBreaker"]["rollback"] is False
    )
    assert report.rollback_result == "succeeded"
    assert clock.now() >= 120


def test_no_rollback_leaves_the_service_alone() -> None:
    fake = FakeService(script=lambda s, o, p: None)
    d, _, _ = deployer(fake)
    report = roll_out(d, "deploy", new_revision(fake, d), OLD, timeout=60, rollback=False)
    assert not report.ok and report.result == "timed_out"
    assert len(fake.updates) == 1 and report.rolled_back_to is None
    assert (
        fake.updates[0]["deploymentConfiguration"]["deploymentCircuitBreaker"]["rollback"] is False
    )


def test_superseded_by_someone_elses_deployment() -> None:
    other = "arn:aws:ecs:us-east-1:1:task-definition/redmica-app:4"

    def script(service: FakeService, ours: dict[str, Any], poll: int) -> None:
        if poll == 2 and ours.get("taskDefinition") not in (OLD, other):
            ours["status"] = "ACTIVE"
            service.deployments.insert(0, service._deployment(other, "PRIMARY", "IN_PROGRESS"))
        elif ours.get("taskDefinition") == OLD:
            ours.update(rolloutState="COMPLETED", runningCount=service.desired)
            service.deployments[:] = [ours]

    fake = FakeService(script=script)
    d, _, _ = deployer(fake)
    report = roll_out(d, "deploy", new_revision(fake, d), OLD, timeout=600)
    assert not report.ok and report.result == "superseded"
    assert "redmica-app:4" in report.reason


def test_without_rollout_state_success_needs_all_running_and_old_gone() -> None:
    def script(service: FakeService, ours: dict[str, Any], poll: int) -> None:
        ours.pop("rolloutState", None)
        if poll == 2:
            ours.update(runningCount=service.desired, pendingCount=0)  # old one still there
        if poll == 4:
            service.deployments[:] = [ours]

    fake = FakeService(script=script)
    d, _, _ = deployer(fake)
    report = roll_out(d, "deploy", new_revision(fake, d), OLD, timeout=600)
    assert report.ok and fake.polls >= 4


def test_registered_revision_equals_the_old_one_but_the_image() -> None:
    fake = FakeService()
    d, _, _ = deployer(fake)
    new_revision(fake, d)
    (params,) = fake.registered
    old = fake.definitions[OLD]
    expected = {
        k: v for k, v in old.items() if k not in ("taskDefinitionArn", "revision", "status")
    }
    expected["containerDefinitions"] = [
        {"name": "app", "image": NEW_IMAGE},
        {"name": "log_router", "image": "fluent-bit:1"},
    ]
    assert params == expected


def test_unknown_container_is_refused() -> None:
    with pytest.raises(Exception, match="container 'web' is not in task definition"):
        clone_with_image(
            {"family": "f", "revision": 1, "containerDefinitions": [{"name": "app"}]}, "web", "x:1"
        )


def test_previous_and_explicit_revisions() -> None:
    from redmica_ops.deploy.rollback import rollback_target
    from redmica_ops.errors import NotFound

    fake = FakeService()
    d, _, _ = deployer(fake)
    # No service-deployments API here: nothing is known to have worked, so nothing is guessed
    # (the highest ACTIVE revision below :5, :4, may be one that failed).
    with pytest.raises(NotFound, match="ECS does not say") as refused:
        rollback_target(d, OLD, None)
    assert "--to REVISION" in str(refused.value.hint) and "5, 4, 3" in str(refused.value.hint)
    assert rollback_target(d, OLD, "4").endswith(":4")
    assert d.resolve_revision(OLD, "3").endswith(":3")
    assert d.resolve_revision(OLD, "redmica-app:4").endswith(":4")


def test_reload_is_a_forced_deployment_of_the_same_revision() -> None:
    fake = FakeService(script=completes_after(2))
    d, _, _ = deployer(fake)
    report = roll_out(d, "reload", None, OLD, timeout=600, rollback=False, force=True)
    assert report.ok
    assert fake.updates[0].get("forceNewDeployment") is True
    assert "taskDefinition" not in fake.updates[0]


# -- moto: the real client calls ---------------------------------------------------------------
def moto_service() -> tuple[Any, str]:
    ecs = boto3.client("ecs", region_name="us-east-1")
    ecs.create_cluster(clusterName="prod")
    definition: dict[str, Any] = {
        "family": "redmica-app",
        "networkMode": "awsvpc",
        "cpu": "512",
        "memory": "1024",
        "requiresCompatibilities": ["FARGATE"],
        "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
        "taskRoleArn": "arn:aws:iam::123456789012:role/task",
        "containerDefinitions": [
            {
                "name": "app",
                "image": "redmica:1",
                "memory": 768,
                "essential": True,
                "environment": [{"name": "REDMICA_BUCKET", "value": "cfg"}],
                "secrets": [
                    {
                        "name": "SECRET_KEY_BASE",
                        "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/skb",
                    }
                ],
                "portMappings": [{"containerPort": 80}],
                "firelensConfiguration": None,
            },
            {
                "name": "log_router",
                "image": "amazon/aws-for-fluent-bit:2",
                "memory": 128,
                "essential": True,
                "firelensConfiguration": {"type": "fluentbit"},
            },
        ],
    }
    definition["containerDefinitions"][0].pop("firelensConfiguration")
    arn = ecs.register_task_definition(**definition, tags=[{"key": "team", "value": "ops"}])[
        "taskDefinition"
    ]["taskDefinitionArn"]
    subnet = boto3.client("ec2", region_name="us-east-1").describe_subnets()["Subnets"][0][
        "SubnetId"
    ]
    ecs.create_service(
        cluster="prod",
        serviceName="redmica",
        taskDefinition=arn,
        desiredCount=2,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": []}},
    )
    return ecs, arn


def app_for(**env: str) -> Application:
    app = Application(
        env={
            **os.environ,
            "REDMICA_CLUSTER": "prod",
            "REDMICA_SERVICE": "redmica",
            "REDMICA_CONTAINER": "app",
            "REDMICA_TENANTS_PER_TASK": "1",  # moto runs no container
            **env,
        }
    )
    app.make_clock = lambda cancellation: FakeClock()
    return app


def test_deploy_against_moto(s3: S3Client, run: Invoke, moto_rollouts: None) -> None:
    ecs, old_arn = moto_service()
    result = run("deploy", "--image", NEW_IMAGE, "--yes", "-O", "json", app=app_for())
    assert result.exit_code == 0, result.output
    report = result.json()
    assert report["ok"] and report["result"] == "succeeded"
    assert report["previous_task_definition"] == old_arn
    new = ecs.describe_task_definition(taskDefinition=report["task_definition"], include=["TAGS"])
    old = ecs.describe_task_definition(taskDefinition=old_arn, include=["TAGS"])
    assert new["tags"] == old["tags"] == [{"key": "team", "value": "ops"}]

    def comparable(d: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v
            for k, v in d.items()
            if k not in ("taskDefinitionArn", "revision", "registeredAt", "registeredBy", "status")
        }

    new_def, old_def = comparable(new["taskDefinition"]), comparable(old["taskDefinition"])
    assert new_def["containerDefinitions"][0]["image"] == NEW_IMAGE
    new_def["containerDefinitions"][0]["image"] = "redmica:1"
    assert new_def == old_def
    service = ecs.describe_services(cluster="prod", services=["redmica"])["services"][0]
    assert service["taskDefinition"] == report["task_definition"]


def test_status_against_moto(s3: S3Client, run: Invoke) -> None:
    moto_service()
    result = run("status", "-O", "json", app=app_for())
    assert result.exit_code == 0, result.output
    data = result.json()
    assert data["service"] == "redmica" and data["deployments"][0]["status"] == "PRIMARY"
    text = run("status", app=app_for())
    assert "redmica-app:1" in text.stdout


def test_reload_and_rollback_against_moto(s3: S3Client, run: Invoke, moto_rollouts: None) -> None:
    ecs, first = moto_service()
    assert run("deploy", "--image", NEW_IMAGE, "--yes", app=app_for()).exit_code == 0
    reload = run("reload", "--yes", "-O", "json", app=app_for())
    assert reload.exit_code == 0 and reload.json()["result"] == "succeeded"
    back = run("rollback", "--yes", app=app_for())
    assert back.exit_code == 0, back.output
    assert "does not revert database migrations" in back.stderr
    service = ecs.describe_services(cluster="prod", services=["redmica"])["services"][0]
    assert service["taskDefinition"] == first


def test_deploy_needs_settings_and_a_service(s3: S3Client, run: Invoke) -> None:
    missing = run("deploy", "--image", "x")
    assert missing.exit_code == 2
    assert "need the setting(s): cluster, service" in missing.stderr
    boto3.client("ecs", region_name="us-east-1").create_cluster(clusterName="prod")
    absent = run("status", app=app_for())
    assert absent.exit_code == 3
    assert "ECS service 'redmica' not found" in absent.stderr


# -- release: migrate as a gate, then deploy ----------------------------------------------------
def seed_tenants(s3: S3Client, *names: str) -> None:
    from redmica_ops.tenants.model import parse_tenant
    from redmica_ops.tenants.store import TenantStore
    from tests.conftest import BUCKET, tenant_yaml

    store = TenantStore(s3, BUCKET)
    for name in names:
        store.create(name, parse_tenant(name, tenant_yaml(name).encode(), name))


def release_app() -> Application:
    subnet = boto3.client("ec2", region_name="us-east-1").describe_subnets()["Subnets"][0][
        "SubnetId"
    ]
    return app_for(REDMICA_SUBNETS=subnet, REDMICA_TASK_DEFINITION="redmica-app")


def test_release_migrates_with_the_new_image_then_deploys(
    s3: S3Client, run: Invoke, moto_rollouts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.ecs_support import moto_ecs_spy

    ecs, old = moto_service()
    seed_tenants(s3, "acme", "beta", "gamma")
    with moto_ecs_spy(monkeypatch) as spy:
        result = run("release", "--image", NEW_IMAGE, "--canary", "1", "--yes", app=release_app())
    assert result.exit_code == 0, result.output
    assert sorted(spy.launched) == ["acme", "beta", "gamma"]
    new = ecs.describe_services(cluster="prod", services=["redmica"])["services"][0][
        "taskDefinition"
    ]
    assert new != old and set(spy.task_definitions) == {new}, "migrated with the new revision"
    assert "does not revert database migrations" in result.stderr


def test_release_does_not_deploy_when_the_gate_fails(
    s3: S3Client, run: Invoke, moto_rollouts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.ecs_support import moto_ecs_spy

    ecs, old = moto_service()
    seed_tenants(s3, "acme", "beta")
    with moto_ecs_spy(monkeypatch) as spy:
        spy.exit_codes = {"beta": 1}
        result = run("release", "--image", NEW_IMAGE, "--yes", app=release_app())
    assert result.exit_code == 1
    assert "the migration gate did not pass" in result.stderr
    assert "registered but NOT deployed" in result.stderr
    service = ecs.describe_services(cluster="prod", services=["redmica"])["services"][0]
    assert service["taskDefinition"] == old


def test_tenant_add_activate_reloads_the_service(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    from tests.conftest import tenant_yaml

    moto_service()
    result = run(
        "tenant",
        "add",
        "acme",
        "-f",
        "-",
        "--activate",
        "-O",
        "json",
        input=tenant_yaml("acme"),
        app=app_for(),
    )
    assert result.exit_code == 0, result.output
    data = result.json()
    assert data["created"] and data["activation"]["result"] == "succeeded"
    assert data["activation"]["action"] == "reload"


def test_rollback_goes_to_the_highest_active_revision_below_the_current(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    """From :4 with :2 and :3 completed that is :3 (it went to :1 when the API's sort order
    was trusted); a deregistered one is skipped (tests/test_rollback_target.py: a revision that
    never completed a deployment is skipped too)."""
    ecs, first = moto_service()
    family = first.rpartition(":")[0]
    for tag in ("2", "3", "4"):
        deployed = run("deploy", "--image", f"redmica:{tag}", "--yes", app=app_for())
        assert deployed.exit_code == 0, deployed.output

    def running() -> str:
        service = ecs.describe_services(cluster="prod", services=["redmica"])["services"][0]
        return str(service["taskDefinition"])

    assert running() == f"{family}:4"
    assert run("rollback", "--yes", app=app_for()).exit_code == 0
    assert running() == f"{family}:3"
    ecs.deregister_task_definition(taskDefinition=f"{family}:2")
    assert run("rollback", "--yes", app=app_for()).exit_code == 0
    assert running() == f"{first}"  # :2 is no longer active, so :1

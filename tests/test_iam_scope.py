"""IAM policies that cannot be scoped are refused (exit 2, naming the settings); migration
tasks are the only tasks the migrator may stop; a missing cluster or service is "not found"."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.cli.app import Application
from redmica_ops.errors import UsageError
from redmica_ops.policy import MIGRATION_RUN_TAG, PolicyScope, policy_document
from redmica_ops.runs.executors.ecs import RUN_TAG
from tests.conftest import Invoke


@pytest.mark.parametrize(
    ("role", "env", "missing"),
    [
        ("migrator", {}, "cluster, task_definition"),
        ("migrator", {"REDMICA_CLUSTER": "prod"}, "task_definition"),
        ("operator", {"REDMICA_CLUSTER": "prod", "REDMICA_TASK_DEFINITION": "app"}, "service"),
    ],
)
def test_iam_policy_names_the_settings_it_needs(
    s3: S3Client, run: Invoke, role: str, env: dict[str, str], missing: str
) -> None:
    app = Application(env={**os.environ, **env})
    result = run("iam-policy", "--for", role, app=app)
    assert result.exit_code == 2, result.output
    assert f"`iam-policy --for {role}` needs the setting(s): {missing}" in result.stderr
    assert "REDMICA_" in result.stderr  # the hint says how to set them
    assert result.stdout == ""


def test_the_container_policy_needs_no_ecs_setting(s3: S3Client, run: Invoke) -> None:
    result = run("iam-policy", "--for", "container", app=Application())
    assert result.exit_code == 0, result.output


def scope(**overrides: Any) -> PolicyScope:
    from tests.test_policy import NAMES

    values: dict[str, Any] = {
        "partition": "aws",
        **NAMES,
        "family": "redmica-app",
        "pass_roles": ("arn:aws:iam::111122223333:role/redmica-task",),
        "master_secret_arn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!c-1",
    }
    values.update(overrides)
    return PolicyScope(**values)


def test_no_placeholder_role_is_ever_printed() -> None:
    with pytest.raises(UsageError) as caught:
        policy_document("migrator", scope(pass_roles=()))
    assert "--pass-role" in (caught.value.hint or "")


@pytest.mark.parametrize("role", ["migrator", "operator"])
def test_only_tagged_migration_tasks_can_be_stopped(role: str) -> None:
    assert MIGRATION_RUN_TAG == RUN_TAG  # the tag RunTask sets is the one the policy checks
    statements = policy_document(role, scope())["Statement"]
    stopping = [s for s in statements if "ecs:StopTask" in s["Action"]]
    assert len(stopping) == 1
    assert stopping[0]["Action"] == ["ecs:StopTask"]
    assert stopping[0]["Condition"] == {"Null": {f"aws:ResourceTag/{RUN_TAG}": "false"}}


@pytest.mark.parametrize("resource", ["MigratorTaskRole", "OperatorPolicy"])
def test_the_stack_limits_stop_task_the_same_way(resource: str) -> None:
    from tests.test_cloudformation import statements

    stopping = [s for s in statements(resource) if "ecs:StopTask" in str(s["Action"])]
    assert len(stopping) == 1 and stopping[0]["Action"] == "ecs:StopTask"
    assert stopping[0]["Condition"] == {"Null": {f"aws:ResourceTag/{RUN_TAG}": "false"}}


def test_a_missing_cluster_is_not_found_with_a_hint(s3: S3Client, run: Invoke) -> None:
    boto3.client("ecs", region_name="us-east-1").create_cluster(clusterName="other")
    app = Application(env={**os.environ, "REDMICA_CLUSTER": "nope", "REDMICA_SERVICE": "redmica"})
    result = run("status", app=app)
    assert result.exit_code == 3, result.output
    assert "REDMICA_CLUSTER" in result.stderr


def test_with_cells_the_operator_policy_needs_no_service_setting(s3: S3Client, run: Invoke) -> None:
    base = {"REDMICA_CLUSTER": "prod", "REDMICA_TASK_DEFINITION": "app"}
    without = run("iam-policy", "--for", "operator", app=Application(env={**os.environ, **base}))
    assert without.exit_code == 2 and "service" in without.stderr
    cells = {**base, "REDMICA_CELLS": "a=redmica-a,b=redmica-b"}
    result = run(
        "iam-policy",
        "--for",
        "operator",
        "--account-id",
        "111122223333",
        "--pass-role",
        "arn:aws:iam::111122223333:role/redmica-task",
        "-O",
        "json",
        app=Application(env={**os.environ, **cells}),
    )
    assert result.exit_code == 0, result.output
    by_sid = {s["Sid"]: s for s in result.json()["Statement"]}
    assert by_sid["DeployService"]["Resource"] == [
        "arn:aws:ecs:us-east-1:111122223333:service/prod/redmica-a",
        "arn:aws:ecs:us-east-1:111122223333:service/prod/redmica-b",
    ]
    assert by_sid["FollowServiceDeployments"]["Resource"] == [
        "arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/redmica-a/*",
        "arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/redmica-b/*",
    ]


@pytest.mark.parametrize(
    ("code", "words", "setting"),
    [
        ("ClusterNotFoundException", "ECS cluster not found", "REDMICA_CLUSTER"),
        ("ServiceNotFoundException", "ECS service not found", "REDMICA_SERVICE"),
        ("ServiceNotActiveException", "ECS service not found or not active", "REDMICA_SERVICE"),
    ],
)
def test_ecs_not_found_errors_are_exit_3_with_a_hint(code: str, words: str, setting: str) -> None:
    # UpdateService and friends raise these (DescribeServices reports a missing service as a
    # failure instead, which tests/test_deploy.py covers against moto).
    from botocore.exceptions import ClientError

    from redmica_ops.aws import translate
    from redmica_ops.errors import ExitCode

    error = ClientError({"Error": {"Code": code, "Message": "x"}}, "UpdateService")
    translated = translate(error, "updating the service")
    assert translated is not None
    assert translated.exit_code == ExitCode.NOT_FOUND and int(translated.exit_code) == 3
    assert words in translated.message and "while updating the service" in translated.message
    assert setting in (translated.hint or "")


def _iam_policy_roles() -> list[str]:
    from redmica_ops.cli.policy import iam_policy

    (option,) = [p for p in iam_policy.params if p.name == "role"]
    return list(option.type.choices)  # type: ignore[attr-defined]


@pytest.mark.parametrize("role", _iam_policy_roles())
def test_iam_policy_prints_a_policy_for_every_for_choice(
    s3: S3Client, run: Invoke, role: str
) -> None:
    """Every `--for` choice (admin_task crashed with a KeyError) prints a scoped policy."""
    import json

    from tests.test_admin_broker import register_admin_task_definition
    from tests.test_deploy import moto_service

    moto_service()
    register_admin_task_definition()
    env = {"REDMICA_CLUSTER": "prod", "REDMICA_SERVICE": "redmica"}
    env["REDMICA_TASK_DEFINITION"] = "redmica-app"
    env["REDMICA_ADMIN_TASK_DEFINITION"] = "redmica-admin"
    env["REDMICA_DB_MASTER_SECRET"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:m"
    result = run("iam-policy", "--for", role, app=Application(env={**os.environ, **env}))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    resources = [r for s in document["Statement"] for r in s["Resource"]]
    assert not any(r.endswith((":secret:*", ":parameter/*")) for r in resources)


@pytest.mark.parametrize("role", ["container", "operator", "admin_task"])
@pytest.mark.parametrize("where", ["toml", "env", "library"])
def test_an_empty_tenant_secrets_prefix_is_refused(
    s3: S3Client, run: Invoke, tmp_path: Any, role: str, where: str
) -> None:
    """Empty would grant GetSecretValue on `secret:*` and GetParameter on `parameter/*`."""
    if where == "library":
        with pytest.raises(UsageError, match="tenant_secrets_prefix is empty"):
            policy_document(role, scope(secrets_prefix=""))
        return
    env = {"REDMICA_CLUSTER": "prod", "REDMICA_SERVICE": "redmica"}
    env["REDMICA_TASK_DEFINITION"] = "redmica-app"
    if where == "toml":
        config = tmp_path / "redmica.toml"
        config.write_text('tenant_secrets_prefix = ""\n')
        env["REDMICA_CONFIG"] = str(config)
    else:
        env["REDMICA_TENANT_SECRETS_PREFIX"] = ""  # empty is a value, never "the default"
    result = run("iam-policy", "--for", role, app=Application(env={**os.environ, **env}))
    assert result.exit_code == 2, result.output
    assert "tenant_secrets_prefix" in result.stderr and "must not be empty" in result.stderr
    assert result.stdout == ""

"""`redmica doctor` and the Lambda handler, against moto."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops import aws_lambda
from redmica_ops.cli.app import Application
from redmica_ops.errors import UsageError
from tests.conftest import BUCKET, Invoke, tenant_yaml
from tests.test_deploy import moto_service


def secure_bucket(s3: S3Client) -> None:
    key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
    s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key,
                    }
                }
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def app(**env: str) -> Application:
    return Application(
        env={
            **os.environ,
            "REDMICA_CLUSTER": "prod",
            "REDMICA_SERVICE": "redmica",
            "REDMICA_CONTAINER": "app",
            "REDMICA_TENANTS_PER_TASK": "1",  # moto runs no container
            "REDMICA_TASK_DEFINITION": "redmica-app",
            "REDMICA_DOMAIN": "example.com",
            **env,
        }
    )


def rows(result: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result.json()}


def test_doctor_all_good(s3: S3Client, run: Invoke) -> None:
    secure_bucket(s3)
    moto_service()
    # Added with the CLI, so its unique values are claimed (a document put by hand is not).
    assert run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme")).exit_code == 0
    result = run("doctor", "-O", "json", app=app())
    assert result.exit_code == 0, result.output
    checks = rows(result)
    assert {c["status"] for n, c in checks.items() if not n.startswith("apache")} == {"ok"}
    assert checks["credentials"]["detail"].endswith("(account 123456789012)")
    assert checks["tenants"]["detail"] == "1 tenant(s), all valid and unique"
    assert checks["ecs: images agree"]["status"] == "ok"
    assert checks["capacity"]["detail"] == (
        "pool 11 (derived) from 2048 MiB (setting serve_memory_mib (default)) for 1 tenant(s); "
        "spawn direct, min_instances 0"
    )  # (2048 - 256) // 160 = 11


def test_doctor_warns_when_explicit_pool_values_cannot_fit(s3: S3Client, run: Invoke) -> None:
    for name in ("acme", "beta", "gamma"):
        s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=tenant_yaml(name).encode())
    result = run(
        "doctor", "-O", "json", app=app(REDMICA_MAX_POOL_SIZE="2", REDMICA_MIN_INSTANCES="1")
    )
    check = rows(result)["capacity"]
    assert check["status"] == "warn"
    assert "pool 2 (explicit)" in check["detail"]
    assert (
        "min_instances 1 x 3 tenants keeps 3 processes warm but the pool holds 2"
        in (check["detail"])
    )
    too_small = run("doctor", "-O", "json", app=app(REDMICA_SERVE_MEMORY_MIB="300"))
    assert rows(too_small)["capacity"]["status"] == "fail"
    assert too_small.exit_code == 1


def test_doctor_finds_what_is_wrong(s3: S3Client, run: Invoke) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=BUCKET, Key="tenants/acme.yaml", Body=tenant_yaml("acme").encode())
    s3.put_object(
        Bucket=BUCKET,
        Key="tenants/beta.yaml",
        Body=tenant_yaml("beta", property__sub_domain="acme").encode(),
    )
    result = run("doctor", "-O", "json", app=app(REDMICA_CLUSTER="nope"))
    assert result.exit_code == 1
    checks = rows(result)
    assert checks["bucket: versioning"]["status"] == "warn"
    assert checks["bucket: public access"]["status"] == "fail"
    assert checks["tenants"]["status"] == "fail" and "1 clash" in checks["tenants"]["detail"]
    assert checks["ecs: cluster"]["status"] == "fail"
    text = run("doctor", app=app(REDMICA_CLUSTER="nope"))
    assert "fail: bucket: public access: block all public access" in text.stderr


def test_doctor_without_bucket_setting(run: Invoke) -> None:
    from moto import mock_aws

    with mock_aws():
        result = run("doctor", "-O", "json", bucket=None, app=Application())
    assert result.exit_code == 1
    assert rows(result)["settings: bucket"]["status"] == "fail"


@pytest.fixture
def lambda_env(s3: S3Client, monkeypatch: pytest.MonkeyPatch) -> None:
    subnet = boto3.client("ec2", region_name="us-east-1").describe_subnets()["Subnets"][0][
        "SubnetId"
    ]
    moto_service()
    for name in ("acme", "beta", "gamma"):
        s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=tenant_yaml(name).encode())
    for key, value in {
        "REDMICA_BUCKET": BUCKET,
        "REDMICA_CLUSTER": "prod",
        "REDMICA_TASK_DEFINITION": "redmica-app",
        "REDMICA_CONTAINER": "app",
        "REDMICA_TENANTS_PER_TASK": "1",  # moto runs no container
        "REDMICA_SUBNETS": subnet,
    }.items():
        monkeypatch.setenv(key, value)


def test_lambda_launches_without_waiting_then_reports(lambda_env: None, s3: S3Client) -> None:
    result = aws_lambda.handler({"action": "migrate", "exclude": ["gamma"]}, None)
    assert result["state"] == "launched"
    assert result["summary"] == {"running": 2, "skipped": 1}
    key = f"runs/{result['run_id']}.json"
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0
    status = aws_lambda.handler({"action": "status", "run_id": result["run_id"]}, None)
    assert status == {
        "run_id": result["run_id"],
        "state": "launched",
        "summary": {"running": 2, "skipped": 1},
        "failed": [],
    }


def test_lambda_rejects_unknown_events(lambda_env: None) -> None:
    with pytest.raises(UsageError, match="unknown action"):
        aws_lambda.handler({"action": "dance"}, None)
    with pytest.raises(UsageError, match="needs run_id"):
        aws_lambda.handler({"action": "status"}, None)

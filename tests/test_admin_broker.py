"""Lifecycle admin tasks: requests are single-use and expire (issue 23)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.errors import RedmicaError
from redmica_ops.lifecycle.admin_task import run_admin_request
from redmica_ops.lifecycle.steps import Step
from redmica_ops.settings import load_settings
from redmica_ops.tenants.store import TenantStore
from tests.conftest import BUCKET, tenant_yaml

REQUEST_ID = "20261128T041500Z-acme-set-admin-1a2b3c4d"
REQUEST_KEY = f"lifecycle/requests/{REQUEST_ID}.json"
# The first administrator's password as Redmine's salted SHA-1: what a request may hold.
SET_ADMIN = Step("set-admin", "acme", {"login": "alice", "hashed": "ab" * 20, "salt": "cd" * 16})


@pytest.fixture
def world(s3: S3Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Step]]:
    """A tenant, the master secret, and `execute` replaced by a recorder of the steps run."""
    s3.put_object(Bucket=BUCKET, Key="tenants/acme.yaml", Body=tenant_yaml("acme").encode())
    executed: list[Step] = []

    def execute(step: Step, site: Any, store: Any) -> dict[str, str]:
        executed.append(step)
        return {"done": "yes"}

    monkeypatch.setattr("redmica_ops.lifecycle.admin_task.execute", execute)
    yield executed


def master_secret() -> str:
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    document = json.dumps({"username": "master", "password": "never-printed"})
    return str(secrets.create_secret(Name="rds!cluster-1", SecretString=document)["ARN"])


def put_request(s3: S3Client, step: Step = SET_ADMIN, key: str = REQUEST_KEY) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=step.to_json().encode(), IfNoneMatch="*")


def age_object(key: str, by: timedelta) -> None:
    """Make moto's stored object look written `by` ago (S3 sets LastModified, not the writer)."""
    from moto.s3.models import s3_backends

    bucket = s3_backends["123456789012"]["global"].buckets[BUCKET]
    for version in bucket.keys.getlist(key):
        version.last_modified = version.last_modified - by


def admin_task(request_id: str = REQUEST_ID, **env: str) -> Any:
    settings = load_settings({}, {"REDMICA_DB_MASTER_SECRET": master_secret(), **env}, None)
    s3 = boto3.client("s3", region_name="us-east-1")
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    return run_admin_request(request_id, settings, s3, secrets, BUCKET, TenantStore(s3, BUCKET))


def versions_of(s3: S3Client, key: str) -> list[str]:
    listed = s3.list_object_versions(Bucket=BUCKET, Prefix=key)
    return [str(v.get("VersionId")) for v in listed.get("Versions", []) if v.get("Key") == key]


def test_a_request_older_than_the_bound_is_refused_with_nothing_run(
    s3: S3Client, world: list[Step]
) -> None:
    put_request(s3)
    age_object(REQUEST_KEY, timedelta(hours=2))
    with pytest.raises(RedmicaError) as caught:
        admin_task()
    assert caught.value.exit_code == 2
    assert "older than" in caught.value.message
    assert world == []  # nothing ran
    result = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"lifecycle/results/{REQUEST_ID}.json")["Body"].read()
    )
    assert result["ok"] is False and "older than" in result["error"]
    # The stale request (with its password hash) is gone too.
    assert versions_of(s3, REQUEST_KEY) == []


def test_a_consumed_request_is_gone_with_every_version(s3: S3Client, world: list[Step]) -> None:
    put_request(s3)
    admin_task()
    assert world == [SET_ADMIN]
    # Not only a delete marker over it: the version holding the hash is removed.
    assert versions_of(s3, REQUEST_KEY) == []
    # Run again (a second task for the same id): nothing to run, nothing written.
    before = s3.list_objects_v2(Bucket=BUCKET, Prefix="lifecycle/results/")["KeyCount"]
    with pytest.raises(RedmicaError) as caught:
        admin_task()
    assert caught.value.exit_code == 3
    assert world == [SET_ADMIN]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="lifecycle/results/")["KeyCount"] == before


def test_a_fresh_request_within_the_bound_runs(s3: S3Client, world: list[Step]) -> None:
    put_request(s3)
    age_object(REQUEST_KEY, timedelta(minutes=5))
    admin_task()
    assert world == [SET_ADMIN]

"""Shared fixtures: fake AWS credentials, moto (in-process and HTTP), and a CLI runner."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws
from mypy_boto3_s3 import S3Client

from redmica_ops.cli.app import Application
from redmica_ops.cli.main import cli
from redmica_ops.tenants.store import TenantStore
from tests.ecs_support import MotoServiceDeployments

BUCKET = "redmica-config-test"
REGION = "us-east-1"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CANARY_PASSWORD = "Canary-Pa55word-never-printed"

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


DEFAULT_DB_HOST = "db.test.internal"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's AWS config, REDMICA_* settings or ./redmica.toml."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "REDMICA_")) or name == "CONFIG_BUCKET_NAME":
            monkeypatch.delenv(name, raising=False)
    for name, value in _AWS_ENV.items():
        monkeypatch.setenv(name, value)
    # A deployment always has a database host for tenants that name none (the stack sets
    # REDMICA_DB_HOST); without one such a tenant is never served (tenants/selection.py). A
    # test of the unset case removes it.
    monkeypatch.setenv("REDMICA_DB_HOST", DEFAULT_DB_HOST)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's retry back-off (and adaptive mode's client-side rate limiter) in tests."""
    from botocore.retries import adaptive, standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0)
    monkeypatch.setattr(
        adaptive.ClientRateLimiter, "on_sending_request", lambda self, request, **kwargs: None
    )


@pytest.fixture
def moto_rollouts(monkeypatch: pytest.MonkeyPatch) -> MotoServiceDeployments:
    """moto never rolls deployments over and has no service-deployments API: both simulated,
    as ECS does them, in one place (`tests/ecs_support.MotoServiceDeployments`). A rollout
    completes unless its image is in the returned simulation's `outcomes`."""
    return MotoServiceDeployments(monkeypatch)


@pytest.fixture
def route53_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route 53 answers a change PENDING and only GetChange says INSYNC, as the real service
    does; moto says INSYNC at once, which would leave the waiting untested."""
    from moto.route53.responses import Route53

    original = Route53.change_resource_record_sets

    def change(self: Any) -> Any:
        result = original(self)
        document: Any = result.result
        document["ChangeInfo"]["Status"] = "PENDING"
        return result

    monkeypatch.setattr(Route53, "change_resource_record_sets", change)


@pytest.fixture
def s3() -> Iterator[S3Client]:
    """moto in-process with the config bucket created and versioned."""
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def listing_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """How often the tenant listing is read (issue 24: at most once per command), counted
    from here on: `load_all` (TenantStore.load_all calls), `list` (S3 ListObjectsV2 calls on
    the tenants' prefix), `check_writable` (TenantStore.check_writable calls) and `get` (S3
    GetObject calls on tenant documents)."""
    counts: Counter[str] = Counter()
    load_all, check_writable = TenantStore.load_all, TenantStore.check_writable
    api_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def counted_load_all(self: TenantStore) -> Any:
        counts["load_all"] += 1
        return load_all(self)

    def counted_check(self: TenantStore, *args: Any) -> None:
        counts["check_writable"] += 1
        check_writable(self, *args)

    def counted_call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "ListObjectsV2" and str(params.get("Prefix", "")) == "tenants/":
            counts["list"] += 1
        key = str(params.get("Key", ""))
        if operation == "GetObject" and key.startswith("tenants/") and "/_" not in key:
            counts["get"] += 1  # a tenant document read (not a claim or an incarnation)
        return api_call(self, operation, params)

    monkeypatch.setattr(TenantStore, "load_all", counted_load_all)
    monkeypatch.setattr(TenantStore, "check_writable", counted_check)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted_call)
    yield counts


def tenant_document(name: str, password: str = CANARY_PASSWORD, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "db": {
            "name": name.replace("-", "_"),
            "user": name.replace("-", "_"),
            "password": password,
        },
        "s3": {"bucket": "redmica-attachments", "folder": name},
        "property": {"sub_domain": name, "limit_ips": ["192.168.0.0/24"]},
    }
    for path, value in overrides.items():
        section, field = path.split("__")
        if value is None:
            doc[section].pop(field, None)
        else:
            doc[section][field] = value
    return doc


def tenant_yaml(name: str, password: str = CANARY_PASSWORD, **overrides: Any) -> str:
    import yaml

    return yaml.safe_dump(tenant_document(name, password, **overrides), sort_keys=False)


def tenant_add_flags(name: str) -> list[str]:
    """`tenant add NAME`'s flag form with the least a tenant needs (its password comes apart)."""
    return [
        "tenant",
        "add",
        name,
        "--db-name",
        name,
        "--db-user",
        name,
        "--s3-bucket",
        "redmica-attachments",
        "--s3-folder",
        name,
        "--sub-domain",
        name,
    ]


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    raw: Result

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


Invoke = Callable[..., CliResult]


@pytest.fixture
def app_factory() -> Callable[[], Application]:
    return Application


@pytest.fixture
def run(app_factory: Callable[[], Application]) -> Invoke:
    """Run `redmica ARGS...` in-process; the config bucket defaults to the test bucket."""

    def invoke(
        *args: str,
        input: str | bytes | None = None,
        app: Application | None = None,
        bucket: str | None = BUCKET,
    ) -> CliResult:
        runner = CliRunner()
        argv = ([f"--bucket={bucket}"] if bucket else []) + list(args)
        result = runner.invoke(
            cli, argv, input=input, obj=app or app_factory(), catch_exceptions=False
        )
        return CliResult(result.exit_code, result.stdout, result.stderr, result)

    return invoke


def objects_in(s3: S3Client, bucket: str = BUCKET) -> list[tuple[str, str]]:
    """Every object version in the bucket: a snapshot to prove nothing was written."""
    response = s3.list_object_versions(Bucket=bucket)
    versions = [(v["Key"], v["VersionId"]) for v in response.get("Versions", [])]
    markers = [(m["Key"], m["VersionId"]) for m in response.get("DeleteMarkers", [])]
    return sorted(versions + markers)

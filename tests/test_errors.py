"""AWS and internal errors become one line, a hint and the documented exit code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from mypy_boto3_s3 import S3Client

from redmica_ops.aws import ClientFactory
from redmica_ops.cli.app import Application
from redmica_ops.settings import Settings
from tests.conftest import CANARY_PASSWORD, Invoke, tenant_yaml


def test_no_bucket_configured_is_a_usage_error(run: Invoke) -> None:
    result = run("tenant", "list", bucket=None)
    assert result.exit_code == 2
    assert "no config bucket is set" in result.stderr
    assert "REDMICA_BUCKET" in result.stderr


def test_missing_bucket_is_exit_5_with_hint(s3: S3Client, run: Invoke) -> None:
    result = run("tenant", "list", bucket="no-such-bucket-here")
    assert result.exit_code == 5
    assert "error: bucket 'no-such-bucket-here' does not exist" in result.stderr
    assert "hint: check --bucket" in result.stderr
    assert "Traceback" not in result.output


def test_missing_bucket_on_add_after_validation(s3: S3Client, run: Invoke) -> None:
    result = run(
        "tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme"), bucket="no-such-bucket-here"
    )
    assert result.exit_code == 5
    assert CANARY_PASSWORD not in result.output


def test_json_mode_puts_the_error_on_stdout_too(s3: S3Client, run: Invoke) -> None:
    result = run("tenant", "show", "ghost", "--output", "json")
    assert result.exit_code == 3
    assert result.json() == {
        "error": "tenant 'ghost' not found in s3://redmica-config-test/tenants/",
        "hint": "list tenants with `redmica tenant list`",
        "exit_code": 3,
    }


def test_no_credentials_is_exit_5(monkeypatch: pytest.MonkeyPatch, run: Invoke) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    result = run("tenant", "list")
    assert result.exit_code == 5
    assert "no AWS credentials found" in result.stderr
    assert "hint:" in result.stderr


def test_unknown_profile_is_exit_5(run: Invoke) -> None:
    result = run("--profile", "nope", "tenant", "list")
    assert result.exit_code == 5
    assert "AWS profile not found: nope" in result.stderr


def test_unreachable_endpoint_is_exit_5(run: Invoke, no_retry_delay: None) -> None:
    result = run("--endpoint-url", "http://127.0.0.1:9", "tenant", "list")
    assert result.exit_code == 5
    assert "cannot reach the AWS endpoint" in result.stderr


class StubbedFactory(ClientFactory):
    """A factory whose S3 client answers from a botocore Stubber."""

    def __init__(self, settings: Settings, error_code: str, status: int) -> None:
        super().__init__(settings)
        client = boto3.client("s3", region_name="us-east-1")
        self.stubber = Stubber(client)
        self.stubber.add_client_error(
            "list_objects_v2",
            service_error_code=error_code,
            service_message="denied",
            http_status_code=status,
        )
        self.stubber.activate()
        self._clients["s3"] = client


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("AccessDenied", 403, "access denied while listing s3://redmica-config-test/tenants/"),
        ("ExpiredToken", 400, "AWS rejected the credentials"),
        ("SlowDown", 503, "AWS kept throttling"),
        ("InternalError", 500, "AWS error InternalError while listing"),
    ],
)
def test_aws_client_errors_map_to_exit_5(run: Invoke, code: str, status: int, message: str) -> None:
    app = Application(client_factory=lambda settings: StubbedFactory(settings, code, status))
    result = run("tenant", "list", app=app)
    assert result.exit_code == 5
    assert message in result.stderr


def test_internal_error_does_not_echo_its_message(run: Invoke) -> None:
    def broken(_settings: Settings) -> Any:
        raise RuntimeError(f"boom {CANARY_PASSWORD}")

    result = run("tenant", "list", app=Application(client_factory=broken))
    assert result.exit_code == 1
    assert "internal error (RuntimeError)" in result.stderr
    assert CANARY_PASSWORD not in result.output


def test_debug_shows_the_traceback(s3: S3Client, run: Invoke) -> None:
    result = run("--debug", "tenant", "show", "ghost")
    assert result.exit_code == 3
    assert "Traceback" in result.stderr


@pytest.fixture
def moto_without_bucket() -> Iterator[None]:
    with mock_aws():
        yield


def test_keyboard_interrupt_is_exit_130(run: Invoke, moto_without_bucket: None) -> None:
    def interrupted(_settings: Settings) -> Any:
        raise KeyboardInterrupt

    result = run("tenant", "list", app=Application(client_factory=interrupted))
    assert result.exit_code == 130

"""deploy, release and rollback record the image a service runs in /redmica/<service>/image
(deploy/image.py), where its CloudFormation stack reads it: after a rollout that succeeded,
never after one that failed, and a write that fails is a warning, not a failed rollout."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.deploy.image import image_parameter
from tests.conftest import Invoke
from tests.test_deploy import NEW_IMAGE, app_for, moto_service

PARAMETER = image_parameter("redmica")


def recorded() -> str | None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    try:
        return str(ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        return None


def test_deploy_and_rollback_record_the_running_image_reload_leaves_it(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    moto_service()
    assert recorded() is None
    assert run("deploy", "--image", NEW_IMAGE, "--yes", app=app_for()).exit_code == 0
    assert recorded() == NEW_IMAGE
    ssm = boto3.client("ssm", region_name="us-east-1")
    version = ssm.get_parameter(Name=PARAMETER)["Parameter"]["Version"]
    assert run("reload", "--yes", app=app_for()).exit_code == 0
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Version"] == version, "no write"
    back = run("rollback", "--yes", app=app_for())
    assert back.exit_code == 0, back.output
    assert recorded() == "redmica:1"  # moto_service's first image


def test_a_rollout_not_waited_for_records_nothing(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    moto_service()
    started = run("deploy", "--image", NEW_IMAGE, "--yes", "--no-wait", app=app_for())
    assert started.exit_code == 0, started.output
    assert recorded() is None


def test_a_failed_write_warns_with_the_command_and_keeps_the_rollout(
    s3: S3Client, run: Invoke, moto_rollouts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core.exceptions import JsonRESTError
    from moto.ssm.models import SimpleSystemManagerBackend

    def denied(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise JsonRESTError("AccessDeniedException", "not authorized to perform ssm:PutParameter")

    monkeypatch.setattr(SimpleSystemManagerBackend, "put_parameter", denied)
    moto_service()
    done = run("deploy", "--image", NEW_IMAGE, "--yes", "-O", "json", app=app_for())
    assert done.exit_code == 0, done.output
    assert done.json()["result"] == "succeeded"
    assert f"warning: access denied while writing {PARAMETER}" in done.stderr
    assert (
        f"aws ssm put-parameter --overwrite --type String --name {PARAMETER} --value IMAGE"
        in done.stderr
    )
    assert recorded() is None


def cell_images() -> dict[str, str | None]:
    ssm = boto3.client("ssm", region_name="us-east-1")
    found = ssm.get_parameters(Names=[image_parameter(f"redmica-{c}") for c in "abc"])
    values = {p["Name"]: p["Value"] for p in found["Parameters"]}
    return {c: values.get(image_parameter(f"redmica-{c}")) for c in "abc"}


def test_with_cells_each_service_gets_its_own_record_and_an_undone_wave_none(
    s3: S3Client, run: Invoke, moto_rollouts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cells_support import cells_app, fail_rollouts, moto_cells

    env = moto_cells()
    fail_rollouts(monkeypatch, {"redmica-b"})
    failed = run("deploy", "--image", "redmica:2", "--yes", app=cells_app(env))
    assert failed.exit_code == 1, failed.output
    # The canary a succeeded, then went back with the wave that failed: nothing moved.
    assert cell_images() == {"a": None, "b": None, "c": None}
    done = run(
        "deploy", "--image", "redmica:2", "--cell", "a", "--cell", "c", "--yes", app=cells_app(env)
    )
    assert done.exit_code == 0, done.output
    assert cell_images() == {"a": "redmica:2", "b": None, "c": "redmica:2"}

"""`redmica config from-stack`: the documented stand-up on moto (docs/infrastructure.md steps 1
to 7: each stack from the documented parameters, the cell joined by the main stack's update,
the settings from the stacks' outputs), then `redmica doctor` passes on the result; and every
way the stacks can be wrong, each one error naming it with nothing written.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from redmica_ops.moto_stacks import Platform, stand_ins
from redmica_ops.settings.from_stack import SETTING_OUTPUTS
from redmica_ops.settings.loading import load_settings
from tests.conftest import Invoke
from tests.test_stacks import (
    CELL,
    CELLS,
    CONFIG_OUTPUTS,
    DATABASE,
    FOUNDATION,
    MAIN,
    REGION,
    stand_up,
)

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")

STACKS = (FOUNDATION, DATABASE, MAIN, CELL)


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with mock_aws(), stand_ins():
        yield stand_up(join_cells=True)


def stub(name: str, parameters: dict[str, str], outputs: dict[str, str], region: str) -> str:
    """A stack with a template's telling parameters and the given outputs (a wrong one)."""
    template = {
        "Parameters": {k: {"Type": "String"} for k in parameters},
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    cf = boto3.client("cloudformation", region_name=region)
    stack_id = cf.create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )["StackId"]
    return str(stack_id)


def test_the_documented_stand_up_gives_settings_that_doctor_passes(
    platform: Platform, run: Invoke, tmp_path: Path
) -> None:
    target = tmp_path / "redmica.toml"
    done = run("config", "from-stack", *STACKS, "--write", str(target), bucket=None)
    assert done.exit_code == 0, done.output
    assert f"wrote {target}" in done.stderr
    settings = tomllib.loads(target.read_text())
    main = platform.outputs[MAIN]
    expected = {
        setting: main[output].split(",")
        if setting in ("subnets", "security_groups")
        else main[output]
        for output, setting in CONFIG_OUTPUTS.items()
    }
    assert settings == {**expected, "region": REGION, "cells": CELLS.split(",")}
    # The file is what redmica reads: every value passes its setting's check.
    loaded = load_settings({}, {}, str(target))
    assert loaded.bucket == main["ConfigBucketName"] and loaded.cells == tuple(CELLS.split(","))
    doctor = run("--config", str(target), "--output", "json", "doctor", bucket=None)
    assert doctor.exit_code == 0, doctor.output
    checks = doctor.json()
    assert [c for c in checks if c["status"] == "fail"] == []
    assert {c["name"] for c in checks} >= {"bucket: public access", "routing", "ecs: service"}


def test_printed_by_default_and_as_json(platform: Platform, run: Invoke, tmp_path: Path) -> None:
    printed = run("config", "from-stack", MAIN, FOUNDATION, bucket=None)
    assert printed.exit_code == 0, printed.output
    assert tomllib.loads(printed.stdout)["bucket"] == platform.outputs[MAIN]["ConfigBucketName"]
    assert list(tmp_path.iterdir()) == []
    document = run("--output", "json", "config", "from-stack", MAIN, bucket=None).json()
    assert document["written"] is None and document["region"] == REGION
    assert [s["kind"] for s in document["stacks"]] == ["main"]
    assert document["settings"]["subnets"] == platform.outputs[MAIN]["TaskSubnets"].split(",")


def test_an_existing_file_is_replaced_only_with_force(
    platform: Platform, run: Invoke, tmp_path: Path
) -> None:
    target = tmp_path / "redmica.toml"
    target.write_text("bucket = 'mine'\n")
    refused = run("config", "from-stack", MAIN, "--write", str(target), bucket=None)
    assert refused.exit_code == 4, refused.output
    assert "the file exists; nothing was written" in refused.stderr
    assert "--force" in refused.stderr
    assert target.read_text() == "bucket = 'mine'\n"
    forced = run("config", "from-stack", MAIN, "--write", str(target), "--force", bucket=None)
    assert forced.exit_code == 0, forced.output
    assert tomllib.loads(target.read_text())["cluster"] == platform.outputs[MAIN]["ClusterName"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["redmica.toml"]  # no temp file left


def one_error(result: object) -> str:
    """The error line of a failed command (there is exactly one, plus its hint)."""
    stderr: str = result.stderr  # type: ignore[attr-defined]
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    assert "hint:" in stderr, stderr
    return lines[0]


def refused_and_nothing_written(run: Invoke, tmp_path: Path, *args: str) -> tuple[int, str]:
    target = tmp_path / "out" / "redmica.toml"
    target.parent.mkdir(exist_ok=True)
    result = run("config", "from-stack", *args, "--write", str(target), bucket=None)
    assert result.exit_code != 0
    assert list(target.parent.iterdir()) == [], "nothing written"
    return result.exit_code, one_error(result)


def test_a_stack_that_does_not_exist(platform: Platform, run: Invoke, tmp_path: Path) -> None:
    code, error = refused_and_nothing_written(run, tmp_path, FOUNDATION, "redmica-typo")
    assert code == 3
    assert error == f"error: stack redmica-typo does not exist in region {REGION}"


def test_a_stack_without_the_expected_outputs(
    platform: Platform, run: Invoke, tmp_path: Path
) -> None:
    # A main stack of an older template: two setting outputs of fifteen.
    stub(
        "redmica-old",
        {"AdminImageUri": "x", "BrokerCodeKey": "y", "HostedZoneId": "Z1"},
        {"ConfigBucketName": "b", "ClusterName": "c"},
        REGION,
    )
    code, error = refused_and_nothing_written(run, tmp_path, "redmica-old")
    assert code == 2
    missing = [o for o in SETTING_OUTPUTS if o not in ("ConfigBucketName", "ClusterName")]
    assert error.startswith(
        f"error: stack redmica-old (main) lacks the output(s) {', '.join(missing)}"
    )
    assert "(settings kms_key_id, service," in error
    # A stack of no redmica template at all.
    stub("unrelated", {"Size": "1"}, {}, REGION)
    code, error = refused_and_nothing_written(run, tmp_path, MAIN, "unrelated")
    assert code == 2 and "stack unrelated is not a redmica stack" in error


def test_stacks_from_another_region(platform: Platform, run: Invoke, tmp_path: Path) -> None:
    # The foundation made in eu-west-1: named by its ARN, it is refused before it is read.
    elsewhere = stub(
        "redmica-foundation-eu",
        {"CreateNetwork": "true", "ImageRepositoryName": "redmica"},
        {"Domain": "redmine.example.com"},
        "eu-west-1",
    )
    code, error = refused_and_nothing_written(run, tmp_path, elsewhere, MAIN)
    assert code == 2
    assert error == (
        f"error: stack {elsewhere} is in region eu-west-1, not in the settings' region {REGION}"
    )
    # By name, the settings' region does not have it.
    code, error = refused_and_nothing_written(run, tmp_path, "redmica-foundation-eu", MAIN)
    assert code == 3 and f"does not exist in region {REGION}" in error
    # A stack here whose outputs are of another region (a foundation copied by hand).
    stub(
        "redmica-foundation-copy",
        {"CreateNetwork": "true", "ImageRepositoryName": "redmica"},
        {
            "Domain": "redmine.example.com",
            "CertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
            "PrivateSubnetIds": platform.outputs[FOUNDATION]["PrivateSubnetIds"],
        },
        REGION,
    )
    code, error = refused_and_nothing_written(run, tmp_path, "redmica-foundation-copy", MAIN)
    assert code == 2
    assert error == (
        "error: stack redmica-foundation-copy: CertificateArn is in region eu-west-1, not in "
        f"the settings' region {REGION}"
    )


def test_stacks_of_another_platform(platform: Platform, run: Invoke, tmp_path: Path) -> None:
    stub(
        "other-database",
        {"EngineVersion": "16.4", "MasterUsername": "postgres"},
        {
            "DatabaseHost": "other.cluster-x.us-east-1.rds.amazonaws.com",
            "DatabaseMasterSecretArn": platform.outputs[DATABASE]["DatabaseMasterSecretArn"],
            "DatabaseClientSecurityGroupId": "sg-0123456789abcdef0",
        },
        REGION,
    )
    code, error = refused_and_nothing_written(run, tmp_path, "other-database", MAIN)
    assert code == 2
    assert error == (
        f"error: stacks that do not belong to main stack {MAIN}: other-database: its "
        f"DatabaseHost is not {MAIN}'s; other-database: its DatabaseClientSecurityGroupId is "
        f"not among {MAIN}'s groups"
    )
    code, error = refused_and_nothing_written(run, tmp_path, FOUNDATION, DATABASE)
    assert code == 2 and "no main stack among redmica-foundation, redmica-database" in error


def test_usage_errors_come_before_any_aws_call(run: Invoke, tmp_path: Path) -> None:
    # No moto here: an AWS call would fail on the network, not with these errors.
    forced = run("config", "from-stack", MAIN, "--force", bucket=None)
    assert forced.exit_code == 2 and "--force needs --write PATH" in forced.stderr
    nowhere = tmp_path / "missing" / "redmica.toml"
    missing = run("config", "from-stack", MAIN, "--write", str(nowhere), bucket=None)
    assert missing.exit_code == 2
    assert one_error(missing) == (
        f"error: --write {nowhere}: directory {nowhere.parent} does not exist"
    )
    assert not nowhere.parent.exists()

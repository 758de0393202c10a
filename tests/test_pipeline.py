"""The release pipeline (templates/cloudformation/redmica-pipeline.yaml and ci/): its shape,
that its build specifications call the project's real commands, the scan gate, and that the
release stage's role grants exactly what `redmica release` with the probe calls.

moto cannot create CodePipeline or CodeBuild resources (docs/release-day.md), so the stack
is checked as a document: cfn-lint (tests/test_cloudformation.py lints every template), its
structure here, and its role statements evaluated with tests/iam_eval.py.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from mypy_boto3_s3 import S3Client
from scripts import scan_gate

from redmica_ops.aws import CALL_RECORDERS
from redmica_ops.cli.main import cli
from redmica_ops.policy import (
    OPERATION_ACTIONS,
    ROLE_OPERATIONS,
    actions_for,
    policy_document,
    scope_for,
)
from redmica_ops.probe.model import Answer, ProbeRequest, SiteTarget
from redmica_ops.probe.run import run as probe
from redmica_ops.probe.wiring import aws_site
from redmica_ops.settings.loading import load_settings
from redmica_ops.workspace import AwsWorkspace
from tests import iam_eval
from tests.cells_support import add_tenant, cells_app, fail_rollouts, moto_cells
from tests.conftest import Invoke
from tests.test_cloudformation import load

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = load(ROOT / "templates" / "cloudformation" / "redmica-pipeline.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def buildspec(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "ci" / f"buildspec-{name}.yml").read_text())
    return data


def commands(name: str) -> list[str]:
    spec = buildspec(name)
    return [c for phase in spec["phases"].values() for c in phase.get("commands", [])]


# -- the shape ----------------------------------------------------------------------------------
def stage_names(pipeline: str) -> list[str]:
    names = []
    for stage in RESOURCES[pipeline]["Properties"]["Stages"]:
        if "If" in stage:  # a conditional stage: [condition, stage, AWS::NoValue]
            condition, stage, _ = stage["If"]
            names.append(f"{stage['Name']}?{condition}")
        else:
            names.append(stage["Name"])
    return names


def test_the_release_pipeline_builds_tests_may_wait_for_approval_then_releases() -> None:
    assert stage_names("ReleasePipeline") == [
        "Source",
        "Build",
        "Test",
        "Approve?WithApproval",
        "Release",
    ]
    assert stage_names("TestPipeline") == ["Source", "Test"]
    release = RESOURCES["ReleasePipeline"]["Properties"]
    assert release["ExecutionMode"] == "QUEUED"  # releases never overlap
    action = release["Stages"][-1]["Actions"][0]
    assert [a["Name"] for a in action["InputArtifacts"]] == ["Source", "BuiltImage"]
    build = release["Stages"][1]["Actions"][0]
    assert build["OutputArtifacts"] == [{"Name": "BuiltImage"}]
    # The release stage reads the build's artifact by its name.
    assert any("CODEBUILD_SRC_DIR_BuiltImage" in c for c in commands("release"))


@pytest.mark.parametrize("pipeline", ["ReleasePipeline", "TestPipeline"])
def test_the_source_is_a_connection_or_s3_and_never_starts_a_release_by_itself(
    pipeline: str,
) -> None:
    source = RESOURCES[pipeline]["Properties"]["Stages"][0]["Actions"][0]
    condition, connection, s3 = source["If"]
    assert condition == "FromConnection"
    assert connection["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert connection["Configuration"]["DetectChanges"] is False
    assert s3["ActionTypeId"]["Provider"] == "S3"
    assert s3["Configuration"]["PollForSourceChanges"] is False


def test_each_project_uses_its_buildspec_and_its_own_role() -> None:
    expected = {
        "ImageProject": ("ci/buildspec-image.yml", "ImageBuildRole"),
        "TestProject": ("ci/buildspec-test.yml", "TestRole"),
        "ReleaseProject": ("ci/buildspec-release.yml", "ReleaseRole"),
    }
    for project, (spec, role) in expected.items():
        properties = RESOURCES[project]["Properties"]
        assert properties["Source"]["BuildSpec"] == spec
        assert (ROOT / spec).is_file()
        assert properties["ServiceRole"] == {"GetAtt": f"{role}.Arn"}
        assert properties["EncryptionKey"] == {"GetAtt": "ArtifactKey.Arn"}
    # Only the image build and the tests need privileged mode (Docker; unshare and chroot).
    privileged = {
        name
        for name, resource in RESOURCES.items()
        if resource["Type"] == "AWS::CodeBuild::Project"
        and resource["Properties"]["Environment"].get("PrivilegedMode")
    }
    assert privileged == {"ImageProject", "TestProject"}


def test_the_schedules_start_the_morning_release_and_the_daily_tests() -> None:
    release = RESOURCES["MorningRelease"]["Properties"]
    tests = RESOURCES["DailyTests"]["Properties"]
    assert release["ScheduleExpression"] == {"Ref": "ReleaseSchedule"}
    assert release["State"] == {"Ref": "ReleaseScheduleState"}
    assert TEMPLATE["Parameters"]["ReleaseScheduleState"]["Default"] == "DISABLED"
    assert "${ReleasePipeline}" in release["Target"]["Arn"]["Sub"]
    assert "${TestPipeline}" in tests["Target"]["Arn"]["Sub"]
    role = RESOURCES["SchedulerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert [s["Action"] for s in role["Statement"]] == ["codepipeline:StartPipelineExecution"]


# -- the buildspecs call the real commands ------------------------------------------------------
def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))


def test_the_build_stage_builds_the_image_with_make_image_and_gates_on_the_scan() -> None:
    steps = commands("image")
    assert "image" in makefile_targets()
    build = next(s for s in steps if "make image" in s)
    assert (
        'make image IMAGE="$IMAGE_REPOSITORY_URI:$TAG" && docker push "$IMAGE_REPOSITORY_URI:$TAG"'
        in build
    )
    # ... unless that commit's image is already in the repository (immutable tags).
    assert build.startswith('if aws ecr describe-images --repository-name "$IMAGE_REPOSITORY_NAME"')
    assert any(s.startswith("aws ecr wait image-scan-complete ") for s in steps)
    gate = [s for s in steps if "scan_gate.py" in s]
    assert gate == ['python3 scripts/scan_gate.py --threshold "$SCAN_THRESHOLD" scan.json']
    assert (ROOT / "scripts" / "scan_gate.py").is_file()
    # The release gets the image by digest, never by a tag that could move.
    assert 'printf \'IMAGE=%s@%s\\n\' "$IMAGE_REPOSITORY_URI" "$DIGEST" > image.env' in steps
    # Every step after the build's start fails the build (no step's failure is ignored).
    assert buildspec("image")["phases"]["build"]["on-failure"] == "ABORT"
    variables = {
        v["Name"]
        for v in RESOURCES["ImageProject"]["Properties"]["Environment"]["EnvironmentVariables"]
    }
    used = set(re.findall(r"\$\{?([A-Z_]+)", " ".join(steps))) - {
        "TAG",
        "DIGEST",
        "AWS_REGION",  # set by CodeBuild
        "CODEBUILD_RESOLVED_SOURCE_VERSION",
    }
    assert used == variables


def test_the_test_stage_runs_make_test() -> None:
    assert "test" in makefile_targets()
    assert commands("test")[-1] == "make test"


def redmica_invocations(name: str) -> list[list[str]]:
    found = []
    for step in commands(name):
        words = shlex.split(step)
        if words and words[0].endswith("/redmica"):
            found.append(words[1:])
    return found


def parse(args: list[str]) -> click.Context:
    name, *rest = args
    command = cli.get_command(click.Context(cli), name)
    assert command is not None, f"no command `redmica {name}`"
    return command.make_context(name, list(rest), **cli.context_settings)


def test_the_release_stage_releases_the_built_image_by_digest() -> None:
    (release,) = redmica_invocations("release")
    assert release[:3] == ["release", "--image", "$IMAGE"]
    assert "--yes" in release  # CodeBuild has no terminal to confirm on
    assert release[release.index("--max-probe-failures") + 1] == "$MAX_PROBE_FAILURES"
    without_probe_flag = release[: release.index("--max-probe-failures")]
    context = parse(without_probe_flag)
    assert context.params["image"] == "$IMAGE" and context.params["yes"]


def test_the_release_stage_command_line_parses_with_the_probe_flag() -> None:
    (release,) = redmica_invocations("release")
    context = parse([word.replace("$MAX_PROBE_FAILURES", "0") for word in release])
    assert context.params["max_probe_failures"] == 0 and not context.params["no_probe"]


# -- the scan gate -------------------------------------------------------------------------------
def scan(counts: dict[str, int], status: str = "COMPLETE") -> dict[str, Any]:
    return {
        "imageScanStatus": {"status": status, "description": "x"},
        "imageScanFindings": {"findingSeverityCounts": counts},
    }


@pytest.mark.parametrize(
    ("counts", "threshold", "code"),
    [
        ({}, "HIGH", 0),
        ({"MEDIUM": 4, "LOW": 9, "INFORMATIONAL": 3}, "HIGH", 0),
        ({"HIGH": 1}, "HIGH", 1),
        ({"CRITICAL": 1}, "CRITICAL", 1),
        ({"HIGH": 2}, "CRITICAL", 0),
        ({"LOW": 1}, "low", 1),
        ({"UNDEFINED": 5}, "LOW", 0),
    ],
)
def test_the_scan_gate(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    counts: dict[str, int],
    threshold: str,
    code: int,
) -> None:
    path = tmp_path / "scan.json"
    path.write_text(json.dumps(scan(counts)))
    assert scan_gate.main(["--threshold", threshold, str(path)]) == code
    if code:
        assert "FAILED" in capsys.readouterr().err


def test_the_scan_gate_reads_enhanced_findings_and_refuses_bad_input(tmp_path: Path) -> None:
    enhanced = {"imageScanFindings": {"enhancedFindings": [{"severity": "CRITICAL"}]}}
    path = tmp_path / "scan.json"
    path.write_text(json.dumps(enhanced))
    assert scan_gate.main(["--threshold", "HIGH", str(path)]) == 1
    path.write_text(json.dumps(scan({}, status="FAILED")))
    assert scan_gate.main(["--threshold", "HIGH", str(path)]) == 2
    path.write_text("{}")
    assert scan_gate.main(["--threshold", "HIGH", str(path)]) == 2
    assert scan_gate.main(["--threshold", "SEVERE", str(path)]) == 2
    assert scan_gate.main(["--threshold", "HIGH", str(tmp_path / "missing.json")]) == 2


# -- the release stage's role: what release and the probe call ------------------------------------
MAIN = "redmica"
IMPORTS = {
    f"{MAIN}-ConfigBucket": "acme-config",
    f"{MAIN}-Cluster": "redmica-cluster",
    f"{MAIN}-AppTaskRole": "arn:aws:iam::111122223333:role/redmica-app-task",
    f"{MAIN}-TaskExecutionRole": "arn:aws:iam::111122223333:role/redmica-exec",
    f"{MAIN}-TaskSecurityGroup": "sg-0123",
}
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "111122223333",
    "AWS::StackName": "redmica-pipeline",
    "MainStackName": MAIN,
    "ConfigKeyArn": "arn:aws:kms:eu-west-1:111122223333:key/abcd",
    "ArtifactBucket.Arn": "arn:aws:s3:::redmica-pipeline-artifacts",
    "BuildLogGroup.Arn": "arn:aws:logs:eu-west-1:111122223333:log-group:/redmica/x/builds",
    "ArtifactKey.Arn": "arn:aws:kms:eu-west-1:111122223333:key/artifacts",
}


def resolve(value: Any, names: dict[str, str] | None = None) -> Any:
    """The template's intrinsic functions that the roles use, with the names above."""
    names = {**PSEUDO, **(names or {})}
    if isinstance(value, list):
        return [resolve(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, inner), *_ = value.items()
        key = key.removeprefix("Fn::")
        if key == "Sub":
            text, extra = (inner, {}) if isinstance(inner, str) else inner
            local = {k: resolve(v, names) for k, v in extra.items()}
            return re.sub(r"\$\{([^}]+)\}", lambda m: {**names, **local}[m[1]], text)
        if key == "ImportValue":
            return IMPORTS[resolve(inner, names)]
        if key == "Ref":
            return names[inner]
        if key == "GetAtt":
            return names[inner]
        if key == "Split":
            delimiter, text = inner
            return str(resolve(text, names)).split(delimiter)
        if key == "Select":
            index, items = inner
            return resolve(items, names)[int(index)]
    return {k: resolve(v, names) for k, v in value.items()}


def release_policy(only: str | None = None) -> dict[str, Any]:
    """The release role's statements, resolved (`only`: those of one named policy)."""
    policies = RESOURCES["ReleaseRole"]["Properties"]["Policies"]
    statements = [
        s
        for p in policies
        if only in (None, p["PolicyName"])
        for s in p["PolicyDocument"]["Statement"]
    ]
    return {"Statement": resolve(statements)}


def granted(policy: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for statement in policy["Statement"]:
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


# Besides what redmica calls: CodeBuild's log stream and the pipeline's artifacts (read), and
# KMS for the artifact and config bucket keys (S3 calls them on redmica's behalf).
BUILD_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents", "kms:Decrypt", "kms:GenerateDataKey"}


# Paths of `release` that moto's rollouts do not reach here: a migration task past its
# timeout is stopped; a rollout not finished at its first look is followed through ECS's
# service-deployments API (moto finishes every rollout at once).
UNREACHED = {
    "ecs:StopTask",
    "ecs:ListServiceDeployments",
    "ecs:DescribeServiceDeployments",
    "ecs:StopServiceDeployment",
}


def test_the_release_role_grants_exactly_what_release_and_the_probe_call(
    s3: S3Client,
    run: Invoke,
    moto_rollouts: None,  # with the service-deployments API (tests/ecs_support.py)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = moto_cells(("a", "b"))
    for name, cell in (("t1", "a"), ("t2", "b")):
        add_tenant(run, env, name, "--cell", cell)
    calls: set[tuple[str, str]] = set()

    def record(service: str, operation: str) -> None:
        calls.add((service, operation))

    CALL_RECORDERS.append(record)
    try:
        # A release that succeeds, and one whose second cell fails and is rolled back.
        assert run("release", "--image", "redmica:2", "--yes", app=cells_app(env)).exit_code == 0
        fail_rollouts(monkeypatch, {"redmica-b"})
        assert run("release", "--image", "redmica:3", "--yes", app=cells_app(env)).exit_code == 1
        # The probe through each cell's balancer, with its record.
        settings = load_settings(
            {}, {**env, "REDMICA_BUCKET": "redmica-config-test", "REDMICA_DB_HOST": "db.test"}
        )
        ws = AwsWorkspace(settings)

        class Up:
            def fetch(self, target: SiteTarget, timeout: float) -> Answer:
                return Answer(200)

        probed = probe(ProbeRequest(), ws, aws_site(ws, Up()))
        # Both tenants probed: a deployment without db_host would serve (and probe) none.
        assert probed.exit_code == 0 and len(probed.sites) == 2
    finally:
        CALL_RECORDERS.remove(record)
    called = {action for op in calls for action in OPERATION_ACTIONS[op]}
    assert called & UNREACHED == set(), "now recorded: drop it from UNREACHED"
    assert granted(release_policy()) - BUILD_ACTIONS == called | UNREACHED
    assert ("s3", "ListObjectsV2") in calls  # authorised as s3:ListBucket
    # What `iam-policy --for pipeline` derives from the code is what was called.
    assert calls <= ROLE_OPERATIONS["pipeline"]
    assert actions_for("pipeline") == called | UNREACHED


# Where the stack grants more than `iam-policy --for pipeline` prints: the CLI names the
# settings' family and service (or each cell's by name, with the cells setting); the stack
# covers the cells to come (<main stack>-cell-*), as the main stack's operator policy does.
ECS = "arn:aws:ecs:eu-west-1:111122223333"
CELLS_TO_COME: dict[str, set[str]] = {
    "RunMigrationTasks": {f"{ECS}:task-definition/{MAIN}-cell-*:*"},
    "TagMigrationTasks": {f"{ECS}:task-definition/{MAIN}-cell-*:*"},
    "DeployService": {f"{ECS}:service/redmica-cluster/{MAIN}-cell-*"},
    "FollowServiceDeployments": {f"{ECS}:service-deployment/redmica-cluster/{MAIN}-cell-*/*"},
    "RecordDeployedImage": {
        f"arn:aws:ssm:eu-west-1:111122223333:parameter/redmica/{MAIN}-cell-*/image"
    },
}


def test_the_release_role_is_what_iam_policy_prints_for_the_pipeline() -> None:
    """Statement by statement, actions, resources and conditions, with the main stack's
    exports as the settings (the pattern of tests/test_stacks.py for the other principals)."""
    from tests.test_stacks import normalised

    scope = scope_for(
        "pipeline",
        region="eu-west-1",
        account="111122223333",
        bucket=IMPORTS[f"{MAIN}-ConfigBucket"],
        prefix="tenants/",
        runs_prefix="runs/",
        kms_key_id=PSEUDO["ConfigKeyArn"],
        cluster=IMPORTS[f"{MAIN}-Cluster"],
        service=f"{MAIN}-app",
        task_definition=f"{MAIN}-app",
        pass_roles=(IMPORTS[f"{MAIN}-AppTaskRole"], IMPORTS[f"{MAIN}-TaskExecutionRole"]),
    )
    printed = normalised(policy_document("pipeline", scope))
    stack = normalised(release_policy("release"))
    assert set(stack) == set(printed), set(stack) ^ set(printed)
    for sid, (effect, actions, resources, condition) in stack.items():
        assert (effect, actions, condition) == printed[sid][:2] + printed[sid][3:], sid
        assert set(resources) - CELLS_TO_COME.get(sid, set()) == set(printed[sid][2]), sid


@pytest.mark.parametrize(
    ("action", "resource", "context", "allowed"),
    [
        ("s3:GetObject", "arn:aws:s3:::acme-config/tenants/acme.yaml", {}, True),
        ("s3:PutObject", "arn:aws:s3:::acme-config/tenants/acme.yaml", {}, False),
        ("s3:DeleteObject", "arn:aws:s3:::acme-config/tenants/acme.yaml", {}, False),
        (
            "s3:PutObject",
            "arn:aws:s3:::acme-config/runs/probes/20261203T040000Z-ab12cd.json",
            {},
            True,
        ),
        ("s3:PutObject", "arn:aws:s3:::acme-config/backups/acme/x.dump", {}, False),
        ("s3:ListBucket", "arn:aws:s3:::acme-config", {"s3:prefix": "tenants/"}, True),
        ("s3:ListBucket", "arn:aws:s3:::acme-config", {"s3:prefix": "backups/"}, False),
        (
            "ecs:RunTask",
            "arn:aws:ecs:eu-west-1:111122223333:task-definition/redmica-app:7",
            {"ecs:cluster": "arn:aws:ecs:eu-west-1:111122223333:cluster/redmica-cluster"},
            True,
        ),
        (
            "ecs:RunTask",
            "arn:aws:ecs:eu-west-1:111122223333:task-definition/redmica-admin:1",
            {"ecs:cluster": "arn:aws:ecs:eu-west-1:111122223333:cluster/redmica-cluster"},
            False,
        ),
        (
            "ecs:UpdateService",
            "arn:aws:ecs:eu-west-1:111122223333:service/redmica-cluster/redmica-cell-b",
            {},
            True,
        ),
        (
            "ecs:UpdateService",
            "arn:aws:ecs:eu-west-1:111122223333:service/redmica-cluster/other-service",
            {},
            False,
        ),
        (
            "iam:PassRole",
            "arn:aws:iam::111122223333:role/redmica-app-task",
            {"iam:PassedToService": "ecs-tasks.amazonaws.com"},
            True,
        ),
        (
            "iam:PassRole",
            "arn:aws:iam::111122223333:role/redmica-admin-task",
            {"iam:PassedToService": "ecs-tasks.amazonaws.com"},
            False,
        ),
        ("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:eu-west-1:1:secret:x", {}, False),
        ("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z1", {}, False),
        (
            "lambda:InvokeFunction",
            "arn:aws:lambda:eu-west-1:1:function:redmica-admin-broker",
            {},
            False,
        ),
    ],
)
def test_the_release_role_is_scoped_to_the_foundation(
    action: str, resource: str, context: dict[str, str], allowed: bool
) -> None:
    assert iam_eval.allowed(release_policy(), action, resource, context) is allowed


def test_the_image_role_pushes_only_to_its_repository() -> None:
    names = {"ImageRepositoryUri": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/redmica"}
    statements = RESOURCES["ImageBuildRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy = {"Statement": resolve(statements["Statement"], names)}
    repo = "arn:aws:ecr:eu-west-1:111122223333:repository/"
    assert iam_eval.allowed(policy, "ecr:PutImage", f"{repo}redmica")
    assert not iam_eval.allowed(policy, "ecr:PutImage", f"{repo}other")
    assert not iam_eval.allowed(policy, "ecr:DeleteRepository", f"{repo}redmica")
    assert not iam_eval.allowed(policy, "ecs:UpdateService", "*")

"""The CloudFormation stack: cfn-lint clean, and in step with what the CLI expects."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from redmica_ops.cli.main import cli
from redmica_ops.policy import actions_for
from redmica_ops.settings import SPECS_BY_NAME, Settings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((ROOT / "templates" / "cloudformation").glob("*.yaml"))


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506
    return data


STACK = load(ROOT / "templates" / "cloudformation" / "redmica.yaml")
RESOURCES = STACK["Resources"]


def test_cfn_lint_is_clean() -> None:
    assert TEMPLATES
    linter = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(linter), *map(str, TEMPLATES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def containers(resource: str) -> dict[str, dict[str, Any]]:
    return {c["Name"]: c for c in RESOURCES[resource]["Properties"]["ContainerDefinitions"]}


def when_set(items: list[Any]) -> list[dict[str, Any]]:
    """A list's items with every `!If [COND, item, !Ref AWS::NoValue]` taken as present."""
    return [item["If"][1] if "If" in item else item for item in items]


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in when_set(container.get("Environment", []))}


def test_container_name_matches_everywhere() -> None:
    name = STACK["Outputs"]["ContainerName"]["Value"]
    assert name in containers("AppTaskDefinition")
    service = RESOURCES["Service"]["Properties"]
    assert service["LoadBalancers"][0]["ContainerName"] == name
    assert env(containers("MigratorTaskDefinition")["migrator"])["REDMICA_CONTAINER"] == name


def test_environment_names_are_redmica_settings() -> None:
    for resource in (
        "AppTaskDefinition",
        "MigratorTaskDefinition",
        "CollectorTaskDefinition",
        "AdminTaskDefinition",
    ):
        for container in containers(resource).values():
            for variable in env(container):
                assert variable.startswith("REDMICA_"), variable
                assert variable.removeprefix("REDMICA_").lower() in SPECS_BY_NAME, variable
    secrets = containers("AppTaskDefinition")["app"]["Secrets"]
    assert [s["Name"] for s in secrets] == ["SECRET_KEY_BASE"]


def test_prefixes_match_the_defaults() -> None:
    defaults = Settings()
    app_env = env(containers("AppTaskDefinition")["app"])
    assert app_env["REDMICA_PREFIX"] == defaults.prefix == "tenants/"
    text = (ROOT / "templates" / "cloudformation" / "redmica.yaml").read_text()
    assert f"/{defaults.prefix}*" in text and f"/{defaults.runs_prefix}*" in text
    rules = RESOURCES["ConfigBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {r["Prefix"] for r in rules} == {
        defaults.prefix,
        defaults.runs_prefix,
        f"{defaults.lifecycle_prefix}requests/",
    }


def test_the_scheduled_job_is_a_valid_redmica_command() -> None:
    migrator = containers("MigratorTaskDefinition")["migrator"]
    assert migrator["EntryPoint"] == ["redmica"]
    name, *args = migrator["Command"]
    command = cli.get_command(click.Context(cli), name)  # loads the lazy command
    assert command is not None
    # Same help options as under `redmica`: click caches a command's help option.
    context = command.make_context(name, list(args), **cli.context_settings)
    assert context.params["all_tenants"] and context.params["no_wait"]


def test_the_scheduled_collector_is_a_valid_redmica_command() -> None:
    collector = containers("CollectorTaskDefinition")["collector"]
    name, *args = collector["Command"]
    group = cli.get_command(click.Context(cli), name)
    assert isinstance(group, click.Group)
    sub, *rest = args
    command = group.commands[sub]
    context = command.make_context(sub, list(rest), **cli.context_settings)
    assert context.params["run_id"] is None, "every recent run that is not complete"
    schedule = RESOURCES["CollectRuns"]["Properties"]["Target"]["EcsParameters"]
    assert schedule["TaskDefinitionArn"] == {"Ref": "CollectorTaskDefinition"}


def test_app_image_entrypoint_is_the_one_migrations_expect() -> None:
    dockerfile = (ROOT / "Dockerfile.redmine").read_text()
    assert 'ENTRYPOINT ["redmica", "entrypoint"]' in dockerfile
    assert "EntryPoint" not in containers("AppTaskDefinition")["app"]


def statements(resource: str, policy: str | None = None) -> list[dict[str, Any]]:
    props = RESOURCES[resource]["Properties"]
    if "PolicyDocument" in props:
        return when_set(props["PolicyDocument"]["Statement"])
    return [
        s
        for p in props["Policies"]
        if policy in (None, p["PolicyName"])
        for s in when_set(p["PolicyDocument"]["Statement"])
    ]


def allowed(stmts: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in stmts:
        if statement["Effect"] != "Allow":
            continue
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found - {"kms:Decrypt", "kms:GenerateDataKey"}


# Each principal: its `iam-policy --for` role, the stack's resource, the policy compared (the
# stack adds policies of its own, e.g. the attachments bucket, the broker's log streams).
PRINCIPALS = [
    ("operator", "OperatorPolicy", None),
    ("migrator", "MigratorTaskRole", "migrate"),
    ("container", "AppTaskRole", "read-tenants"),
    ("admin_task", "AdminTaskRole", "admin-task"),
    ("admin_broker", "AdminBrokerRole", "admin-broker"),
]


@pytest.mark.parametrize(("role", "resource", "policy"), PRINCIPALS)
def test_stack_policies_grant_what_the_code_calls(
    role: str, resource: str, policy: str | None
) -> None:
    """The same actions as `redmica iam-policy --for ROLE` (which tests derive from code);
    tests/test_stacks.py compares the resources too."""
    expected = actions_for(role)
    assert allowed(statements(resource, policy)) == expected


def test_bucket_is_private_versioned_and_encrypted() -> None:
    bucket = RESOURCES["ConfigBucket"]["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    default = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert default["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    policy = {s["Sid"]: s for s in statements("ConfigBucketPolicy")}
    deny = policy["TlsOnly"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_bucket_policy_denies_unconditional_tenant_writes_and_other_keys() -> None:
    policy = {s["Sid"]: s for s in statements("ConfigBucketPolicy")}
    tenants = {"Sub": "${ConfigBucket.Arn}/tenants/*"}
    puts = policy["ConditionalTenantWrites"]
    assert (puts["Effect"], puts["Action"], puts["Resource"]) == ("Deny", "s3:PutObject", tenants)
    # Null on both keys, in one block (ANDed): denied only when neither header is sent.
    assert puts["Condition"] == {"Null": {"s3:if-none-match": "true", "s3:if-match": "true"}}
    deletes = policy["ConditionalTenantDeletes"]
    assert (deletes["Action"], deletes["Resource"]) == ("s3:DeleteObject", tenants)
    assert deletes["Condition"] == {"Null": {"s3:if-match": "true"}}
    key = policy["TenantWritesUseTheStackKey"]
    assert key["Condition"]["StringNotEquals"] == {
        "s3:x-amz-server-side-encryption-aws-kms-key-id": {"GetAtt": "ConfigKey.Arn"}
    }


def test_service_has_the_circuit_breaker_with_rollback() -> None:
    config = RESOURCES["Service"]["Properties"]["DeploymentConfiguration"]
    assert config["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}


CELL = load(ROOT / "templates" / "cloudformation" / "redmica-cell.yaml")


def test_a_cell_stack_is_a_cell_the_parent_can_operate() -> None:
    resources = CELL["Resources"]
    app = next(
        c
        for c in resources["TaskDefinition"]["Properties"]["ContainerDefinitions"]
        if c["Name"] == "app"
    )
    variables = env(app)
    # The same app container as the parent's, but for the cell's own name and log streams.
    parent = containers("AppTaskDefinition")["app"]
    for key in ("PortMappings", "HealthCheck", "DependsOn", "Essential"):
        assert app[key] == parent[key], key
    # The same master SECRET_KEY_BASE, through the parent's export of its parameter.
    assert [s["Name"] for s in app["Secrets"]] == [s["Name"] for s in parent["Secrets"]]
    assert app["Secrets"][0]["ValueFrom"] == {
        "Fn::ImportValue": {"Sub": "${ParentStack}-SecretKeyBase"}
    }
    assert STACK["Outputs"]["CellSecretKeyBase"]["Value"] == parent["Secrets"][0]["ValueFrom"]
    assert set(variables) == set(env(parent))
    for variable in variables:
        assert variable.removeprefix("REDMICA_").lower() in SPECS_BY_NAME, variable
    assert variables["REDMICA_CELL"] == {"Ref": "CellName"}
    assert variables["REDMICA_CELLS"] == {"Ref": "Cells"}
    service = resources["Service"]["Properties"]
    assert service["ServiceName"] == {"Sub": "${ParentStack}-cell-${CellName}"}
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }
    family = resources["TaskDefinition"]["Properties"]["Family"]
    assert family == {"Sub": "${ParentStack}-cell-${CellName}"}
    # The parent's operator policy covers the cells' services and task definition families.
    by_sid = {s["Sid"]: s for s in statements("OperatorPolicy")}
    deploy = [r for r in by_sid["DeployService"]["Resource"] if "Sub" in r]
    assert any("${AWS::StackName}-cell-*" in r["Sub"] for r in deploy)
    run_task = [r["Sub"] for r in by_sid["RunMigrationTasks"]["Resource"]]
    assert any("task-definition/${AWS::StackName}-cell-*:*" in r for r in run_task)
    # What the cell imports, the parent exports.
    exported = {
        o["Export"]["Name"]["Sub"].removeprefix("${AWS::StackName}-")
        for o in STACK["Outputs"].values()
        if "Export" in o
    }
    text = (ROOT / "templates" / "cloudformation" / "redmica-cell.yaml").read_text()
    imported = set(re.findall(r"\$\{ParentStack\}-([A-Za-z]+)", text)) - {"cell"}
    assert imported == exported


def test_the_cells_parameter_is_a_valid_cells_setting() -> None:
    from redmica_ops.cells.syntax import parse_cell_entry

    pattern = STACK["Parameters"]["Cells"]["AllowedPattern"]
    example = "main=redmica-app,b=redmica-cell-b,c=redmica-cell-c"
    assert re.fullmatch(pattern, example) and re.fullmatch(pattern, "")
    assert all(parse_cell_entry(item)[0] for item in example.split(","))


@pytest.mark.parametrize(
    ("resource", "policy"), [("AppTaskRole", "read-tenants"), ("OperatorPolicy", None)]
)
def test_tenant_password_secrets_are_read_under_the_prefix_only(
    resource: str, policy: str | None
) -> None:
    assert STACK["Parameters"]["TenantSecretsPrefix"]["Default"] == (
        Settings().tenant_secrets_prefix
    )
    reading = [
        s
        for s in statements(resource, policy)
        if s["Effect"] == "Allow"
        and any(
            a.startswith(("secretsmanager:", "ssm:GetParameter"))
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        )
    ]
    assert [s["Sid"] for s in reading] == ["ReadTenantPasswordSecrets"]
    resources = [str(r["Sub"]) for r in reading[0]["Resource"]]
    assert len(resources) == 2
    assert all(r.endswith("${TenantSecretsPrefix}*") for r in resources), resources
    assert ":secret:${TenantSecretsPrefix}*" in resources[0]
    assert ":parameter/${TenantSecretsPrefix}*" in resources[1]


def test_admin_requests_expire_and_the_operator_invokes_only_the_broker() -> None:
    """Issue 23: a request left behind (it may hold a password hash) expires with every
    version; the operator may invoke the admin broker and pass the app's roles only."""
    rules = {
        r["Id"]: r
        for r in RESOURCES["ConfigBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    requests = rules["expire-admin-requests"]
    assert requests["Prefix"] == f"{Settings().lifecycle_prefix}requests/"
    assert requests["ExpirationInDays"] == 1
    assert requests["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    by_sid = {s["Sid"]: s for s in statements("OperatorPolicy")}
    assert by_sid["InvokeAdminBroker"]["Action"] == "lambda:InvokeFunction"
    assert by_sid["InvokeAdminBroker"]["Resource"]["Sub"].endswith(
        ":function:${AWS::StackName}-admin-broker"
    )
    passed = by_sid["PassTaskRoles"]["Resource"]
    assert passed == [{"GetAtt": "AppTaskRole.Arn"}, {"GetAtt": "TaskExecutionRole.Arn"}]

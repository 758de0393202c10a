"""The platform from an empty account: the four stacks of docs/infrastructure.md created on
moto's CloudFormation in the documented order (foundation, database, main, cell), each from
the outputs of the ones before; then what each stack must hold for the CLI, checked on what
moto made and, where moto cannot make it (src/redmica_ops/moto_stacks.py names every gap), on
the template itself.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from redmica_ops import moto_stacks
from redmica_ops.deploy.image import image_parameter
from redmica_ops.moto_stacks import (
    GAPS,
    LOG_ROUTER_DIGEST,
    TEMPLATE_FILES,
    Operator,
    Platform,
    stand_ins,
)
from redmica_ops.policy import policy_document, scope_for
from redmica_ops.settings import SPECS_BY_NAME, Settings
from redmica_ops.settings.from_stack import SETTING_OUTPUTS
from tests.conftest import Invoke
from tests.test_cloudformation import PRINCIPALS, load, when_set

# moto warns for each resource type it skips; GAPS names them.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates" / "cloudformation"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's
DOMAIN = "redmine.example.com"
MAIN = "redmica"
FOUNDATION, DATABASE, CELL = f"{MAIN}-foundation", f"{MAIN}-database", f"{MAIN}-cell-b"
CELLS = f"main={MAIN}-app,b={CELL}"
DIGEST = LOG_ROUTER_DIGEST
OPERATOR = Operator(main=MAIN, domain=DOMAIN, cells=("main", "b"))
assert OPERATOR.cells_parameter == CELLS

# Stack -> template. Outputs are named like the parameters they feed; what no output feeds is
# given by the operator (docs/infrastructure.md: moto_stacks.Operator.given).
TEMPLATE = {stack: TEMPLATE_FILES[kind] for stack, kind in OPERATOR.stacks().items()}


def stand_up(*, join_cells: bool = False) -> Platform:
    """docs/infrastructure.md's steps, in order, on moto (inside mock_aws and stand_ins);
    the main stack's update with Cells is left to the test that checks it."""
    return moto_stacks.stand_up(
        boto3.client("cloudformation", region_name=REGION),
        boto3.client("ssm", region_name=REGION),
        boto3.client("s3", region_name=REGION),
        OPERATOR,
        join_cells=join_cells,
    )


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with mock_aws(), stand_ins():
        yield stand_up()


def test_the_platform_stands_up_from_an_empty_account(platform: Platform) -> None:
    # Every parameter without a default came from an earlier stack's output or from `given`.
    for stack, name in TEMPLATE.items():
        declared = load(TEMPLATES / name)["Parameters"]
        required = {p for p, spec in declared.items() if "Default" not in spec}
        assert required <= set(platform.parameters[stack]), (stack, required)
    foundation = platform.outputs[FOUNDATION]
    assert platform.parameters[MAIN]["PublicSubnetCidrs"] == "10.40.0.0/24,10.40.1.0/24"
    assert len(foundation["PrivateSubnetIds"].split(",")) == 2
    # The subnets of each kind lie in two AZs.
    ec2 = boto3.client("ec2", region_name=REGION)
    for kind in ("PublicSubnetIds", "PrivateSubnetIds"):
        subnets = ec2.describe_subnets(SubnetIds=foundation[kind].split(","))["Subnets"]
        assert len({s["AvailabilityZone"] for s in subnets}) == 2, kind
    # What `redmica config from-stack` reads (docs/infrastructure.md) is there.
    main = platform.outputs[MAIN]
    for output in CONFIG_OUTPUTS:
        assert main.get(output), output
    ecs = boto3.client("ecs", region_name=REGION)
    services = ecs.describe_services(
        cluster=main["ClusterName"], services=[main["ServiceName"], f"{CELL}"]
    )["services"]
    assert [s["serviceName"] for s in services] == [f"{MAIN}-app", CELL]
    # No output is dead: each feeds a later stack's parameter or a setting.
    fed = {p for stack in TEMPLATE for p in platform.parameters[stack]}
    for stack in (FOUNDATION, DATABASE):
        unused = set(platform.outputs[stack]) - fed - {"ImageRepositoryUri", "DatabaseKeyArn"}
        unused -= {"LogRouterRepositoryUri", "ArtifactsBucketName"}  # in LogRouterImage, Broker*
        assert not unused, (stack, unused)


# The main stack's outputs that name a setting (their descriptions say which): what
# `redmica config from-stack` turns into redmica.toml (its table, checked against the template).
CONFIG_OUTPUTS = SETTING_OUTPUTS


def test_every_setting_output_names_its_setting() -> None:
    outputs = load(TEMPLATES / "redmica.yaml")["Outputs"]
    for output, setting in CONFIG_OUTPUTS.items():
        assert setting in SPECS_BY_NAME, setting
        assert outputs[output]["Description"].startswith(f"{setting} ("), output
    described = {
        name
        for name, o in outputs.items()
        if re.match(r"[a-z_]+ \(REDMICA_", o.get("Description", ""))
    }
    assert described == set(CONFIG_OUTPUTS)


def test_every_moto_gap_names_a_check_that_exists() -> None:
    for gap in GAPS:
        checked = re.match(r"(tests/[a-z_]+\.py)::([a-z_]+)", gap.checked_by)
        if checked is None:
            continue  # a gap avoided by how the templates are written, said in checked_by
        path, test = checked.groups()
        assert f"def {test}(" in (ROOT / path).read_text(), gap.checked_by


def resources(template: str) -> dict[str, Any]:
    found: dict[str, Any] = load(TEMPLATES / template)["Resources"]
    return found


def test_the_database_cluster_is_what_the_lifecycle_needs(platform: Platform) -> None:
    database = resources("redmica-database.yaml")
    cluster = database["Cluster"]["Properties"]
    assert cluster["Engine"] == "aurora-postgresql"
    assert cluster["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in cluster
    assert cluster["StorageEncrypted"] is True
    assert cluster["DeletionProtection"] == {"Ref": "DeletionProtection"}
    assert database["Cluster"]["DeletionPolicy"] == "Snapshot"
    assert cluster["DBClusterParameterGroupName"] == {"Ref": "ClusterParameters"}
    parameters = database["ClusterParameters"]["Properties"]["Parameters"]
    assert parameters["rds.force_ssl"] == "1"
    assert parameters["password_encryption"] == "scram-sha-256"
    # pg_dump in the image (PostgreSQL 17) refuses a newer server.
    version = load(TEMPLATES / "redmica-database.yaml")["Parameters"]["EngineVersion"]
    assert not re.fullmatch(version["AllowedPattern"], "18")
    assert re.fullmatch(version["AllowedPattern"], version["Default"])
    for instance in ("WriterInstance", "ReaderInstance"):
        props = database[instance]["Properties"]
        assert props["DBClusterIdentifier"] == {"Ref": "Cluster"}
        assert props["PubliclyAccessible"] is False
    # 5432 only from the client group, which the tasks carry.
    ingress = database["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [(r["FromPort"], r["SourceSecurityGroupId"]) for r in ingress] == [
        (5432, {"Ref": "DatabaseClientSecurityGroup"})
    ]
    main = resources("redmica.yaml")
    client = {"Ref": "DatabaseClientSecurityGroupId"}
    assert (
        client
        in main["Service"]["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"][
            "SecurityGroups"
        ]
    )
    # On moto (through the stand-in): the cluster the outputs name, its RDS-managed secret.
    outputs = platform.outputs[DATABASE]
    rds = boto3.client("rds", region_name=REGION)
    (found,) = rds.describe_db_clusters()["DBClusters"]
    assert found["Endpoint"] == outputs["DatabaseHost"]
    assert found["MasterUserSecret"]["SecretArn"] == outputs["DatabaseMasterSecretArn"]
    assert found["DeletionProtection"] and found["StorageEncrypted"]
    secret = boto3.client("secretsmanager", region_name=REGION).get_secret_value(
        SecretId=outputs["DatabaseMasterSecretArn"]
    )
    assert set(json.loads(secret["SecretString"])) >= {"username", "password"}


def test_the_master_secret_key_base_is_generated_by_cloudformation(platform: Platform) -> None:
    secret = resources("redmica-foundation.yaml")["SecretKeyBase"]["Properties"]
    assert "SecretString" not in secret
    assert secret["GenerateSecretString"]["PasswordLength"] >= 128
    arn = platform.outputs[FOUNDATION]["SecretKeyBaseArn"]
    value = boto3.client("secretsmanager", region_name=REGION).get_secret_value(SecretId=arn)
    assert re.fullmatch(r"[A-Za-z0-9]{128}", value["SecretString"])
    # Every app container (main and cells) takes it through `secrets`, never the environment.
    app = containers(MAIN, f"{MAIN}-app", "app")
    assert app["secrets"] == [{"name": "SECRET_KEY_BASE", "valueFrom": arn}]
    cell = containers(CELL, CELL, "app")
    assert cell["secrets"] == app["secrets"]


def test_the_certificate_is_a_dns_validated_wildcard(platform: Platform) -> None:
    certificate = resources("redmica-foundation.yaml")["Certificate"]["Properties"]
    assert certificate["ValidationMethod"] == "DNS"
    assert certificate["DomainName"] == {"Sub": "*.${Domain}"}
    (option,) = certificate["DomainValidationOptions"]
    assert option["HostedZoneId"] == {
        "If": ["CreateZone", {"Ref": "HostedZone"}, {"Ref": "HostedZoneId"}]
    }
    arn = platform.outputs[FOUNDATION]["CertificateArn"]
    acm = boto3.client("acm", region_name=REGION)
    assert acm.describe_certificate(CertificateArn=arn)["Certificate"]["DomainName"] == (
        f"*.{DOMAIN}"
    )
    # Both load balancers serve it; *.<Domain> points at the main one.
    for stack in (MAIN, CELL):
        assert platform.parameters[stack]["CertificateArn"] == arn
    zone = platform.outputs[FOUNDATION]["HostedZoneId"]
    records = boto3.client("route53").list_resource_record_sets(HostedZoneId=zone)
    # Route 53 answers the wildcard as \052, moto as *.
    wildcard = {f"\\052.{DOMAIN}.", f"*.{DOMAIN}."}
    alias = [r for r in records["ResourceRecordSets"] if r["Name"] in wildcard]
    assert [r["Type"] for r in alias] == ["A"]


def test_every_bucket_is_tls_only_and_the_log_bucket_takes_deliveries() -> None:
    for template in TEMPLATE.values():
        found = resources(template)
        buckets = {n for n, r in found.items() if r["Type"] == "AWS::S3::Bucket"}
        policies = {
            r["Properties"]["Bucket"]["Ref"]: when_set(
                r["Properties"]["PolicyDocument"]["Statement"]
            )
            for r in found.values()
            if r["Type"] == "AWS::S3::BucketPolicy"
        }
        assert set(policies) == buckets, template
        for bucket, statements in policies.items():
            tls = next(s for s in statements if s.get("Sid") == "TlsOnly")
            assert tls["Effect"] == "Deny" and tls["Principal"] == "*", bucket
            assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            props = found[bucket]["Properties"]
            assert props["VersioningConfiguration"]["Status"] == "Enabled", bucket
            assert all(props["PublicAccessBlockConfiguration"].values()), bucket
            assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], bucket
    foundation = resources("redmica-foundation.yaml")
    delivery = {
        s["Sid"]: s
        for s in when_set(
            foundation["AccessLogBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        )
    }
    # The prefixes the stacks log under are the ones the policy lets each service write.
    assert delivery["S3ServerAccessLogs"]["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["S3ServerAccessLogs"]["Resource"] == {"Sub": "${AccessLogBucket.Arn}/s3/*"}
    main = resources("redmica.yaml")
    logging = main["ConfigBucket"]["Properties"]["LoggingConfiguration"]["LogFilePrefix"]
    assert logging["Sub"].startswith("s3/")
    alb = "${AccessLogBucket.Arn}/alb/*/AWSLogs/${AWS::AccountId}/*"
    assert delivery["LoadBalancerLogs"]["Resource"] == {"Sub": alb}
    for template, resource in (
        ("redmica.yaml", "LoadBalancer"),
        ("redmica-cell.yaml", "LoadBalancer"),
    ):
        attributes = {
            a["Key"]: a["Value"]
            for a in resources(template)[resource]["Properties"]["LoadBalancerAttributes"]
        }
        assert attributes["access_logs.s3.enabled"] == "true", template
        assert attributes["access_logs.s3.prefix"]["Sub"].startswith("alb/"), template


def containers(stack: str, family: str, name: str) -> dict[str, Any]:
    """A container of the newest revision of `family` (of stack `stack`, for the message)."""
    ecs = boto3.client("ecs", region_name=REGION)
    definition = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    by_name = {c["name"]: c for c in definition["containerDefinitions"]}
    assert name in by_name, (stack, family, list(by_name))
    found: dict[str, Any] = dict(by_name[name])
    return found


def test_the_admin_task_definition_carries_its_role_and_environment(platform: Platform) -> None:
    main = resources("redmica.yaml")
    admin = main["AdminTaskDefinition"]["Properties"]
    # The role is the definition's own (the broker passes no override), the app's is not.
    assert admin["TaskRoleArn"] == {"GetAtt": "AdminTaskRole.Arn"}
    assert admin["Family"] == {"Sub": "${AWS::StackName}-admin"}
    (container,) = admin["ContainerDefinitions"]
    assert "Secrets" not in container, "lifecycle steps derive no tenant key"
    broker = main["AdminBroker"]["Properties"]["Environment"]["Variables"]
    assert container["Name"] == broker["REDMICA_CONTAINER"]
    assert broker["REDMICA_ADMIN_TASK_DEFINITION"] == admin["Family"]
    for variable in broker:
        assert variable.removeprefix("REDMICA_").lower() in SPECS_BY_NAME, variable
    # The CA bundle is where the image puts it (Dockerfile.redmine).
    dockerfile = (ROOT / "Dockerfile.redmine").read_text()
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert environment["REDMICA_DB_SSL_ROOT_CERT"] in dockerfile
    # On moto: the values, from the database stack's outputs.
    database = platform.outputs[DATABASE]
    found = containers(MAIN, f"{MAIN}-admin", "app")
    values = {e["name"]: e["value"] for e in found["environment"]}
    assert values["REDMICA_DB_HOST"] == database["DatabaseHost"]
    assert values["REDMICA_DB_MASTER_SECRET"] == database["DatabaseMasterSecretArn"]
    assert values["REDMICA_DB_SSL_ROOT_CERT"] == "/usr/local/share/rds/global-bundle.pem"
    assert values["REDMICA_LIFECYCLE_PREFIX"] == Settings().lifecycle_prefix
    assert values["REDMICA_BACKUPS_PREFIX"] == Settings().backups_prefix
    assert values["REDMICA_BUCKET"] == platform.outputs[MAIN]["ConfigBucketName"]
    # Every task that connects to a database carries the client security group.
    security_groups = platform.outputs[MAIN]["TaskSecurityGroups"].split(",")
    assert database["DatabaseClientSecurityGroupId"] in security_groups


def test_the_log_router_is_pinned_by_digest_from_our_registry(platform: Platform) -> None:
    for template in TEMPLATE.values():
        lines = (TEMPLATES / template).read_text().splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        assert "public.ecr.aws" not in text and ":stable" not in text, template
    for stack in (MAIN, CELL):
        family = f"{MAIN}-app" if stack == MAIN else CELL
        image = containers(stack, family, "log_router")["image"]
        assert image.startswith(platform.outputs[FOUNDATION]["LogRouterRepositoryUri"] + "@")
        assert image.endswith(DIGEST)


# -- parameters the templates refuse (moto checks no constraint: see GAPS) --------------------


def refused(template: str, parameters: dict[str, str]) -> list[str]:
    """The parameters CloudFormation would refuse: AllowedPattern, AllowedValues, MinValue,
    MaxValue of the template (moto checks none of them)."""
    declared = load(TEMPLATES / template)["Parameters"]
    problems = []
    for name, value in parameters.items():
        spec = declared[name]
        pattern = spec.get("AllowedPattern")
        number = spec.get("Type") == "Number"
        if (
            (pattern is not None and not re.fullmatch(pattern, value))
            or ("AllowedValues" in spec and value not in map(str, spec["AllowedValues"]))
            or (number and "MinValue" in spec and float(value) < float(spec["MinValue"]))
            or (number and "MaxValue" in spec and float(value) > float(spec["MaxValue"]))
        ):
            problems.append(name)
    return problems


def test_a_wrong_parameter_is_refused_by_the_template(platform: Platform) -> None:
    for stack, parameters in platform.parameters.items():
        # moto's zone ids do not start with Z as Route 53's do (GAPS).
        real = {k: v for k, v in parameters.items() if k != "HostedZoneId"}
        assert refused(TEMPLATE[stack], real) == [], stack
    main = {**platform.parameters[MAIN], "HostedZoneId": "Z0123456789ABCDEFGHIJ"}
    wrong = {
        # A mutable tag from a public registry, not a digest of ours.
        "LogRouterImage": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
        "CertificateArn": "arn:aws:iam::123456789012:server-certificate/x",
        "DatabaseMasterSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
        "BrokerCodeKey": "admin-broker/latest",
        "Cells": "main",
    }
    for name, value in wrong.items():
        assert refused("redmica.yaml", {**main, name: value}) == [name], name
    assert refused("redmica-database.yaml", {"EngineVersion": "18"}) == ["EngineVersion"]
    assert refused("redmica-foundation.yaml", {"Domain": "Redmine.Example.com"}) == ["Domain"]
    assert refused("redmica-foundation.yaml", {"HostedZoneId": "example.com"}) == ["HostedZoneId"]


# -- the image belongs to redmica deploy/release, not to the stack ---------------------------


def test_a_stack_update_keeps_the_image_the_service_runs(
    platform: Platform, run: Invoke, moto_rollouts: None
) -> None:
    """On the shared platform (moto's state is one per process): it changes the main stack's
    Cells and app revision, which no other test here depends on."""
    for template in ("redmica.yaml", "redmica-cell.yaml"):
        declared = load(TEMPLATES / template)["Parameters"]
        assert declared["ImageParameter"]["Type"] == "AWS::SSM::Parameter::Value<String>"
        assert "ImageUri" not in declared
    if True:
        outputs = platform.outputs[MAIN]
        ecs = boto3.client("ecs", region_name=REGION)
        ssm = boto3.client("ssm", region_name=REGION)
        first = containers(MAIN, f"{MAIN}-app", "app")["image"]
        # `redmica deploy` with the settings from the stack: a revision with the new image,
        # the service on it, then the record of the image it runs.
        released = first.replace(":1.0.0", ":1.1.0")
        settings = run("config", "from-stack", MAIN, "--write", "redmica.toml", bucket=None)
        assert settings.exit_code == 0, settings.output
        deployed = run("deploy", "--image", released, "--yes", bucket=None)
        assert deployed.exit_code == 0, deployed.output
        recorded = ssm.get_parameter(Name=image_parameter(f"{MAIN}-app"))["Parameter"]
        assert recorded["Value"] == released
        # A stack update for something else (here: cells) registers a new app revision.
        cf: Any = boto3.client("cloudformation", region_name=REGION)
        cf.update_stack(
            StackName=MAIN,
            TemplateBody=(TEMPLATES / "redmica.yaml").read_text(),
            Parameters=[
                {"ParameterKey": k, "UsePreviousValue": True}
                for k in platform.parameters[MAIN]
                if k != "Cells"
            ]
            + [{"ParameterKey": "Cells", "ParameterValue": CELLS}],
            Capabilities=["CAPABILITY_IAM"],
        )
        assert cf.describe_stacks(StackName=MAIN)["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
        newest = ecs.describe_task_definition(taskDefinition=f"{MAIN}-app")["taskDefinition"]
        assert newest["revision"] > 2, "the update registered a revision"
        app = {c["name"]: c for c in newest["containerDefinitions"]}["app"]
        assert app["image"] == released
        assert {"name": "REDMICA_CELL", "value": "main"} in app["environment"]
        service = ecs.describe_services(
            cluster=outputs["ClusterName"], services=[outputs["ServiceName"]]
        )["services"][0]
        running = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
        images = {c["name"]: c["image"] for c in running["taskDefinition"]["containerDefinitions"]}
        assert images["app"] == released


# -- IAM: each principal of the stack is `redmica iam-policy --for ROLE` ----------------------


def stack_policy(platform: Platform, resource: str, policy: str | None) -> dict[str, Any]:
    """A policy as moto's IAM holds it after CloudFormation made it (all values resolved)."""
    cf = boto3.client("cloudformation", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    # (moto's DescribeStackResource fails on these: ListStackResources does not.)
    physical = next(
        r["PhysicalResourceId"]
        for r in cf.list_stack_resources(StackName=MAIN)["StackResourceSummaries"]
        if r["LogicalResourceId"] == resource
    )
    if policy is None:
        version = iam.get_policy(PolicyArn=physical)["Policy"]["DefaultVersionId"]
        document: Any = iam.get_policy_version(PolicyArn=physical, VersionId=version)[
            "PolicyVersion"
        ]["Document"]
    else:
        document = iam.get_role_policy(RoleName=physical, PolicyName=policy)["PolicyDocument"]
    if isinstance(document, str):
        # moto keeps a role's inline policy from CloudFormation as Python's repr of the dict.
        document = ast.literal_eval(document)
    found: dict[str, Any] = document
    return found


def as_list(value: Any) -> list[Any]:
    return sorted(value) if isinstance(value, list) else [value]


def normalised(document: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Sid -> (effect, actions, resources, condition), lists sorted, scalars as lists."""
    found = {}
    for s in document["Statement"]:
        condition = {
            op: {key: as_list(v) for key, v in keys.items()}
            for op, keys in s.get("Condition", {}).items()
        }
        found[s["Sid"]] = (
            s["Effect"],
            tuple(as_list(s["Action"])),
            tuple(as_list(s["Resource"])),
            json.dumps(condition, sort_keys=True),
        )
    return found


# Where the stack grants more than `iam-policy` prints, and why. Each entry: Sid -> the
# resources only the stack has. The CLI names cells' families and services only when the
# setting `cells` is set (then by name); the stack covers cells to come (<stack>-cell-*).
CELL_FAMILY = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{MAIN}-cell-*:*"
STACK_ONLY: dict[str, dict[str, set[str]]] = {
    "operator": {
        "RunMigrationTasks": {CELL_FAMILY},
        "TagMigrationTasks": {CELL_FAMILY},
        "DeployService": {f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{{cluster}}/{MAIN}-cell-*"},
        "FollowServiceDeployments": {
            f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{{cluster}}/{MAIN}-cell-*/*"
        },
        "ReadServiceRevisions": {
            f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/{{cluster}}/{MAIN}-cell-*/*"
        },
        "RecordDeployedImage": {
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/redmica/{MAIN}-cell-*/image"
        },
    },
}


@pytest.mark.parametrize(("role", "resource", "policy"), PRINCIPALS)
def test_stack_policies_are_what_iam_policy_prints(
    platform: Platform, role: str, resource: str, policy: str | None
) -> None:
    """Actions and resources, statement by statement, with the stack's outputs as settings."""
    outputs = platform.outputs[MAIN]
    app_roles = (outputs["CellTaskRole"], outputs["CellExecutionRole"])
    admin_roles = (outputs["AdminTaskRoleArn"], outputs["CellExecutionRole"])
    defaults = Settings()
    scope = scope_for(
        role,
        region=REGION,
        account=ACCOUNT,
        bucket=outputs["ConfigBucketName"],
        prefix=defaults.prefix,
        runs_prefix=defaults.runs_prefix,
        kms_key_id=outputs["ConfigKeyArn"],
        cluster=outputs["ClusterName"],
        service=outputs["ServiceName"],
        task_definition=outputs["TaskDefinitionFamily"],
        pass_roles=admin_roles if role == "admin_broker" else app_roles,
        hosted_zone_id=outputs["HostedZoneId"],
        master_secret_arn=outputs["DatabaseMasterSecretArn"],
        admin_task_role=outputs["AdminTaskRoleArn"],
        secrets_prefix=defaults.tenant_secrets_prefix,
        admin_task_definition=outputs["AdminTaskDefinitionFamily"],
        admin_broker=outputs["AdminBrokerName"],
    )
    printed = normalised(policy_document(role, scope))
    stack = normalised(stack_policy(platform, resource, policy))
    extra = {
        sid: {r.replace("{cluster}", outputs["ClusterName"]) for r in found}
        for sid, found in STACK_ONLY.get(role, {}).items()
    }
    for sid, (effect, actions, granted, condition) in stack.items():
        if sid not in printed:
            assert set(granted) == extra.get(sid), (sid, "only in the stack")
            continue
        assert (effect, actions, condition) == printed[sid][:2] + printed[sid][3:], sid
        assert set(granted) - extra.get(sid, set()) == set(printed[sid][2]), sid
        assert extra.get(sid, set()) <= set(granted), sid
    assert set(printed) <= set(stack), set(printed) - set(stack)


# -- docs/infrastructure.md ------------------------------------------------------------------

DOCS = ROOT / "docs" / "infrastructure.md"


def test_the_documented_commands_give_every_required_parameter() -> None:
    """Each template's first `aws cloudformation deploy` in the docs names every parameter
    without a default (the old docs forgot PublicSubnetCidrs and AccessLogBucketName)."""
    text = DOCS.read_text()
    commands = re.findall(r"aws cloudformation deploy (.*?)(?:\n```|\naws )", text, re.DOTALL)
    first: dict[str, set[str]] = {}
    for command in commands:
        file = re.search(r"--template-file templates/cloudformation/(\S+)", command)
        assert file, command
        named = set(re.findall(r"(?:^|\s)([A-Z][A-Za-z]+)=", command))
        first.setdefault(file.group(1), named)
    assert set(first) == set(TEMPLATE.values())
    for template, named in first.items():
        declared = load(TEMPLATES / template)["Parameters"]
        required = {p for p, spec in declared.items() if "Default" not in spec}
        assert required <= named, (template, required - named)
        assert named <= set(declared), (template, named - set(declared))


def test_every_parameter_and_resource_is_documented() -> None:
    text = DOCS.read_text()
    for template in TEMPLATE.values():
        loaded = load(TEMPLATES / template)
        for name in [*loaded["Parameters"], *loaded["Resources"]]:
            assert f"`{name}`" in text, (template, name)
    assert "TODO" not in text and "redmica config from-stack $F $D $M" in text

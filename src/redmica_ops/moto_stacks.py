"""The platform's four CloudFormation templates on moto, for the sandbox and the tests: every
gap between moto's CloudFormation and AWS in one place, the stand-ins for what moto cannot
create, and the documented stand-up (docs/infrastructure.md, steps 1 to 6).

moto 5.x creates most of the foundation, main and cell stacks; `GAPS` lists where it differs
from AWS, what AWS does, and which test checks that part another way (or how the templates
avoid it, or that `stand_ins()` patches it). Four resource types it cannot create at all (it
skips them with a warning, and a `Fn::GetAtt` on them fails the whole stack) are stood in for
by `stand_ins()`: each is made through moto's own service API, the way CloudFormation would
make it, so the outputs that feed the next stack have the real shape (a secret's ARN, a
certificate's ARN, a cluster endpoint and its RDS-managed master secret). The behaviours it
corrects are listed in `GAPS` as "patched". All of it lives only inside that context manager
(the sandbox keeps it open while it serves); outside it moto is left as it is.

`stand_up()` creates the stacks in order, each from the earlier stacks' outputs and what the
operator gives (`Operator`: domain, images, the broker's key, the cells), after the steps
between them (recording the first image in each service's image parameter, uploading the
broker's code), then joins the cells with the main stack's update as step 6 does. It talks to
moto only through boto3 clients, so it works in-process (tests) and against the sandbox's
server alike.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from redmica_ops.container.templates import template_text
from redmica_ops.deploy.image import image_parameter

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

# Everything that talks to moto's internals is untyped (moto has no type information).


@dataclass(frozen=True)
class Gap:
    subject: str
    moto: str  # what moto 5.2.x does with it
    aws: str  # what CloudFormation on AWS does
    checked_by: str  # tests/FILE.py::TEST that checks it instead


GAPS: tuple[Gap, ...] = (
    Gap(
        "AWS::RDS::DBCluster",
        "not supported: skipped, and a GetAtt on it (Endpoint.Address, "
        "MasterUserSecret.SecretArn) fails the stack",
        "creates the Aurora cluster; RDS creates the master secret (ManageMasterUserPassword)",
        "tests/test_stacks.py::test_the_database_cluster_is_what_the_lifecycle_needs",
    ),
    Gap(
        "AWS::RDS::DBInstance in a cluster",
        "creates a stand-alone instance and ignores DBClusterIdentifier",
        "adds the instance (db.serverless or a class) to the cluster",
        "tests/test_stacks.py::test_the_database_cluster_is_what_the_lifecycle_needs",
    ),
    Gap(
        "AWS::RDS::DBClusterParameterGroup",
        "not supported: skipped",
        "creates the group (rds.force_ssl, SCRAM) the cluster uses",
        "tests/test_stacks.py::test_the_database_cluster_is_what_the_lifecycle_needs",
    ),
    Gap(
        "AWS::SecretsManager::Secret",
        "not supported: skipped",
        "creates the secret with GenerateSecretString",
        "tests/test_stacks.py::test_the_master_secret_key_base_is_generated_by_cloudformation",
    ),
    Gap(
        "AWS::CertificateManager::Certificate",
        "not supported: skipped",
        "requests the certificate, writes its DNS validation record into the zone and waits "
        "until ACM issued it (with a new zone: until the parent delegates to it)",
        "tests/test_stacks.py::test_the_certificate_is_a_dns_validated_wildcard",
    ),
    Gap(
        "AWS::S3::BucketPolicy",
        "not supported: skipped (no bucket gets a policy)",
        "attaches the policy",
        "tests/test_stacks.py::test_every_bucket_is_tls_only_and_the_log_bucket_takes_deliveries",
    ),
    Gap(
        "AWS::Scheduler::Schedule",
        "not supported: skipped",
        "creates the schedules of the morning migration and the collector",
        "tests/test_cloudformation.py::test_the_scheduled_collector_is_a_valid_redmica_command",
    ),
    Gap(
        "AWS::S3::Bucket properties",
        "versioning, public access block and lifecycle rules are dropped",
        "configures them",
        "patched: stand_ins() applies versioning and the public access block (`redmica "
        "doctor` checks both); lifecycle rules stay dropped, checked by "
        "tests/test_cloudformation.py::test_bucket_is_private_versioned_and_encrypted",
    ),
    Gap(
        "AWS::ECS::TaskDefinition and Service properties",
        "task definitions lose network mode, cpu, compatibilities, roles and ephemeral "
        "storage; services lose launch type, network configuration, load balancers and "
        "the circuit breaker (stand_ins() gives services back the first three: `redmica "
        "doctor` routes a cell's tenants to its service's load balancer)",
        "kept on the revision ECS registers and the service it updates",
        "tests/test_stacks.py::test_the_admin_task_definition_carries_its_role_and_environment",
    ),
    Gap(
        "AWS::ECS::TaskDefinition update",
        "registers the new revision from the template's PascalCase keys: the containers lose "
        "their name, image, environment and everything else",
        "registers the new revision with the new properties and deregisters the old one",
        "patched: stand_ins() registers it as at creation "
        "(tests/test_stacks.py::test_a_stack_update_keeps_the_image_the_service_runs)",
    ),
    Gap(
        "ECS service update",
        "a stack update sends the task definition family, so the service takes the family's "
        "newest revision",
        "sends the revision the stack registered",
        "tests/test_stacks.py::test_a_stack_update_keeps_the_image_the_service_runs",
    ),
    Gap(
        "Parameter constraints",
        "AllowedPattern, AllowedValues, MinValue and the AWS-specific types are not checked; "
        "a CommaDelimitedList default is not split; an SSM parameter that does not exist "
        "crashes the request (HTTP 500) instead of a ValidationError",
        "refuses the stack with a ValidationError naming the parameter",
        "tests/test_stacks.py::test_a_wrong_parameter_is_refused_by_the_template",
    ),
    Gap(
        "ECS RunTask of a container without container-level memory",
        "fails (it adds None to the task's memory): the app container has only the task's",
        "runs it within the task-level memory (Fargate)",
        "patched: stand_ins() counts such a container as 0 MiB within the task's memory "
        "(tests/test_sandbox.py::test_the_sandbox_is_the_documented_stand_up migrates on it)",
    ),
    Gap(
        "Fn::If to AWS::NoValue inside a list",
        "leaves None in the list (an environment entry or policy statement that is null)",
        "removes the item",
        "patched: stand_ins() drops those items "
        "(tests/test_stacks.py::test_a_stack_update_keeps_the_image_the_service_runs sees "
        "REDMICA_CELL appear with cells)",
    ),
    Gap(
        "IAM role inline policies from CloudFormation",
        "GetRolePolicy answers Python's repr of the document (single quotes), not JSON",
        "the policy document (URL-encoded JSON, decoded by boto3)",
        "tests/test_stacks.py::test_stack_policies_are_what_iam_policy_prints reads it with "
        "ast.literal_eval",
    ),
    Gap(
        "DescribeStackResource",
        "fails on resources of these stacks (AttributeError inside moto)",
        "describes the resource",
        "tests/test_stacks.py::test_stack_policies_are_what_iam_policy_prints uses "
        "ListStackResources",
    ),
    Gap(
        "Fn::GetAZs and Fn::Cidr",
        "Fn::GetAZs answers us-east-1's zones in every region; Fn::Cidr is not supported",
        "the region's zones; the CIDR blocks",
        "tests/test_stacks.py::test_the_platform_stands_up_from_an_empty_account (us-east-1; "
        "the templates use no Fn::Cidr)",
    ),
    Gap(
        "Fn::GetAtt short form",
        "!GetAtt Resource.Attr.Sub is split at every dot (attribute Attr), and the list "
        "form !GetAtt [Resource, Attr.Sub] reaches it as YAML nodes",
        "split at the first dot (attribute Attr.Sub)",
        "the templates write such attributes in the long form, Fn::GetAtt: [Resource, Attr.Sub]",
    ),
    Gap(
        "Route 53 hosted zone",
        "Fn::GetAtt HostedZone.NameServers fails; zone ids do not start with Z",
        "the zone's four name servers; ids like Z0123456789ABCDEFGHIJ",
        "docs/infrastructure.md reads the name servers with `aws route53 get-hosted-zone`",
    ),
    Gap(
        "AWS::EC2::FlowLog to S3",
        "an S3 destination with a key prefix is refused (it looks the prefix up as a bucket)",
        "accepts bucket ARN/prefix/",
        "the template delivers to the bucket's root (AWSLogs/<account>/vpcflowlogs/)",
    ),
)


def _name(value: Any) -> Any:
    """A Ref as AWS gives it: moto hands some resources (a DB subnet group) over as objects."""
    return getattr(value, "name", value)


class _StandIn:
    """What moto's ResourceMap asks of a resource class and of the resource it returns."""

    cf_type: ClassVar[str]
    attributes: ClassVar[dict[str, str]] = {}  # GetAtt name -> attribute of the instance

    def __init__(self, physical_id: str, account: str, region: str) -> None:
        self.physical_resource_id = physical_id
        self.account = account
        self.region = region

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.cf_type

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.attributes

    def get_cfn_attribute(self, attr: str) -> Any:
        return getattr(self, self.attributes[attr])

    def is_created(self) -> bool:
        return True

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> _StandIn:
        return cls.make(resource_name, cloudformation_json["Properties"], account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        return original_resource  # none of our updates change these resources

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        return None

    def delete(self, account_id: str, region_name: str) -> None:
        return None

    @classmethod
    def make(cls, name: str, props: dict[str, Any], account: str, region: str) -> _StandIn:
        raise NotImplementedError


class _Secret(_StandIn):
    """AWS::SecretsManager::Secret with GenerateSecretString; Ref is the ARN."""

    cf_type = "AWS::SecretsManager::Secret"

    @classmethod
    def make(cls, name: str, props: dict[str, Any], account: str, region: str) -> _StandIn:
        from moto.secretsmanager.models import secretsmanager_backends

        backend = secretsmanager_backends[account][region]
        generate = props.get("GenerateSecretString") or {}
        value = (
            props.get("SecretString")
            or json.loads(
                backend.get_random_password(
                    password_length=int(generate.get("PasswordLength", 32)),
                    exclude_characters=generate.get("ExcludeCharacters", ""),
                    exclude_numbers=False,
                    exclude_punctuation=bool(generate.get("ExcludePunctuation")),
                    exclude_uppercase=False,
                    exclude_lowercase=False,
                    include_space=bool(generate.get("IncludeSpace")),
                    require_each_included_type=True,
                )
            )["RandomPassword"]
        )
        created = backend.create_secret(
            name=props.get("Name") or name,
            secret_string=value,
            secret_binary=None,
            description=props.get("Description"),
            tags=props.get("Tags"),
            kms_key_id=props.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        arn = str(json.loads(created)["ARN"])
        return cls(arn, account, region)


class _Certificate(_StandIn):
    """AWS::CertificateManager::Certificate; Ref is the ARN (moto does no DNS validation)."""

    cf_type = "AWS::CertificateManager::Certificate"

    @classmethod
    def make(cls, name: str, props: dict[str, Any], account: str, region: str) -> _StandIn:
        from moto.acm.models import acm_backends

        backend: Any = acm_backends[account][region]  # its idempotency_token is str | None
        arn = backend.request_certificate(
            domain_name=props["DomainName"],
            idempotency_token=None,
            subject_alt_names=props.get("SubjectAlternativeNames") or [],
            tags=[],
        )
        return cls(arn, account, region)


class _Cluster(_StandIn):
    """AWS::RDS::DBCluster; Ref is the identifier; GetAtt the endpoint and master secret."""

    cf_type = "AWS::RDS::DBCluster"
    attributes: ClassVar[dict[str, str]] = {
        "Endpoint.Address": "endpoint",
        "Endpoint.Port": "port",
        "MasterUserSecret.SecretArn": "master_secret_arn",
        "DBClusterArn": "arn",
    }

    endpoint: str
    port: str
    master_secret_arn: str
    arn: str

    @classmethod
    def make(cls, name: str, props: dict[str, Any], account: str, region: str) -> _StandIn:
        from moto.rds.models import rds_backends

        identifier = props.get("DBClusterIdentifier") or f"{name.lower()}"
        scaling = props.get("ServerlessV2ScalingConfiguration")
        cluster = rds_backends[account][region].create_db_cluster(
            {
                "db_cluster_identifier": identifier,
                "engine": props["Engine"],
                "engine_version": props.get("EngineVersion"),
                "port": int(props.get("Port", 5432)),
                "master_username": props.get("MasterUsername"),
                "manage_master_user_password": bool(props.get("ManageMasterUserPassword")),
                "storage_encrypted": bool(props.get("StorageEncrypted")),
                "kms_key_id": props.get("KmsKeyId"),
                "deletion_protection": str(props.get("DeletionProtection")).lower() == "true",
                "backup_retention_period": int(props.get("BackupRetentionPeriod", 1)),
                "db_subnet_group_name": _name(props.get("DBSubnetGroupName")),
                "vpc_security_group_ids": props.get("VpcSecurityGroupIds") or [],
                "serverless_v2_scaling_configuration": scaling,
            }
        )
        made = cls(identifier, account, region)
        made.endpoint = cluster.endpoint
        made.port = str(cluster.port)
        made.master_secret_arn = cluster.master_user_secret.secret_arn
        made.arn = cluster.db_cluster_arn
        return made


class _ClusterInstance(_StandIn):
    """AWS::RDS::DBInstance of a cluster (moto's own model ignores DBClusterIdentifier)."""

    cf_type = "AWS::RDS::DBInstance"

    @classmethod
    def make(cls, name: str, props: dict[str, Any], account: str, region: str) -> _StandIn:
        from moto.rds.models import rds_backends

        identifier = name.lower()
        rds_backends[account][region].create_db_instance(
            {
                "db_instance_identifier": identifier,
                "db_cluster_identifier": props["DBClusterIdentifier"],
                "db_instance_class": props["DBInstanceClass"],
                "engine": props["Engine"],
                "publicly_accessible": bool(props.get("PubliclyAccessible")),
                "db_subnet_group_name": _name(props.get("DBSubnetGroupName")),
            }
        )
        return cls(identifier, account, region)


STAND_INS: tuple[type[_StandIn], ...] = (_Secret, _Certificate, _Cluster, _ClusterInstance)


@contextmanager
def stand_ins() -> Iterator[None]:
    """moto's CloudFormation with the stand-ins above (their types map to them), and lists
    without the items an `Fn::If` removed (AWS::NoValue), as on AWS."""
    from moto.cloudformation import parsing
    from moto.ecs.models import EC2ContainerServiceBackend, Service, TaskDefinition
    from moto.s3.models import FakeBucket

    original = parsing.get_model_map
    original_clean = parsing.clean_json

    def model_map() -> dict[str, Any]:
        return {**original(), **{s.cf_type: s for s in STAND_INS}}

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        # clean_json recurses through the module's global name: this sees every level.
        cleaned = original_clean(resource_json, resources_map)
        if isinstance(resource_json, list) and isinstance(cleaned, list):
            return [item for item in cleaned if item is not None]
        return cleaned

    parsing.get_model_map = model_map  # type: ignore[assignment]
    parsing.clean_json = clean_json
    patched: list[tuple[Any, str, Any]] = [
        (TaskDefinition, "update_from_cloudformation_json", classmethod(_replace_task_definition)),
        (FakeBucket, "create_from_cloudformation_json", classmethod(_bucket_as_configured)),
        (Service, "create_from_cloudformation_json", classmethod(_service_as_configured)),
        (
            EC2ContainerServiceBackend,
            "_calculate_task_resource_requirements",
            staticmethod(_task_requirements),
        ),
    ]
    originals = [(owner, name, owner.__dict__[name]) for owner, name, _ in patched]
    _ORIGINALS.update({(owner, name): value.__func__ for owner, name, value in originals})
    for owner, name, value in patched:
        setattr(owner, name, value)
    try:
        yield
    finally:
        parsing.get_model_map = original
        parsing.clean_json = original_clean
        for owner, name, value in originals:
            setattr(owner, name, value)


# The functions of moto stand_ins() wraps, by (class, name), while it is active.
_ORIGINALS: dict[tuple[Any, str], Any] = {}


def _task_requirements(task_definition: Any) -> Any:
    """A task's resources as moto counts them, a container without memory of its own counted
    as 0 MiB (on Fargate it shares the task's memory; moto fails adding None)."""
    counted = copy.copy(task_definition)
    counted.container_definitions = [
        {**c, "memory": c.get("memory") or c.get("memoryReservation") or 0}
        if "Memory" not in c and "MemoryReservation" not in c
        else c
        for c in task_definition.container_definitions
    ]
    from moto.ecs.models import EC2ContainerServiceBackend

    return _ORIGINALS[(EC2ContainerServiceBackend, "_calculate_task_resource_requirements")](
        counted
    )


def _bucket_as_configured(
    cls: Any,
    /,
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> Any:
    """A bucket with the versioning and public access block its properties ask for (moto
    keeps only encryption and tags)."""
    from moto.s3.models import s3_backends

    bucket = _ORIGINALS[(cls, "create_from_cloudformation_json")](
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    )
    properties = cloudformation_json.get("Properties", {})
    backend = s3_backends[account_id]["aws"]
    versioning = properties.get("VersioningConfiguration", {}).get("Status")
    if versioning:
        backend.put_bucket_versioning(bucket.name, versioning)
    block = properties.get("PublicAccessBlockConfiguration")
    if block:
        backend.put_public_access_block(
            bucket.name, {k: str(v).lower() == "true" for k, v in block.items()}
        )
    return bucket


def _service_as_configured(
    cls: Any,
    /,
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> Any:
    """A service with its launch type, network configuration and load balancers (moto keeps
    only the cluster, the task definition and the count)."""
    service = _ORIGINALS[(cls, "create_from_cloudformation_json")](
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    )
    properties = cloudformation_json["Properties"]
    service.launch_type = properties.get("LaunchType")
    service.load_balancers = [
        {
            "targetGroupArn": balancer.get("TargetGroupArn"),
            "containerName": balancer.get("ContainerName"),
            "containerPort": int(balancer.get("ContainerPort", 0)),
        }
        for balancer in properties.get("LoadBalancers", [])
    ]
    network = properties.get("NetworkConfiguration", {}).get("AwsvpcConfiguration")
    if network:
        service.network_configuration = {
            "awsvpcConfiguration": {
                "subnets": list(network.get("Subnets", [])),
                "securityGroups": list(network.get("SecurityGroups", [])),
                "assignPublicIp": network.get("AssignPublicIp", "DISABLED"),
            }
        }
    return service


def _replace_task_definition(
    cls: Any,
    original_resource: Any,
    new_resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
) -> Any:
    """An updated task definition as CloudFormation makes it: a new revision from the new
    properties, read as at creation, and the old revision deregistered."""
    from moto.ecs.models import ecs_backends

    ecs_backends[account_id][region_name].deregister_task_definition(original_resource.arn)
    return cls.create_from_cloudformation_json(
        new_resource_name, cloudformation_json, account_id, region_name
    )


# -- the documented stand-up ------------------------------------------------------------------

TEMPLATE_FILES = {
    "foundation": "redmica-foundation.yaml",
    "database": "redmica-database.yaml",
    "main": "redmica.yaml",
    "cell": "redmica-cell.yaml",
}
LOG_ROUTER_DIGEST = "sha256:" + "0" * 64  # the digest step 3 reads from ECR
BROKER_KEY = "admin-broker/admin-broker-0.1.0-0123456789ab.zip"  # what `make broker-zip` prints


@dataclass(frozen=True)
class Operator:
    """What the operator gives the stacks beyond the earlier stacks' outputs."""

    main: str = "redmica"
    domain: str = "redmine.example.com"
    # Every cell, the main stack's own `main` first, each other one a cell stack; none: the
    # main stack's service alone, without the cells setting.
    cells: tuple[str, ...] = ()
    image_tag: str = "1.0.0"

    @property
    def foundation(self) -> str:
        return f"{self.main}-foundation"

    @property
    def database(self) -> str:
        return f"{self.main}-database"

    def cell_stack(self, cell: str) -> str:
        return f"{self.main}-cell-{cell}"

    def service(self, cell: str) -> str:
        """The cell's ECS service (its stack's ServiceName)."""
        return f"{self.main}-app" if cell == "main" else self.cell_stack(cell)

    @property
    def cell_stacks(self) -> list[str]:
        return [self.cell_stack(c) for c in self.cells if c != "main"]

    def stacks(self) -> dict[str, str]:
        """Stack -> kind, in the order they are made."""
        made = {self.foundation: "foundation", self.database: "database", self.main: "main"}
        return made | {stack: "cell" for stack in self.cell_stacks}

    def services(self) -> list[str]:
        """Each stack's service, whose image parameter step 3 and 6 write first."""
        return [f"{self.main}-app", *self.cell_stacks]

    @property
    def cells_parameter(self) -> str:
        """`Cells` of the main and cell stacks: empty without cells."""
        return ",".join(f"{c}={self.service(c)}" for c in self.cells)

    def given(self, stack: str, kind: str, outputs: dict[str, str]) -> dict[str, str]:
        """The documented parameters no earlier output feeds."""
        repository = outputs.get("ImageRepositoryUri", "")
        log_router = f"{outputs.get('LogRouterRepositoryUri', '')}@{LOG_ROUTER_DIGEST}"
        if kind == "foundation":
            return {"Domain": self.domain}
        if kind == "main":
            return {
                "ImageParameter": image_parameter(f"{self.main}-app"),
                "AdminImageUri": f"{repository}:{self.image_tag}",
                "LogRouterImage": log_router,
                "BrokerCodeBucket": outputs.get("ArtifactsBucketName", ""),
                "BrokerCodeKey": BROKER_KEY,
            }
        if kind == "cell":
            return {
                "ParentStack": self.main,
                "CellName": stack.removeprefix(f"{self.main}-cell-"),
                "Cells": self.cells_parameter,
                "ImageParameter": image_parameter(stack),
                "LogRouterImage": log_router,
            }
        return {}


@dataclass
class Platform:
    """The stacks as made: each one's parameters and outputs, by stack name."""

    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    parameters: dict[str, dict[str, str]] = field(default_factory=dict)

    def all_outputs(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for outputs in self.outputs.values():
            merged.update(outputs)
        return merged


def template_body(kind: str) -> str:
    return template_text(f"cloudformation/{TEMPLATE_FILES[kind]}")


def _create(
    cf: CloudFormationClient, stack: str, kind: str, parameters: dict[str, str]
) -> dict[str, str]:
    cf.create_stack(
        StackName=stack,
        TemplateBody=template_body(kind),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = cf.describe_stacks(StackName=stack)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {stack} is {described['StackStatus']} on moto")
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in described.get("Outputs", [])}


def stand_up(
    cf: CloudFormationClient,
    ssm: SSMClient,
    s3: S3Client,
    operator: Operator,
    *,
    join_cells: bool = True,
) -> Platform:
    """docs/infrastructure.md's steps 1 to 6 (inside `stand_ins()`)."""
    platform = Platform()
    for stack, kind in operator.stacks().items():
        earlier = platform.all_outputs()
        declared = {
            str(p["ParameterKey"])
            for p in cf.get_template_summary(TemplateBody=template_body(kind))["Parameters"]
        }
        parameters = {k: v for k, v in earlier.items() if k in declared}
        parameters.update(operator.given(stack, kind, earlier))
        if kind == "main":
            # Steps 3 and 4: record the first image of every service, upload the broker.
            for service in operator.services():
                ssm.put_parameter(
                    Name=image_parameter(service),
                    Type="String",
                    Value=parameters["AdminImageUri"],
                    Overwrite=True,
                )
            s3.put_object(Bucket=parameters["BrokerCodeBucket"], Key=BROKER_KEY, Body=b"PK\x05\x06")
        platform.parameters[stack] = parameters
        platform.outputs[stack] = _create(cf, stack, kind, parameters)
    if join_cells and operator.cells_parameter:
        join(cf, platform, operator)
    return platform


def join(cf: CloudFormationClient, platform: Platform, operator: Operator) -> None:
    """Step 6's update of the main stack: `Cells` names every cell."""
    main = operator.main
    kept: list[ParameterTypeDef] = [
        {"ParameterKey": k, "UsePreviousValue": True}
        for k in platform.parameters[main]
        if k != "Cells"
    ]
    cells: ParameterTypeDef = {"ParameterKey": "Cells", "ParameterValue": operator.cells_parameter}
    cf.update_stack(
        StackName=main,
        TemplateBody=template_body("main"),
        Parameters=[*kept, cells],
        Capabilities=["CAPABILITY_IAM"],
    )
    platform.parameters[main]["Cells"] = operator.cells_parameter
    described = cf.describe_stacks(StackName=main)["Stacks"][0]
    platform.outputs[main] = {
        str(o["OutputKey"]): str(o["OutputValue"]) for o in described.get("Outputs", [])
    }

"""Least-privilege IAM policies for the principals that use this code.

Each role lists the AWS operations its code paths call; `tests/test_policy.py` records the
operations really called under moto for each role and fails if this list and the code drift
apart. Operations map to IAM actions and to resources scoped by ARN.

The trust boundary around the lifecycle admin task (docs/security.md): only the admin broker
may start it (RunTask on its own task definition family, iam:PassRole for its roles), because
RunTask's container overrides cannot be limited by IAM; the operator invokes the broker and
is explicitly denied both; the admin task reads exactly one master secret; backup dumps are
read only by the admin task, or by an operator whose policy was asked for them
(`--backup-data`, for `--executor local`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redmica_ops.aws import translate_errors
from redmica_ops.cells.config import cell_map
from redmica_ops.deploy.image import image_parameter
from redmica_ops.errors import JSONObject, UsageError
from redmica_ops.settings import Settings, require

if TYPE_CHECKING:
    from redmica_ops.aws import ClientFactory

# The tag every migration task carries (runs/executors/ecs.py sets it at RunTask).
MIGRATION_RUN_TAG = "redmica:run"

# (service, operation) -> IAM actions it needs (some need more than their own name).
OPERATION_ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "ListObjectVersions"): ("s3:ListBucketVersions",),
    ("s3", "GetObject"): ("s3:GetObject",),
    ("s3", "GetObjectVersion"): ("s3:GetObjectVersion",),  # GetObject with a VersionId
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "PutObject"): ("s3:PutObject",),
    ("s3", "DeleteObject"): ("s3:DeleteObject",),
    ("s3", "DeleteObjectVersion"): ("s3:DeleteObjectVersion",),  # DeleteObject with a VersionId
    ("s3", "GetBucketVersioning"): ("s3:GetBucketVersioning",),
    ("s3", "GetBucketEncryption"): ("s3:GetEncryptionConfiguration",),
    ("s3", "GetPublicAccessBlock"): ("s3:GetBucketPublicAccessBlock",),
    ("ecs", "DescribeClusters"): ("ecs:DescribeClusters",),
    ("ecs", "DescribeTaskDefinition"): ("ecs:DescribeTaskDefinition",),
    ("ecs", "RegisterTaskDefinition"): (
        "ecs:RegisterTaskDefinition",
        "ecs:TagResource",
        "iam:PassRole",
    ),
    ("ecs", "ListTaskDefinitions"): ("ecs:ListTaskDefinitions",),
    ("ecs", "RunTask"): ("ecs:RunTask", "ecs:TagResource", "iam:PassRole"),
    ("ecs", "DescribeTasks"): ("ecs:DescribeTasks",),
    ("ecs", "ListTasks"): ("ecs:ListTasks",),
    ("ecs", "StopTask"): ("ecs:StopTask",),
    ("ecs", "DescribeServices"): ("ecs:DescribeServices",),
    ("ecs", "UpdateService"): ("ecs:UpdateService",),
    # Judging rollouts with the service-deployments API (and falling back without it).
    ("ecs", "ListServiceDeployments"): ("ecs:ListServiceDeployments",),
    # StopServiceDeployment is called only to abort a failed rollout; it goes with Describe
    # so that the recorded-calls test (where rollouts succeed) keeps the abort permitted.
    ("ecs", "DescribeServiceDeployments"): (
        "ecs:DescribeServiceDeployments",
        "ecs:StopServiceDeployment",
    ),
    # `rollback` without --to: the task definition of each completed service deployment.
    ("ecs", "DescribeServiceRevisions"): ("ecs:DescribeServiceRevisions",),
    ("sts", "GetCallerIdentity"): (),  # always allowed
    # Cells: hostname routing (docs/cells.md).
    ("route53", "ListResourceRecordSets"): ("route53:ListResourceRecordSets",),
    ("route53", "ChangeResourceRecordSets"): ("route53:ChangeResourceRecordSets",),
    ("route53", "GetChange"): ("route53:GetChange",),
    ("elbv2", "DescribeTargetGroups"): ("elasticloadbalancing:DescribeTargetGroups",),
    ("elbv2", "DescribeLoadBalancers"): ("elasticloadbalancing:DescribeLoadBalancers",),
    # The lifecycle's master credentials, and db.password_secret: a tenant's password read
    # where its environment is built.
    ("secretsmanager", "GetSecretValue"): ("secretsmanager:GetSecretValue",),
    ("ssm", "GetParameter"): ("ssm:GetParameter",),
    # deploy/release/rollback record the image a service runs (deploy/image.py).
    ("ssm", "PutParameter"): ("ssm:PutParameter",),
    # The operator has the admin broker start admin tasks.
    ("lambda", "Invoke"): ("lambda:InvokeFunction",),
}

_TENANT_READ = {("s3", "ListObjectsV2"), ("s3", "GetObject")}
_TENANT_SECRETS = {("secretsmanager", "GetSecretValue"), ("ssm", "GetParameter")}
# Finding each cell's load balancer from its service (hostname routing, the site probe).
_BALANCERS = {("elbv2", "DescribeTargetGroups"), ("elbv2", "DescribeLoadBalancers")}
_MIGRATE = {
    ("s3", "PutObject"),  # run records
    ("ecs", "DescribeClusters"),
    ("ecs", "DescribeTaskDefinition"),
    ("ecs", "RunTask"),
    ("ecs", "DescribeTasks"),
    ("ecs", "ListTasks"),
    ("ecs", "StopTask"),
}

# What each principal's code paths call.
ROLE_OPERATIONS: dict[str, frozenset[tuple[str, str]]] = {
    # The app container: `entrypoint serve` and `entrypoint run-tenant` (which writes the
    # tenant's result object under the runs prefix, and reads db.password_secret secrets).
    "container": frozenset(_TENANT_READ | _TENANT_SECRETS | {("s3", "PutObject")}),
    # The scheduled job: `migrate --all --no-wait`, `--resume`, collecting and reading run
    # records; it reads the service to migrate the revision the service runs.
    "migrator": frozenset(_TENANT_READ | _MIGRATE | {("ecs", "DescribeServices")}),
    # The tenant-lifecycle admin task (`entrypoint admin-sql`, docs/tenant-lifecycle.md): reads
    # and takes (deletes) its request, reads the tenant and the RDS master secret; writes its
    # result and backups. With db.password_secret it also reads the tenant's password (dumps
    # log in as the tenant).
    "admin_task": frozenset(
        _TENANT_READ
        | _TENANT_SECRETS
        | {
            ("s3", "PutObject"),
            ("s3", "DeleteObject"),
            ("s3", "DeleteObjectVersion"),
            ("secretsmanager", "GetSecretValue"),
        }
    ),
    # The admin broker (`aws_lambda.admin_broker`): reads a request, starts the admin task.
    # Listing the requests' folder: a missing request is "not found" (exit 3), not the
    # AccessDenied real S3 gives a GetObject of a missing key without s3:ListBucket.
    "admin_broker": frozenset({("s3", "GetObject"), ("s3", "ListObjectsV2"), ("ecs", "RunTask")}),
    # The release pipeline's release stage (templates/cloudformation/redmica-pipeline.yaml,
    # ReleaseRole): `release` with the site probe after each wave: the migration gate, new
    # revisions rolled out and followed, the probe's balancer lookups and records.
    "pipeline": frozenset(
        _TENANT_READ
        | _MIGRATE
        | _BALANCERS
        | {
            ("ecs", "RegisterTaskDefinition"),
            ("ecs", "DescribeServices"),
            ("ecs", "UpdateService"),
            ("ecs", "ListServiceDeployments"),
            ("ecs", "DescribeServiceDeployments"),
            ("ssm", "PutParameter"),  # the image each released service runs
        }
    ),
    # An operator running any redmica command.
    "operator": frozenset(
        _TENANT_READ
        | _TENANT_SECRETS  # `render vhosts` and local migrations read them too
        | _MIGRATE
        | {
            ("s3", "HeadObject"),
            ("s3", "DeleteObject"),
            ("s3", "ListObjectVersions"),
            ("s3", "GetObjectVersion"),
            ("s3", "GetBucketVersioning"),
            ("s3", "GetBucketEncryption"),
            ("s3", "GetPublicAccessBlock"),
            ("ecs", "RegisterTaskDefinition"),
            ("ecs", "ListTaskDefinitions"),
            ("ecs", "DescribeServices"),
            ("ecs", "UpdateService"),
            ("ecs", "ListServiceDeployments"),
            ("ecs", "DescribeServiceDeployments"),
            ("ecs", "DescribeServiceRevisions"),
            ("sts", "GetCallerIdentity"),
            ("route53", "ListResourceRecordSets"),
            ("route53", "ChangeResourceRecordSets"),
            ("route53", "GetChange"),
            ("lambda", "Invoke"),
            ("ssm", "PutParameter"),
        }
        | _BALANCERS
    ),
}
ROLES = tuple(ROLE_OPERATIONS)


@dataclass(frozen=True)
class PolicyScope:
    partition: str
    region: str
    account: str
    bucket: str
    prefix: str
    runs_prefix: str
    cluster: str | None = None
    service: str | None = None
    family: str | None = None
    kms_key_arn: str | None = None
    pass_roles: tuple[str, ...] = ()
    # Cells: every cell's service as CLUSTER/SERVICE, and the zone of the tenants' records.
    cell_services: tuple[str, ...] = ()
    hosted_zone_id: str | None = None
    lifecycle_prefix: str = "lifecycle/"
    backups_prefix: str = "backups/"
    master_secret_arn: str | None = None
    secrets_prefix: str = "redmica/tenants/"
    # The lifecycle admin task: its task definition family and role (the operator is denied
    # both), and the broker function that starts it.
    admin_family: str | None = None
    admin_task_role: str | None = None
    admin_broker_arn: str | None = None
    # The operator may read and write backup dumps (`iam-policy --backup-data`, for
    # `--executor local`); without it, only the manifests.
    backup_data: bool = False

    def ecs(self, resource: str) -> str:
        return f"arn:{self.partition}:ecs:{self.region}:{self.account}:{resource}"


def partition_of(region: str) -> str:
    """The ARN partition of a region (China and GovCloud have their own)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def kms_key_arn(key: str, partition: str, region: str, account: str) -> str:
    """The ARN of a KMS key given as an id or ARN; aliases cannot scope an IAM policy."""
    if key.startswith("alias/") or ":alias/" in key:
        raise UsageError("kms_key_id is an alias; IAM policies need the key id or ARN")
    return key if key.startswith("arn:") else f"arn:{partition}:kms:{region}:{account}:key/{key}"


def task_family(task_definition: str) -> str:
    """`family` of a task definition given as family[:revision] or ARN."""
    return task_definition.rsplit("/", 1)[-1].split(":")[0]


def lambda_function_arn(function: str, partition: str, region: str, account: str) -> str:
    """The ARN of a Lambda function given as name[:qualifier] or ARN."""
    if function.startswith("arn:"):
        return function
    return f"arn:{partition}:lambda:{region}:{account}:function:{function}"


_SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[^*?]+")


def check_master_secret_arn(value: str | None) -> str:
    """The master secret's ARN, exactly one secret: no name, no wildcard."""
    if not value:
        raise UsageError(
            "the admin task policy needs the setting db_master_secret (the ARN of the RDS "
            "cluster's master secret): it grants reading that one secret",
            "set REDMICA_DB_MASTER_SECRET or `db_master_secret` in redmica.toml to the "
            "cluster's MasterUserSecret ARN",
        )
    if not _SECRET_ARN.fullmatch(value):
        raise UsageError(
            f"db_master_secret {value[:120]!r} is not one Secrets Manager secret's ARN",
            "give the full ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-xxxxxx), "
            "without wildcards",
        )
    return value


def scope_for(
    role: str,
    *,
    region: str,
    account: str,
    bucket: str,
    prefix: str,
    runs_prefix: str,
    kms_key_id: str | None = None,
    cluster: str | None = None,
    service: str | None = None,
    task_definition: str | None = None,
    pass_roles: Sequence[str] = (),
    task_roles: Callable[[str], Sequence[str]] | None = None,
    cell_services: Sequence[str] = (),
    hosted_zone_id: str | None = None,
    lifecycle_prefix: str = "lifecycle/",
    backups_prefix: str = "backups/",
    master_secret_arn: str | None = None,
    admin_task_role: str | None = None,
    secrets_prefix: str = "redmica/tenants/",
    admin_task_definition: str | None = None,
    admin_broker: str | None = None,
    backup_data: bool = False,
) -> PolicyScope:
    """The resources `role`'s policy is scoped to, from the settings.

    `task_roles(task_definition)` is asked for the roles to allow passing when none are given
    and the role passes roles at all (it reads the task definition from ECS): the app's for
    the operator and the migrator, the admin task definition's for the admin broker.
    """
    partition = partition_of(region)
    roles = list(pass_roles)
    admin_family = task_family(admin_task_definition) if admin_task_definition else None
    # With cells each cell's service has its own task definition family.
    family = task_family(task_definition) if task_definition and not cell_services else None
    runs = task_definition
    if role == "admin_broker":
        family, runs = admin_family, admin_task_definition
    elif admin_family and admin_family == family:
        raise UsageError(
            f"admin_task_definition and task_definition are one family ({admin_family}): whoever "
            "may migrate could start the admin task",
            "give lifecycle admin tasks a task definition family of their own",
        )
    if runs and not roles and task_roles and "iam:PassRole" in actions_for(role):
        roles = list(task_roles(runs))
        if not roles:
            # The sandbox's task definitions, for one: "set task_definition" would not help.
            raise UsageError(
                f"the {role} policy must name the roles it may pass to ECS, and task "
                f"definition {runs} names no task or execution role",
                "give --pass-role ARN (the task and execution roles the service runs with)",
            )
    if role != "admin_broker" and admin_task_role and admin_task_role in roles:
        raise UsageError(
            f"the {role} policy would pass the admin task role {admin_task_role}: only the "
            "admin broker may",
            "the app's task definition must not run with the admin task's role",
        )
    if role == "admin_task":
        master_secret_arn = check_master_secret_arn(master_secret_arn)
    broker_arn = (
        lambda_function_arn(admin_broker, partition, region, account)
        if admin_broker and role == "operator"
        else None
    )
    return PolicyScope(
        partition=partition,
        region=region,
        account=account,
        bucket=bucket,
        prefix=prefix,
        runs_prefix=runs_prefix,
        cluster=cluster,
        service=service if role in ("operator", "migrator", "pipeline") else None,
        family=family,
        kms_key_arn=kms_key_arn(kms_key_id, partition, region, account) if kms_key_id else None,
        pass_roles=tuple(roles),
        cell_services=tuple(cell_services) if role in ("operator", "pipeline") else (),
        hosted_zone_id=hosted_zone_id if role == "operator" else None,
        lifecycle_prefix=lifecycle_prefix,
        backups_prefix=backups_prefix,
        master_secret_arn=master_secret_arn,
        secrets_prefix=secrets_prefix,
        admin_family=admin_family,
        admin_task_role=admin_task_role,
        admin_broker_arn=broker_arn,
        backup_data=backup_data and role == "operator",
    )


def scope_from_settings(
    role: str,
    settings: Settings,
    clients: ClientFactory,
    account_id: str | None = None,
    pass_roles: Sequence[str] = (),
    backup_data: bool = False,
) -> PolicyScope:
    """`scope_for` with every resource from the settings; the account from STS unless given,
    the roles to pass from the task definition (ECS) unless given."""
    cells = cell_map(settings)
    # Before any AWS call: a policy scoped to nothing would print "successfully" and be useless.
    require(
        settings,
        required_settings(role, cells=cells.configured),
        f"`iam-policy --for {role}` needs",
    )
    require(settings, ["bucket"], message="no config bucket is set")
    assert settings.bucket is not None
    if not account_id:
        with translate_errors("asking STS for the account id"):
            account_id = str(clients.sts().get_caller_identity()["Account"])

    def task_roles(task_definition: str) -> list[str]:
        with translate_errors(f"describing task definition {task_definition}"):
            described = clients.ecs().describe_task_definition(taskDefinition=task_definition)
        definition = described["taskDefinition"]
        return [r for r in (definition.get("taskRoleArn"), definition.get("executionRoleArn")) if r]

    return scope_for(
        role,
        region=settings.region or clients.sts().meta.region_name or "us-east-1",
        account=account_id,
        bucket=settings.bucket,
        prefix=settings.prefix,
        runs_prefix=settings.runs_prefix,
        kms_key_id=settings.kms_key_id,
        cluster=settings.cluster,
        service=settings.service,
        task_definition=settings.task_definition,
        pass_roles=pass_roles,
        task_roles=task_roles,
        cell_services=[
            f"{c.cluster}/{c.service}" for c in cells.cells if cells.configured and c.cluster
        ],
        hosted_zone_id=settings.hosted_zone_id,
        lifecycle_prefix=settings.lifecycle_prefix,
        backups_prefix=settings.backups_prefix,
        master_secret_arn=settings.db_master_secret,
        admin_task_role=settings.admin_task_role,
        secrets_prefix=settings.tenant_secrets_prefix,
        admin_task_definition=settings.admin_task_definition,
        admin_broker=settings.admin_broker,
        backup_data=backup_data,
    )


# The settings a role's policy cannot be scoped without (a policy for "any cluster" would be
# neither least privilege nor what the operator meant).
REQUIRED_SETTINGS: dict[str, tuple[str, ...]] = {
    "container": (),
    "migrator": ("cluster", "task_definition"),
    "operator": ("cluster", "service", "task_definition"),
    "pipeline": ("cluster", "service", "task_definition"),
    # Its task is started by the admin broker; its own policy names no ECS resource, only the
    # bucket, the secrets prefix and the one master secret.
    "admin_task": ("db_master_secret",),
    "admin_broker": ("cluster", "admin_task_definition"),
}


def required_settings(role: str, cells: bool = False) -> tuple[str, ...]:
    """REQUIRED_SETTINGS, except that with cells each cell names its service."""
    return tuple(n for n in REQUIRED_SETTINGS[role] if not (cells and n == "service"))


def actions_for(role: str) -> set[str]:
    return {a for op in ROLE_OPERATIONS[role] for a in OPERATION_ACTIONS[op]}


class _Statements:
    """The statements of one role's policy; `allow` keeps only the actions the role calls."""

    def __init__(self, role: str, scope: PolicyScope) -> None:
        self.role = role
        self.scope = scope
        self.actions = actions_for(role)
        self.bucket = f"arn:{scope.partition}:s3:::{scope.bucket}"
        self.statements: list[JSONObject] = []

    def allow(
        self, sid: str, wanted: list[str], resources: list[str], condition: JSONObject | None = None
    ) -> None:
        present = sorted(a for a in wanted if a in self.actions)
        if present:
            statement: JSONObject = {
                "Sid": sid,
                "Effect": "Allow",
                "Action": present,
                "Resource": resources,
            }
            if condition:
                statement["Condition"] = condition
            self.statements.append(statement)


def policy_document(role: str, scope: PolicyScope) -> JSONObject:
    """The IAM policy JSON for `role`, every statement scoped to the configured resources."""
    if role == "admin_task":
        check_master_secret_arn(scope.master_secret_arn)
    policy = _Statements(role, scope)
    _config_bucket(policy)
    _lifecycle_objects(policy)
    if scope.kms_key_arn:
        policy.statements.append(
            {
                "Sid": "ConfigBucketKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": [scope.kms_key_arn],
            }
        )
    if scope.cluster:
        _cluster_tasks(policy, scope.cluster)
        _services(policy, scope.cluster)
    if scope.hosted_zone_id:
        _routing(policy, scope.hosted_zone_id)
    # Describe* of Elastic Load Balancing has no resource-level permissions.
    policy.allow(
        "FindCellLoadBalancers",
        [
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeLoadBalancers",
        ],
        ["*"],
    )
    # These ECS actions do not support resource-level permissions.
    policy.allow(
        "TaskDefinitions",
        ["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition", "ecs:ListTaskDefinitions"],
        ["*"],
    )
    if scope.admin_broker_arn:
        policy.allow("InvokeAdminBroker", ["lambda:InvokeFunction"], [scope.admin_broker_arn])
    if "iam:PassRole" in policy.actions:
        policy.statements.append(_pass_roles(role, scope))
    if role == "operator":
        policy.statements.extend(_admin_denials(scope))
    return {"Version": "2012-10-17", "Statement": policy.statements}


def _config_bucket(policy: _Statements) -> None:
    """Listing and inspecting the bucket; the tenants, their password secrets, run records."""
    role, scope, s3 = policy.role, policy.scope, policy.bucket
    requests = f"{scope.lifecycle_prefix}requests/"
    # The broker lists the requests' folder only (lifecycle.broker.absent), never the tenants.
    prefixes = [requests] if role == "admin_broker" else [scope.prefix]
    if role == "admin_task":
        prefixes.append(requests)
    if role in ("operator", "migrator", "pipeline"):
        prefixes.append(scope.runs_prefix)
    if role in ("operator", "admin_task"):
        prefixes.append(scope.backups_prefix)
    policy.allow(
        "ListConfigBucket",
        ["s3:ListBucket", "s3:ListBucketVersions"],
        [s3],
        {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
    )
    policy.allow(
        "InspectConfigBucket",
        [
            "s3:GetBucketVersioning",
            "s3:GetEncryptionConfiguration",
            "s3:GetBucketPublicAccessBlock",
        ],
        [s3],
    )
    if role == "admin_broker":
        # It reads a request to check it, and nothing else of the bucket.
        policy.allow(
            "ReadAdminRequests", ["s3:GetObject"], [f"{s3}/{scope.lifecycle_prefix}requests/*"]
        )
    else:
        policy.allow(
            "ReadTenants", ["s3:GetObject", "s3:GetObjectVersion"], [f"{s3}/{scope.prefix}*"]
        )
    _password_secrets(policy)
    policy.allow(
        "WriteTenants",
        ["s3:PutObject", "s3:DeleteObject"] if role == "operator" else [],
        [f"{s3}/{scope.prefix}*"],
    )
    if role in ("operator", "migrator", "pipeline"):
        # Run records, and the probe's records beside them (runs/probes/).
        policy.allow("RunRecords", ["s3:GetObject", "s3:PutObject"], [f"{s3}/{scope.runs_prefix}*"])
    elif role == "container":
        policy.allow("WriteResults", ["s3:PutObject"], [f"{s3}/{scope.runs_prefix}*/results/*"])


def _password_secrets(policy: _Statements) -> None:
    scope = policy.scope
    wanted = ["secretsmanager:GetSecretValue", "ssm:GetParameter"]
    if not scope.secrets_prefix and policy.actions & set(wanted):
        # `secret:*` / `parameter/*`: every secret of the account, not the tenants' passwords.
        raise UsageError(
            "tenant_secrets_prefix is empty: the policy would let the role read every secret "
            "and parameter of the account",
            "set tenant_secrets_prefix (REDMICA_TENANT_SECRETS_PREFIX or `tenant_secrets_prefix` "
            "in redmica.toml) to a prefix ending with '/', e.g. redmica/tenants/",
        )
    region_account = f"{scope.region}:{scope.account}"
    policy.allow(
        "ReadTenantPasswordSecrets",
        wanted,
        [
            f"arn:{scope.partition}:secretsmanager:{region_account}:secret:{scope.secrets_prefix}*",
            f"arn:{scope.partition}:ssm:{region_account}:parameter/{scope.secrets_prefix}*",
        ],
    )


def _lifecycle_objects(policy: _Statements) -> None:
    """Admin task requests and results, purge records, backups (docs/tenant-lifecycle.md)."""
    scope, s3 = policy.scope, policy.bucket
    lifecycle, backups = f"{s3}/{scope.lifecycle_prefix}", f"{s3}/{scope.backups_prefix}*"
    if policy.role == "admin_task":
        # Requests and results of admin tasks, database backups (dumps and manifests).
        policy.allow(
            "LifecycleObjects", ["s3:GetObject", "s3:PutObject"], [f"{lifecycle}*", backups]
        )
        # A request is taken (deleted, with its stored version) before its step runs.
        policy.allow(
            "TakeAdminRequests",
            ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            [f"{lifecycle}requests/*"],
        )
        policy.allow(
            "ReadMasterSecret", ["secretsmanager:GetSecretValue"], [str(scope.master_secret_arn)]
        )
    elif policy.role == "operator":
        # Requests and results of admin tasks, deprovision records.
        policy.allow("LifecycleObjects", ["s3:GetObject", "s3:PutObject"], [f"{lifecycle}*"])
        if scope.backup_data:
            # `--executor local` dumps and restores on the operator's machine.
            policy.allow("BackupData", ["s3:GetObject", "s3:PutObject"], [backups])
        else:
            # `tenant backups` and restores name a backup by its manifest; the dumps (.dump)
            # are read and written by the admin task only.
            policy.allow("ReadBackupManifests", ["s3:GetObject"], [f"{backups}.json"])


def _cluster_tasks(policy: _Statements, cluster: str) -> None:
    """Starting, watching and stopping tasks in the cluster: the broker the admin family's,
    the others the app's (or every cell's)."""
    scope = policy.scope
    cluster_arn = scope.ecs(f"cluster/{cluster}")
    policy.allow("DescribeCluster", ["ecs:DescribeClusters"], [cluster_arn])
    broker = policy.role == "admin_broker"
    tasks = scope.ecs(f"task/{cluster}/*")
    definitions = scope.ecs(f"task-definition/{scope.family or '*'}:*")
    policy.allow(
        "RunAdminTasks" if broker else "RunMigrationTasks",
        ["ecs:RunTask"],
        [definitions],
        {"ArnEquals": {"ecs:cluster": cluster_arn}},
    )
    policy.allow(
        "TagAdminTasks" if broker else "TagMigrationTasks",
        ["ecs:TagResource"],
        [tasks] if broker else [tasks, definitions],
        {
            "StringEquals": {
                "ecs:CreateAction": "RunTask" if broker else ["RunTask", "RegisterTaskDefinition"]
            }
        },
    )
    policy.allow("WatchMigrationTasks", ["ecs:DescribeTasks"], [tasks])
    # Only tasks that migrate tagged when it started them (tag redmica:run), never the
    # service's own tasks or anyone else's.
    policy.allow(
        "StopMigrationTasks",
        ["ecs:StopTask"],
        [tasks],
        {"Null": {f"aws:ResourceTag/{MIGRATION_RUN_TAG}": "false"}},
    )
    policy.allow(
        "ListClusterTasks", ["ecs:ListTasks"], ["*"], {"ArnEquals": {"ecs:cluster": cluster_arn}}
    )


def _services(policy: _Statements, cluster: str) -> None:
    """Deploying the service, or every cell's, and following its deployments."""
    scope = policy.scope
    services = list(scope.cell_services) or (
        [f"{cluster}/{scope.service}"] if scope.service else []
    )
    if services:
        policy.allow(
            "DeployService",
            ["ecs:DescribeServices", "ecs:UpdateService", "ecs:ListServiceDeployments"],
            [scope.ecs(f"service/{service}") for service in services],
        )
        policy.allow(
            "FollowServiceDeployments",
            ["ecs:DescribeServiceDeployments", "ecs:StopServiceDeployment"],
            [scope.ecs(f"service-deployment/{service}/*") for service in services],
        )
        # The image each service runs, after a rollout that succeeded (deploy/image.py).
        prefix = f"arn:{scope.partition}:ssm:{scope.region}:{scope.account}:parameter"
        policy.allow(
            "RecordDeployedImage",
            ["ssm:PutParameter"],
            [prefix + image_parameter(service.rsplit("/", 1)[-1]) for service in services],
        )
        policy.allow(
            "ReadServiceRevisions",
            ["ecs:DescribeServiceRevisions"],
            [scope.ecs(f"service-revision/{service}/*") for service in services],
        )


def _routing(policy: _Statements, hosted_zone_id: str) -> None:
    """The tenants' alias records in the zone."""
    partition = policy.scope.partition
    zone = hosted_zone_id.rsplit("/", 1)[-1]
    policy.allow(
        "RouteTenantHosts",
        ["route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets"],
        [f"arn:{partition}:route53:::hostedzone/{zone}"],
    )
    policy.allow(
        "WatchRouteChanges", ["route53:GetChange"], [f"arn:{partition}:route53:::change/*"]
    )


def _pass_roles(role: str, scope: PolicyScope) -> JSONObject:
    if not scope.pass_roles:
        raise UsageError(
            f"the {role} policy must name the roles it may pass to ECS, and none is known",
            "give --pass-role ARN (the task and execution roles), or set task_definition "
            "so they are read from it",
        )
    return {
        "Sid": "PassTaskRoles",
        "Effect": "Allow",
        "Action": ["iam:PassRole"],
        "Resource": list(scope.pass_roles),
        "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
    }


def _admin_denials(scope: PolicyScope) -> list[JSONObject]:
    """What an operator may never do, even if another policy of theirs allows it: start the
    admin task (its task definition, or any task with its role), register a revision of its
    family (which the broker would then start), or read the master secret."""
    denials: list[JSONObject] = []
    if scope.admin_family:
        family = scope.ecs(f"task-definition/{scope.admin_family}:*")
        starting = ["ecs:RunTask", "ecs:StartTask", "ecs:RegisterTaskDefinition"]
        denials.append(_deny("DenyTheAdminTaskDefinition", starting, family))
    if scope.admin_task_role:
        denials.append(_deny("DenyPassingTheAdminRole", ["iam:PassRole"], scope.admin_task_role))
    if scope.master_secret_arn and scope.master_secret_arn.startswith("arn:"):
        denials.append(
            _deny("DenyTheMasterSecret", ["secretsmanager:GetSecretValue"], scope.master_secret_arn)
        )
    return denials


def _deny(sid: str, actions: list[str], resource: str) -> JSONObject:
    return {"Sid": sid, "Effect": "Deny", "Action": actions, "Resource": [resource]}


def granted_actions(document: JSONObject) -> set[str]:
    """The actions a policy allows (its Deny statements take nothing away from this set)."""
    return {a for s in document["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}

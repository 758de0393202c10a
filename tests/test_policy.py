"""IAM policies derived from the code: each role's operations are recorded under moto while its
commands run, and must equal what `redmica iam-policy` grants."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, TypedDict

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.aws import CALL_RECORDERS
from redmica_ops.cli.app import Application
from redmica_ops.errors import OperationFailed
from redmica_ops.lifecycle.steps import guard_args
from redmica_ops.policy import (
    OPERATION_ACTIONS,
    ROLE_OPERATIONS,
    PolicyScope,
    actions_for,
    granted_actions,
    policy_document,
)
from redmica_ops.runs.pacing import FakeClock
from redmica_ops.tenants.claims import ClaimStore
from redmica_ops.tenants.store import TenantStore
from tests.cells_support import cells_app, moto_cells
from tests.conftest import BUCKET, Invoke, tenant_yaml
from tests.test_deploy import moto_service

Calls = set[tuple[str, str]]


@pytest.fixture
def recorded() -> Iterator[Calls]:
    calls: Calls = set()

    def record(service: str, operation: str) -> None:
        calls.add((service, operation))

    CALL_RECORDERS.append(record)
    yield calls
    CALL_RECORDERS.remove(record)


def seed(s3: S3Client, *names: str) -> None:
    for name in names:
        s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=tenant_yaml(name).encode())


def seed_secret_tenants(s3: S3Client) -> None:
    """Two tenants whose passwords are in Secrets Manager and SSM (db.password_secret)."""
    import yaml

    from tests.conftest import tenant_document

    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="redmica/tenants/gamma", SecretString="gamma-password"
    )["ARN"]
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/redmica/tenants/delta", Value="delta-password", Type="SecureString"
    )
    for name, reference in (("gamma", arn), ("delta", "/redmica/tenants/delta")):
        document = tenant_document(name)
        document["db"].pop("password")
        document["db"]["password_secret"] = reference
        body = yaml.safe_dump(document).encode()
        s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=body)


def make_app(**env: str) -> Application:
    subnet = boto3.client("ec2", region_name="us-east-1").describe_subnets()["Subnets"][0][
        "SubnetId"
    ]
    app = Application(
        env={
            **os.environ,
            "REDMICA_CLUSTER": "prod",
            "REDMICA_SERVICE": "redmica",
            "REDMICA_CONTAINER": "app",
            "REDMICA_TENANTS_PER_TASK": "1",  # moto runs no container
            "REDMICA_TASK_DEFINITION": "redmica-app",
            "REDMICA_SUBNETS": subnet,
            "REDMICA_DOMAIN": "example.com",
            "SECRET_KEY_BASE": "k" * 64,
            **env,
        }
    )
    app.make_clock = lambda cancellation: FakeClock()
    app.exec_process = lambda argv, environ: None
    return app


def test_container_role(s3: S3Client, run: Invoke, recorded: Calls, tmp_path: Any) -> None:
    seed(s3, "acme", "beta")
    seed_secret_tenants(s3)
    app = make_app(REDMICA_VHOSTS_FILE=str(tmp_path / "v.conf"))
    assert run("entrypoint", "serve", "--no-check", app=app).exit_code == 0
    assert run("entrypoint", "run-tenant", "acme", "--", "true", app=app).exit_code == 0
    # Inside a migrate run, run-tenant also writes the tenant's result object.
    in_run = make_app(REDMICA_RUN_ID="20261126T060000Z-abc123", REDMICA_ATTEMPT="1")
    assert run("entrypoint", "run-tenant", "beta", "--", "true", app=in_run).exit_code == 0
    assert recorded == ROLE_OPERATIONS["container"]


def test_migrator_role(s3: S3Client, run: Invoke, recorded: Calls) -> None:
    moto_service()
    seed(s3, "acme", "beta")
    launched = run("migrate", "--all", "--no-wait", "-O", "json", app=make_app())
    assert launched.exit_code == 0, launched.output
    run_id = launched.json()["run_id"]
    # Resuming with a 1 s timeout also exercises stopping a task.
    resumed = run("migrate", "--resume", run_id, "--timeout", "1", app=make_app())
    assert resumed.exit_code == 1, resumed.output  # the tasks timed out
    assert "timed_out" in resumed.stderr
    assert recorded == ROLE_OPERATIONS["migrator"]


def test_admin_task_role(
    s3: S3Client, run: Invoke, recorded: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`entrypoint admin-sql` (a lifecycle step in an ECS task): a restore that finds no
    backup lists, reads, resolves the master secret and writes its result."""
    seed(s3, "acme")
    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="rds!cluster-1", SecretString=json.dumps({"username": "m", "password": "p"})
    )["ARN"]
    recorded.clear()
    guard = guard_args(TenantStore(s3, BUCKET).get("acme"), None)
    args = {**guard, "source": "acme", "backup": "latest"}
    step = {"step": "restore", "tenant": "acme", "args": args}
    request_id = "20261128T041500Z-acme-restore-00000001"
    key = f"lifecycle/requests/{request_id}.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(step).encode())
    monkeypatch.setattr("redmica_ops.lifecycle.site.Psql", lambda *a, **k: None)
    # Its SQL is stubbed out: the administrator's look at the database's owner too.
    monkeypatch.setattr("redmica_ops.lifecycle.steps.check_database", lambda site, stored: None)
    recorded.clear()
    # Where the task's connections may go comes from its task definition.
    db = {"REDMICA_DB_HOST": "db.internal", "REDMICA_DB_SSL_ROOT_CERT": "/etc/ssl/rds.pem"}
    app = make_app(REDMICA_DB_MASTER_SECRET=secret, **db)
    result = run("entrypoint", "admin-sql", request_id, app=app)
    assert result.exit_code == 3, result.output  # no backup of acme
    # Backups of tenants whose password is in a secret log in as the tenant: the task reads
    # the secret (Secrets Manager, SSM) before pg_dump, which is stubbed out here.
    seed_secret_tenants(s3)
    passwords: list[str] = []

    def no_pg_dump(argv: list[str], connection: Any, database: str) -> None:
        passwords.append(connection.password)
        raise OperationFailed("pg_dump is not run in this test")

    monkeypatch.setattr("redmica_ops.lifecycle.dumps.run_tool", no_pg_dump)
    for name in ("gamma", "delta"):
        stored = TenantStore(s3, BUCKET).get(name)
        claims = ClaimStore(s3, BUCKET)  # as `tenant add` leaves it: a backup needs them
        claims.take(name, claims.claims_of(stored.tenant))
        step = {
            "step": "backup",
            "tenant": name,
            "args": {**guard_args(stored, None), "reason": "test"},
        }
        body = json.dumps(step).encode()
        request_id = f"20261128T041500Z-{name}-backup-00000002"
        s3.put_object(Bucket=BUCKET, Key=f"lifecycle/requests/{request_id}.json", Body=body)
        app = make_app(REDMICA_DB_MASTER_SECRET=secret, **db)
        assert run("entrypoint", "admin-sql", request_id, app=app).exit_code == 1
    assert passwords == ["gamma-password", "delta-password"]
    assert recorded == ROLE_OPERATIONS["admin_task"]


def test_operator_role(
    s3: S3Client,
    run: Invoke,
    recorded: Calls,
    moto_rollouts: None,  # with the service-deployments API, so a real ECS's calls are made
    route53_pending: None,
    tmp_path: Any,
) -> None:
    moto_service()
    app = make_app
    assert (
        run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme"), app=app()).exit_code == 0
    )
    assert run("tenant", "list", app=app()).exit_code == 0
    assert (
        run(
            "tenant",
            "update",
            "acme",
            "-f",
            "-",
            input=tenant_yaml("acme", db__port=6000),
            app=app(),
        ).exit_code
        == 0
    )
    history = run("tenant", "history", "acme", "-O", "json", app=app()).json()
    assert (
        run("tenant", "restore", "acme", history[-1]["version_id"], "--yes", app=app()).exit_code
        == 0
    )
    assert run("tenant", "history", "acme", app=app()).exit_code == 0
    assert run("tenant", "remove", "acme", "--yes", app=app()).exit_code == 0
    assert (
        run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme"), app=app()).exit_code == 0
    )
    seed_secret_tenants(s3)
    assert run("render", "vhosts", "-o", str(tmp_path / "v.conf"), app=app()).exit_code == 0
    migrated = run("migrate", "--all", "--no-wait", "-O", "json", app=app())
    resumed = run("migrate", "--resume", migrated.json()["run_id"], "--timeout", "1", app=app())
    assert "timed_out" in resumed.stderr
    assert run("runs", "list", app=app()).exit_code == 0
    assert run("deploy", "--image", "redmica:2", "--yes", app=app()).exit_code == 0
    assert run("rollback", "--yes", app=app()).exit_code == 0
    assert run("status", app=app()).exit_code == 0
    assert run("doctor", app=app()).exit_code in (0, 1)
    assert run("iam-policy", "--for", "operator", app=app()).exit_code == 0
    # A lifecycle step over ECS: the request, the broker (invoked), the task watched, its
    # result read (moto runs no container, so there is none: exit 1).
    from tests.test_admin_broker import (
        InProcessBroker,
        register_admin_task_definition,
        serve_broker,
    )

    register_admin_task_definition()
    # (settings before the command line: serve_broker builds the Lambda client first)
    with_broker = app(
        REDMICA_ADMIN_BROKER="redmica-admin-broker",
        REDMICA_BUCKET=BUCKET,
        REDMICA_DB_HOST="db.internal",  # lifecycle commands check where the database is
    )
    broker = InProcessBroker(boto3.client("s3", region_name="us-east-1"), boto3.client("ecs"))
    serve_broker(with_broker, lambda event: {"ok": True, "task_arn": broker.launch(**event)})
    backed_up = run("tenant", "backup", "acme", "--executor", "ecs", app=with_broker)
    assert backed_up.exit_code == 1 and "without writing its result" in backed_up.stderr
    # Cells with hostname routing: placement, routing, moves, drift.
    env = moto_cells()
    assert (
        run("tenant", "add", "t1", "-f", "-", input=tenant_yaml("t1"), app=cells_app(env))
    ).exit_code == 0
    assert run("tenant", "move", "t1", "--to", "b", "--yes", app=cells_app(env)).exit_code == 0
    assert run("cells", "routes", "--fix", app=cells_app(env)).exit_code == 0
    assert run("tenant", "remove", "t1", "--yes", app=cells_app(env)).exit_code == 0
    assert recorded == ROLE_OPERATIONS["operator"]


def test_every_recorded_operation_has_actions() -> None:
    for operations in ROLE_OPERATIONS.values():
        assert operations <= set(OPERATION_ACTIONS)


class Names(TypedDict):
    region: str
    account: str
    bucket: str
    prefix: str
    runs_prefix: str
    cluster: str
    service: str


# The names of the test stack, as the settings give them to `scope_for` and `PolicyScope`.
NAMES: Names = {
    "region": "eu-west-1",
    "account": "111122223333",
    "bucket": "acme-config",
    "prefix": "tenants/",
    "runs_prefix": "runs/",
    "cluster": "prod",
    "service": "redmica",
}
SCOPE = PolicyScope(
    partition="aws",
    **NAMES,
    family="redmica-app",
    kms_key_arn="arn:aws:kms:eu-west-1:111122223333:key/abcd",
    pass_roles=("arn:aws:iam::111122223333:role/redmica-task",),
    hosted_zone_id="ZPROD123",
    master_secret_arn="arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-1-AbCdEf",
    admin_family="redmica-admin",
    admin_task_role="arn:aws:iam::111122223333:role/redmica-admin-task",
    admin_broker_arn="arn:aws:lambda:eu-west-1:111122223333:function:redmica-admin-broker",
)


@pytest.mark.parametrize("role", list(ROLE_OPERATIONS))
def test_policy_grants_exactly_the_roles_actions(role: str) -> None:
    document = policy_document(role, SCOPE)
    assert granted_actions(document) - {"kms:Decrypt", "kms:GenerateDataKey"} == actions_for(role)
    for statement in document["Statement"]:
        if statement["Effect"] == "Deny":
            # Only the operator's, on what it must never reach.
            assert role == "operator" and statement["Resource"] in (
                [SCOPE.admin_task_role],
                [SCOPE.master_secret_arn],
                ["arn:aws:ecs:eu-west-1:111122223333:task-definition/redmica-admin:*"],
            )
            continue
        resources = statement["Resource"]
        if resources == ["*"]:
            # Only actions without resource-level permissions, or ListTasks with a condition.
            assert set(statement["Action"]) <= {
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeLoadBalancers",
                "ecs:DescribeTaskDefinition",
                "ecs:RegisterTaskDefinition",
                "ecs:ListTaskDefinitions",
                "ecs:ListTasks",
            }
            if "ecs:ListTasks" in statement["Action"]:
                assert statement["Condition"]["ArnEquals"]["ecs:cluster"].endswith(":cluster/prod")
        for resource in resources:
            assert (
                resource == "*"
                or "acme-config" in resource
                or ":prod" in resource
                or "/prod" in resource
                or "redmica-app" in resource
                or resource
                in ("arn:aws:route53:::hostedzone/ZPROD123", "arn:aws:route53:::change/*")
                or resource in (SCOPE.kms_key_arn, *SCOPE.pass_roles)
                or resource == SCOPE.master_secret_arn
                or resource == SCOPE.admin_broker_arn
                or resource.endswith(":task-definition/redmica-admin:*")
                # The image the service runs (deploy/image.py): its one parameter.
                or resource
                == f"arn:aws:ssm:eu-west-1:111122223333:parameter/redmica/{SCOPE.service}/image"
                # Tenants' password secrets: only those under the prefix.
                or resource.endswith(
                    (f":secret:{SCOPE.secrets_prefix}*", f":parameter/{SCOPE.secrets_prefix}*")
                )
            )


def test_only_the_admin_task_reads_the_master_secret() -> None:
    for role in ROLE_OPERATIONS:
        document = policy_document(role, SCOPE)
        sids = {s["Sid"] for s in document["Statement"]}
        assert ("ReadMasterSecret" in sids) == (role == "admin_task")
        # Every other secret a role may read is a tenant's password, under the prefix.
        for statement in document["Statement"]:
            if statement["Effect"] == "Deny":
                continue
            if statement["Sid"] == "RecordDeployedImage":
                # A write of the image parameters (deploy/image.py), never a read.
                assert statement["Action"] == ["ssm:PutParameter"]
                assert all(r.endswith("/image") for r in statement["Resource"])
                continue
            if statement["Sid"] != "ReadMasterSecret" and any(
                a.startswith(("secretsmanager:", "ssm:")) for a in statement["Action"]
            ):
                assert statement["Sid"] == "ReadTenantPasswordSecrets"
                assert all(r.endswith(f"{SCOPE.secrets_prefix}*") for r in statement["Resource"])
    document = policy_document("admin_task", SCOPE)
    assert not any(a.startswith("ecs:") or a == "iam:PassRole" for a in granted_actions(document))


def test_container_cannot_write_tenants_or_touch_ecs() -> None:
    document = policy_document("container", SCOPE)
    actions = granted_actions(document)
    assert not any(a.startswith("ecs:") or a == "iam:PassRole" for a in actions)
    assert "s3:DeleteObject" not in actions
    # It writes only the result objects of migrate runs (issue 13), never a tenant document.
    writes = [s for s in document["Statement"] if "s3:PutObject" in s["Action"]]
    assert [w["Resource"] for w in writes] == [["arn:aws:s3:::acme-config/runs/*/results/*"]]
    reads = next(s for s in document["Statement"] if s["Sid"] == "ReadTenants")
    assert reads["Resource"] == ["arn:aws:s3:::acme-config/tenants/*"]


def test_pass_role_only_for_the_task_roles() -> None:
    document = policy_document("migrator", SCOPE)
    (statement,) = [s for s in document["Statement"] if "iam:PassRole" in s["Action"]]
    assert statement["Resource"] == list(SCOPE.pass_roles)
    assert statement["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }


def test_iam_policy_command_reads_roles_from_the_task_definition(s3: S3Client, run: Invoke) -> None:
    moto_service()
    result = run("iam-policy", "--for", "migrator", app=make_app())
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (passing,) = [s for s in document["Statement"] if s["Sid"] == "PassTaskRoles"]
    assert sorted(passing["Resource"]) == [
        "arn:aws:iam::123456789012:role/exec",
        "arn:aws:iam::123456789012:role/task",
    ]
    run_records = next(s for s in document["Statement"] if s["Sid"] == "RunRecords")
    assert run_records["Resource"] == [f"arn:aws:s3:::{BUCKET}/runs/*"]


def test_cell_services_and_zone_scope_the_operator() -> None:
    from dataclasses import replace

    scope = replace(SCOPE, cell_services=("prod/redmica-a", "prod/redmica-b"))
    document = policy_document("operator", scope)
    deploy = next(s for s in document["Statement"] if s["Sid"] == "DeployService")
    assert deploy["Resource"] == [
        "arn:aws:ecs:eu-west-1:111122223333:service/prod/redmica-a",
        "arn:aws:ecs:eu-west-1:111122223333:service/prod/redmica-b",
    ]
    routes = next(s for s in document["Statement"] if s["Sid"] == "RouteTenantHosts")
    assert routes["Resource"] == ["arn:aws:route53:::hostedzone/ZPROD123"]
    for role in ("container", "migrator"):
        assert not any(
            a.startswith(("route53:", "elasticloadbalancing:"))
            for a in granted_actions(policy_document(role, scope))
        )


# -- issue 23, finding 5: what an operator's and the admin task's policies let through ----------
ADMIN_ROLE = "arn:aws:iam::111122223333:role/redmica-admin-task"
APP_ROLE = "arn:aws:iam::111122223333:role/redmica-task"
EXEC_ROLE = "arn:aws:iam::111122223333:role/redmica-exec"
MASTER_SECRET = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-1-AbCdEf"
ECS_TASKS = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
CLUSTER_ARN = "arn:aws:ecs:eu-west-1:111122223333:cluster/prod"


def operator_policy(cells: bool = False, admin_definition: str | None = None) -> dict[str, Any]:
    """The operator's policy as `iam-policy --for operator` builds it from the settings."""
    from redmica_ops.policy import scope_for

    scope = scope_for(
        "operator",
        **NAMES,
        task_definition="redmica-app",
        task_roles=lambda definition: [APP_ROLE, EXEC_ROLE],
        cell_services=("prod/redmica-a", "prod/redmica-b") if cells else (),
        admin_task_role=ADMIN_ROLE,
        admin_task_definition=admin_definition,
    )
    return policy_document("operator", scope)


@pytest.mark.parametrize("cells", [False, True])
def test_an_operator_cannot_start_a_task_as_the_admin_role(cells: bool) -> None:
    """RunTask's container overrides (command, environment, environmentFiles) cannot be limited
    by IAM: whoever may start a task with the admin role runs any command as it (and reads the
    master secret). The operator may start migration tasks with the app's roles only."""
    from tests.iam_eval import allowed

    policy = operator_policy(cells, admin_definition="redmica-admin")
    app_definition = "arn:aws:ecs:eu-west-1:111122223333:task-definition/redmica-app:7"
    context = {"ecs:cluster": CLUSTER_ARN}
    assert allowed(policy, "ecs:RunTask", app_definition, context)  # migrations still run
    assert allowed(policy, "iam:PassRole", APP_ROLE, ECS_TASKS)
    # The attack: the app's family with `overrides.taskRoleArn` = the admin role ...
    assert not allowed(policy, "iam:PassRole", ADMIN_ROLE, ECS_TASKS)
    # ... or the admin task definition itself, whose role is set in it.
    admin_definition = "arn:aws:ecs:eu-west-1:111122223333:task-definition/redmica-admin:3"
    assert not allowed(policy, "ecs:RunTask", admin_definition, context)
    assert not allowed(policy, "ecs:StartTask", admin_definition, context)
    # Nor may it register a revision of the admin family for the broker to start.
    assert not allowed(policy, "ecs:RegisterTaskDefinition", admin_definition)
    # With cells the operator may run every family's tasks (each cell has its own); without
    # admin_task_definition in its settings nothing denies the admin family by name, but
    # RunTask of a task definition with a role needs iam:PassRole for it, which it lacks.
    if cells:
        undenied = operator_policy(cells)
        assert allowed(undenied, "ecs:RunTask", admin_definition, context)
        assert not allowed(undenied, "iam:PassRole", ADMIN_ROLE, ECS_TASKS)


def test_an_operator_cannot_read_backup_dumps() -> None:
    from tests.iam_eval import allowed

    policy = operator_policy()
    dump = "arn:aws:s3:::acme-config/backups/acme/20261128T041500Z-1a2b3c.dump"
    manifest = "arn:aws:s3:::acme-config/backups/acme/20261128T041500Z-1a2b3c.json"
    assert not allowed(policy, "s3:GetObject", dump)
    assert not allowed(policy, "s3:PutObject", dump)
    # `tenant backups` lists the manifests: that keeps working without the dumps.
    assert allowed(policy, "s3:GetObject", manifest)
    assert allowed(policy, "s3:ListBucket", "arn:aws:s3:::acme-config", {"s3:prefix": "backups/"})


def test_the_admin_task_policy_needs_the_one_master_secret() -> None:
    """Without the master secret's ARN the policy granted every `secret:rds!*` of the account."""
    from dataclasses import replace

    from redmica_ops.errors import UsageError

    with pytest.raises(UsageError) as caught:
        policy_document("admin_task", replace(SCOPE, master_secret_arn=None))
    assert "db_master_secret" in caught.value.message


def test_iam_policy_for_the_admin_task_without_the_master_secret_exits_2(
    s3: S3Client, run: Invoke
) -> None:
    result = run("iam-policy", "--for", "admin_task", app=make_app())
    assert result.exit_code == 2, result.output
    assert "db_master_secret" in result.stderr
    assert result.stdout == ""


def test_admin_broker_role(s3: S3Client, recorded: Calls) -> None:
    """The broker (its handler's code, in this process): reads the request, starts the task."""
    from redmica_ops.aws_lambda import answer_broker_event
    from tests.test_admin_broker import (
        REQUEST_ID,
        broker_workspace,
        deny_gets,
        put_request,
        register_admin_task_definition,
    )

    moto_service()
    register_admin_task_definition()
    seed(s3, "acme")
    put_request(s3)
    recorded.clear()
    assert answer_broker_event({"request_id": REQUEST_ID}, broker_workspace())["ok"] is True
    # A request S3 refuses to read (real S3's answer for a missing key): the broker lists it.
    ws = broker_workspace()
    deny_gets(ws)
    assert answer_broker_event({"request_id": REQUEST_ID}, ws)["ok"] is False
    assert recorded == ROLE_OPERATIONS["admin_broker"]


def iam_policy(run: Invoke, role: str, *flags: str, **env: str | None) -> Any:
    """`iam-policy --for ROLE` with the test stack's settings (None: unset): (exit code,
    document, stderr)."""
    base = {
        "REDMICA_ADMIN_TASK_DEFINITION": "redmica-admin",
        "REDMICA_ADMIN_TASK_ROLE": "arn:aws:iam::123456789012:role/admin-task",
        "REDMICA_ADMIN_BROKER": "redmica-admin-broker",
        "REDMICA_DB_MASTER_SECRET": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!c-1",
    }
    merged = {k: v for k, v in {**base, **env}.items() if v is not None}
    result = run("iam-policy", "--for", role, *flags, app=make_app(**merged))
    document = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, document, result.stderr


def by_sid(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document["Statement"]}


def test_iam_policy_for_the_admin_broker(s3: S3Client, run: Invoke) -> None:
    from tests.iam_eval import allowed
    from tests.test_admin_broker import register_admin_task_definition

    moto_service()
    register_admin_task_definition()
    code, document, stderr = iam_policy(run, "admin_broker")
    assert code == 0, stderr
    sids = by_sid(document)
    assert set(sids) == {
        "ListConfigBucket",
        "ReadAdminRequests",
        "RunAdminTasks",
        "TagAdminTasks",
        "PassTaskRoles",
    }
    assert sids["ReadAdminRequests"]["Resource"] == [f"arn:aws:s3:::{BUCKET}/lifecycle/requests/*"]
    # It lists the requests' folder (a missing request is "not found"), nothing else.
    bucket = f"arn:aws:s3:::{BUCKET}"
    assert sids["ListConfigBucket"]["Action"] == ["s3:ListBucket"]
    request = {"s3:prefix": "lifecycle/requests/20261128T041500Z-acme-set-admin-1a2b3c4d.json"}
    assert allowed(document, "s3:ListBucket", bucket, request)
    for prefix in ("tenants/", "backups/", "lifecycle/results/", ""):
        assert not allowed(document, "s3:ListBucket", bucket, {"s3:prefix": prefix})
    assert sids["RunAdminTasks"]["Resource"] == [
        "arn:aws:ecs:us-east-1:123456789012:task-definition/redmica-admin:*"
    ]
    # The roles of the admin task definition, read from ECS.
    assert sorted(sids["PassTaskRoles"]["Resource"]) == [
        "arn:aws:iam::123456789012:role/admin-task",
        "arn:aws:iam::123456789012:role/exec",
    ]
    app_definition = "arn:aws:ecs:us-east-1:123456789012:task-definition/redmica-app:1"
    cluster = {"ecs:cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/prod"}
    assert not allowed(document, "ecs:RunTask", app_definition, cluster)
    assert not allowed(document, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/tenants/acme.yaml")
    # Without the admin task definition: exit 2, naming it.
    code, _, stderr = iam_policy(run, "admin_broker", REDMICA_ADMIN_TASK_DEFINITION=None)
    assert code == 2 and "admin_task_definition" in stderr


def test_iam_policy_for_the_admin_task_reads_exactly_one_secret(s3: S3Client, run: Invoke) -> None:
    from tests.iam_eval import allowed

    code, document, stderr = iam_policy(run, "admin_task")
    assert code == 0, stderr
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!c-1"
    assert by_sid(document)["ReadMasterSecret"]["Resource"] == [secret]
    other = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!other-cluster-1"
    assert not allowed(document, "secretsmanager:GetSecretValue", other)
    # It takes its requests: delete, and delete the stored version, there only.
    requests = f"arn:aws:s3:::{BUCKET}/lifecycle/requests/x.json"
    assert allowed(document, "s3:DeleteObjectVersion", requests)
    assert not allowed(document, "s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/backups/a/b.dump")
    assert not allowed(document, "s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/tenants/acme.yaml")


@pytest.mark.parametrize(
    ("role", "flags", "env", "words"),
    [
        ("admin_task", (), {"REDMICA_DB_MASTER_SECRET": None}, "db_master_secret"),
        ("admin_task", (), {"REDMICA_DB_MASTER_SECRET": "rds!cluster-1"}, "not one Secrets"),
        (
            "admin_task",
            (),
            {"REDMICA_DB_MASTER_SECRET": "arn:aws:secretsmanager:us-east-1:1234:secret:rds!*"},
            "not one Secrets",
        ),
        ("migrator", ("--backup-data",), {}, "--backup-data goes with --for operator"),
        ("operator", (), {"REDMICA_ADMIN_TASK_DEFINITION": "redmica-app:3"}, "one family"),
        (
            "operator",
            (),
            {"REDMICA_ADMIN_TASK_ROLE": "arn:aws:iam::123456789012:role/task"},
            "pass",
        ),
        ("nobody", (), {}, "'nobody' is not one of"),
    ],
)
def test_iam_policy_bad_input_exits_2_with_one_line(
    s3: S3Client,
    run: Invoke,
    role: str,
    flags: tuple[str, ...],
    env: dict[str, str | None],
    words: str,
) -> None:
    moto_service()
    code, _, stderr = iam_policy(run, role, *flags, **env)
    assert code == 2, stderr
    error = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and words in error[0], stderr


def test_iam_policy_for_the_operator_invokes_the_broker_and_denies_the_admin_task(
    s3: S3Client, run: Invoke
) -> None:
    from tests.iam_eval import allowed

    moto_service()
    code, document, stderr = iam_policy(run, "operator")
    assert code == 0, stderr
    sids = by_sid(document)
    assert sids["InvokeAdminBroker"]["Resource"] == [
        "arn:aws:lambda:us-east-1:123456789012:function:redmica-admin-broker"
    ]
    assert "arn:aws:iam::123456789012:role/admin-task" not in sids["PassTaskRoles"]["Resource"]
    assert sids["DenyPassingTheAdminRole"]["Effect"] == "Deny"
    assert sids["DenyTheAdminTaskDefinition"]["Resource"] == [
        "arn:aws:ecs:us-east-1:123456789012:task-definition/redmica-admin:*"
    ]
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!c-1"
    assert not allowed(document, "secretsmanager:GetSecretValue", secret)
    dump = f"arn:aws:s3:::{BUCKET}/backups/acme/20261128T041500Z-1a2b3c.dump"
    assert not allowed(document, "s3:GetObject", dump)
    # --backup-data: an explicit opt-in for `--executor local` lifecycle commands.
    code, with_data, stderr = iam_policy(run, "operator", "--backup-data")
    assert code == 0, stderr
    assert by_sid(with_data)["BackupData"]["Resource"] == [f"arn:aws:s3:::{BUCKET}/backups/*"]
    assert allowed(with_data, "s3:GetObject", dump) and allowed(with_data, "s3:PutObject", dump)
    # Without a broker setting the operator gets no Lambda permission at all.
    code, without, stderr = iam_policy(run, "operator", REDMICA_ADMIN_BROKER=None)
    assert code == 0 and "InvokeAdminBroker" not in by_sid(without)


def test_a_task_definition_without_roles_asks_for_pass_role() -> None:
    """The sandbox's task definitions name no role: the hint must not say "set task_definition"
    (it is set), but give --pass-role."""
    from redmica_ops.errors import UsageError
    from redmica_ops.policy import scope_for

    with pytest.raises(UsageError) as raised:
        scope_for("pipeline", **NAMES, task_definition="redmica-app", task_roles=lambda d: [])
    assert "task definition redmica-app names no task or execution role" in raised.value.message
    assert raised.value.hint is not None and "--pass-role" in raised.value.hint
    assert "set task_definition" not in raised.value.hint

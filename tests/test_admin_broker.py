"""Lifecycle admin tasks: only the broker starts them, with a fixed command; requests are
single-use and expire (issue 23, finding 5).

moto cannot run a Lambda function without Docker, so the broker runs in this process: its
handler (`aws_lambda.admin_broker`) against moto's ECS and S3, behind a stand-in Lambda client
that serialises the event and the answer as Lambda would.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.errors import RedmicaError
from redmica_ops.lifecycle.admin_task import run_admin_request
from redmica_ops.lifecycle.broker import BrokerRequest, launch_admin_task
from redmica_ops.lifecycle.steps import Step
from redmica_ops.runs.executors.ecs import EcsTarget
from redmica_ops.settings.loading import load_settings
from redmica_ops.tenants.claims import ClaimStore
from redmica_ops.tenants.model import parse_tenant
from redmica_ops.workspace import AwsWorkspace
from tests.conftest import BUCKET, tenant_yaml

REQUEST_ID = "20261128T041500Z-acme-set-admin-1a2b3c4d"
REQUEST_KEY = f"lifecycle/requests/{REQUEST_ID}.json"
# The first administrator's password as Redmine's salted SHA-1: what a request may hold.
SET_ADMIN = Step("set-admin", "acme", {"login": "alice", "hashed": "ab" * 20, "salt": "cd" * 16})


ADMIN_FAMILY = "redmica-admin"
ADMIN_ROLE = "arn:aws:iam::123456789012:role/admin-task"


def register_admin_task_definition() -> str:
    """The admin task definition: a family of its own, its role set in it (never an override),
    the master secret's ARN in its environment. Inside mock_aws, with `moto_service()`'s
    cluster."""
    ecs = boto3.client("ecs", region_name="us-east-1")
    return str(
        ecs.register_task_definition(
            family=ADMIN_FAMILY,
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            requiresCompatibilities=["FARGATE"],
            executionRoleArn="arn:aws:iam::123456789012:role/exec",
            taskRoleArn=ADMIN_ROLE,
            containerDefinitions=[{"name": "app", "image": "redmica:1", "memory": 512}],
        )["taskDefinition"]["taskDefinitionArn"]
    )


def admin_target() -> EcsTarget:
    subnet = boto3.client("ec2", region_name="us-east-1").describe_subnets()["Subnets"][0]
    return EcsTarget("prod", ADMIN_FAMILY, "app", subnets=(subnet["SubnetId"],))


class InProcessBroker:
    """An AdminLauncher that runs the broker's library function here, with its own ECS client
    (a simulator that also runs the task's code, in test_lifecycle)."""

    def __init__(self, s3: S3Client, ecs: Any) -> None:
        self.s3 = s3
        self.ecs = ecs
        self.target = admin_target()

    def launch(self, request_id: str) -> str:
        request = BrokerRequest(request_id)
        launched = launch_admin_task(
            request, self.s3, self.ecs, BUCKET, "lifecycle/", self.target, 900
        )
        return launched.task_arn


@pytest.fixture
def world(s3: S3Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Step]]:
    """A tenant (with its claims, as `tenant add` leaves it), the master secret, and `execute`
    replaced by a recorder of the steps run."""
    body = tenant_yaml("acme").encode()
    s3.put_object(Bucket=BUCKET, Key="tenants/acme.yaml", Body=body)
    claims = ClaimStore(s3, BUCKET)
    claims.take("acme", claims.claims_of(parse_tenant("acme", body, "acme.yaml")))
    executed: list[Step] = []

    def execute(step: Step, site: Any, store: Any) -> dict[str, str]:
        executed.append(step)
        return {"done": "yes"}

    monkeypatch.setattr("redmica_ops.lifecycle.admin_task.execute", execute)
    yield executed


def master_secret() -> str:
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    listed = secrets.list_secrets()["SecretList"]
    if listed:
        return str(listed[0]["ARN"])
    document = json.dumps({"username": "master", "password": "never-printed"})
    return str(secrets.create_secret(Name="rds!cluster-1", SecretString=document)["ARN"])


def put_request(s3: S3Client, step: Step = SET_ADMIN, key: str = REQUEST_KEY) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=step.to_json().encode(), IfNoneMatch="*")


def age_object(key: str, by: timedelta) -> None:
    """Make moto's stored object look written `by` ago (S3 sets LastModified, not the writer)."""
    from moto.s3.models import s3_backends

    bucket = s3_backends["123456789012"]["global"].buckets[BUCKET]
    for version in bucket.keys.getlist(key):
        version.last_modified = version.last_modified - by


# Where the lifecycle's connections may go (the tests' documents name no db.host).
DB_ENV = {"REDMICA_DB_HOST": "db.internal", "REDMICA_DB_SSL_ROOT_CERT": "/etc/ssl/rds.pem"}


def admin_task(request_id: str = REQUEST_ID, **env: str) -> Any:
    settings = load_settings(
        {},
        {"REDMICA_DB_MASTER_SECRET": master_secret(), "REDMICA_BUCKET": BUCKET, **DB_ENV, **env},
        None,
    )
    return run_admin_request(request_id, AwsWorkspace(settings))


def versions_of(s3: S3Client, key: str) -> list[str]:
    listed = s3.list_object_versions(Bucket=BUCKET, Prefix=key)
    return [str(v.get("VersionId")) for v in listed.get("Versions", []) if v.get("Key") == key]


def test_a_request_older_than_the_bound_is_refused_with_nothing_run(
    s3: S3Client, world: list[Step]
) -> None:
    put_request(s3)
    age_object(REQUEST_KEY, timedelta(hours=2))
    with pytest.raises(RedmicaError) as caught:
        admin_task()
    assert caught.value.exit_code == 2
    assert "older than" in caught.value.message
    assert world == []  # nothing ran
    result = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"lifecycle/results/{REQUEST_ID}.json")["Body"].read()
    )
    assert result["ok"] is False and "older than" in result["error"]
    # The stale request (with its password hash) is gone too.
    assert versions_of(s3, REQUEST_KEY) == []


def test_a_consumed_request_is_gone_with_every_version(s3: S3Client, world: list[Step]) -> None:
    put_request(s3)
    admin_task()
    assert world == [SET_ADMIN]
    # Not only a delete marker over it: the version holding the hash is removed.
    assert versions_of(s3, REQUEST_KEY) == []
    # Run again (a second task for the same id): nothing to run, nothing written.
    before = s3.list_objects_v2(Bucket=BUCKET, Prefix="lifecycle/results/")["KeyCount"]
    with pytest.raises(RedmicaError) as caught:
        admin_task()
    assert caught.value.exit_code == 3
    assert world == [SET_ADMIN]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="lifecycle/results/")["KeyCount"] == before


def test_a_fresh_request_within_the_bound_runs(s3: S3Client, world: list[Step]) -> None:
    put_request(s3)
    age_object(REQUEST_KEY, timedelta(minutes=5))
    admin_task()
    assert world == [SET_ADMIN]


# -- the broker -------------------------------------------------------------------------------
def broker_workspace(**env: str) -> Any:
    from redmica_ops.workspace import AwsWorkspace

    subnet = admin_target().subnets[0]
    settings = load_settings(
        {},
        {
            "REDMICA_BUCKET": BUCKET,
            "REDMICA_CLUSTER": "prod",
            "REDMICA_CONTAINER": "app",
            "REDMICA_SUBNETS": subnet,
            "REDMICA_ADMIN_TASK_DEFINITION": ADMIN_FAMILY,
            **env,
        },
        None,
    )
    return AwsWorkspace(settings)


@pytest.fixture
def cluster(s3: S3Client) -> None:
    from tests.test_deploy import moto_service

    moto_service()
    register_admin_task_definition()


def started_tasks() -> list[dict[str, Any]]:
    ecs = boto3.client("ecs", region_name="us-east-1")
    arns = ecs.list_tasks(cluster="prod")["taskArns"]
    if not arns:
        return []
    return [
        dict(t) for t in ecs.describe_tasks(cluster="prod", tasks=arns, include=["TAGS"])["tasks"]
    ]


def test_the_broker_starts_the_admin_definition_with_the_fixed_command_only(
    s3: S3Client, cluster: None
) -> None:
    from redmica_ops.aws_lambda import answer_broker_event

    put_request(s3)
    answer = answer_broker_event({"request_id": REQUEST_ID}, broker_workspace())
    assert answer["ok"] is True, answer
    assert (answer["tenant"], answer["step"]) == ("acme", "set-admin")
    (task,) = started_tasks()
    assert task["taskArn"] == answer["task_arn"]
    assert f"task-definition/{ADMIN_FAMILY}:" in task["taskDefinitionArn"]
    # The role is the task definition's; the override is the command and nothing else.
    assert task["overrides"]["containerOverrides"] == [
        {"name": "app", "command": ["admin-sql", REQUEST_ID]}
    ]
    assert "taskRoleArn" not in task["overrides"]
    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert tags == {"redmica:run": REQUEST_ID, "redmica:tenant": "acme"}
    assert task["startedBy"] == "redmica-admin-sql"
    # The broker only reads: the request is still there for the task to take.
    assert len(versions_of(s3, REQUEST_KEY)) == 1


OTHER_STEP = Step("backup", "beta", {"reason": "manual"})


@pytest.mark.parametrize(
    ("event", "prepare", "code", "words"),
    [
        # The event may not carry anything that would reach the task.
        ({"request_id": REQUEST_ID, "command": ["sh"]}, "fresh", 2, "nothing else"),
        ({"request_id": REQUEST_ID, "environment": {}}, "fresh", 2, "nothing else"),
        ({"request_id": ["x"]}, "fresh", 2, "a request_id"),
        ({}, "fresh", 2, "a request_id"),
        # An id that is not one the CLI writes (a path, another prefix).
        ({"request_id": "../../tenants/acme"}, "fresh", 2, "not an admin request id"),
        ({"request_id": "20261128T041500Z-acme-x/1a2b3c4d"}, "fresh", 2, "not an admin"),
        ({"request_id": REQUEST_ID}, "missing", 3, "not found"),
        ({"request_id": REQUEST_ID}, "old", 2, "older than"),
        # The id names acme's set-admin; the object holds beta's backup.
        ({"request_id": REQUEST_ID}, "other", 2, "not what its id names"),
        ({"request_id": REQUEST_ID}, "garbage", 2, "unknown lifecycle step"),
        ({"request_id": REQUEST_ID}, "notjson", 2, "not a lifecycle step"),
    ],
)
def test_the_broker_refuses_and_starts_nothing(
    s3: S3Client, cluster: None, event: dict[str, Any], prepare: str, code: int, words: str
) -> None:
    from redmica_ops.aws_lambda import answer_broker_event

    if prepare in ("fresh", "old"):
        put_request(s3)
    if prepare == "old":
        age_object(REQUEST_KEY, timedelta(seconds=901))
    if prepare == "other":
        put_request(s3, OTHER_STEP)
    if prepare == "garbage":
        s3.put_object(Bucket=BUCKET, Key=REQUEST_KEY, Body=b'{"step": "rm -rf"}')
    if prepare == "notjson":
        s3.put_object(Bucket=BUCKET, Key=REQUEST_KEY, Body=b"admin-sql; sh")
    answer = answer_broker_event(event, broker_workspace())
    assert answer["ok"] is False
    assert answer["exit_code"] == code, answer
    assert words in str(answer["error"]), answer
    assert started_tasks() == []


def test_the_lambda_handler_reads_its_settings_from_the_environment(
    s3: S3Client, cluster: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redmica_ops import aws_lambda

    ws = broker_workspace()
    for name, value in {
        "REDMICA_BUCKET": BUCKET,
        "REDMICA_CLUSTER": "prod",
        "REDMICA_CONTAINER": "app",
        "REDMICA_SUBNETS": ws.settings.subnets[0],
        "REDMICA_ADMIN_TASK_DEFINITION": ADMIN_FAMILY,
    }.items():
        monkeypatch.setenv(name, value)
    put_request(s3)
    answer = aws_lambda.admin_broker({"request_id": REQUEST_ID})
    assert answer["ok"] is True and len(started_tasks()) == 1
    # Without the admin task definition it refuses (exit 2), naming the setting.
    monkeypatch.delenv("REDMICA_ADMIN_TASK_DEFINITION")
    refused = aws_lambda.admin_broker({"request_id": REQUEST_ID})
    assert refused["exit_code"] == 2 and "admin_task_definition" in str(refused["error"])


# -- the operator's side: the Lambda client -----------------------------------------------------
class FakeLambda:
    """A Lambda client whose function answers with `answer(event)`, serialised both ways."""

    def __init__(self, answer: Any, function_error: bool = False) -> None:
        self.answer = answer
        self.function_error = function_error
        self.events: list[Any] = []

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        import io

        assert InvocationType == "RequestResponse"
        event = json.loads(Payload)
        self.events.append(event)
        body = json.dumps(self.answer(event)).encode()
        response: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(body)}
        if self.function_error:
            response["FunctionError"] = "Unhandled"
        return response


def test_the_launcher_sends_the_id_alone_and_brings_refusals_back_with_their_exit_code() -> None:
    from redmica_ops.errors import NotFound, OperationFailed, UsageError
    from redmica_ops.lifecycle.broker import LambdaLauncher

    ok = FakeLambda(lambda event: {"ok": True, "task_arn": "arn:task/1"})
    assert LambdaLauncher(ok, "broker").launch(REQUEST_ID) == "arn:task/1"
    assert ok.events == [{"request_id": REQUEST_ID}]
    for code, error in ((2, UsageError), (3, NotFound), (1, OperationFailed)):
        refusal = {"ok": False, "error": "no", "hint": "h", "exit_code": code}
        with pytest.raises(error) as caught:
            LambdaLauncher(FakeLambda(lambda event, r=refusal: r), "broker").launch(REQUEST_ID)
        assert caught.value.exit_code == code and caught.value.hint == "h"
    crashed = FakeLambda(lambda event: {"errorMessage": "boom"}, function_error=True)
    with pytest.raises(OperationFailed, match="the admin broker broker failed: boom"):
        LambdaLauncher(crashed, "broker").launch(REQUEST_ID)


# -- the CLI: `--executor ecs` goes through the broker --------------------------------------------
class AdminTasksRun:
    """moto's ECS client, except that a started admin task runs `entrypoint admin-sql`'s code
    here, as Fargate would run it (with the recorder `execute` of the `world` fixture)."""

    def __init__(self) -> None:
        self.ecs = boto3.client("ecs", region_name="us-east-1")
        self.started: list[dict[str, Any]] = []

    def run_task(self, **params: Any) -> Any:
        self.started.append(params)
        response = self.ecs.run_task(**params)
        request_id = params["overrides"]["containerOverrides"][0]["command"][1]
        with contextlib.suppress(RedmicaError):  # its result object says why
            admin_task(request_id)
        return response


def serve_broker(app: Any, answer: Any) -> list[Any]:
    """Answer the app's Lambda Invoke calls with `answer(event)` (the broker run in this
    process), short-circuiting botocore's HTTP call the way botocore's Stubber does."""
    import io

    from botocore.awsrequest import AWSResponse, HTTPHeaders
    from botocore.response import StreamingBody

    events: list[Any] = []

    def on_invoke(params: dict[str, Any], **kwargs: Any) -> Any:
        event = json.loads(params["body"])
        events.append(event)
        body = json.dumps(answer(event)).encode()
        parsed = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
        return AWSResponse("https://lambda.invalid", 200, HTTPHeaders(), None), parsed

    app.workspace().clients().client("lambda").meta.events.register(
        "before-call.lambda.Invoke", on_invoke
    )
    return events


def operator_app(**env: str) -> Any:
    import os

    from redmica_ops.cli.app import Application
    from redmica_ops.runs.pacing import FakeClock

    app = Application(
        env={
            **os.environ,
            "REDMICA_BUCKET": BUCKET,
            "REDMICA_CLUSTER": "prod",
            "REDMICA_TASK_DEFINITION": "redmica-app",
            "REDMICA_CONTAINER": "app",
            "REDMICA_SUBNETS": admin_target().subnets[0],
            "REDMICA_POLL_INTERVAL": "1",
            **DB_ENV,
            **env,
        }
    )
    app.make_clock = lambda cancellation: FakeClock()
    return app


BACKUP_SUMMARY = {"backup": "b1", "size": 1, "tables": 1, "rows": 2, "key": "k", "sha256": "0"}


def test_the_operator_starts_admin_tasks_only_through_the_broker(
    s3: S3Client, cluster: None, world: list[Step], run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def execute(step: Step, site: Any, store: Any) -> dict[str, object]:
        world.append(step)
        return dict(BACKUP_SUMMARY)

    monkeypatch.setattr("redmica_ops.lifecycle.admin_task.execute", execute)
    app = operator_app(REDMICA_ADMIN_BROKER="redmica-admin-broker")
    own_run_tasks: list[Any] = []
    app.workspace().clients().ecs().meta.events.register(
        "before-parameter-build.ecs.RunTask", lambda params, **kw: own_run_tasks.append(params)
    )
    tasks = AdminTasksRun()
    broker = InProcessBroker(boto3.client("s3", region_name="us-east-1"), tasks)
    events = serve_broker(app, lambda event: {"ok": True, "task_arn": broker.launch(**event)})
    result = run("tenant", "backup", "acme", "--executor", "ecs", "-O", "json", app=app)
    assert result.exit_code == 0, result.output
    assert result.json()["backup"] == "b1"
    assert [step.name for step in world] == ["backup"]
    # The operator's own credentials started nothing: the broker did, with the id alone.
    assert own_run_tasks == []
    (event,) = events
    assert list(event) == ["request_id"]
    (started,) = tasks.started
    assert started["taskDefinition"] == ADMIN_FAMILY
    assert started["overrides"] == {
        "containerOverrides": [{"name": "app", "command": ["admin-sql", event["request_id"]]}]
    }
    # The request was taken by the task; its result is what the CLI read.
    assert versions_of(s3, f"lifecycle/requests/{event['request_id']}.json") == []


def test_executor_ecs_without_a_broker_is_refused_before_anything_is_written(
    s3: S3Client, cluster: None, run: Any
) -> None:
    s3.put_object(Bucket=BUCKET, Key="tenants/acme.yaml", Body=tenant_yaml("acme").encode())
    before = s3.list_object_versions(Bucket=BUCKET).get("Versions", [])
    result = run("tenant", "backup", "acme", "--executor", "ecs", app=operator_app())
    assert result.exit_code == 2, result.output
    assert "admin_broker" in result.stderr and "REDMICA_ADMIN_BROKER" in result.stderr
    assert s3.list_object_versions(Bucket=BUCKET).get("Versions", []) == before
    assert started_tasks() == []


def deny_gets(ws: Any) -> None:
    """GetObject answers AccessDenied as real S3 does for a missing key (or a denied one)."""

    class Denied:
        status_code = 403

    def handler(params: dict[str, Any], **_: Any) -> Any:
        error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
        return Denied(), {**error, "ResponseMetadata": {"HTTPStatusCode": 403}}

    ws.clients().s3().meta.events.register("before-call.s3.GetObject", handler)


@pytest.mark.parametrize(
    ("prepare", "code", "words"), [("missing", 3, "not found"), ("fresh", 5, "access denied")]
)
def test_a_missing_request_is_not_found_even_where_s3_says_access_denied(
    s3: S3Client, cluster: None, prepare: str, code: int, words: str
) -> None:
    """Real S3 answers AccessDenied for a missing key unless s3:ListBucket covers it: the broker
    lists the request's own key; a request that is there but unreadable stays access denied."""
    from redmica_ops.aws_lambda import answer_broker_event

    if prepare == "fresh":
        put_request(s3)
    ws = broker_workspace()
    deny_gets(ws)
    answer = answer_broker_event({"request_id": REQUEST_ID}, ws)
    assert answer["ok"] is False
    assert answer["exit_code"] == code, answer
    assert words in str(answer["error"]), answer
    assert started_tasks() == []

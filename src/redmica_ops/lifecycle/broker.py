"""The admin broker: the one way an operator starts a lifecycle admin task.

RunTask's container overrides (command, environment, environmentFiles) cannot be limited by
IAM: RunTask's condition keys name the cluster, capacity provider, ECS Exec, EBS volumes and
tags, nothing of the overrides. Whoever may start a task with the admin task's role can
therefore run any command as it and read the database master secret. So operators hold no
RunTask on the admin task definition and no iam:PassRole for its roles: they write a request
object (`<lifecycle_prefix>requests/ID.json`) and invoke the broker, a Lambda function
(`aws_lambda.admin_broker`) whose role may start that one task definition. The broker takes a
request id and nothing else, checks it (its form, that the request exists, is younger than
`admin_request_max_age` and is a known step for the tenant and step its id names), and starts
the admin task definition with the fixed command `admin-sql ID`: no environment, no role, no
other override. The admin task checks the request again, consumes it (a conditional delete,
then its stored version) and refuses one that is too old.

`launch_admin_task` is the broker's side; `LambdaLauncher` is the operator's (EcsRunner calls
it); `fetch_request`, `consume` and `check_fresh` are the admin task's too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, cast

from botocore.exceptions import ClientError

from redmica_ops.aws import error_code, translate_errors
from redmica_ops.errors import Conflict, NotFound, OperationFailed, UsageError, error_from_dict
from redmica_ops.lifecycle.steps import Step, request_key
from redmica_ops.runs.executors import Job
from redmica_ops.runs.executors.ecs import RUN_TAG, TENANT_TAG, EcsTarget, run_task_params

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_s3 import S3Client

# What `steps.new_request_id` makes: <UTC stamp>-<tenant>-<step>-<8 hex>. No '/', no '.': the id
# becomes part of an object key and of the task's command.
REQUEST_ID = re.compile(r"\d{8}T\d{6}Z-[a-z0-9][a-z0-9-]{0,100}-[0-9a-f]{8}")
STARTED_BY = "redmica-admin-sql"
# The only field of a broker event: anything else is refused, never passed on.
EVENT_FIELDS = frozenset({"request_id"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_request_id(request_id: str) -> None:
    if not REQUEST_ID.fullmatch(request_id):
        raise UsageError(
            f"{request_id[:80]!r} is not an admin request id",
            "ids look like 20261128T041500Z-acme-backup-1a2b3c4d (written by the CLI)",
        )


@dataclass(frozen=True)
class PendingRequest:
    """A request object as read: the step, and what identifies exactly this version of it."""

    request_id: str
    step: Step
    etag: str
    version_id: str | None
    written_at: datetime

    def age(self, now: datetime) -> float:
        return (now - self.written_at).total_seconds()


def fetch_request(s3: S3Client, bucket: str, prefix: str, request_id: str) -> PendingRequest:
    """Read `request_id`'s request; its step must be the tenant and step its id names."""
    check_request_id(request_id)
    key = request_key(prefix, request_id)
    action = f"reading s3://{bucket}/{key}"
    with translate_errors(action, bucket):
        try:
            response = s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in ("AccessDenied", "403") and absent(s3, bucket, key):
                raise NotFound(f"not found while {action}") from None
            raise
        body = response["Body"].read()
    try:
        step = Step.from_json(body.decode("utf-8"))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"request {request_id} is not a lifecycle step") from None
    named = request_id.split("-", 1)[1].rsplit("-", 1)[0]  # between the stamp and the random
    if named != f"{step.tenant}-{step.name}":
        raise UsageError(
            f"request {request_id} holds a {step.name} step for {step.tenant!r}, not what its "
            "id names; nothing was run"
        )
    return PendingRequest(
        request_id,
        step,
        str(response["ETag"]),
        response.get("VersionId"),
        response["LastModified"],
    )


def absent(s3: S3Client, bucket: str, key: str) -> bool:
    """Whether a listing of `key`'s own prefix shows no such object. Real S3 answers a
    GetObject of a missing key with AccessDenied, not NoSuchKey, unless the caller's s3:ListBucket
    covers that key; the broker's and the admin task's hold it only for the requests' folder
    (policy.py), which S3 may not apply to that implicit check. A listing that is itself
    refused proves nothing: the original error stands."""
    try:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except ClientError:
        return False
    return not any(found.get("Key") == key for found in listed.get("Contents", []))


def check_fresh(pending: PendingRequest, now: datetime, max_age: int) -> None:
    """Refuse a request written more than `max_age` seconds ago (S3's LastModified)."""
    age = pending.age(now)
    if age > max_age:
        raise UsageError(
            f"request {pending.request_id} is older than {max_age}s "
            f"(written {pending.written_at:%Y-%m-%dT%H:%M:%SZ}); nothing was run",
            "requests are single-use and expire (setting admin_request_max_age): run the "
            "command again",
        )


def consume(s3: S3Client, bucket: str, prefix: str, pending: PendingRequest) -> None:
    """Remove the request before its step runs, so it is used once.

    First a delete conditional on the ETag read (a second task for the same request, or a
    request rewritten since, gets a refusal and runs nothing); then, in a versioned bucket, the
    version that was read, so the step (a password hash, for set-admin) does not stay behind as
    a noncurrent version until the bucket's lifecycle rule expires it.
    """
    key = request_key(prefix, pending.request_id)
    try:
        with translate_errors(f"taking the request s3://{bucket}/{key}", bucket):
            s3.delete_object(Bucket=bucket, Key=key, IfMatch=pending.etag)
    except (NotFound, Conflict):
        raise Conflict(
            f"request {pending.request_id} was taken or changed by someone else; nothing was run"
        ) from None
    if pending.version_id and pending.version_id != "null":
        with translate_errors(f"removing the taken request s3://{bucket}/{key}", bucket):
            s3.delete_object(Bucket=bucket, Key=key, VersionId=pending.version_id)


# -- the broker ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BrokerRequest:
    request_id: str

    @classmethod
    def from_event(cls, event: Mapping[str, object]) -> BrokerRequest:
        unknown = sorted(set(event) - EVENT_FIELDS)
        if unknown:
            raise UsageError(
                f"the admin broker takes a request_id and nothing else (got {unknown})",
                "the command, environment and role of an admin task are fixed",
            )
        request_id = event.get("request_id")
        if not isinstance(request_id, str):
            raise UsageError("the admin broker needs a request_id (a string)")
        return cls(request_id)


@dataclass(frozen=True)
class BrokerLaunch:
    request_id: str
    task_arn: str
    tenant: str
    step: str

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": True,
            "request_id": self.request_id,
            "task_arn": self.task_arn,
            "tenant": self.tenant,
            "step": self.step,
        }


def admin_run_task_params(target: EcsTarget, pending: PendingRequest) -> dict[str, object]:
    """RunTask of the admin task definition: the fixed command, tags, no other override.

    The clientToken derives from the request id, so a retried invocation never starts a
    second task; the tags let the operator find the task and stop it (StopTask is allowed on
    tagged tasks only).
    """
    params: dict[str, object] = run_task_params(
        target, Job(pending.step.tenant, 1, []), pending.request_id
    )
    params["overrides"] = {
        "containerOverrides": [
            {"name": target.container, "command": ["admin-sql", pending.request_id]}
        ]
    }
    params["startedBy"] = STARTED_BY
    params["tags"] = [
        {"key": RUN_TAG, "value": pending.request_id},
        {"key": TENANT_TAG, "value": pending.step.tenant},
    ]
    return params


def launch_admin_task(
    request: BrokerRequest,
    s3: S3Client,
    ecs: ECSClient,
    bucket: str,
    prefix: str,
    target: EcsTarget,
    max_age: int,
    now: Callable[[], datetime] = utc_now,
) -> BrokerLaunch:
    """Check the request, then start the admin task for it (the broker's one verb)."""
    pending = fetch_request(s3, bucket, prefix, request.request_id)
    check_fresh(pending, now(), max_age)
    params = admin_run_task_params(target, pending)
    with translate_errors(f"starting the admin task for {pending.step.tenant}"):
        response = ecs.run_task(**params)  # type: ignore[arg-type]
    tasks = response.get("tasks", [])
    if not tasks:
        reasons = "; ".join(str(f.get("reason")) for f in response.get("failures", []))
        raise OperationFailed(f"ECS did not start the admin task: {reasons or 'no task'}")
    return BrokerLaunch(
        pending.request_id, tasks[0]["taskArn"], pending.step.tenant, pending.step.name
    )


# -- the operator's side ---------------------------------------------------------------------
class LambdaInvoker(Protocol):
    """The one call of boto3's Lambda client used here."""

    def invoke(
        self, *, FunctionName: str, InvocationType: str, Payload: bytes
    ) -> Mapping[str, object]: ...


class Readable(Protocol):
    def read(self) -> bytes: ...


class LambdaLauncher:
    """Starts an admin task by invoking the broker function with the request id alone."""

    def __init__(self, client: LambdaInvoker, function: str) -> None:
        self.client = client
        self.function = function

    def launch(self, request_id: str) -> str:
        payload = json.dumps({"request_id": request_id}).encode()
        with translate_errors(f"invoking the admin broker {self.function}"):
            response = self.client.invoke(
                FunctionName=self.function, InvocationType="RequestResponse", Payload=payload
            )
        body = cast(Readable, response["Payload"]).read()
        try:
            data = json.loads(body or b"null")
        except ValueError:
            data = None
        if response.get("FunctionError") or not isinstance(data, dict):
            detail = data.get("errorMessage") if isinstance(data, dict) else None
            raise OperationFailed(
                f"the admin broker {self.function} failed: {detail or 'no answer'}",
                "see the broker function's log (CloudWatch Logs)",
            )
        if data.get("ok") is True and isinstance(data.get("task_arn"), str):
            return str(data["task_arn"])
        raise error_from_dict(data, "the admin broker refused the request")

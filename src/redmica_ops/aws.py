"""The one place that creates AWS clients, and the one place that explains AWS errors.

Tests swap the factory (or point it at moto); commands never call boto3 themselves. boto3 is
imported inside functions so that offline commands (`--help`, `tenant validate`) start fast.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redmica_ops import __version__
from redmica_ops.errors import AwsError, Conflict, NotFound, RedmicaError

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

    from redmica_ops.settings import Settings

IAM_HINT = "check the caller's IAM permissions (`redmica iam-policy --for operator`)"

# Called with (service, operation) for every AWS call made through ClientFactory clients. The
# IAM policy tests use it to derive the operations each role really calls.
CallRecorder = Callable[[str, str], None]
CALL_RECORDERS: list[CallRecorder] = []


def _record_call(params: Any, model: Any, **_: Any) -> None:
    operation = model.name
    # S3 authorises these with another action when they name a version.
    named_version = isinstance(params, dict) and bool(params.get("VersionId"))
    if operation in ("GetObject", "DeleteObject") and named_version:
        operation = f"{operation}Version"
    for recorder in list(CALL_RECORDERS):
        recorder(model.service_model.service_name, operation)


class ClientFactory:
    """Builds boto3 clients from the settings: profile, region, endpoint, retries."""

    def __init__(self, settings: Settings, max_pool_connections: int = 32) -> None:
        self.settings = settings
        self.max_pool_connections = max_pool_connections
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _boto_session(self) -> Any:
        import boto3

        if self._session is None:
            with translate_errors("starting an AWS session"):
                self._session = boto3.session.Session(
                    profile_name=self.settings.profile, region_name=self.settings.region
                )
        return self._session

    def client(self, service: str) -> BaseClient:
        """A client for any service (typed callers use `s3()`, `ecs()`, `sts()`, ...)."""
        client: BaseClient = self._client(service)
        return client

    def _client(self, service: str, rollouts: bool = False, within: float | None = None) -> Any:
        # boto3 clients are thread-safe; sessions are not, hence the lock around creation.
        key = f"{service}:rollouts:{within}" if rollouts else service
        with self._lock:
            if key not in self._clients:
                from botocore.config import Config

                if rollouts:
                    # One attempt per call and short socket timeouts: the deploy gateway
                    # retries itself within its rollout's deadline (deploy/gateway.py).
                    retries: dict[str, Any] = {"mode": "standard", "total_max_attempts": 1}
                    connect, read = 5.0, 20.0
                    if within is not None:
                        # A socket timeout is per call, not per rollout: a hung endpoint held
                        # each call 20 s, past a `--timeout 4` (81 s in a trial). Never longer
                        # than the deadline the calls serve (and never 0: botocore's "wait").
                        connect, read = (max(0.5, min(t, within)) for t in (connect, read))
                elif service == "ecs":
                    # ECS throttles per account and region: adaptive mode also slows the client
                    # down after throttling, on top of our own launch pacing.
                    retries = {"mode": "adaptive", "max_attempts": 10}
                    connect, read = 10.0, 60.0
                else:
                    retries, connect, read = {"mode": "standard", "max_attempts": 8}, 10.0, 60.0
                config = Config(
                    retries=retries,  # type: ignore[arg-type]
                    max_pool_connections=self.max_pool_connections,
                    user_agent_extra=f"redmica-ops/{__version__}",
                    connect_timeout=connect,
                    read_timeout=read,
                )
                with translate_errors(f"creating the {service} client"):
                    client = self._boto_session().client(
                        service, endpoint_url=self.settings.endpoint_url, config=config
                    )
                client.meta.events.register("before-parameter-build", _record_call)
                self._clients[key] = client
            return self._clients[key]

    def s3(self) -> S3Client:
        client: S3Client = self._client("s3")
        return client

    def sts(self) -> STSClient:
        client: STSClient = self._client("sts")
        return client

    def route53(self) -> Route53Client:
        client: Route53Client = self._client("route53")
        return client

    def elbv2(self) -> ElasticLoadBalancingv2Client:
        client: ElasticLoadBalancingv2Client = self._client("elbv2")
        return client

    def secretsmanager(self) -> SecretsManagerClient:
        client: SecretsManagerClient = self._client("secretsmanager")
        return client

    def ssm(self) -> SSMClient:
        client: SSMClient = self._client("ssm")
        return client

    def ecs(self) -> ECSClient:
        client: ECSClient = self._client("ecs")
        return client

    def cloudformation(self) -> CloudFormationClient:
        client: CloudFormationClient = self._client("cloudformation")
        return client

    def ecs_rollouts(self, within: float | None = None) -> ECSClient:
        """The ECS client of the deploy verbs: no SDK retries, short socket timeouts (their
        gateway retries within the rollout's deadline); `within`: no call's connect or read
        timeout longer than that many seconds (the deadline the calls serve)."""
        client: ECSClient = self._client("ecs", rollouts=True, within=within)
        return client


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code", "")
    if not code:
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(status or "")
    return str(code)


_CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidToken",
}
_ACCESS_CODES = {"AccessDenied", "AccessDeniedException", "403", "AllAccessDisabled"}
_THROTTLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "SlowDown",
    "RequestLimitExceeded",
    "TooManyRequestsException",
}


@contextmanager
def translate_errors(action: str, bucket: str | None = None) -> Iterator[None]:
    """Turn botocore exceptions into one-line errors with a hint and an exit code.

    `action` says what we were doing ("reading s3://b/k"); it must not contain secrets.
    """
    try:
        yield
    except RedmicaError:
        raise
    except Exception as exc:
        translated = translate(exc, action, bucket)
        if translated is None:
            raise
        raise translated from exc


def translate(exc: Exception, action: str, bucket: str | None = None) -> RedmicaError | None:
    """The operator-facing error for a botocore exception, or None if it is not one."""
    from botocore import exceptions as bce

    if isinstance(exc, bce.ClientError):
        return _client_error(error_code(exc), action, bucket)
    if isinstance(exc, bce.BotoCoreError):
        return _botocore_error(exc, action)
    return None


def _botocore_error(exc: Exception, action: str) -> RedmicaError:
    """An error before AWS answered: credentials, profile, region, network."""
    from botocore import exceptions as bce

    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return AwsError(
            f"no AWS credentials found while {action}",
            "set AWS_PROFILE or --profile, run `aws configure` / `aws sso login`, "
            "or use the sandbox: see `redmica sandbox --help`",
        )
    if isinstance(exc, bce.ProfileNotFound):
        return AwsError(
            f"AWS profile not found: {exc.kwargs.get('profile')}",
            "list profiles with `aws configure list-profiles`",
        )
    if isinstance(exc, bce.NoRegionError):
        return AwsError(
            f"no AWS region configured while {action}", "set --region, REDMICA_REGION or AWS_REGION"
        )
    if isinstance(exc, bce.TokenRetrievalError | bce.SSOTokenLoadError):
        return AwsError(f"AWS SSO session expired while {action}", "run `aws sso login`")
    if isinstance(exc, bce.EndpointConnectionError | bce.ConnectTimeoutError):
        return AwsError(
            f"cannot reach the AWS endpoint while {action}",
            "check the network, --endpoint-url / AWS_ENDPOINT_URL, or that the sandbox is running",
        )
    if isinstance(exc, bce.ReadTimeoutError):
        return AwsError(f"AWS did not answer in time while {action}", "try again")
    return AwsError(f"AWS error while {action}: {type(exc).__name__}", "run with --debug")


def _client_error(code: str, action: str, bucket: str | None) -> RedmicaError:
    """An error AWS answered with, by its code."""
    if code in ("NoSuchBucket",):
        return AwsError(
            f"bucket {bucket!r} does not exist (while {action})",
            "check --bucket / REDMICA_BUCKET / CONFIG_BUCKET_NAME and the region",
        )
    if code == "ClusterNotFoundException":
        return NotFound(
            f"ECS cluster not found while {action}",
            "check the cluster setting (REDMICA_CLUSTER) and the region; "
            "`aws ecs list-clusters` lists the clusters",
        )
    if code in ("ServiceNotFoundException", "ServiceNotActiveException"):
        return NotFound(
            f"ECS service not found or not active while {action}",
            "check the service and cluster settings (REDMICA_SERVICE, REDMICA_CLUSTER) and the "
            "region; `aws ecs list-services --cluster CLUSTER` lists the services",
        )
    if code in ("NoSuchKey", "404", "NotFound", "NoSuchVersion"):
        return NotFound(f"not found while {action}")
    if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
        return Conflict(
            f"changed by someone else while {action}",
            "read it again and retry; nothing was overwritten",
        )
    return _denied_or_other(code, action, bucket)


def _denied_or_other(code: str, action: str, bucket: str | None) -> RedmicaError:
    if code in _ACCESS_CODES:
        return AwsError(f"access denied while {action}", IAM_HINT)
    if code in _CREDENTIAL_CODES:
        return AwsError(
            f"AWS rejected the credentials while {action} ({code})",
            "refresh the credentials (`aws sso login`, new keys) or check the profile",
        )
    if code in _THROTTLE_CODES:
        return AwsError(
            f"AWS kept throttling while {action}; retries exhausted",
            "try again in a minute or lower the concurrency",
        )
    if code == "InvalidBucketName":
        return AwsError(f"invalid bucket name {bucket!r}", "check --bucket")
    if code in ("KMS.NotFoundException", "KMS.DisabledException", "KMSInvalidStateException"):
        return AwsError(
            f"the KMS key cannot be used while {action} ({code})",
            "check kms_key_id and the key's policy",
        )
    return AwsError(f"AWS error {code or 'unknown'} while {action}", "run with --debug for details")


# -- conditional object writes -----------------------------------------------------------------

HASH_METADATA = "redmica-sha256"  # S3 returns it as x-amz-meta-redmica-sha256


def content_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class PutResult:
    etag: str
    version_id: str | None
    # True when the PUT answered 412 but the object holds exactly our bytes: a retry of a
    # write whose first response was lost (the SDK retried after the server applied it).
    replayed: bool = False


def put_object_once(
    s3: S3Client,
    bucket: str,
    key: str,
    body: bytes,
    *,
    if_match: str | None = None,
    content_type: str = "application/octet-stream",
    kms_key_id: str | None = None,
    action: str,
) -> PutResult:
    """A conditional PUT (If-Match ETAG, else If-None-Match *) that is safe to retry.

    The body's SHA-256 goes into the object's metadata. When S3 answers 412, the object is read
    back (HEAD): if it carries our hash, our own earlier attempt was applied and this is success;
    otherwise someone else wrote it and `Conflict` is raised. Every write is conditional.
    """
    digest = content_hash(body)
    kwargs: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "Body": body,
        "ContentType": content_type,
        "Metadata": {HASH_METADATA: digest},
    }
    if if_match:
        kwargs["IfMatch"] = if_match
    else:
        kwargs["IfNoneMatch"] = "*"
    if kms_key_id:
        kwargs["ServerSideEncryption"] = "aws:kms"
        kwargs["SSEKMSKeyId"] = kms_key_id
    try:
        with translate_errors(action, bucket):
            response = s3.put_object(**kwargs)
    except Conflict:
        current = head_object(s3, bucket, key, action)
        if current is not None and current.get("Metadata", {}).get(HASH_METADATA) == digest:
            return PutResult(current["ETag"], current.get("VersionId"), replayed=True)
        raise
    return PutResult(response["ETag"], response.get("VersionId"))


def head_object(s3: S3Client, bucket: str, key: str, action: str) -> HeadObjectOutputTypeDef | None:
    """The object's HEAD response, or None when there is none."""
    try:
        with translate_errors(action, bucket):
            return s3.head_object(Bucket=bucket, Key=key)
    except NotFound:
        return None


def delete_object_if(s3: S3Client, bucket: str, key: str, etag: str, *, action: str) -> str | None:
    """Delete `key` only if it still has `etag` (If-Match); return the delete marker's version.

    A 412 means someone changed it since it was read: `Conflict`, nothing removed. Gone already
    (404, e.g. the retry of a delete whose response was lost) counts as done.
    """
    try:
        with translate_errors(action, bucket):
            response = s3.delete_object(Bucket=bucket, Key=key, IfMatch=etag)
    except NotFound:
        return None
    return response.get("VersionId")

"""The thin ECS gateway of the deploy verbs: each method is one or two API calls, no decisions.

Errors are translated into redmica's (one-line message, hint, exit code) here, once.

Retries are ours, not the SDK's (the rollouts' ECS client makes one attempt per call, see
`aws.ClientFactory.ecs_rollouts`): a throttled or failed call is tried again with back-off on the
workspace's clock, and never past the deadline of the rollout it serves (`deadline`), so a
deploy's `--timeout` bounds every call it makes (the SDK's own back-off, 10 attempts on a 500,
took 28 s under `--timeout 5`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from redmica_ops.aws import error_code, translate_errors
from redmica_ops.deploy.model import ServiceTarget, revision_name
from redmica_ops.errors import AwsError, NotFound

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import (
        DeploymentConfigurationUnionTypeDef,
        ListTaskDefinitionsResponseTypeDef,
        ServiceDeploymentTypeDef,
        ServiceTypeDef,
        TagTypeDef,
        TaskDefinitionTypeDef,
        TaskTypeDef,
    )

    from redmica_ops.runs.pacing import Clock

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
)
# Worth another attempt: throttling, ECS's own failures, a connection that failed or hung.
RETRYABLE_CODES = THROTTLING_CODES | frozenset(
    {
        "ServerException",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "500",
        "502",
        "503",
        "504",
    }
)
ATTEMPTS = 8  # without a deadline (status, a revision's registration): as the SDK did
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 8.0


class DeadlinePassed(AwsError):
    """A call still failing when the rollout's deadline came: the waiting loop turns it into
    a timed-out rollout (and rolls back); elsewhere it is the AWS error it was."""


def retryable(exc: BaseException, codes: frozenset[str] = RETRYABLE_CODES) -> bool:
    from botocore import exceptions as bce

    if isinstance(exc, bce.ConnectionError | bce.ReadTimeoutError | bce.ConnectTimeoutError):
        return True
    return error_code(exc) in codes


class ServiceGateway:
    def __init__(self, ecs: ECSClient, target: ServiceTarget, clock: Clock) -> None:
        self.ecs = ecs
        self.target = target
        self.clock = clock  # the workspace's: back-off never sleeps in tests
        # The clock time no call may run past (set by the rollout it serves); None: ATTEMPTS.
        self.deadline: float | None = None
        self._no_service_deployments = False

    def call(
        self, action: str, request: Callable[[], T], codes: frozenset[str] = RETRYABLE_CODES
    ) -> T:
        """`request()`, tried again on a retryable failure (an error code in `codes`, a
        connection that failed) with back-off, within the deadline; the last failure translated
        (DeadlinePassed when the deadline cut the retries short)."""
        attempt = 0
        if self.deadline is not None and self.deadline - self.clock.now() <= 0:
            # Not even one attempt: a call that starts after the deadline ends after it.
            raise DeadlinePassed(
                f"the rollout's time was up before {action}",
                "check ECS's health and `redmica status`; try again later",
            )
        while True:
            attempt += 1
            try:
                with translate_errors(action):
                    return request()
            except Exception as exc:
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                if not retryable(cause, codes):
                    raise
                delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (attempt - 1))
                if self.deadline is None:
                    if attempt >= ATTEMPTS:
                        raise
                else:
                    left = self.deadline - self.clock.now()
                    if left <= 0:
                        raise DeadlinePassed(
                            f"ECS still failing ({error_code(cause) or type(cause).__name__}) "
                            f"when the rollout's time was up, while {action}",
                            "check ECS's health and `redmica status`; try again later",
                        ) from cause
                    delay = min(delay, left)
                self.clock.sleep(delay)

    def service(self) -> ServiceTypeDef:
        t = self.target
        response = self.call(
            f"describing ECS service {t.service} in {t.cluster}",
            lambda: self.ecs.describe_services(cluster=t.cluster, services=[t.service]),
        )
        services = [s for s in response.get("services", []) if s.get("status") != "INACTIVE"]
        if not services:
            raise NotFound(
                f"ECS service {t.service!r} not found in cluster {t.cluster!r}",
                "check the service and cluster settings (REDMICA_SERVICE, "
                "REDMICA_CLUSTER) and the region",
            )
        return services[0]

    def task_definition(self, arn: str) -> tuple[TaskDefinitionTypeDef, list[TagTypeDef]]:
        response = self.call(
            f"describing task definition {arn}",
            lambda: self.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]),
        )
        return response["taskDefinition"], list(response.get("tags", []))

    def register(self, params: dict[str, object], family: str) -> TaskDefinitionTypeDef:
        # One attempt: a retried registration after a lost answer would register twice.
        with translate_errors(f"registering a new revision of {family}"):
            response = self.ecs.register_task_definition(**params)  # type: ignore[arg-type]
        return response["taskDefinition"]

    def update_service(
        self,
        config: DeploymentConfigurationUnionTypeDef,
        task_definition: str | None,
        force: bool,
    ) -> ServiceTypeDef:
        t = self.target
        # One attempt, as a registration: a retried forced deployment would start a second one.
        with translate_errors(f"updating ECS service {t.service}"):
            if task_definition:
                response = self.ecs.update_service(
                    cluster=t.cluster,
                    service=t.service,
                    deploymentConfiguration=config,
                    taskDefinition=task_definition,
                    forceNewDeployment=force,
                )
            else:
                response = self.ecs.update_service(
                    cluster=t.cluster,
                    service=t.service,
                    deploymentConfiguration=config,
                    forceNewDeployment=force,
                )
        return response["service"]

    def stopped_tasks(self, started_by: str, limit: int) -> list[TaskTypeDef]:
        """The service's stopped tasks that `started_by` (a deployment's id) started."""
        t = self.target
        arns = self.call(
            "listing stopped tasks",
            lambda: self.ecs.list_tasks(
                cluster=t.cluster, serviceName=t.service, desiredStatus="STOPPED"
            ).get("taskArns", []),
        )[:100]  # DescribeTasks takes 100
        if not arns:
            return []
        tasks = self.call(
            "describing stopped tasks",
            lambda: self.ecs.describe_tasks(cluster=t.cluster, tasks=arns).get("tasks", []),
        )
        return [task for task in tasks if task.get("startedBy") == started_by][:limit]

    def service_deployments(self, since: datetime) -> list[ServiceDeploymentTypeDef] | None:
        """The service deployments (ECS API since 2024-10) started since `since`, newest first;
        None where the API is not available (older endpoints, emulators, missing permission),
        so callers fall back to the service's deployment list."""
        t = self.target

        def listed() -> list[ServiceDeploymentTypeDef]:
            brief = self.ecs.list_service_deployments(
                cluster=t.cluster, service=t.service, createdAt={"after": since}
            ).get("serviceDeployments", [])
            arns = [str(s["serviceDeploymentArn"]) for s in brief[:20]]  # 20 per Describe
            if not arns:
                return []
            return list(
                self.ecs.describe_service_deployments(serviceDeploymentArns=arns).get(
                    "serviceDeployments", []
                )
            )

        found = self._optional(listed)
        if found is None:
            return None
        return sorted(found, key=lambda s: str(s.get("createdAt", "")), reverse=True)

    def completed_revisions(self) -> list[str] | None:
        """The task definitions of this service's SUCCESSFUL service deployments (the last 100),
        newest first; None where the service-deployments API is not available."""
        t = self.target

        def listed() -> list[str]:
            brief = self.ecs.list_service_deployments(
                cluster=t.cluster, service=t.service, status=["SUCCESSFUL"], maxResults=100
            ).get("serviceDeployments", [])
            brief = sorted(
                brief, key=lambda s: str(s.get("finishedAt") or s.get("createdAt")), reverse=True
            )
            wanted = [str(s["targetServiceRevisionArn"]) for s in brief]
            definitions: dict[str, str] = {}
            for start in range(0, len(wanted), 20):  # 20 per DescribeServiceRevisions
                revisions = self.ecs.describe_service_revisions(
                    serviceRevisionArns=wanted[start : start + 20]
                ).get("serviceRevisions", [])
                for revision in revisions:
                    definitions[str(revision.get("serviceRevisionArn"))] = str(
                        revision.get("taskDefinition")
                    )
            return [definitions[arn] for arn in wanted if arn in definitions]

        return self._optional(listed)

    def _optional(self, request: Callable[[], T]) -> T | None:
        """A call of the service-deployments API: None (and not asked again) where it is not
        available (UnknownOperation, AccessDenied, an emulator's 500: a fallback decides at
        once rather than after retries); throttling is retried like any call."""
        if self._no_service_deployments:
            return None
        try:
            # Only throttling is tried again: a 500 here is an emulator's "not implemented"
            # (moto) far more often than ECS failing, and the deployment list decides anyway.
            return self.call("reading the service deployments", request, THROTTLING_CODES)
        except DeadlinePassed:
            raise
        except Exception as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            if error_code(cause) in THROTTLING_CODES:
                raise
            self._no_service_deployments = True
            return None

    def stop_service_deployment(self, arn: str) -> bool:
        """Ask ECS to roll back a service deployment; False where that is not possible."""
        try:
            self.call(
                "stopping the service deployment",
                lambda: self.ecs.stop_service_deployment(
                    serviceDeploymentArn=arn, stopType="ROLLBACK"
                ),
            )
        except Exception:  # best effort: the caller then rolls back with UpdateService
            return False
        return True

    def revisions(self, family: str) -> list[str]:
        """The family's active revisions, newest first.

        Sorted here, every page read: the API's `sort` is a request, not something to rely on
        (moto ignores it, and "previous" must not depend on a page boundary).
        """
        arns: list[str] = []
        token = ""

        def page() -> ListTaskDefinitionsResponseTypeDef:
            if token:
                return self.ecs.list_task_definitions(
                    familyPrefix=family, sort="DESC", status="ACTIVE", nextToken=token
                )
            return self.ecs.list_task_definitions(familyPrefix=family, sort="DESC", status="ACTIVE")

        while True:
            found = self.call(f"listing revisions of {family}", page)
            arns.extend(found.get("taskDefinitionArns", []))
            token = found.get("nextToken", "")
            if not token:
                break
        ours = [arn for arn in arns if revision_name(arn).rpartition(":")[0] == family]
        return sorted(ours, key=_revision_number, reverse=True)


def _revision_number(arn: str) -> int:
    number = revision_name(arn).rpartition(":")[2]
    return int(number) if number.isdigit() else -1

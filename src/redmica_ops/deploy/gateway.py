"""The thin ECS gateway of the deploy verbs: each method is one or two API calls, no decisions.

Errors are translated into redmica's (one-line message, hint, exit code) here, once.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from redmica_ops.aws import error_code, translate_errors
from redmica_ops.deploy.model import ServiceTarget, revision_name
from redmica_ops.errors import NotFound

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import (
        DeploymentConfigurationUnionTypeDef,
        ServiceDeploymentTypeDef,
        ServiceTypeDef,
        TagTypeDef,
        TaskDefinitionTypeDef,
        TaskTypeDef,
    )


class ServiceGateway:
    def __init__(self, ecs: ECSClient, target: ServiceTarget) -> None:
        self.ecs = ecs
        self.target = target
        self._no_service_deployments = False

    def service(self) -> ServiceTypeDef:
        t = self.target
        with translate_errors(f"describing ECS service {t.service} in {t.cluster}"):
            response = self.ecs.describe_services(cluster=t.cluster, services=[t.service])
        services = [s for s in response.get("services", []) if s.get("status") != "INACTIVE"]
        if not services:
            raise NotFound(
                f"ECS service {t.service!r} not found in cluster {t.cluster!r}",
                "check the service and cluster settings (REDMICA_SERVICE, "
                "REDMICA_CLUSTER) and the region",
            )
        return services[0]

    def task_definition(self, arn: str) -> tuple[TaskDefinitionTypeDef, list[TagTypeDef]]:
        with translate_errors(f"describing task definition {arn}"):
            response = self.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        return response["taskDefinition"], list(response.get("tags", []))

    def register(self, params: dict[str, object], family: str) -> TaskDefinitionTypeDef:
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

    def stopped_tasks(self, limit: int) -> list[TaskTypeDef]:
        t = self.target
        with translate_errors("listing stopped tasks"):
            arns = self.ecs.list_tasks(
                cluster=t.cluster, serviceName=t.service, desiredStatus="STOPPED"
            ).get("taskArns", [])[:limit]
            if not arns:
                return []
            return list(self.ecs.describe_tasks(cluster=t.cluster, tasks=arns).get("tasks", []))

    def service_deployments(self, since: datetime) -> list[ServiceDeploymentTypeDef] | None:
        """The service deployments (ECS API since 2024-10) started since `since`, newest first;
        None where the API is not available (older endpoints, emulators, missing permission),
        so callers fall back to the service's deployment list."""
        if self._no_service_deployments:
            return None
        t = self.target
        try:
            listed = self.ecs.list_service_deployments(
                cluster=t.cluster, service=t.service, createdAt={"after": since}
            ).get("serviceDeployments", [])
            arns = [str(s["serviceDeploymentArn"]) for s in listed[:20]]  # 20 per Describe
            if not arns:
                return []
            found = self.ecs.describe_service_deployments(serviceDeploymentArns=arns).get(
                "serviceDeployments", []
            )
        except Exception as exc:  # NotImplementedError (moto), UnknownOperation, AccessDenied
            if error_code(exc) in ("ThrottlingException", "Throttling"):
                raise
            self._no_service_deployments = True
            return None
        return sorted(found, key=lambda s: str(s.get("createdAt", "")), reverse=True)

    def stop_service_deployment(self, arn: str) -> bool:
        """Ask ECS to roll back a service deployment; False where that is not possible."""
        try:
            self.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
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
        with translate_errors(f"listing revisions of {family}"):
            while True:
                page = (
                    self.ecs.list_task_definitions(
                        familyPrefix=family, sort="DESC", status="ACTIVE", nextToken=token
                    )
                    if token
                    else self.ecs.list_task_definitions(
                        familyPrefix=family, sort="DESC", status="ACTIVE"
                    )
                )
                arns.extend(page.get("taskDefinitionArns", []))
                token = page.get("nextToken", "")
                if not token:
                    break
        ours = [arn for arn in arns if revision_name(arn).rpartition(":")[0] == family]
        return sorted(ours, key=_revision_number, reverse=True)


def _revision_number(arn: str) -> int:
    number = revision_name(arn).rpartition(":")[2]
    return int(number) if number.isdigit() else -1

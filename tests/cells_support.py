"""A moto fleet of cells: one ECS service per cell, each behind its own ALB, and a hosted zone."""

from __future__ import annotations

import os
from typing import Any

import boto3

from redmica_ops.cli.app import Application
from redmica_ops.runs.pacing import FakeClock
from tests.conftest import Invoke, tenant_yaml

DOMAIN = "example.com"


def moto_cells(
    names: tuple[str, ...] = ("a", "b", "c"), image: str = "redmica:1"
) -> dict[str, str]:
    """Inside mock_aws: cluster `prod`, a task definition family and service per cell, an ALB
    per cell, and the hosted zone of example.com. Returns the settings environment."""
    ecs = boto3.client("ecs", region_name="us-east-1")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    elbv2 = boto3.client("elbv2", region_name="us-east-1")
    route53 = boto3.client("route53", region_name="us-east-1")
    ecs.create_cluster(clusterName="prod")
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    entries = []
    for name in names:
        arn = ecs.register_task_definition(
            family=f"redmica-{name}",
            networkMode="awsvpc",
            cpu="512",
            memory="1024",
            requiresCompatibilities=["FARGATE"],
            executionRoleArn="arn:aws:iam::123456789012:role/exec",
            taskRoleArn="arn:aws:iam::123456789012:role/task",
            containerDefinitions=[
                {
                    "name": "app",
                    "image": image,
                    "memory": 768,
                    "essential": True,
                    "environment": [{"name": "REDMICA_CELL", "value": name}],
                    "portMappings": [{"containerPort": 80}],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        balancer = elbv2.create_load_balancer(Name=f"redmica-{name}", Subnets=subnets)[
            "LoadBalancers"
        ][0]
        group = elbv2.create_target_group(
            Name=f"redmica-{name}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip"
        )["TargetGroups"][0]
        elbv2.create_listener(
            LoadBalancerArn=balancer["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}],
        )
        ecs.create_service(
            cluster="prod",
            serviceName=f"redmica-{name}",
            taskDefinition=arn,
            desiredCount=1,
            launchType="FARGATE",
            loadBalancers=[
                {
                    "targetGroupArn": group["TargetGroupArn"],
                    "containerName": "app",
                    "containerPort": 80,
                }
            ],
            networkConfiguration={
                "awsvpcConfiguration": {"subnets": subnets, "securityGroups": []}
            },
        )
        entries.append(f"{name}=redmica-{name}")
    zone = route53.create_hosted_zone(Name=DOMAIN, CallerReference="cells-test")["HostedZone"]
    return {
        "REDMICA_CLUSTER": "prod",
        "REDMICA_CONTAINER": "app",
        "REDMICA_TENANTS_PER_TASK": "1",  # moto runs no container
        "REDMICA_CELLS": ",".join(entries),
        "REDMICA_HOSTED_ZONE_ID": zone["Id"].rsplit("/", 1)[-1],
        "REDMICA_DOMAIN": DOMAIN,
        "REDMICA_MOVE_DRAIN": "30",
        "REDMICA_SUBNETS": subnets[0],
        "REDMICA_TASK_DEFINITION": f"redmica-{names[0]}",
    }


def add_tenant(run: Invoke, env: dict[str, str], name: str, *extra: str) -> Any:
    """`tenant add NAME -f -` (the test document) with EXTRA flags, in the cells set-up."""
    result = run(
        "tenant", "add", name, "-f", "-", *extra, input=tenant_yaml(name), app=cells_app(env)
    )
    assert result.exit_code == 0, result.output
    return result


def cells_app(env: dict[str, str], **extra: str) -> Application:
    # A master secret for `entrypoint serve` (each tenant's secret_key_base derives from it).
    master = {"SECRET_KEY_BASE": "cells-test-master-secret-0123456789abcdef"}
    app = Application(env={**os.environ, **master, **env, **extra})
    app.make_clock = lambda cancellation: FakeClock()
    app.exec_process = lambda argv, environ: None
    return app


def routed(zone_id: str) -> dict[str, str]:
    """host -> cell name (from the ALB name) of every alias A record in the zone."""
    route53 = boto3.client("route53", region_name="us-east-1")
    elbv2 = boto3.client("elbv2", region_name="us-east-1")
    names = {
        lb["DNSName"].lower(): lb["LoadBalancerName"].removeprefix("redmica-")
        for lb in elbv2.describe_load_balancers()["LoadBalancers"]
    }
    found: dict[str, str] = {}
    records: list[Any] = route53.list_resource_record_sets(HostedZoneId=zone_id)[
        "ResourceRecordSets"
    ]
    for record in records:
        alias = record.get("AliasTarget")
        if record["Type"] == "A" and alias:
            dns = alias["DNSName"].lower().rstrip(".").removeprefix("dualstack.")
            found[record["Name"].rstrip(".")] = names.get(dns, "?")
    return found


def fail_rollouts(monkeypatch: Any, services: set[str]) -> None:
    """In `services`, a rollout of a revision other than the one the service started with
    fails as ECS's circuit breaker makes it: our deployment FAILED, the old revision PRIMARY
    again. Use after the `moto_rollouts` fixture."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original_update = EC2ContainerServiceBackend.update_service
    original_describe = EC2ContainerServiceBackend.describe_services
    first: dict[str, str] = {}
    pending: dict[str, tuple[str, str]] = {}

    def update_service(self: Any, properties: dict[str, Any]) -> Any:
        name = str(properties.get("service", "")).split("/")[-1]
        cluster = str(properties.get("cluster", "default"))
        before = self._get_service(cluster, name).task_definition
        first.setdefault(name, before)
        service = original_update(self, properties)
        if name in services and service.task_definition != first[name]:
            service.deployments[0]["rolloutState"] = "IN_PROGRESS"
            pending[name] = (str(service.deployments[0]["id"]), first[name])
        return service

    def describe_services(self: Any, cluster: str, names: list[str]) -> Any:
        found, failures = original_describe(self, cluster, names)
        for service in found:
            if service.name in pending:
                ours, previous = pending.pop(service.name)
                failed = {**service.deployments[0], "status": "ACTIVE", "rolloutState": "FAILED"}
                failed["rolloutStateReason"] = (
                    "ECS deployment circuit breaker: tasks failed to start."
                )
                back = {
                    **service.deployments[0],
                    "id": ours + "-rollback",
                    "taskDefinition": previous,
                    "status": "PRIMARY",
                    "rolloutState": "COMPLETED",
                }
                service.deployments = [back, failed]
                service.task_definition = previous
        return found, failures

    monkeypatch.setattr(EC2ContainerServiceBackend, "update_service", update_service)
    monkeypatch.setattr(EC2ContainerServiceBackend, "describe_services", describe_services)

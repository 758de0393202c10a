"""An embedded AWS endpoint (moto's server) for demos and tests: no AWS account needed.

It serves the AWS APIs on 127.0.0.1 from this process's memory; everything is gone when it
stops. The credentials it exports are moto's fixed fakes, not secrets.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redmica_ops.errors import UsageError

DEFAULT_BUCKET = "redmica-config"
DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


SANDBOX_CLUSTER = "redmica-sandbox"
SANDBOX_FAMILY = "redmica-app"
SANDBOX_CONTAINER = "app"
SANDBOX_SERVICE = "redmica"
SANDBOX_DOMAIN = "redmine.example.com"
CELL_NAMES = "abcdefgh"
ROLLOUT_POLLS = 3


class _Server:
    """moto's WSGI app on a socket we bound ourselves, served from a daemon thread.

    moto's ThreadedMotoServer binds inside its thread: when the port is taken, the thread dies
    and start() waits forever. Binding here first turns that into an error, at once.
    """

    def __init__(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        listener = _bind(host, port)
        self.host, self.port = listener.getsockname()[:2]
        try:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(
                self.host,
                self.port,
                app,
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=listener.fileno(),
            )
        finally:
            listener.close()  # werkzeug serves a duplicate of it
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise UsageError(
            f"sandbox: cannot listen on {host}: {exc.strerror or exc}", "check --host"
        ) from None
    try:
        listener.bind((host, port))
        listener.listen(128)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"sandbox: port {port} on {host} is already in use",
                "stop what uses it, or give another --port (--port 0 picks a free one)",
            ) from None
        raise UsageError(
            f"sandbox: cannot listen on {host}:{port}: {exc.strerror or exc}",
            "give another --host/--port (--port 0 picks a free one)",
        ) from None
    return listener


def check_env_file(path: Path) -> None:
    """Refuse an --env-file that cannot be written, before anything starts."""
    where = f"--env-file {path}"
    if path.is_dir():
        raise UsageError(f"{where}: is a directory", "give a file name, e.g. /tmp/sandbox.env")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(
            f"{where}: directory {parent} does not exist",
            f"create it first (mkdir -p {parent}) or give a path in an existing directory",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{where}: directory {parent} is not writable", "give another path")


@dataclass
class Sandbox:
    server: _Server
    endpoint_url: str
    bucket: str
    region: str
    ecs: dict[str, str] | None = None

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "REDMICA_BUCKET": self.bucket,
            **(self.ecs or {}),
        }

    def export_lines(self) -> list[str]:
        return [f"export {name}={value}" for name, value in self.environment().items()]

    def write_env_file(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(self.export_lines()) + "\n", encoding="utf-8")
        tmp.replace(path)  # appears whole: a waiting script never reads half

    def stop(self) -> None:
        self.server.stop()


def start_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    bucket: str = DEFAULT_BUCKET,
    region: str = DEFAULT_REGION,
    ecs: bool = False,
    fail_once: frozenset[str] = frozenset(),
    fail_images: frozenset[str] = frozenset(),
    env_file: Path | None = None,
    cells: int = 0,
) -> Sandbox:
    """Start the endpoint; every check on the arguments comes before anything listens."""
    if not 0 <= cells <= len(CELL_NAMES):
        raise UsageError(f"--cells must be between 1 and {len(CELL_NAMES)}")
    if not (ecs or cells) and (fail_once or fail_images):
        flag = "--fail-once" if fail_once else "--fail-image"
        raise UsageError(
            f"sandbox: {flag} needs --ecs (it simulates ECS tasks and deployments)",
            f"add --ecs, e.g. redmica sandbox --ecs {flag} NAME",
        )
    if env_file is not None:
        check_env_file(env_file)
        # A file left by a killed sandbox would tell a waiting script this one is up.
        env_file.unlink(missing_ok=True)
    try:
        import moto.server  # noqa: F401  (the extra that brings the server's dependencies)
    except ImportError:
        raise UsageError(
            "the sandbox needs moto's server",
            "install the extra: pip install 'redmica-ops[sandbox]'",
        ) from None

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = _Server(host, port)
    try:
        return _provision(server, bucket, region, ecs, fail_once, fail_images, cells)
    except BaseException:
        server.stop()
        raise


def _provision(
    server: _Server,
    bucket: str,
    region: str,
    ecs: bool,
    fail_once: frozenset[str],
    fail_images: frozenset[str],
    cells: int = 0,
) -> Sandbox:
    host = f"[{server.host}]" if ":" in server.host else server.host
    endpoint = f"http://{host}:{server.port}"
    s3 = _session(region).client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    # Set up like the CloudFormation stack's bucket, so `redmica doctor` has nothing to fail.
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
        },
    )
    if cells:
        settings: dict[str, str] | None = _create_cells(endpoint, region, cells)
    else:
        settings = _create_ecs(endpoint, region) if ecs else None
    if fail_once:
        _simulate_failures(fail_once)
    if ecs or cells:
        _simulate_rollouts(fail_images)
        _without_service_deployments_api()
    return Sandbox(server, endpoint, bucket, region, settings)


def _session(region: str) -> Any:
    """A boto3 session with the sandbox's fake credentials: never the operator's own."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )


def _register_app(
    ecs: Any, family: str, *, cpu: int, memory: int, extra: dict[str, object]
) -> None:
    """A Fargate task definition of the app's shape (one container running `entrypoint serve`)."""
    ecs.register_task_definition(
        family=family,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu=str(cpu),
        memory=str(memory),
        containerDefinitions=[
            {
                "name": SANDBOX_CONTAINER,
                "image": "redmica-app:sandbox",
                "memory": memory,
                "entryPoint": ["redmica", "entrypoint"],
                "command": ["serve"],
                **extra,
            }
        ],
    )


def _create_ecs(endpoint: str, region: str) -> dict[str, str]:
    """A cluster and a Fargate task definition like the real app's, for `migrate` demos."""
    session = _session(region)
    ecs = session.client("ecs", endpoint_url=endpoint)
    ec2 = session.client("ec2", endpoint_url=endpoint)
    ecs.create_cluster(clusterName=SANDBOX_CLUSTER)
    _register_app(
        ecs,
        SANDBOX_FAMILY,
        cpu=256,
        memory=512,
        extra={
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/redmica/sandbox",
                    "awslogs-region": region,
                    "awslogs-stream-prefix": "migrate",
                },
            }
        },
    )
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    # A service that is already steady (moto reads this when it creates one; our server runs in
    # this process), so `status` and `doctor` start from a healthy service, as after a deploy.
    os.environ["MOTO_ECS_SERVICE_RUNNING"] = "2"
    try:
        _create_service(ecs, subnet)
    finally:
        os.environ.pop("MOTO_ECS_SERVICE_RUNNING", None)
    # moto's tasks finish after a few DescribeTasks; poll every second to keep demos short.
    return {
        "REDMICA_CLUSTER": SANDBOX_CLUSTER,
        "REDMICA_TASK_DEFINITION": SANDBOX_FAMILY,
        "REDMICA_CONTAINER": SANDBOX_CONTAINER,
        "REDMICA_SUBNETS": subnet,
        "REDMICA_POLL_INTERVAL": "1",
        "REDMICA_DEPLOY_POLL_INTERVAL": "0.5",
        "REDMICA_SERVICE": SANDBOX_SERVICE,
        # moto runs no container, so no task writes result objects: one tenant per task keeps
        # each task's exit code its tenant's (and --fail-once aimed at one tenant).
        "REDMICA_TENANTS_PER_TASK": "1",
    }


def _create_service(ecs: Any, subnet: str) -> None:
    ecs.create_service(
        cluster=SANDBOX_CLUSTER,
        serviceName=SANDBOX_SERVICE,
        taskDefinition=SANDBOX_FAMILY,
        desiredCount=2,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": []}},
    )


def _count_tasks(service: Any) -> None:
    """The service's counts are its deployments' (moto leaves them as they were at creation)."""
    service.running_count = sum(int(d.get("runningCount", 0)) for d in service.deployments)
    service.pending_count = sum(int(d.get("pendingCount", 0)) for d in service.deployments)


def _create_cells(endpoint: str, region: str, count: int) -> dict[str, str]:
    """`count` cells (docs/cells.md): a task definition family, a load balancer and a service
    each in one cluster, and the hosted zone of the sandbox domain for the tenants' records."""
    session = _session(region)
    ecs = session.client("ecs", endpoint_url=endpoint)
    ec2 = session.client("ec2", endpoint_url=endpoint)
    elbv2 = session.client("elbv2", endpoint_url=endpoint)
    route53 = session.client("route53", endpoint_url=endpoint)
    ecs.create_cluster(clusterName=SANDBOX_CLUSTER)
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    entries = []
    for name in CELL_NAMES[:count]:
        family = f"redmica-{name}"
        _register_app(
            ecs,
            family,
            cpu=1024,
            memory=4096,
            extra={"environment": [{"name": "REDMICA_CELL", "value": name}]},
        )
        balancer = elbv2.create_load_balancer(Name=family, Subnets=subnets)["LoadBalancers"][0]
        group = elbv2.create_target_group(
            Name=family, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip"
        )["TargetGroups"][0]
        # Steady from the start, as _create_ecs's service (moto reads this at creation).
        os.environ["MOTO_ECS_SERVICE_RUNNING"] = "2"
        try:
            ecs.create_service(
                cluster=SANDBOX_CLUSTER,
                serviceName=family,
                taskDefinition=family,
                desiredCount=2,
                launchType="FARGATE",
                loadBalancers=[
                    {
                        "targetGroupArn": group["TargetGroupArn"],
                        "containerName": SANDBOX_CONTAINER,
                        "containerPort": 8080,
                    }
                ],
                networkConfiguration={
                    "awsvpcConfiguration": {"subnets": subnets, "securityGroups": []}
                },
            )
        finally:
            os.environ.pop("MOTO_ECS_SERVICE_RUNNING", None)
        elbv2.create_listener(
            LoadBalancerArn=balancer["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}],
        )
        entries.append(f"{name}={family}")
    zone = route53.create_hosted_zone(Name=SANDBOX_DOMAIN, CallerReference="redmica-sandbox")
    return {
        "REDMICA_CLUSTER": SANDBOX_CLUSTER,
        "REDMICA_TASK_DEFINITION": "redmica-a",
        "REDMICA_CONTAINER": SANDBOX_CONTAINER,
        "REDMICA_SUBNETS": subnets[0],
        "REDMICA_POLL_INTERVAL": "1",
        "REDMICA_DEPLOY_POLL_INTERVAL": "0.5",
        "REDMICA_CELLS": ",".join(entries),
        "REDMICA_DOMAIN": SANDBOX_DOMAIN,
        "REDMICA_HOSTED_ZONE_ID": str(zone["HostedZone"]["Id"]).rsplit("/", 1)[-1],
        "REDMICA_MOVE_DRAIN": "1",
    }


def _simulate_failures(fail_once: frozenset[str]) -> None:
    """Sandbox only: these tenants' first migration task exits 1, later ones succeed, so a
    demo can show a failure and its `--only-failed` retry."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.run_task
    failed: set[str] = set()

    def run_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        tasks = original(self, *args, **kwargs)
        for task in tasks:
            env = [
                e
                for o in task.overrides.get("containerOverrides", [])
                for e in o.get("environment", [])
            ]
            tenant = next((e["value"] for e in env if e["name"] == "REDMICA_TENANT"), None)
            if tenant in fail_once and tenant not in failed:
                failed.add(tenant)
                for container in task.containers:
                    container.exitCode = 1
        return tasks

    backend: Any = EC2ContainerServiceBackend
    backend.run_task = run_task


def _without_service_deployments_api() -> None:
    """Sandbox only: moto has no service-deployments API and answers it with HTTP 500, which
    botocore retries with back-off (seconds per call, on every status poll). Answer as an ECS
    endpoint without the API does (a 400 that is not retried), so the CLI falls back to the
    service's deployment list at once, as it would there."""
    from moto.core.exceptions import JsonRESTError
    from moto.ecs.responses import EC2ContainerServiceResponse

    def unknown(self: Any) -> str:
        raise JsonRESTError("UnknownOperationException", "not available in the sandbox")

    backend: Any = EC2ContainerServiceResponse
    for action in (
        "list_service_deployments",
        "describe_service_deployments",
        "stop_service_deployment",
    ):
        setattr(backend, action, unknown)


def _simulate_rollouts(fail_images: frozenset[str]) -> None:
    """Sandbox only: moto never rolls a service deployment over. Make an update start a new
    deployment that completes after a few DescribeServices, or, for an image listed in
    fail_images, fails and is rolled back by the "circuit breaker", as ECS would."""

    from moto.ecs.models import EC2ContainerServiceBackend

    original_update = EC2ContainerServiceBackend.update_service
    original_describe = EC2ContainerServiceBackend.describe_services
    rollouts: dict[str, dict[str, Any]] = {}
    counter = iter(range(1, 10**9))

    def event(service: Any, message: str) -> None:
        service.events.insert(
            0,
            {"id": f"sandbox-{next(counter)}", "message": message, "createdAt": datetime.now(UTC)},
        )

    def update_service(self: Any, properties: dict[str, Any]) -> Any:
        changed = properties.get("task_definition") or properties.get("force_new_deployment")
        service = original_update(self, properties)
        if changed and service.deployments:
            old = dict(service.deployments[0], status="ACTIVE")
            new = dict(
                old,
                id=f"ecs-svc/sandbox{next(counter)}",
                status="PRIMARY",
                taskDefinition=service.task_definition,
                runningCount=0,
                pendingCount=service.desired_count,
                rolloutState="IN_PROGRESS",
                rolloutStateReason="ECS deployment in progress.",
            )
            image = self.describe_task_definition(service.task_definition)
            images = {c.get("image") for c in image.container_definitions}
            rollouts[service.arn] = {
                "new": new,
                "old": old,
                "polls": 0,
                "fail": bool(images & fail_images),
            }
            service.deployments = [new, old]
            _count_tasks(service)
            event(
                service,
                f"(service {service.name}) has started a deployment of "
                f"{str(service.task_definition).rsplit('/', 1)[-1]}.",
            )
        return service

    def describe_services(self: Any, *args: Any, **kwargs: Any) -> Any:
        services, failures = original_describe(self, *args, **kwargs)
        for service in services:
            rollout = rollouts.get(service.arn)
            if rollout is None:
                continue
            rollout["polls"] += 1
            if rollout["polls"] < ROLLOUT_POLLS:
                continue
            del rollouts[service.arn]
            new, old = rollout["new"], rollout["old"]
            if rollout["fail"]:
                new.update(
                    rolloutState="FAILED",
                    status="ACTIVE",
                    rolloutStateReason="tasks failed to start (sandbox: image marked to fail)",
                )
                back = dict(
                    old,
                    id=f"ecs-svc/sandbox{next(counter)}",
                    status="PRIMARY",
                    rolloutState="COMPLETED",
                    runningCount=service.desired_count,
                    pendingCount=0,
                )
                service.task_definition = old["taskDefinition"]
                service.deployments = [back, new]
                new.update(runningCount=0, pendingCount=0)
                _count_tasks(service)
                event(
                    service,
                    f"(service {service.name}) deployment failed: tasks failed to "
                    "start; circuit breaker: rolling back.",
                )
            else:
                new.update(
                    rolloutState="COMPLETED",
                    runningCount=service.desired_count,
                    pendingCount=0,
                    rolloutStateReason="ECS deployment completed.",
                )
                service.deployments = [new]
                _count_tasks(service)
                event(service, f"(service {service.name}) has reached a steady state.")
        return services, failures

    backend: Any = EC2ContainerServiceBackend
    backend.update_service = update_service
    backend.describe_services = describe_services

"""An embedded AWS endpoint (moto's server) for demos and tests: no AWS account needed.

It serves the AWS APIs on 127.0.0.1 from this process's memory; everything is gone when it
stops. The credentials it exports are moto's fixed fakes, not secrets.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import Any

from redmica_ops.errors import UsageError

DEFAULT_BUCKET = "redmica-config"
DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


SANDBOX_CLUSTER = "redmica-sandbox"
SANDBOX_FAMILY = "redmica-app"
SANDBOX_CONTAINER = "app"


@dataclass
class Sandbox:
    server: Any
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

    def stop(self) -> None:
        self.server.stop()


def start_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    bucket: str = DEFAULT_BUCKET,
    region: str = DEFAULT_REGION,
    ecs: bool = False,
    fail_once: frozenset[str] = frozenset(),
) -> Sandbox:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise UsageError(
            "the sandbox needs moto's server",
            "install the extra: pip install 'redmica-ops[sandbox]'",
        ) from None
    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    # moto announces itself on stdout; stdout is for the export lines only.
    with contextlib.redirect_stdout(sys.stderr):
        server.start()
    bound_host, bound_port = server.get_host_and_port()
    endpoint = f"http://{bound_host}:{bound_port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    settings = _create_ecs(endpoint, region) if ecs else None
    if fail_once:
        _simulate_failures(fail_once)
    return Sandbox(server, endpoint, bucket, region, settings)


def _create_ecs(endpoint: str, region: str) -> dict[str, str]:
    """A cluster and a Fargate task definition like the real app's, for `migrate` demos."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )
    ecs = session.client("ecs", endpoint_url=endpoint)
    ec2 = session.client("ec2", endpoint_url=endpoint)
    ecs.create_cluster(clusterName=SANDBOX_CLUSTER)
    ecs.register_task_definition(
        family=SANDBOX_FAMILY,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": SANDBOX_CONTAINER,
                "image": "redmica-app:sandbox",
                "memory": 512,
                "entryPoint": ["redmica", "entrypoint"],
                "command": ["serve"],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": "/redmica/sandbox",
                        "awslogs-region": region,
                        "awslogs-stream-prefix": "migrate",
                    },
                },
            }
        ],
    )
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    # moto's tasks finish after a few DescribeTasks; poll every second to keep demos short.
    return {
        "REDMICA_CLUSTER": SANDBOX_CLUSTER,
        "REDMICA_TASK_DEFINITION": SANDBOX_FAMILY,
        "REDMICA_CONTAINER": SANDBOX_CONTAINER,
        "REDMICA_SUBNETS": subnet,
        "REDMICA_POLL_INTERVAL": "1",
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

    EC2ContainerServiceBackend.run_task = run_task  # type: ignore[method-assign]

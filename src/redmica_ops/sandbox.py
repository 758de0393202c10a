"""An embedded AWS endpoint (moto's server) for demos and tests: no AWS account needed.

It serves the AWS APIs on 127.0.0.1 from this process's memory; everything is gone when it
stops. The credentials it exports are moto's fixed fakes, not secrets.

Alone it is a versioned config bucket. With `--ecs` or `--cells` it is the platform of
docs/infrastructure.md: the foundation, database and main stacks (and a cell stack per further
cell) made from templates/cloudformation/ by moto's CloudFormation, the way
`moto_stacks.stand_up` makes them for the tests (moto's gaps are patched there, in one place),
and the settings it exports are what `redmica config from-stack` reads from those stacks. What
moto cannot do at all is simulated here, each in its own function below: a service's rollout
(`_simulate_rollouts`), a migration task's failure (`_simulate_failures`) and the missing
service-deployments API.

With `--local-db` (sandbox only) the admin task's database is a PostgreSQL server of this
machine instead of the cluster endpoint only moto knows (`LocalDatabase`, one place).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redmica_ops.errors import UsageError
from redmica_ops.moto_stacks import Operator, stand_ins, stand_up
from redmica_ops.settings import split_endpoint
from redmica_ops.settings.from_stack import FromStackRequest, read_stacks

DEFAULT_BUCKET = "redmica-config"
DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


SANDBOX_MAIN = "redmica"  # the main stack; its service is redmica-app, cells redmica-cell-<name>
SANDBOX_DOMAIN = "redmine.example.com"
CELL_NAMES = ("main", "b", "c", "d", "e", "f", "g", "h")
ROLLOUT_POLLS = 3
# Only in the sandbox: polls every second, one tenant per task (moto runs no container, so no
# task writes result objects: each task's exit code is its tenant's, and --fail-once aims at
# one tenant), a short drain for `tenant move`.
SANDBOX_PACE = {
    "REDMICA_POLL_INTERVAL": "1",
    "REDMICA_DEPLOY_POLL_INTERVAL": "0.5",
    "REDMICA_TENANTS_PER_TASK": "1",
    "REDMICA_MOVE_DRAIN": "1",
}


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


@dataclass(frozen=True)
class LocalDatabase:
    """Sandbox only: a PostgreSQL server of this machine stands in for the Aurora cluster.

    On AWS the admin task reaches the database stack's cluster endpoint (REDMICA_DB_HOST in its
    task definition, from the stack) and reads the master credentials RDS keeps in the master
    secret. moto has a cluster endpoint but no server behind it, so here the endpoint settings
    (the operator's exports and the admin task's environment) name this server, and moto's
    master secret holds its administrator's credentials, read from a file (never argv, never
    printed). The allow-list still decides: the admin task connects to this endpoint only.
    """

    host: str
    port: int
    root_cert: Path  # the CA its certificate is verified against (verify-full, as with RDS)
    master: tuple[str, str] = field(repr=False)  # (username, password): what RDS keeps

    @classmethod
    def read(cls, endpoint: str, root_cert: Path, master_file: Path) -> LocalDatabase:
        """Checked before anything listens; a file's content is never echoed."""
        parsed = split_endpoint(endpoint)
        if parsed is None:
            raise UsageError(
                f"--local-db {endpoint!r}: not HOST[:PORT]", "e.g. --local-db 127.0.0.1:5433"
            )
        if not root_cert.is_file():
            raise UsageError(
                f"--local-db-ca {root_cert}: no such file",
                "give the CA (PEM) that signed the server's certificate",
            )
        try:
            data = json.loads(master_file.read_text(encoding="utf-8"))
            master = (str(data["username"]), str(data["password"]))
        except (OSError, ValueError, KeyError, TypeError):
            raise UsageError(
                f"--local-db-master {master_file}: not a readable JSON file with username "
                "and password",
                'write the administrator as RDS keeps it: {"username": ..., "password": ...}',
            ) from None
        return cls(parsed[0], parsed[1], root_cert.resolve(), master)

    def settings(self) -> dict[str, str]:
        """The endpoint settings, for the operator's exports and the admin task alike."""
        return {
            "REDMICA_DB_HOST": self.host,
            "REDMICA_DB_ADMIN_HOSTS": f"{self.host}:{self.port}",
            "REDMICA_DB_SSL_ROOT_CERT": str(self.root_cert),
        }

    def fill_master_secret(self, endpoint: str, region: str, secret_id: str) -> None:
        secrets = _session(region).client("secretsmanager", endpoint_url=endpoint)
        username, password = self.master
        secrets.put_secret_value(
            SecretId=secret_id,
            SecretString=json.dumps({"username": username, "password": password}),
        )


@dataclass
class Sandbox:
    server: _Server
    endpoint_url: str
    bucket: str
    region: str
    ecs: dict[str, str] | None = None
    patches: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

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
        self.patches.close()


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
    local_db: LocalDatabase | None = None,
) -> Sandbox:
    """Start the endpoint; every check on the arguments comes before anything listens."""
    if not 0 <= cells <= len(CELL_NAMES):
        raise UsageError(f"--cells must be between 1 and {len(CELL_NAMES)}")
    if local_db is not None and not (ecs or cells):
        raise UsageError(
            "sandbox: --local-db needs --ecs (it stands in for the database stack's cluster)",
            "add --ecs",
        )
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
        return _provision(server, bucket, region, ecs, fail_once, fail_images, cells, local_db)
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
    local_db: LocalDatabase | None = None,
) -> Sandbox:
    host = f"[{server.host}]" if ":" in server.host else server.host
    endpoint = f"http://{host}:{server.port}"
    patches = contextlib.ExitStack()
    settings: dict[str, str] | None = None
    try:
        if ecs or cells:
            settings = _stand_up(endpoint, region, CELL_NAMES[: max(cells, 0)], patches)
            bucket = settings["REDMICA_BUCKET"]
            if local_db is not None:
                local_db.fill_master_secret(endpoint, region, settings["REDMICA_DB_MASTER_SECRET"])
                settings.update(local_db.settings())
        else:
            _config_bucket(endpoint, region, bucket)
        if fail_once:
            _simulate_failures(fail_once)
        if ecs or cells:
            _simulate_rollouts(fail_images)
            _without_service_deployments_api()
            _simulate_admin_tasks(endpoint, region, local_db.settings() if local_db else {})
    except BaseException:
        patches.close()
        raise
    return Sandbox(server, endpoint, bucket, region, settings, patches)


def _config_bucket(endpoint: str, region: str, bucket: str) -> None:
    """The config bucket alone (no --ecs, no --cells): set up like the main stack's, so
    `redmica doctor` has nothing to fail."""
    s3 = _session(region).client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
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


def _session(region: str) -> Any:
    """A boto3 session with the sandbox's fake credentials: never the operator's own."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )


def _stand_up(
    endpoint: str, region: str, cells: tuple[str, ...], patches: contextlib.ExitStack
) -> dict[str, str]:
    """The stacks of docs/infrastructure.md on moto's CloudFormation, then the settings
    `config from-stack` reads from them, as REDMICA_* variables."""
    session = _session(region)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)

    patches.enter_context(stand_ins())  # for every stack update while the sandbox serves
    # moto warns of each resource type its CloudFormation skips, on every stack: GAPS names
    # each one with what AWS does, so the sandbox's log keeps only what went wrong.
    patches.enter_context(warnings.catch_warnings())
    warnings.filterwarnings("ignore", "Tried to parse AWS::", UserWarning)
    logging.getLogger("moto").setLevel(logging.ERROR)
    operator = Operator(main=SANDBOX_MAIN, domain=SANDBOX_DOMAIN, cells=cells)
    # The services steady from the start, as after their first deploy (moto reads this when
    # it creates a service; its server runs in this process).
    os.environ["MOTO_ECS_SERVICE_RUNNING"] = "2"
    try:
        stand_up(client("cloudformation"), client("ssm"), client("s3"), operator)
    finally:
        os.environ.pop("MOTO_ECS_SERVICE_RUNNING", None)
    read = read_stacks(FromStackRequest(tuple(operator.stacks())), client("cloudformation"))
    exported = {
        f"REDMICA_{name.upper()}": ",".join(value) if isinstance(value, tuple) else str(value)
        for name, value in read.settings.items()
        if value is not None
    }
    return {**exported, **SANDBOX_PACE}


def _count_tasks(service: Any) -> None:
    """The service's counts are its deployments' (moto leaves them as they were at creation)."""
    service.running_count = sum(int(d.get("runningCount", 0)) for d in service.deployments)
    service.pending_count = sum(int(d.get("pendingCount", 0)) for d in service.deployments)


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


def _simulate_admin_tasks(endpoint: str, region: str, database: dict[str, str]) -> None:
    """Sandbox only: moto can neither invoke a Lambda function without Docker nor run a
    task's container. The lifecycle's two hops are run as the platform would run them, each
    as a process of this package with its AWS resource's own environment, against this
    endpoint:

    - invoking the admin broker function (the main stack's `<stack>-admin-broker`) runs its
      handler, `redmica_ops.aws_lambda.admin_broker`, with the function's environment;
    - a RunTask of a task definition that reads the database master secret (the admin task)
      runs its container's command, `redmica entrypoint admin-sql ID`, with the task
      definition's environment, never the override's (which carries only the command), and
      its exit code becomes the container's.

    The admin task then does what it does on AWS: takes its request, reads the master secret
    from Secrets Manager and connects to `REDMICA_DB_HOST`. That host is the database stack's
    cluster endpoint, which only moto knows: without a PostgreSQL server answering there, the
    step ends with the admin task's connection error in its result, and the CLI reports it.
    With `--local-db`, `database` (LocalDatabase.settings) replaces the definition's endpoint
    settings, and the step goes all the way on that server.
    """
    from moto.awslambda.models import LambdaBackend
    from moto.ecs.models import EC2ContainerServiceBackend

    aws = {
        "AWS_ENDPOINT_URL": endpoint,
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDMICA_"))}
    original_invoke = LambdaBackend.invoke
    original_run_task = EC2ContainerServiceBackend.run_task

    def invoke(self: Any, function_name: str, qualifier: Any, body: Any, *args: Any) -> Any:
        function = self.get_function(function_name, qualifier)
        if function.handler != "redmica_ops.aws_lambda.admin_broker":
            return original_invoke(self, function_name, qualifier, body, *args)
        handler = (
            "import json, sys; from redmica_ops.aws_lambda import admin_broker; "
            "print(json.dumps(admin_broker(json.load(sys.stdin))))"
        )
        done = subprocess.run(
            [sys.executable, "-c", handler],
            input=body if isinstance(body, str) else json.dumps(body),
            env={**base, **function.environment_vars, **aws},
            capture_output=True,
            text=True,
            check=False,
        )
        # The handler's own lines (print) come first; its answer is the last line.
        lines = done.stdout.strip().splitlines()
        return (
            lines[-1]
            if done.returncode == 0 and lines
            else json.dumps({"ok": False, "error": f"admin broker crashed: {done.stderr[-300:]}"})
        )

    def run_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        tasks = original_run_task(self, *args, **kwargs)
        for task in tasks:
            definition = self.describe_task_definition(task.task_definition_arn)
            for container in definition.container_definitions:
                environment = {e["name"]: e["value"] for e in container.get("environment") or []}
                if "REDMICA_DB_MASTER_SECRET" not in environment:
                    continue
                command = next(
                    (
                        o.get("command")
                        for o in task.overrides.get("containerOverrides", [])
                        if o.get("name") == container["name"]
                    ),
                    container.get("command"),
                )
                done = subprocess.run(
                    [sys.executable, "-m", "redmica_ops", "entrypoint", *command],
                    env={**base, **environment, **database, **aws},
                    capture_output=True,
                    text=True,
                    check=False,
                )
                for started in task.containers:
                    started.exitCode = done.returncode
        return tasks

    backend: Any = LambdaBackend
    backend.invoke = invoke
    ecs: Any = EC2ContainerServiceBackend
    ecs.run_task = run_task

"""The installed `redmica` executable against moto's HTTP server, read back with plain boto3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer
from mypy_boto3_s3 import S3Client

from tests.conftest import CANARY_PASSWORD, EXAMPLES, tenant_add_flags, tenant_yaml

pytestmark = pytest.mark.subprocess
REDMICA = str(Path(sys.executable).parent / "redmica")
BUCKET = "redmica-http-test"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    yield f"http://{host}:{port}"
    moto.stop()


@pytest.fixture
def bucket(server: str) -> Iterator[S3Client]:
    s3 = boto3.client("s3", endpoint_url=server, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield s3
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"], VersionId=item["VersionId"])
    s3.delete_bucket(Bucket=BUCKET)


def redmica(
    server: str, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": server, "REDMICA_BUCKET": BUCKET}
    return subprocess.run(
        [REDMICA, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def test_executable_adds_lists_and_shows(server: str, bucket: S3Client) -> None:
    added = redmica(server, "tenant", "add", "acme", "-f", str(EXAMPLES / "tenants" / "acme.yaml"))
    assert added.returncode == 0, added.stderr
    body = bucket.get_object(Bucket=BUCKET, Key="tenants/acme.yaml")["Body"].read()
    assert yaml.safe_load(body) == yaml.safe_load((EXAMPLES / "tenants" / "acme.yaml").read_text())

    listed = redmica(server, "tenant", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert [t["tenant"] for t in json.loads(listed.stdout)] == ["acme"]
    assert "acme-demo-password-1" not in listed.stdout + listed.stderr

    shown = redmica(server, "tenant", "show", "acme")
    assert "password: '********'" in shown.stdout


def test_twenty_concurrent_processes_add_one_id(server: str, bucket: S3Client) -> None:
    def attempt(i: int) -> int:
        # 20 interpreters start at once on CI's 2 cores: ~12 CPU-seconds in all, and at a load
        # of 15-18 one of them passed 60 s. The timeout only stops a hung process; the
        # assertion is on the exit codes.
        yaml_text = tenant_yaml("acme", db__port=3000 + i)
        added = redmica(server, "tenant", "add", "acme", "-f", "-", stdin=yaml_text, timeout=300)
        return added.returncode

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(attempt, range(20)))
    assert sorted(codes) == [0] + [4] * 19
    document = bucket.list_object_versions(Bucket=BUCKET, Prefix="tenants/acme.yaml")
    assert len(document["Versions"]) == 1


def test_password_never_reaches_argv_or_output(server: str, bucket: S3Client) -> None:
    result = redmica(
        server,
        *tenant_add_flags("acme"),
        "--db-password-stdin",
        stdin=CANARY_PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert CANARY_PASSWORD not in result.stdout + result.stderr
    body = bucket.get_object(Bucket=BUCKET, Key="tenants/acme.yaml")["Body"].read().decode()
    assert CANARY_PASSWORD in body


def test_executable_refuses_an_update_based_on_a_stale_show(
    server: str, bucket: S3Client, tmp_path: Path
) -> None:
    """Issue #28's sequence with the installed executable: show > f, a colleague sets the port
    to 7000, f edited, update -f f: exit 4, and the port stays 7000."""
    added = redmica(
        server, "tenant", "add", "bravo", "-f", "-", stdin=tenant_yaml("bravo", db__port=5432)
    )
    assert added.returncode == 0, added.stderr
    mine = tmp_path / "f"
    mine.write_text(redmica(server, "tenant", "show", "bravo").stdout)
    theirs = redmica(server, "tenant", "show", "bravo").stdout.replace("port: 5432", "port: 7000")
    assert redmica(server, "tenant", "update", "bravo", "-f", "-", stdin=theirs).returncode == 0
    mine.write_text(mine.read_text().replace("192.168.0.0/24", "192.168.1.0/24"))

    result = redmica(server, "tenant", "update", "bravo", "-f", str(mine), "--output", "json")

    assert result.returncode == 4, result.stderr
    body = bucket.get_object(Bucket=BUCKET, Key="tenants/bravo.yaml")["Body"].read()
    assert yaml.safe_load(body)["db"]["port"] == 7000
    error = json.loads(result.stdout)
    assert error["based_on"]["version_id"] != error["current"]["version_id"]


def test_python_dash_m_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "redmica_ops", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("redmica, version ")


OFFLINE_PROBE = """
import sys
from redmica_ops.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("boto3", "botocore", "rich", "moto") if m in sys.modules)
sys.stderr.write(f"\\nPROBE {code} {heavy}\\n")
"""


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["tenant", "validate", str(EXAMPLES / "tenants")], 0),
        (["tenant", "validate", str(EXAMPLES / "bad-tenant.yaml")], 2),
    ],
)
def test_offline_paths_import_no_boto3(args: list[str], code: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_PROBE, *args], capture_output=True, text=True, check=False
    )
    assert f"PROBE {code} []" in result.stderr, result.stderr


def test_tenant_validate_imports_only_its_own_command_module() -> None:
    """`tenant validate` loads cli/tenant/files.py alone: the other sub-commands (and what they
    import) stay out of its start-up."""
    probe = OFFLINE_PROBE.replace(
        'heavy = sorted(m for m in ("boto3", "botocore", "rich", "moto") if m in sys.modules)',
        "heavy = sorted(m for m in sys.modules if m.startswith('redmica_ops.cli.tenant.'))",
    )
    assert probe != OFFLINE_PROBE
    args = ["tenant", "validate", str(EXAMPLES / "tenants")]
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, check=False
    )
    assert "PROBE 0 ['redmica_ops.cli.tenant.files']" in result.stderr, result.stderr


@contextmanager
def running_sandbox(
    env_file: Path, *args: str
) -> Iterator[tuple[dict[str, str], subprocess.Popen[str]]]:
    """`redmica sandbox ARGS` in its own process, ready (its env file written), stopped with
    SIGTERM on leaving; yields the environment a child command needs and the process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [REDMICA, "sandbox", *args, "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "sandbox did not become ready"
            time.sleep(0.05)
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines()
        )
        yield {**env, **exports}, process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_sandbox_starts_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    with running_sandbox(env_file) as (child_env, process):
        assert child_env["REDMICA_BUCKET"] == "redmica-config"
        added = subprocess.run(
            [REDMICA, "tenant", "add", "acme", "-f", str(EXAMPLES / "tenants" / "acme.yaml")],
            env=child_env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        s3 = boto3.client(
            "s3",
            endpoint_url=child_env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        assert s3.get_bucket_versioning(Bucket="redmica-config")["Status"] == "Enabled"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert stdout.splitlines()[0].startswith("export AWS_ENDPOINT_URL=http://127.0.0.1:")
    assert "sandbox stopped" in stderr
    assert not env_file.exists()


def test_sandbox_with_cells_places_and_routes_tenants(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "cells.env", "--cells", "2") as (child_env, process):
        assert child_env["REDMICA_CELLS"] == "main=redmica-app,b=redmica-cell-b"

        def redmica(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [REDMICA, *args], env=child_env, capture_output=True, text=True, check=False
            )

        for name in ("acme", "globex"):
            added = redmica("tenant", "add", name, "-f", str(EXAMPLES / "tenants" / f"{name}.yaml"))
            assert added.returncode == 0, added.stderr
        cells = json.loads(redmica("cells", "list", "-O", "json").stdout)
        assert [(c["cell"], c["tenants"]) for c in cells] == [("main", 1), ("b", 1)]
        routes = redmica("cells", "routes")
        assert routes.returncode == 0, routes.stdout + routes.stderr
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_kill_9_mid_run_then_resume_launches_each_tenant_once(
    server: str, bucket: S3Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real SIGKILL of `migrate --all` (no handler, no finally runs), then `--resume`."""
    from redmica_ops.tenants.model import parse_tenant
    from redmica_ops.tenants.store import TenantStore
    from tests.ecs_support import moto_ecs_spy

    ecs = boto3.client("ecs", endpoint_url=server, region_name="us-east-1")
    ec2 = boto3.client("ec2", endpoint_url=server, region_name="us-east-1")
    ecs.create_cluster(clusterName="kill-test")
    ecs.register_task_definition(
        family="kill-test",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "app", "image": "example/redmica:1", "memory": 512}],
    )
    names = [f"k{i}" for i in range(5)]
    store = TenantStore(bucket, BUCKET)
    for name in names:
        store.create(name, parse_tenant(name, tenant_yaml(name).encode(), name))
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": server,
        "REDMICA_BUCKET": BUCKET,
        "REDMICA_CLUSTER": "kill-test",
        "REDMICA_TASK_DEFINITION": "kill-test",
        "REDMICA_CONTAINER": "app",
        "REDMICA_SUBNETS": ec2.describe_subnets()["Subnets"][0]["SubnetId"],
        "REDMICA_TENANTS_PER_TASK": "1",
        "REDMICA_POLL_INTERVAL": "0.2",
    }
    with moto_ecs_spy(monkeypatch) as spy:
        process = subprocess.Popen(
            [REDMICA, "migrate", "--all", "--concurrency", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            # Killed once its record says a tenant is running: mid-run, tasks in flight.
            while True:
                assert process.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline, "no tenant ever started"
                keys = [
                    o["Key"]
                    for o in bucket.list_objects_v2(Bucket=BUCKET, Prefix="runs/").get(
                        "Contents", []
                    )
                    if o["Key"].count("/") == 1 and o["Key"].endswith(".json")
                ]
                if keys:
                    record = json.loads(
                        bucket.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
                    )
                    states = [t["status"] for t in record["tenants"].values()]
                    if "running" in states:
                        break
                time.sleep(0.05)
            process.kill()
        finally:
            process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        run_id = keys[0].removeprefix("runs/").removesuffix(".json")
        before = json.loads(bucket.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read())
        assert before["state"] == "running", "a killed CLI leaves the run as last saved"
        resumed = subprocess.run(
            [REDMICA, "migrate", "--resume", run_id, "-O", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["state"] == "finished"
    assert report["summary"] == {"succeeded": len(names)}
    assert sorted(spy.launched) == names, "each tenant launched exactly once"

"""`redmica sandbox`: bad arguments fail at once with exit 2, before anything listens."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redmica_ops import sandbox
from redmica_ops.errors import UsageError
from tests.conftest import Invoke

REDMICA = str(Path(sys.executable).parent / "redmica")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        yield other.getsockname()[1]


@pytest.fixture
def nothing_listens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    started: list[str] = []

    def refuse(host: str, port: int) -> None:
        started.append(f"{host}:{port}")
        raise AssertionError("the sandbox started listening before checking its arguments")

    monkeypatch.setattr(sandbox, "_Server", refuse)
    return started


def test_a_port_in_use_is_an_error_not_a_hang(taken_port: int, tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    process = subprocess.run(
        [REDMICA, "sandbox", "--port", str(taken_port), "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        timeout=60,  # before the fix: waited here for ever
        check=False,
    )
    assert process.returncode == 2, process.stderr
    assert f"error: sandbox: port {taken_port} on 127.0.0.1 is already in use" in process.stderr
    assert "--port 0 picks a free one" in process.stderr
    assert process.stdout == "" and not env_file.exists()


def test_port_zero_picks_a_free_port() -> None:
    first = sandbox.start_sandbox(port=0)
    try:
        second = sandbox.start_sandbox(port=0)
        try:
            assert first.endpoint_url != second.endpoint_url
            assert second.endpoint_url.startswith("http://127.0.0.1:")
        finally:
            second.stop()
    finally:
        first.stop()


def test_env_file_in_a_missing_directory_is_refused_before_starting(
    run: Invoke, tmp_path: Path, nothing_listens: list[str]
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "x.env"
    result = run("sandbox", "--env-file", str(target))
    assert result.exit_code == 2
    assert f"error: --env-file {target}: directory {target.parent} does not exist" in result.stderr
    assert "internal error" not in result.output and result.stdout == ""
    assert nothing_listens == []


def test_env_file_that_is_a_directory_is_refused(
    run: Invoke, tmp_path: Path, nothing_listens: list[str]
) -> None:
    result = run("sandbox", "--env-file", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.stderr


@pytest.mark.parametrize("flag", ["--fail-once", "--fail-image"])
def test_failure_simulation_without_ecs_is_refused(
    run: Invoke, flag: str, nothing_listens: list[str]
) -> None:
    result = run("sandbox", flag, "acme")
    assert result.exit_code == 2
    assert f"{flag} needs --ecs" in result.stderr
    assert nothing_listens == []


def test_a_bad_host_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"cannot listen on 203\.0\.113\.7"):
        sandbox.start_sandbox(host="203.0.113.7", port=0)


def sandbox_env(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`sandbox --ecs EXTRA...` in a process, once its env file is written; its environment."""
    import os
    import time

    env_file = tmp_path / "sandbox.env"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDMICA_"))}
    process = subprocess.Popen(
        [REDMICA, "sandbox", "--ecs", "--env-file", str(env_file), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=base,
    )
    deadline = time.monotonic() + 60
    while not env_file.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the sandbox did not start"
        time.sleep(0.05)
    lines = env_file.read_text().splitlines()
    exports = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    return process, {**base, **exports}


def _status(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [REDMICA, "status", "--output", "json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def test_the_sandbox_service_counts_agree_with_its_deployments(tmp_path: Path) -> None:
    process, env = sandbox_env(tmp_path)
    try:
        for step in ("start", "reload"):
            if step == "reload":
                reloaded = subprocess.run(
                    [REDMICA, "reload", "--yes"],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=120,
                )
                assert reloaded.returncode == 0, reloaded.stderr
            status = _status(env)
            deployments = status["deployments"]
            assert status["running"] == sum(d["running"] for d in deployments) == 2, status
            assert status["pending"] == sum(d["pending"] for d in deployments) == 0, status
            assert [d["rollout_state"] for d in deployments] == ["COMPLETED"], status
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_the_sandbox_is_the_documented_stand_up(tmp_path: Path) -> None:
    """`sandbox --ecs` is the stacks of docs/infrastructure.md: its exports are what `config
    from-stack` reads from them, `doctor` passes, and a migration runs on the app's task
    definition as the stack made it (a container without memory of its own: a moto gap)."""
    process, env = sandbox_env(tmp_path)
    try:

        def redmica(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [REDMICA, *args], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
            )

        stacks = ("redmica-foundation", "redmica-database", "redmica")
        read = redmica("config", "from-stack", *stacks, "-O", "json")
        assert read.returncode == 0, read.stderr
        for name, value in json.loads(read.stdout)["settings"].items():
            expected = ",".join(value) if isinstance(value, list) else value
            assert env[f"REDMICA_{name.upper()}"] == expected, name
        assert env["REDMICA_BUCKET"].startswith("redmica-configbucket-")
        assert env["REDMICA_TASK_DEFINITION"] == "redmica-app"
        doctor = redmica("doctor", "-O", "json")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert [c for c in json.loads(doctor.stdout) if c["status"] != "ok"] == []
        acme = Path(__file__).resolve().parents[1] / "examples" / "tenants" / "acme.yaml"
        assert redmica("tenant", "add", "acme", "-f", str(acme)).returncode == 0
        migrated = redmica("migrate", "--all", "-O", "json")
        assert migrated.returncode == 0, migrated.stderr
        tenants = json.loads(migrated.stdout)["tenants"]
        assert [(t["tenant"], t["status"]) for t in tenants] == [("acme", "succeeded")]
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_a_lifecycle_step_runs_through_the_broker_and_the_admin_task(tmp_path: Path) -> None:
    """`tenant add --provision` on the sandbox goes the platform's way: the operator's request
    in the bucket, the admin broker function (its handler run with the function's
    environment), a RunTask of the admin task definition with nothing but the command, the
    admin task (its command run with the definition's environment: the master secret read
    there). moto has no PostgreSQL behind the cluster endpoint, so the step ends there: the
    admin task's connection error, and nothing written for the tenant."""
    import boto3

    process, env = sandbox_env(tmp_path)
    try:
        acme = Path(__file__).resolve().parents[1] / "examples" / "tenants" / "acme.yaml"
        done = subprocess.run(
            [REDMICA, "tenant", "add", "acme", "-f", str(acme), "--provision"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=tmp_path,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            f"error: could not connect to PostgreSQL as 'admin' ({env['REDMICA_DB_HOST']}:5432)"
            in done.stderr
        )
        assert "no statement ran" in done.stderr
        # On ECS the administrator is the master secret's, not a local password file.
        assert "db_master_secret" in done.stderr and "PGPASSFILE" not in done.stderr
        endpoint = env["AWS_ENDPOINT_URL"]
        ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1")
        cluster = env["REDMICA_CLUSTER"]
        arns = ecs.list_tasks(cluster=cluster)["taskArns"]
        (task,) = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
        assert task["taskDefinitionArn"].endswith(":task-definition/redmica-admin:1")
        (override,) = task["overrides"]["containerOverrides"]
        assert set(override) == {"name", "command"} and override["command"][0] == "admin-sql"
        assert [c.get("exitCode") for c in task["containers"]] == [1]
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=env["REDMICA_BUCKET"])["Contents"]]
        assert keys == [f"lifecycle/results/{override['command'][1]}.json"]  # request taken
    finally:
        process.terminate()
        process.communicate(timeout=30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--local-db", "127.0.0.1:5433"), "--local-db needs --local-db-ca and --local-db-master"),
        (("--local-db-ca", "ca.pem"), "--local-db-ca and --local-db-master go with --local-db"),
        (("--local-db", "a b:x", "--local-db-ca", "ca.pem", "--local-db-master", "m.json"),
         "not HOST[:PORT]"),
        (("--local-db", "127.0.0.1:5433", "--local-db-ca", "missing.pem",
          "--local-db-master", "m.json"), "--local-db-ca missing.pem: no such file"),
        (("--local-db", "127.0.0.1:5433", "--local-db-ca", "ca.pem",
          "--local-db-master", "bad.json"), "--local-db-master bad.json: not a readable JSON"),
    ],
)  # fmt: skip
def test_bad_local_db_options_are_refused_before_starting(
    run: Invoke,
    nothing_listens: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ca.pem").write_text("not checked here\n")
    (tmp_path / "m.json").write_text('{"username": "master", "password": "Sekret-1"}')
    (tmp_path / "bad.json").write_text('{"user": "master", "password": "Sekret-2"}')
    result = run("sandbox", "--ecs", *args, bucket=None)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Sekret" not in result.output + result.stderr  # a file's content is never echoed
    assert nothing_listens == []


def test_local_db_without_ecs_is_refused(
    run: Invoke, nothing_listens: list[str], tmp_path: Path
) -> None:
    (tmp_path / "ca.pem").write_text("")
    (tmp_path / "m.json").write_text('{"username": "master", "password": "x"}')
    result = run("sandbox", "--local-db", "127.0.0.1", "--local-db-ca", str(tmp_path / "ca.pem"),
                 "--local-db-master", str(tmp_path / "m.json"))  # fmt: skip
    assert result.exit_code == 2
    assert "--local-db needs --ecs" in result.stderr
    assert nothing_listens == []


def test_a_bucket_with_the_stacks_is_refused(run: Invoke, nothing_listens: list[str]) -> None:
    result = run("sandbox", "--ecs", bucket="mine")
    assert result.exit_code == 2
    assert "--bucket does not go with --ecs or --cells" in result.stderr
    assert nothing_listens == []

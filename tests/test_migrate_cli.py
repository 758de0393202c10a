"""`redmica migrate`, `runs`, `cost` end to end in-process, against moto's ECS and S3."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.cli.app import Application
from redmica_ops.runs.pacing import FakeClock
from redmica_ops.runs.record import RunRecord
from redmica_ops.tenants.model import parse_tenant
from redmica_ops.tenants.store import TenantStore
from tests.conftest import BUCKET, CANARY_PASSWORD, Invoke, tenant_yaml
from tests.ecs_support import LOG_GROUP, create_ecs_target, moto_ecs_spy


def seed(s3: S3Client, *names: str) -> None:
    store = TenantStore(s3, BUCKET)
    for name in names:
        store.create(name, parse_tenant(name, tenant_yaml(name).encode(), name))


def tenants(n: int) -> list[str]:
    return [f"t{i:03d}" for i in range(n)]


@pytest.fixture
def ecs_env(s3: S3Client) -> dict[str, str]:
    return create_ecs_target()


def make_app(ecs_env: dict[str, str], **extra: str) -> Application:
    app = Application(env={**os.environ, **ecs_env, **extra})
    app.make_clock = lambda cancellation: FakeClock()
    return app


def load_record(s3: S3Client, run_id: str) -> RunRecord:
    body = s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}.json")["Body"].read()
    return RunRecord.from_json(body.decode())


def test_fifty_tenants_with_mixed_exit_codes(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = tenants(55)
    seed(s3, *names)
    with moto_ecs_spy(monkeypatch) as spy:
        spy.exit_codes = {"t004": 1, "t010": 2, "t031": 137}
        result = run("migrate", "--all", "--output", "json", app=make_app(ecs_env))
    assert result.exit_code == 1, result.output
    data = result.json()
    assert data["summary"] == {"failed": 3, "succeeded": 52}
    by_tenant = {t["tenant"]: t for t in data["tenants"]}
    assert by_tenant["t010"]["status"] == "failed" and by_tenant["t010"]["exit_code"] == 2
    assert set(by_tenant["t000"]) >= {
        "tenant",
        "status",
        "task_arn",
        "exit_code",
        "reason",
        "attempts",
        "started_at",
        "stopped_at",
    }
    assert sorted(spy.launched) == names, "every tenant launched exactly once"
    record = load_record(s3, data["run_id"])
    assert record.summary() == data["summary"] and record.state == "finished"
    assert record.tenants["t004"].log_stream.startswith("migrate/app/")  # type: ignore[union-attr]
    assert record.target.log_group == LOG_GROUP


def test_overrides_carry_only_the_tenant_id(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3, "acme", "beta")
    with moto_ecs_spy(monkeypatch) as spy:
        result = run("migrate", "acme", "beta", app=make_app(ecs_env))
    assert result.exit_code == 0, result.output
    dumped = json.dumps(spy.overrides)
    assert CANARY_PASSWORD not in dumped and "RAILS_DB" not in dumped
    for override in spy.overrides:
        (container,) = override["containerOverrides"]
        # The tenant id, and the run and attempt its result object is named after (issue 13).
        assert [e["name"] for e in container["environment"]] == [
            "REDMICA_TENANT",
            "REDMICA_RUN_ID",
            "REDMICA_ATTEMPT",
        ]
        assert container["command"][:3] == [
            "run-tenant",
            container["environment"][0]["value"],
            "--",
        ]
        assert container["command"][3:] == [
            "bundle",
            "exec",
            "rake",
            "db:migrate",
            "redmine:plugins:migrate",
        ]
    assert CANARY_PASSWORD not in result.output


def test_throttling_is_absorbed_and_nothing_runs_twice(
    s3: S3Client,
    run: Invoke,
    ecs_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    no_retry_delay: None,
) -> None:
    names = tenants(40)
    seed(s3, *names)
    with moto_ecs_spy(monkeypatch) as spy:
        spy.throttle_run_task_every = 3
        spy.throttle_describe_every = 2
        result = run("migrate", "--all", "-O", "json", app=make_app(ecs_env))
    assert result.exit_code == 0, result.output
    assert spy.throttled["RunTask"] > 5 and spy.throttled["DescribeTasks"] >= 2
    assert sorted(spy.launched) == names
    assert result.json()["summary"] == {"succeeded": 40}


def test_only_failed_reruns_just_the_failures(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3, *tenants(6))
    with moto_ecs_spy(monkeypatch) as spy:
        spy.exit_codes = {"t001": 1, "t004": 1}
        first = run("migrate", "--all", "-O", "json", app=make_app(ecs_env))
        assert first.exit_code == 1
        run_id = first.json()["run_id"]
        spy.exit_codes = {}
        spy.launched.clear()
        retry = run("migrate", "--only-failed", run_id, "-O", "json", app=make_app(ecs_env))
    assert retry.exit_code == 0, retry.output
    assert sorted(spy.launched) == ["t001", "t004"]
    assert retry.json()["summary"] == {"succeeded": 2}
    assert load_record(s3, retry.json()["run_id"]).parent_run == run_id


def test_text_report_names_failures_and_how_to_see_logs(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3, "acme", "beta")
    with moto_ecs_spy(monkeypatch) as spy:
        spy.exit_codes = {"beta": 3}
        result = run("migrate", "--all", app=make_app(ecs_env))
    assert result.exit_code == 1
    assert "beta: failed - the migration exited with 3" in result.stderr
    assert f"aws logs tail {LOG_GROUP} --log-stream-names migrate/app/" in result.stdout
    assert "redmica migrate --only-failed" in result.stderr


def test_exclude_marks_skipped(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3, "acme", "beta", "gamma")
    with moto_ecs_spy(monkeypatch) as spy:
        result = run("migrate", "--all", "--exclude", "beta", "-O", "json", app=make_app(ecs_env))
    assert result.exit_code == 0
    assert result.json()["summary"] == {"skipped": 1, "succeeded": 2}
    assert sorted(spy.launched) == ["acme", "gamma"]


def test_invalid_tenant_document_fails_without_a_task(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3, "acme")
    s3.put_object(Bucket=BUCKET, Key="tenants/broken.yaml", Body=b"db: 1\n")
    with moto_ecs_spy(monkeypatch) as spy:
        result = run("migrate", "--all", "-O", "json", app=make_app(ecs_env))
    assert result.exit_code == 1
    broken = next(t for t in result.json()["tenants"] if t["tenant"] == "broken")
    assert broken["status"] == "failed_to_start"
    assert "invalid tenant document" in broken["reason"]
    assert spy.launched == ["acme"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--all", "acme"], 2, "give tenant ids or --all (not both)"),
        ([], 2, "nothing to migrate"),
        (["ghost"], 3, "unknown tenant(s): ghost"),
        (["--resume", "nope-run"], 3, "run 'nope-run' not found"),
        (["--all", "--command", "'unbalanced"], 2, "cannot parse the command"),
    ],
)
def test_bad_invocations(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], args: list[str], code: int, message: str
) -> None:
    seed(s3, "acme")
    result = run("migrate", *args, app=make_app(ecs_env))
    assert result.exit_code == code, result.output
    assert message in result.stderr


def test_missing_cluster_is_exit_5_and_nothing_is_written(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str]
) -> None:
    seed(s3, "acme")
    result = run("migrate", "--all", app=make_app({**ecs_env, "REDMICA_CLUSTER": "nope"}))
    assert result.exit_code == 5
    assert "ECS cluster 'nope' not found" in result.stderr
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/").get("KeyCount") == 0


def test_missing_ecs_settings_are_named(s3: S3Client, run: Invoke) -> None:
    seed(s3, "acme")
    result = run("migrate", "--all")
    assert result.exit_code == 2
    assert "needs the setting(s): cluster, task_definition, container" in result.stderr


def test_wrong_container_name(s3: S3Client, run: Invoke, ecs_env: dict[str, str]) -> None:
    seed(s3, "acme")
    result = run("migrate", "--all", app=make_app({**ecs_env, "REDMICA_CONTAINER": "web"}))
    assert result.exit_code == 2
    assert "container 'web' is not in task definition" in result.stderr


def test_dry_run_plans_and_estimates_without_launching(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3, *tenants(100))
    with moto_ecs_spy(monkeypatch) as spy:
        result = run("migrate", "--all", "--dry-run", "-O", "json", app=make_app(ecs_env))
        text = run("migrate", "--all", "--dry-run", "--exclude", "t000", app=make_app(ecs_env))
    assert result.exit_code == 0 and text.exit_code == 0
    plan = result.json()
    assert len(plan["tenants"]) == 100
    assert plan["estimate"]["total_usd"] == pytest.approx(0.1027)
    assert plan["pacing"]["rate"] == 20.0 and plan["pacing"]["burst"] == 100
    assert "0.1027 USD" not in text.stdout  # 99 tenants in the text plan
    assert "plan (dry run): 99 tenant(s) with the ecs executor" in text.stdout
    assert "skipped:  t000" in text.stdout
    assert spy.launched == []
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/").get("KeyCount") == 0


def test_no_wait_then_runs_show_then_resume(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3, *tenants(5))
    with moto_ecs_spy(monkeypatch) as spy:
        launched = run("migrate", "--all", "--no-wait", app=make_app(ecs_env))
        assert launched.exit_code == 0, launched.output
        run_id = launched.stdout.strip().splitlines()[-1]
        assert load_record(s3, run_id).state == "launched"
        shown = run("runs", "show", run_id, "-O", "json")
        assert shown.json()["summary"] == {"running": 5}
        listed = run("runs", "list", "-O", "json")
        assert listed.json()[0]["run_id"] == run_id
        finished = run("migrate", "--resume", run_id, "-O", "json", app=make_app(ecs_env))
    assert finished.exit_code == 0, finished.output
    assert finished.json()["summary"] == {"succeeded": 5}
    assert sorted(spy.launched) == tenants(5), "resume launched nothing again"


def test_cost_of_the_talks_example(run: Invoke) -> None:
    result = run(
        "cost",
        "--tasks",
        "100",
        "--vcpu",
        "0.25",
        "--memory-gb",
        "0.5",
        "--minutes",
        "4",
        "-O",
        "json",
        bucket=None,
    )
    assert result.json() == {
        "tasks": 100,
        "vcpu": 0.25,
        "memory_gb": 0.5,
        "minutes": 4.0,
        "vcpu_usd": 0.0842667,
        "memory_usd": 0.0184333,
        "total_usd": 0.1027,
    }
    text = run("cost", "--tasks", "100", bucket=None)
    assert text.stdout.strip().endswith("total:  0.1027 USD")


# -- the local executor -------------------------------------------------------------------------
WRITE_ENV = (
    "import os, sys, pathlib; t = os.environ['REDMICA_TENANT']; "
    "pathlib.Path(os.environ['OUT_DIR'], t).write_text("
    "os.environ['RAILS_DB'] + '|' + os.environ['RAILS_DB_PASSWORD'] + '|' + os.getcwd());"
    "sys.exit(5 if t == 'beta' else 0)"
)


def test_local_executor_runs_a_process_per_tenant(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    seed(s3, "acme", "beta", "gamma")
    out = tmp_path / "out"
    out.mkdir()
    workdir = tmp_path / "work"
    workdir.mkdir()
    command = f'{sys.executable} -c "{WRITE_ENV}"'
    app = Application(
        env={
            **os.environ,
            "REDMICA_LOCAL_ENV": f"OUT_DIR={out}",
            "REDMICA_LOCAL_WORKDIR": str(workdir),
            "REDMICA_LOCAL_LOG_DIR": str(tmp_path / "logs"),
            "REDMICA_POLL_INTERVAL": "0.05",
        }
    )
    result = run(
        "migrate", "--all", "--executor", "local", "--command", command, "-O", "json", app=app
    )
    assert result.exit_code == 1, result.output
    data = result.json()
    assert data["summary"] == {"failed": 1, "succeeded": 2}
    for name in ("acme", "beta", "gamma"):
        assert (out / name).read_text() == f"{name}|{CANARY_PASSWORD}|{workdir}"
    beta = next(t for t in data["tenants"] if t["tenant"] == "beta")
    assert beta["exit_code"] == 5 and beta["reason"] == "the migration exited with 5"
    log = Path(beta["log_stream"])
    assert log.is_file() and "attempt 1" in log.read_text()
    assert CANARY_PASSWORD not in result.output


def test_local_executor_reports_a_missing_program(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    seed(s3, "acme")
    app = Application(env={**os.environ, "REDMICA_LOCAL_LOG_DIR": str(tmp_path)})
    result = run(
        "migrate",
        "acme",
        "--executor",
        "local",
        "--command",
        "/nonexistent/rake db:migrate",
        "-O",
        "json",
        app=app,
    )
    assert result.exit_code == 1
    (tenant,) = result.json()["tenants"]
    assert tenant["status"] == "failed_to_start"
    assert "cannot run '/nonexistent/rake'" in tenant["reason"]

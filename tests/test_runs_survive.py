"""Migration runs that survive anything (issue 13): interrupted state, result objects, collect,
the service's revision, dry-run validation. In-process against moto's ECS and S3."""

from __future__ import annotations

import io
import os
import sys
from typing import Any

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops import aws_lambda
from redmica_ops.cli.app import Application
from redmica_ops.cli.progress import ProgressPrinter
from redmica_ops.runs.pacing import FakeClock
from redmica_ops.runs.record import RunRecord, RunState, Status, TenantRun
from redmica_ops.runs.results import ResultStore, TenantResult, fingerprint
from tests.conftest import BUCKET, CANARY_PASSWORD, Invoke
from tests.ecs_support import LOG_GROUP, create_ecs_target, moto_ecs_spy
from tests.test_migrate_cli import load_record, make_app, seed, tenants


@pytest.fixture
def ecs_env(s3: S3Client) -> dict[str, str]:
    return create_ecs_target()


def forget_tasks() -> None:
    """What ECS does about an hour after a task stopped: it no longer knows it."""
    from moto.ecs.models import ecs_backends

    backend = ecs_backends["123456789012"]["us-east-1"]
    for tasks in backend.tasks.values():
        tasks.clear()


# -- a run is finished only when every tenant has a final status ---------------------------------
def test_an_aws_error_mid_run_leaves_the_run_interrupted_and_resume_finishes_it(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.ecs.models import EC2ContainerServiceBackend

    names = tenants(6)
    seed(s3, *names)
    original = EC2ContainerServiceBackend.describe_tasks
    calls = {"n": 0}

    def expired_token(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:  # the first poll of the run: the SSO session expired
            from moto.core.exceptions import JsonRESTError

            raise JsonRESTError("AccessDeniedException", "the security token has expired")
        return original(self, *args, **kwargs)

    with moto_ecs_spy(monkeypatch) as spy:
        monkeypatch.setattr(EC2ContainerServiceBackend, "describe_tasks", expired_token)
        failed = run("migrate", "--all", "--concurrency", "4", app=make_app(ecs_env))
        assert failed.exit_code == 5, failed.output
        assert "interrupted" in failed.stderr and "migrate --resume" in failed.stderr
        run_id = next(
            line.split()[1].rstrip(":")
            for line in failed.stderr.splitlines()
            if line.startswith("run ")
        )
        record = load_record(s3, run_id)
        assert record.state == "interrupted" and record.error
        assert "access denied while describing migration tasks" in record.error
        # Launched tenants stay running, the rest pending: nothing is called finished.
        assert record.summary() == {"pending": 2, "running": 4}
        resumed = run("migrate", "--resume", run_id, "-O", "json", app=make_app(ecs_env))
    assert resumed.exit_code == 0, resumed.output
    assert resumed.json()["summary"] == {"succeeded": 6}
    assert resumed.json()["state"] == "finished"
    assert sorted(spy.launched) == names, "each tenant launched exactly once"


def test_resume_accepts_a_run_left_running_by_a_killed_cli(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kill -9` leaves the record as last saved: state running, tenants running/pending."""
    names = tenants(4)
    seed(s3, *names)
    with moto_ecs_spy(monkeypatch) as spy:
        launched = run("migrate", "--all", "--no-wait", "-O", "json", app=make_app(ecs_env))
        run_id = launched.json()["run_id"]
        record = load_record(s3, run_id)
        # As if the CLI was killed after launching two and saving: two never recorded as
        # launched (their tasks exist, the record does not know them), none finished.
        record.state = RunState.RUNNING
        for name in names[2:]:
            record.tenants[name] = TenantRun(name)
        s3.put_object(Bucket=BUCKET, Key=f"runs/{run_id}.json", Body=record.to_json().encode())
        resumed = run("migrate", "--resume", run_id, "-O", "json", app=make_app(ecs_env))
    assert resumed.exit_code == 0, resumed.output
    assert resumed.json()["summary"] == {"succeeded": 4}
    assert sorted(spy.launched) == names, "the unrecorded tasks were found, not relaunched"


def test_resume_progress_counts_only_what_this_session_finishes() -> None:
    stream = io.StringIO()
    clock = FakeClock()
    printer = ProgressPrinter(clock, total=3, stream=stream, live=False)
    record = RunRecord("r", "ecs", ["x"], "", "")
    for i in range(8):
        record.tenants[f"done{i}"] = TenantRun(f"done{i}", Status.SUCCEEDED)
    for i in range(3):
        run = TenantRun(f"t{i}", Status.SUCCEEDED)
        record.tenants[run.tenant] = run
        printer.finished(run)
    clock.sleep(3)
    line = printer.summary(record, in_flight=0, queued=0, now=clock.now())
    assert "3/3 tenant(s) done" in line and "ETA -" in line and "-3s" not in line


# -- results that do not depend on ECS remembering ------------------------------------------------
def run_tenant_in_task(
    run: Invoke, ecs_env: dict[str, str], run_id: str, tenant: str, script: str
) -> int:
    """What the task's container does: `redmica entrypoint run-tenant ID -- CMD`."""
    app = make_app(ecs_env, REDMICA_RUN_ID=run_id, REDMICA_ATTEMPT="1")
    result = run("entrypoint", "run-tenant", tenant, "--", sys.executable, "-c", script, app=app)
    return result.exit_code


FAILING = (
    "import os, sys; print('== migrating', os.environ['RAILS_DB']);"
    "print('PG::ConnectionBad: password', os.environ['RAILS_DB_PASSWORD'], 'rejected');"
    "print('rake aborted!'); sys.exit(3)"
)


def test_no_wait_results_come_from_result_objects_after_ecs_forgot_the_tasks(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = tenants(3)
    seed(s3, *names)
    with moto_ecs_spy(monkeypatch):
        launched = run("migrate", "--all", "--no-wait", "-O", "json", app=make_app(ecs_env))
    run_id = launched.json()["run_id"]
    assert run_tenant_in_task(run, ecs_env, run_id, "t000", "print('ok')") == 0
    assert run_tenant_in_task(run, ecs_env, run_id, "t001", FAILING) == 3
    assert run_tenant_in_task(run, ecs_env, run_id, "t002", "print('ok')") == 0
    forget_tasks()

    shown = run("runs", "show", run_id, app=make_app(ecs_env))
    assert shown.exit_code == 0, shown.output
    assert "collected 3 result(s)" in shown.stderr
    assert f"run {run_id} finished: 1 failed, 2 succeeded" in shown.stderr
    assert "rake aborted!" in shown.stdout and "PG::ConnectionBad" in shown.stdout
    assert CANARY_PASSWORD not in shown.output, "the tail is masked"
    record = load_record(s3, run_id)
    assert record.state == "finished"
    assert record.tenants["t001"].reason == "the migration exited with 3"

    one = run("runs", "show", run_id, "t001", "-O", "json", app=make_app(ecs_env))
    data = one.json()
    assert data["status"] == "failed" and data["exit_code"] == 3
    assert data["tail"][-1] == "rake aborted!" and "********" in data["tail"][1]
    assert data["log"] == {"group": LOG_GROUP, "stream": record.tenants["t001"].log_stream}
    text = run("runs", "show", run_id, "t001", app=make_app(ecs_env))
    assert f"CloudWatch Logs group {LOG_GROUP}" in text.stdout
    assert "== migrating t001" in text.stdout
    missing = run("runs", "show", run_id, "nobody", app=make_app(ecs_env))
    assert missing.exit_code == 3


def test_run_tenant_in_a_run_writes_its_result_and_masks_secrets(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str]
) -> None:
    seed(s3, "acme")
    code = run_tenant_in_task(run, ecs_env, "20261126T060000Z-abc123", "acme", FAILING)
    assert code == 3
    stored = ResultStore(s3, BUCKET).get("20261126T060000Z-abc123", "acme", 1)
    assert stored is not None and stored.exit_code == 3 and stored.tenant == "acme"
    assert stored.started_at <= stored.ended_at
    body = s3.get_object(Bucket=BUCKET, Key="runs/20261126T060000Z-abc123/results/acme/1.json")[
        "Body"
    ].read()
    assert CANARY_PASSWORD.encode() not in body and b"rake aborted!" in body
    # One attempt writes one result: the same attempt again is refused, nothing overwritten.
    again = run_tenant_in_task(run, ecs_env, "20261126T060000Z-abc123", "acme", "print(1)")
    assert again == 4


def test_the_lambda_collects_until_the_run_is_complete(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3, "t000", "t001")
    for name, value in {**ecs_env, "REDMICA_BUCKET": BUCKET}.items():
        monkeypatch.setenv(name, value)
    with moto_ecs_spy(monkeypatch):
        launched = aws_lambda.handler({"action": "migrate"}, None)
    run_id = str(launched["run_id"])
    forget_tasks()
    first = aws_lambda.handler({"action": "collect", "run_id": run_id}, None)
    assert first["complete"] is False and first["collected"] == 0
    assert run_tenant_in_task(run, ecs_env, run_id, "t000", "print('ok')") == 0
    assert run_tenant_in_task(run, ecs_env, run_id, "t001", "print('ok')") == 0
    scheduled = aws_lambda.handler({"action": "collect"}, None)
    runs: Any = scheduled["runs"]
    (report,) = runs
    assert report["run_id"] == run_id and report["complete"] is True
    assert report["state"] == "finished" and report["summary"] == {"succeeded": 2}
    assert aws_lambda.handler({"action": "collect"}, None) == {"runs": []}, "nothing left"


def test_result_merge_outranks_ecs_and_keeps_the_tail_only_for_failures() -> None:
    from redmica_ops.runs.results import MemoryResults, merge_result

    results = MemoryResults()
    results.put(TenantResult("r", "a", 1, 0, "s", "e", tail=["fine"], fingerprint="f1"))
    results.put(TenantResult("r", "a", 2, 1, "s", "e", tail=["boom"]))
    assert results.latest("r")["a"].attempt == 2
    run = TenantRun("a", Status.RUNNING)
    merge_result(run, results.latest("r")["a"])
    assert run.status == Status.FAILED and run.tail == ["boom"]
    again = TenantRun("a", Status.FAILED, tail=["boom"])
    merge_result(again, TenantResult("r", "a", 3, 0, "s", "e", tail=["ok"], fingerprint="f2"))
    assert again.status == Status.SUCCEEDED and again.tail is None
    assert again.fingerprint == "f2"


def test_fingerprint_is_the_migration_versions_of_redmine_and_plugins(tmp_path: Any) -> None:
    assert fingerprint(tmp_path) is None
    (tmp_path / "db" / "migrate").mkdir(parents=True)
    (tmp_path / "db" / "migrate" / "001_setup.rb").write_text("")
    first = fingerprint(tmp_path)
    plugin = tmp_path / "plugins" / "agile" / "db" / "migrate"
    plugin.mkdir(parents=True)
    (plugin / "20240101000000_add.rb").write_text("")
    second = fingerprint(tmp_path)
    assert first and second and first != second
    (tmp_path / "db" / "migrate" / "001_setup.rb").write_text("changed body, same version")
    assert fingerprint(tmp_path) == second


# -- migrate the revision that runs ---------------------------------------------------------------
def test_a_plain_migrate_runs_the_services_revision_after_a_failed_release(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_deploy import app_for, moto_service

    ecs, running = moto_service()
    subnet = boto3.client("ec2", region_name="us-east-1").describe_subnets()["Subnets"][0][
        "SubnetId"
    ]
    # A failed release registered a broken image as the family's newest revision.
    definition = ecs.describe_task_definition(taskDefinition=running)["taskDefinition"]
    from redmica_ops.deploy.model import clone_with_image

    params: Any = clone_with_image(definition, "app", "redmica:broken")
    broken = ecs.register_task_definition(**params)["taskDefinition"]["taskDefinitionArn"]
    seed(s3, "acme", "beta")
    env = {"REDMICA_SUBNETS": subnet, "REDMICA_TASK_DEFINITION": "redmica-app"}
    plan = run("migrate", "--all", "--dry-run", "-O", "json", app=app_for(**env))
    assert plan.exit_code == 0, plan.output
    assert plan.json()["task_definition"] == running and plan.json()["image"] == "redmica:1"
    text = run("migrate", "--all", "--dry-run", app=app_for(**env))
    assert "revision: redmica-app:1 (image redmica:1)" in text.stdout
    with moto_ecs_spy(monkeypatch) as spy:
        assert run("migrate", "--all", app=app_for(**env)).exit_code == 0
        assert set(spy.task_definitions) == {running}, "never the family's newest by accident"
        spy.task_definitions.clear()
        explicit = run("migrate", "acme", "--task-definition", broken, app=app_for(**env))
        assert explicit.exit_code == 0, explicit.output
        assert spy.task_definitions == [broken]


# -- dry-run validation ---------------------------------------------------------------------------
def test_dry_run_validates_every_setting_the_real_run_needs(s3: S3Client, run: Invoke) -> None:
    seed(s3, "acme")
    bare = Application(env={k: v for k, v in os.environ.items() if not k.startswith("REDMICA_")})
    result = run("migrate", "--all", "--dry-run", app=bare)
    assert result.exit_code == 2
    assert "cluster" in result.stderr and "task_definition" in result.stderr
    ecs_env = create_ecs_target()
    no_subnets = {k: v for k, v in ecs_env.items() if k != "REDMICA_SUBNETS"}
    result = run("migrate", "--all", "--dry-run", app=make_app(no_subnets))
    assert result.exit_code == 2 and "no subnets are set" in result.stderr
    empty = run("migrate", "--all", "--dry-run", "--command", "", app=make_app(ecs_env))
    assert empty.exit_code == 2 and "the migration command is empty" in empty.stderr
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/").get("KeyCount") == 0


def test_the_local_executors_dry_run_has_no_fargate_cost(s3: S3Client, run: Invoke) -> None:
    seed(s3, "acme")
    text = run("migrate", "--all", "--dry-run", "--executor", "local")
    assert text.exit_code == 0, text.output
    assert "no Fargate time" in text.stdout and "USD" not in text.stdout
    data = run("migrate", "--all", "--dry-run", "--executor", "local", "-O", "json").json()
    assert "total_usd" not in data["estimate"]


def test_runs_collect_without_a_run_id_collects_every_incomplete_run(
    s3: S3Client, run: Invoke, ecs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3, "t000")
    with moto_ecs_spy(monkeypatch):
        launched = run("migrate", "--all", "--no-wait", "-O", "json", app=make_app(ecs_env))
    run_id = launched.json()["run_id"]
    forget_tasks()
    waiting = run("runs", "collect", "-O", "json", app=make_app(ecs_env))
    assert waiting.exit_code == 1, "a tenant is still running"
    assert [r["run_id"] for r in waiting.json()] == [run_id]
    assert run_tenant_in_task(run, ecs_env, run_id, "t000", "print('ok')") == 0
    done = run("runs", "collect", "-O", "json", app=make_app(ecs_env))
    assert done.exit_code == 0, done.output
    assert done.json()[0]["complete"] is True and done.json()[0]["collected"] == 1
    one = run("runs", "collect", run_id, app=make_app(ecs_env))
    assert one.exit_code == 0 and "finished: 1 succeeded" in one.stderr

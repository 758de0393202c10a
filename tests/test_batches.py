"""Several tenants per task (--tenants-per-task K) and --skip-current (issue 13)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.cli.app import Application
from redmica_ops.runs.executors.ecs import client_token
from redmica_ops.runs.record import Status, prepare_resume
from redmica_ops.runs.results import MemoryResults, ResultStore, TenantResult
from tests.conftest import BUCKET, CANARY_PASSWORD, Invoke
from tests.ecs_support import FakeEcs
from tests.test_fanout import Run, names
from tests.test_migrate_cli import load_record, seed


def results_from_tasks(fake: FakeEcs, results: MemoryResults, fail: set[str]) -> None:
    """Each launched task 'runs' run-tenant for its tenants: one result object each."""
    original = fake.run_task

    def run_task(**params: Any) -> dict[str, Any]:
        response = original(**params)
        container = params["overrides"]["containerOverrides"][0]
        env = {e["name"]: e["value"] for e in container["environment"]}
        for tenant in container["command"][1].split(","):
            code = 1 if tenant in fail else 0
            tail = [f"migrating {tenant}", "rake aborted!"] if code else []
            results.put(
                TenantResult(
                    env["REDMICA_RUN_ID"],
                    tenant,
                    int(env["REDMICA_ATTEMPT"]),
                    code,
                    "s",
                    "e",
                    tail=tail,
                    fingerprint="mig-1-abc",
                )
            )
        return response

    fake.run_task = run_task  # type: ignore[method-assign]


def test_k_tenants_per_task_and_one_failing_tenant_hides_no_other_result() -> None:
    fake = FakeEcs(behaviour=lambda tenant, attempt: {"exit": 1 if tenant == "t003" else 0})
    results = MemoryResults()
    results_from_tasks(fake, results, fail={"t004"})
    run = Run(fake, names(7), tenants_per_task=3)
    run.engine.results = results
    run.go()
    assert len(fake.run_task_calls) == 3, "7 tenants in tasks of 3, 3, 1"
    commands = [c["overrides"]["containerOverrides"][0]["command"][:3] for c in fake.run_task_calls]
    assert commands[0] == ["run-tenant", "t000,t001,t002", "--"]
    assert commands[2] == ["run-tenant", "t006", "--"]
    tenants = run.record.tenants
    assert tenants["t004"].status == Status.FAILED and tenants["t004"].tail == [
        "migrating t004",
        "rake aborted!",
    ]
    others = [t for t in names(7) if t != "t004"]
    assert all(tenants[t].status == Status.SUCCEEDED for t in others)
    assert fake.run_task_calls[0]["clientToken"] == client_token(
        run.record.run_id, "t000,t001,t002", 1
    )


def test_a_task_that_dies_mid_batch_marks_its_unfinished_tenants_and_resume_runs_the_rest() -> None:
    fake = FakeEcs(behaviour=lambda tenant, attempt: {"exit": 137})
    results = MemoryResults()
    run = Run(fake, names(3), tenants_per_task=3)
    run.engine.results = results
    original = fake.run_task

    def first_tenant_only(**params: Any) -> dict[str, Any]:
        response = original(**params)
        results.put(TenantResult(run.record.run_id, "t000", 1, 0, "s", "e"))
        return response

    fake.run_task = first_tenant_only  # type: ignore[method-assign]
    run.go()
    tenants = run.record.tenants
    assert tenants["t000"].status == Status.SUCCEEDED
    assert tenants["t001"].status == Status.FAILED
    assert tenants["t001"].reason and "stopped while it ran" in tenants["t001"].reason
    assert tenants["t002"].status == Status.NOT_STARTED
    assert tenants["t002"].reason == "its task stopped before it began"
    assert prepare_resume(run.record, {}) == ["t002"], "resume runs only what never began"


def local_app(tmp_path: Path, **extra: str) -> Application:
    workdir = tmp_path / "redmine"
    (workdir / "db" / "migrate").mkdir(parents=True, exist_ok=True)
    (workdir / "db" / "migrate" / "001_setup.rb").write_text("")
    return Application(
        env={
            **os.environ,
            "REDMICA_LOCAL_WORKDIR": str(workdir),
            "REDMICA_LOCAL_LOG_DIR": str(tmp_path / "logs"),
            "REDMICA_POLL_INTERVAL": "0.05",
            **extra,
        }
    )


FAIL_BETA = (
    "import os, sys; t = os.environ['REDMICA_TENANT']; print('migrating', t);"
    "print('secret', os.environ['RAILS_DB_PASSWORD']);"
    "sys.exit(4 if t == 'beta' else 0)"
)


def test_local_executor_runs_k_tenants_in_turn_with_results_and_tails(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    seed(s3, "acme", "beta", "gamma")
    command = f'{sys.executable} -c "{FAIL_BETA}"'
    args = ("migrate", "--all", "--executor", "local", "--tenants-per-task", "2")
    result = run(*args, "--command", command, "-O", "json", app=local_app(tmp_path))
    assert result.exit_code == 1, result.output
    data = result.json()
    assert data["summary"] == {"failed": 1, "succeeded": 2}
    beta = next(t for t in data["tenants"] if t["tenant"] == "beta")
    assert beta["exit_code"] == 4 and "migrating beta" in beta["tail"]
    assert CANARY_PASSWORD not in str(beta["tail"]) and "secret ********" in beta["tail"]
    stored = ResultStore(s3, BUCKET).latest(data["run_id"])
    assert sorted(stored) == ["acme", "beta", "gamma"]
    shown = run("runs", "show", data["run_id"], app=local_app(tmp_path))
    assert "migrating beta" in shown.stdout and CANARY_PASSWORD not in shown.output


def test_skip_current_leaves_out_tenants_migrated_with_the_same_fingerprint(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    seed(s3, "acme", "beta", "gamma")
    command = f'{sys.executable} -c "print(1)"'
    base = ("migrate", "--all", "--executor", "local", "--command", command, "-O", "json")
    first = run(*base, app=local_app(tmp_path))
    assert first.exit_code == 0, first.output
    record = load_record(s3, first.json()["run_id"])
    assert {r.fingerprint for r in record.tenants.values()} == {record.target.fingerprint}
    again = run(*base, "--skip-current", app=local_app(tmp_path))
    assert again.exit_code == 0, again.output
    assert again.json()["summary"] == {"skipped": 3}
    assert "skipped 3 tenant(s) already migrated" in again.stderr
    # A new migration in the image: nobody is current any more.
    (tmp_path / "redmine" / "db" / "migrate" / "002_more.rb").write_text("")
    after = run(*base, "--skip-current", app=local_app(tmp_path))
    assert after.json()["summary"] == {"succeeded": 3}
    assert "skipped 0 tenant(s)" in after.stderr


def test_run_tenant_runs_a_batch_in_turn_and_one_failure_hides_nothing(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3, "acme", "beta")
    app = Application(
        env={**os.environ, "REDMICA_RUN_ID": "20261126T060000Z-abc123", "REDMICA_ATTEMPT": "2"}
    )
    result = run(
        "entrypoint", "run-tenant", "beta,acme", "--", sys.executable, "-c", FAIL_BETA, app=app
    )
    assert result.exit_code == 1, result.output
    stored = ResultStore(s3, BUCKET).latest("20261126T060000Z-abc123")
    assert stored["beta"].exit_code == 4 and stored["acme"].exit_code == 0
    assert stored["acme"].attempt == 2
    alone = Application(env={k: v for k, v in os.environ.items() if k != "REDMICA_RUN_ID"})
    refused = run("entrypoint", "run-tenant", "beta,acme", "--", "true", app=alone)
    assert refused.exit_code == 2


def test_skip_current_on_ecs_learns_the_fingerprint_from_a_probe_task_or_an_earlier_run(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ECS path of --skip-current (the image's migrations are not known on this host):
    same image as an earlier run -> its fingerprint; a new image -> one probe task first."""
    from moto.ecs.models import EC2ContainerServiceBackend

    from tests.ecs_support import create_ecs_target, moto_ecs_spy
    from tests.test_migrate_cli import make_app

    seed(s3, "acme", "beta", "gamma")
    env = create_ecs_target()
    migrations = {"example/redmica:1": "mig-1", "example/redmica:2": "mig-1"}
    with moto_ecs_spy(monkeypatch) as spy:
        spied = EC2ContainerServiceBackend.run_task

        def run_task(self: Any, *args: Any, **kwargs: Any) -> Any:
            """What the task's run-tenant does: one result object per tenant, with the
            fingerprint of the migrations in the task's image (and no image: moto has no
            task metadata endpoint, so the run's own target image must do)."""
            tasks = spied(self, *args, **kwargs)
            store = ResultStore(s3, BUCKET)
            for task in tasks:
                container = task.overrides["containerOverrides"][0]
                variables = {e["name"]: e["value"] for e in container["environment"]}
                definition = self.describe_task_definition(task.task_definition_arn)
                image = definition.container_definitions[0]["image"]
                for tenant in container["command"][1].split(","):
                    store.put(
                        TenantResult(
                            variables["REDMICA_RUN_ID"],
                            tenant,
                            int(variables["REDMICA_ATTEMPT"]),
                            0,
                            "s",
                            "e",
                            fingerprint=migrations[image],
                        )
                    )
            return tasks

        monkeypatch.setattr(EC2ContainerServiceBackend, "run_task", run_task)
        base = ("migrate", "--all", "-O", "json")
        first = run(*base, app=make_app(env))
        assert first.exit_code == 0, first.output
        assert sorted(spy.launched) == ["acme", "beta", "gamma"]

        same = run(*base, "--skip-current", app=make_app(env))
        assert same.exit_code == 0, same.output
        assert same.json()["summary"] == {"skipped": 3}
        assert len(spy.launched) == 3, "the earlier run of this image told its fingerprint"

        # A release with no new migration: a new image, the same migrations.
        import boto3

        boto3.client("ecs").register_task_definition(
            family=env["REDMICA_TASK_DEFINITION"],
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[
                {"name": env["REDMICA_CONTAINER"], "image": "example/redmica:2", "memory": 512}
            ],
        )
        probed = run(*base, "--skip-current", app=make_app(env))
        assert probed.exit_code == 0, probed.output
        assert "the image's migrations are unknown; acme goes first" in probed.stderr
        assert probed.json()["summary"] == {"skipped": 2, "succeeded": 1}
        assert spy.launched[3:] == ["acme"], "only the probe task ran"

        # A new migration in the next image: the probe says so and everyone runs.
        migrations["example/redmica:3"] = "mig-2"
        boto3.client("ecs").register_task_definition(
            family=env["REDMICA_TASK_DEFINITION"],
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[
                {"name": env["REDMICA_CONTAINER"], "image": "example/redmica:3", "memory": 512}
            ],
        )
        changed = run(*base, "--skip-current", app=make_app(env))
    assert changed.exit_code == 0, changed.output
    assert changed.json()["summary"] == {"succeeded": 3}
    assert sorted(spy.launched[4:]) == ["acme", "beta", "gamma"]

"""Releases in waves across cells (moto): canary first, gated waves, rollback of what changed."""

from __future__ import annotations

from collections import Counter

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops import aws_lambda
from redmica_ops.cells.config import Cell
from redmica_ops.cells.waves import plan_waves
from redmica_ops.errors import Conflict, UsageError
from tests.cells_support import add_tenant, cells_app, fail_rollouts, moto_cells
from tests.conftest import BUCKET, Invoke


def revisions() -> dict[str, str]:
    ecs = boto3.client("ecs", region_name="us-east-1")
    services = ecs.describe_services(
        cluster="prod", services=["redmica-a", "redmica-b", "redmica-c"]
    )["services"]
    return {
        s["serviceName"].removeprefix("redmica-"): s["taskDefinition"].rsplit("/", 1)[-1]
        for s in services
    }


def test_waves_put_the_canary_first_then_groups_of_max_parallel() -> None:
    cells = [Cell(n, f"s-{n}", "prod") for n in "abcde"]

    def names(waves: list[list[Cell]]) -> list[list[str]]:
        return [[c.name for c in w] for w in waves]

    assert names(plan_waves(cells, None, 1)) == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert names(plan_waves(cells, "c", 2)) == [["c"], ["a", "b"], ["d", "e"]]
    assert names(plan_waves(cells, "e", 10)) == [["e"], ["a", "b", "c", "d"]]
    with pytest.raises(UsageError, match="canary cell 'z'"):
        plan_waves(cells, "z", 1)


def test_deploy_goes_canary_first_and_reaches_every_cell(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    env = moto_cells()
    result = run(
        "deploy",
        "--yes",
        "--image",
        "redmica:2",
        "--canary-cell",
        "b",
        "--max-parallel-cells",
        "2",
        "-O",
        "json",
        app=cells_app(env),
    )
    assert result.exit_code == 0, result.output
    report = result.json()
    assert report["waves"] == [["b"], ["a", "c"]]
    assert [(c["cell"], c["wave"], c["status"]) for c in report["cells"]] == [
        ("b", 1, "succeeded"),
        ("a", 2, "succeeded"),
        ("c", 2, "succeeded"),
    ]
    assert revisions() == {"a": "redmica-a:2", "b": "redmica-b:2", "c": "redmica-c:2"}
    assert "wave 1/2: canary cell(s) b" in result.stderr
    status = run("status", "-O", "json", app=cells_app(env)).json()
    assert [(c["cell"], c["task_definition"].rsplit("/", 1)[-1]) for c in status["cells"]] == [
        ("a", "redmica-a:2"),
        ("b", "redmica-b:2"),
        ("c", "redmica-c:2"),
    ]


def test_a_failing_second_wave_stops_and_rolls_back_what_changed(
    s3: S3Client, run: Invoke, moto_rollouts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = moto_cells()
    fail_rollouts(monkeypatch, {"redmica-b"})
    result = run("deploy", "--image", "redmica:2", "--yes", "-O", "json", app=cells_app(env))
    assert result.exit_code == 1, result.output
    report = result.json()
    assert report["ok"] is False and report["stopped_after_wave"] == 2
    by_cell = {c["cell"]: c for c in report["cells"]}
    # The canary succeeded, then went back when wave 2 failed.
    assert by_cell["a"]["status"] == "rolled_back" and by_cell["a"]["undo"] == "succeeded"
    # The failing cell was rolled back by ECS's circuit breaker, and we waited for it.
    assert by_cell["b"]["status"] == "rolled_back"
    assert by_cell["b"]["rollout"]["rolled_back_to"].endswith("redmica-b:1")
    # The third wave never started: its service was not touched, not even registered.
    assert by_cell["c"]["status"] == "not_started" and by_cell["c"]["revision"] is None
    assert revisions() == {"a": "redmica-a:1", "b": "redmica-b:1", "c": "redmica-c:1"}
    ecs = boto3.client("ecs", region_name="us-east-1")
    assert ecs.list_task_definitions(familyPrefix="redmica-c")["taskDefinitionArns"] == [
        ecs.describe_services(cluster="prod", services=["redmica-c"])["services"][0][
            "taskDefinition"
        ]
    ]
    text = run("deploy", "--image", "redmica:3", "--yes", app=cells_app(env))
    assert text.exit_code == 1
    assert "FAILED in wave 2" in text.stderr
    assert "not_started" in text.stdout


def test_release_migrates_each_cell_before_deploying_it_and_stops_on_a_failed_cell(
    s3: S3Client, run: Invoke, moto_rollouts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.ecs_support import moto_ecs_spy

    env = moto_cells()
    for name, cell in (("t1", "a"), ("t2", "b"), ("t3", "c")):
        add_tenant(run, env, name, "--cell", cell)
    with moto_ecs_spy(monkeypatch) as spy:
        spy.exit_codes = {"t2": 1}  # cell b's tenant fails to migrate
        result = run("release", "--image", "redmica:2", "--yes", "-O", "json", app=cells_app(env))
    assert result.exit_code == 1, result.output
    by_cell = {c["cell"]: c for c in result.json()["cells"]}
    # Each cell's tenants migrated with that cell's new revision, before it was deployed.
    assert spy.launched == ["t1", "t2"]
    assert [d.rsplit("/", 1)[-1] for d in spy.task_definitions] == [
        "redmica-a:2",
        "redmica-b:2",
    ]
    assert by_cell["b"]["status"] == "migration_failed"
    assert by_cell["b"]["rollout"] is None  # cell b was not deployed
    assert by_cell["c"]["status"] == "not_started"
    assert by_cell["a"]["status"] == "rolled_back"
    assert revisions() == {"a": "redmica-a:1", "b": "redmica-b:1", "c": "redmica-c:1"}


def test_reload_and_rollback_take_a_cell(s3: S3Client, run: Invoke, moto_rollouts: None) -> None:
    env = moto_cells()
    assert run("deploy", "--image", "redmica:2", "--yes", app=cells_app(env)).exit_code == 0
    back = run("rollback", "--cell", "c", "--yes", "-O", "json", app=cells_app(env))
    assert back.exit_code == 0, back.output
    assert [c["cell"] for c in back.json()["cells"]] == ["c"]
    assert revisions() == {"a": "redmica-a:2", "b": "redmica-b:2", "c": "redmica-c:1"}
    reloaded = run("reload", "--cell", "a", "--yes", "-O", "json", app=cells_app(env))
    assert reloaded.exit_code == 0, reloaded.output
    assert [(c["cell"], c["status"]) for c in reloaded.json()["cells"]] == [("a", "succeeded")]
    assert revisions()["a"] == "redmica-a:2"
    unknown = run("reload", "--cell", "zz", app=cells_app(env))
    assert unknown.exit_code == 2 and "there is no cell 'zz'" in unknown.stderr
    no_wait = run("reload", "--no-wait", "--yes", app=cells_app(env))
    assert no_wait.exit_code == 2


def test_migrate_a_cell_with_its_revision_and_report_per_cell(
    s3: S3Client, run: Invoke, moto_rollouts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.ecs_support import moto_ecs_spy

    env = moto_cells()
    for name, cell in (("t1", "a"), ("t2", "b"), ("t3", "b")):
        add_tenant(run, env, name, "--cell", cell)
    assert (
        run("deploy", "--image", "redmica:2", "--cell", "b", "--yes", app=cells_app(env)).exit_code
        == 0
    )
    with moto_ecs_spy(monkeypatch) as spy:
        one = run("migrate", "--cell", "b", "-O", "json", app=cells_app(env))
        assert one.exit_code == 0, one.output
        assert sorted(spy.launched) == ["t2", "t3"]
        # The cell's tenants migrate with the revision their cell runs.
        assert {d.rsplit("/", 1)[-1] for d in spy.task_definitions} == {"redmica-b:2"}
        # Cell b runs redmica:2, a and c redmica:1: one run cannot migrate every tenant with
        # its own cell's image, so it is refused (the scheduled job's call too), nothing launched.
        mixed = run("migrate", "--all", app=cells_app(env))
        assert mixed.exit_code == 4, mixed.output
        assert "run different images (a: redmica:1, b: redmica:2" in mixed.stderr
        assert "redmica migrate --cell NAME" in mixed.stderr
        for name, value in {**env, "REDMICA_BUCKET": BUCKET}.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(Conflict, match="run different images"):
            aws_lambda.handler({"action": "migrate"})
        assert len(spy.launched) == 2
        # A tenant alone: its own cell's revision.
        alone = run("migrate", "t1", app=cells_app(env))
        assert alone.exit_code == 0, alone.output
        assert spy.task_definitions[-1].rsplit("/", 1)[-1] == "redmica-a:1"
        finished = run("deploy", "--image", "redmica:2", "--yes", app=cells_app(env))
        assert finished.exit_code == 0, finished.output
        spy.exit_codes = {"t3": 1}
        every = run("migrate", "--all", "-O", "json", app=cells_app(env))
    assert every.exit_code == 1
    assert every.json()["cells"] == {"a": {"succeeded": 1}, "b": {"failed": 1, "succeeded": 1}}
    assert spy.task_definitions[-1].rsplit("/", 1)[-1] == "redmica-a:2"
    both = run("migrate", "t1", "--cell", "b", app=cells_app(env))
    assert both.exit_code == 2


def test_release_reads_the_listing_once_per_cell_gate(
    s3: S3Client,
    run: Invoke,
    moto_rollouts: None,
    monkeypatch: pytest.MonkeyPatch,
    listing_reads: Counter[str],
) -> None:
    """Each cell's gate is one migration run (one listing read); the command adds none."""
    from tests.ecs_support import moto_ecs_spy

    env = moto_cells()
    for name, cell in (("t1", "a"), ("t2", "b")):
        add_tenant(run, env, name, "--cell", cell)
    listing_reads.clear()
    with moto_ecs_spy(monkeypatch) as spy:
        result = run("release", "--image", "redmica:2", "--yes", "-O", "json", app=cells_app(env))
    assert result.exit_code == 0, result.output
    assert sorted(spy.launched) == ["t1", "t2"]
    cells = {c["cell"]: c for c in result.json()["cells"]}
    assert cells["c"]["migration"]["summary"] == "no tenants in the cell"
    assert listing_reads["load_all"] == 3, "one read per cell gate (a, b and the empty c)"


def test_an_invalid_document_fails_its_home_cells_release_gate(
    s3: S3Client, run: Invoke, moto_rollouts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The single service's rule per cell (docs/cells.md): a document that does not validate
    counts against the home cell (the first), which is not deployed; the rollout stops there."""
    from tests.ecs_support import moto_ecs_spy

    env = moto_cells()
    add_tenant(run, env, "t2", "--cell", "b")
    s3.put_object(Bucket=BUCKET, Key="tenants/broken.yaml", Body=b"db: [not, a, mapping]\n")
    with moto_ecs_spy(monkeypatch) as spy:
        result = run("release", "--image", "redmica:2", "--yes", "-O", "json", app=cells_app(env))
    assert result.exit_code == 1, result.output
    cells = {c["cell"]: c for c in result.json()["cells"]}
    assert cells["a"]["status"] == "migration_failed"
    assert "failed_to_start 1" in cells["a"]["migration"]["summary"]
    assert cells["b"]["status"] == "not_started" and spy.launched == []
    assert revisions() == {"a": "redmica-a:1", "b": "redmica-b:1", "c": "redmica-c:1"}

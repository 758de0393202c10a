"""`release --dry-run`: the plan (gate, waves, cells, image), and nothing touched (issue #28,
item 13); with cells, a release's per-cell lines name their cell."""

from __future__ import annotations

import boto3
from mypy_boto3_s3 import S3Client

from tests.cells_support import add_tenant, cells_app, moto_cells
from tests.conftest import BUCKET, Invoke
from tests.ecs_support import MotoServiceDeployments
from tests.test_deploy import NEW_IMAGE, moto_service, release_app, seed_tenants


def revisions() -> list[str]:
    ecs = boto3.client("ecs", region_name="us-east-1")
    return list(ecs.list_task_definitions()["taskDefinitionArns"])


def runs_written(s3: S3Client) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/").get("Contents", [])
    return [str(o["Key"]) for o in listed]


def test_release_dry_run_prints_the_plan_and_touches_nothing(
    s3: S3Client, run: Invoke, moto_rollouts: MotoServiceDeployments
) -> None:
    moto_service()
    seed_tenants(s3, "acme", "beta")
    s3.put_object(Bucket=BUCKET, Key="tenants/broken.yaml", Body=b"db: [not, a, mapping]\n")
    before = (revisions(), len(moto_rollouts.deployments))
    args = ("release", "--image", NEW_IMAGE, "--canary", "1", "--dry-run")
    result = run(*args, app=release_app())  # no --yes, no terminal: a plan asks nothing
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"release plan: {NEW_IMAGE} into container app"
    assert lines[1].startswith("gate: every tenant of the service migrates with the new revision")
    assert "(canary 1)" in lines[1] and "only if every one succeeds" in lines[1]
    assert lines[2] == (
        "service redmica in cluster prod: runs redmica-app:1; 3 tenant(s) to migrate, "
        "1 invalid document(s) that fail its gate"
    )
    assert "dry run: nothing was registered, migrated or deployed" in result.output
    assert (revisions(), len(moto_rollouts.deployments)) == before
    assert runs_written(s3) == []
    plan = run(*args, "-O", "json", app=release_app()).json()
    assert plan["dry_run"] is True and plan["gate"]["canary"] == 1
    assert [(c["cell"], c["tenants"], c["invalid"]) for c in plan["cells"]] == [("default", 3, 1)]


def test_release_dry_run_refuses_what_the_release_would_refuse(
    s3: S3Client, run: Invoke, moto_rollouts: MotoServiceDeployments
) -> None:
    moto_service()
    result = run(
        "release", "--image", NEW_IMAGE, "--container", "web", "--dry-run", app=release_app()
    )
    assert result.exit_code == 2 and "container 'web' is not in task definition" in result.stderr
    assert len(revisions()) == 1


def test_release_dry_run_with_cells_shows_the_waves(
    s3: S3Client, run: Invoke, moto_rollouts: MotoServiceDeployments
) -> None:
    env = moto_cells(("a", "b", "c"))
    add_tenant(run, env, "acme", "--cell", "a")
    add_tenant(run, env, "beta", "--cell", "b")
    add_tenant(run, env, "gamma", "--cell", "b")
    before = revisions()
    result = run(
        "release",
        "--image",
        "redmica:2",
        "--dry-run",
        "--max-parallel-cells",
        "2",
        app=cells_app(env),
    )
    assert result.exit_code == 0, result.output
    assert "gate: every tenant of a cell migrates with the new revision first" in result.stdout
    assert (
        "wave 1/2: canary cell a (service redmica-a in cluster prod): runs redmica-a:1; "
        "1 tenant(s) to migrate" in result.stdout
    )
    assert (
        "wave 2/2: cell b (service redmica-b in cluster prod): runs redmica-b:1; 2 tenant(s)"
        in (result.stdout)
    )
    assert (
        "wave 2/2: cell c (service redmica-c in cluster prod): runs redmica-c:1; 0 tenant(s)"
        in (result.stdout)
    )
    assert revisions() == before and runs_written(s3) == []


def test_a_cells_release_names_the_cell_on_its_migration_lines(
    s3: S3Client, run: Invoke, moto_rollouts: MotoServiceDeployments
) -> None:
    env = moto_cells(("a", "b"))
    add_tenant(run, env, "acme", "--cell", "a")
    add_tenant(run, env, "beta", "--cell", "b")
    result = run("release", "--image", "redmica:2", "--yes", app=cells_app(env))
    assert result.exit_code == 0, result.output
    migration_lines = [line for line in result.stderr.splitlines() if "tenant(s)" in line]
    assert migration_lines and all(line.startswith(("[a] ", "[b] ")) for line in migration_lines)
    assert any(line.startswith("[b] run ") for line in migration_lines)

"""`MigrationRequest(cell=...)`: one cell's tenants with the revision that cell runs (moto).

The call `migrate --cell` and release's gate for each cell make: the cell is chosen from the
listing the run reads anyway, another cell's tenants are not part of the run, and a document
that does not validate counts against the home cell's run (as it fails a run of every tenant).
"""

from __future__ import annotations

from collections import Counter

import pytest
import yaml
from mypy_boto3_s3 import S3Client

from redmica_ops.errors import UsageError
from redmica_ops.runs import migrations
from redmica_ops.runs.migrations import MigrationRequest
from redmica_ops.runs.record import Status
from redmica_ops.runs.selection import NothingToMigrate
from redmica_ops.workspace import Workspace
from tests.cells_support import add_tenant, cells_app, moto_cells
from tests.conftest import BUCKET, Invoke, tenant_document
from tests.ecs_support import moto_ecs_spy


def cell_workspace(env: dict[str, str]) -> Workspace:
    return cells_app({**env, "REDMICA_BUCKET": BUCKET}).workspace()


def test_a_cell_migrates_its_own_tenants_with_its_revision(
    s3: S3Client, run: Invoke, moto_rollouts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = moto_cells()
    for name, cell in (("t1", "a"), ("t2", "b"), ("t3", "b")):
        add_tenant(run, env, name, "--cell", cell)
    resting = tenant_document("t4")
    resting["property"]["cell"] = "b"
    resting["status"] = "suspended"
    s3.put_object(Bucket=BUCKET, Key="tenants/t4.yaml", Body=yaml.safe_dump(resting).encode())
    s3.put_object(Bucket=BUCKET, Key="tenants/broken.yaml", Body=b"db: [")
    deployed = run("deploy", "--image", "redmica:2", "--cell", "b", "--yes", app=cells_app(env))
    assert deployed.exit_code == 0, deployed.output
    ws = cell_workspace(env)
    with moto_ecs_spy(monkeypatch) as spy:
        b = migrations.run(MigrationRequest(all_tenants=True, cell="b"), ws).record
        assert b is not None
        # Cell b's tenants only, with cell b's new revision; its suspended tenant is skipped,
        # the broken document is the home cell's to report.
        assert sorted(spy.launched) == ["t2", "t3"]
        assert {d.rsplit("/", 1)[-1] for d in spy.task_definitions} == {"redmica-b:2"}
        assert {t: str(r.status) for t, r in b.tenants.items()} == {
            "t2": "succeeded",
            "t3": "succeeded",
            "t4": "skipped",
        }
        a = migrations.run(MigrationRequest(cell="a"), ws)
        assert a.record is not None and a.exit_code == 1
        assert spy.launched[2:] == ["t1"] and spy.task_definitions[-1].endswith("redmica-a:1")
        assert a.record.tenants["broken"].status == Status.FAILED_TO_START
        with pytest.raises(NothingToMigrate, match="cell c has no tenants to migrate"):
            migrations.run(MigrationRequest(cell="c"), ws)
        with pytest.raises(UsageError, match="--cell chooses the tenants"):
            migrations.run(MigrationRequest(tenants=("t1",), cell="b"), ws)
        with pytest.raises(UsageError, match="there is no cell 'zz'"):
            migrations.run(MigrationRequest(cell="zz"), ws)
    assert len(spy.launched) == 3


def test_migrate_reads_the_listing_once_with_cells(
    s3: S3Client,
    run: Invoke,
    moto_rollouts: None,
    monkeypatch: pytest.MonkeyPatch,
    listing_reads: Counter[str],
) -> None:
    env = moto_cells()
    for name, cell in (("t1", "a"), ("t2", "b")):
        add_tenant(run, env, name, "--cell", cell)
    listing_reads.clear()
    with moto_ecs_spy(monkeypatch):
        one = run("migrate", "--cell", "b", "-O", "json", app=cells_app(env))
        assert one.exit_code == 0, one.output
        assert listing_reads["load_all"] == 1
        every = run("migrate", "--all", "-O", "json", app=cells_app(env))
        assert every.exit_code == 0, every.output
    # The per-cell counts come from the listing the run read.
    assert every.json()["cells"] == {"a": {"succeeded": 1}, "b": {"succeeded": 1}}
    assert one.json()["cells"] == {"b": {"succeeded": 1}}
    assert listing_reads["load_all"] == 2

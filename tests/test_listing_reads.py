"""Each command listing_reads the tenant listing at most once (issue #24), and checks a document's
secret scope once per document it writes.

Counted on moto in-process: `TenantStore.load_all` calls, S3 ListObjectsV2 calls on the tenants'
prefix, and `TenantStore.check_writable` calls, for one command at a time.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.lifecycle import provision
from redmica_ops.lifecycle.steps import Step
from redmica_ops.workspace import BaseWorkspace
from tests.cells_support import cells_app, moto_cells
from tests.conftest import Invoke, tenant_add_flags, tenant_yaml


def counted(listing_reads: Counter[str], result: Any) -> dict[str, int]:
    assert result.exit_code == 0, result.output
    found = {k: listing_reads[k] for k in ("load_all", "list", "check_writable")}
    listing_reads.clear()
    return found


ONCE = {"load_all": 1, "list": 1, "check_writable": 1}


def test_tenant_add_update_remove_list_read_the_listing_once(
    s3: S3Client, run: Invoke, listing_reads: Counter[str]
) -> None:
    for name in ("t1", "t2"):
        run("tenant", "add", name, "-f", "-", input=tenant_yaml(name))
    listing_reads.clear()
    assert (
        counted(listing_reads, run("tenant", "add", "t3", "-f", "-", input=tenant_yaml("t3")))
        == ONCE
    )
    flags = run(*tenant_add_flags("t4"), "--generate-password")
    assert counted(listing_reads, flags) == ONCE
    changed = tenant_yaml("t3", property__limit_ips=["10.0.0.0/8"])
    updated = run("tenant", "update", "t3", "-f", "-", input=changed)
    # The same password reference as the stored document, which was read as valid: the scope
    # rule passed on it then.
    assert counted(listing_reads, updated) == {"load_all": 1, "list": 1, "check_writable": 0}
    assert counted(listing_reads, run("tenant", "list")) == {
        "load_all": 1,
        "list": 1,
        "check_writable": 0,
    }
    removed = run("tenant", "remove", "t4", "--yes")
    assert counted(listing_reads, removed) == {"load_all": 0, "list": 0, "check_writable": 0}


def test_tenant_sync_reads_once_and_checks_each_written_document_once(
    s3: S3Client, run: Invoke, listing_reads: Counter[str], tmp_path: Path
) -> None:
    run("tenant", "add", "t1", "-f", "-", input=tenant_yaml("t1"))
    for name in ("t1", "t2", "t3"):
        (tmp_path / f"{name}.yaml").write_text(
            tenant_yaml(name, property__limit_ips=["10.0.0.0/8"])
        )
    listing_reads.clear()
    synced = run("tenant", "sync", str(tmp_path), "--apply", "--yes")
    assert counted(listing_reads, synced) == {"load_all": 1, "list": 1, "check_writable": 3}


def test_tenant_add_with_cells_and_routing_reads_once(
    s3: S3Client, run: Invoke, listing_reads: Counter[str], moto_rollouts: None
) -> None:
    env = moto_cells()
    for name in ("t1", "t2"):
        run("tenant", "add", name, "-f", "-", input=tenant_yaml(name), app=cells_app(env))
    listing_reads.clear()
    placed = run("tenant", "add", "t3", "-f", "-", input=tenant_yaml("t3"), app=cells_app(env))
    assert counted(listing_reads, placed) == ONCE
    chosen = run(
        "tenant", "add", "t4", "-f", "-", "--cell", "b", input=tenant_yaml("t4"),
        app=cells_app(env),
    )  # fmt: skip
    assert counted(listing_reads, chosen) == ONCE


def test_tenant_remove_with_routing_reads_the_document_once(
    s3: S3Client, run: Invoke, listing_reads: Counter[str], moto_rollouts: None
) -> None:
    # Issue 28: its sub-domain (for the record) and its version (for the delete) come from
    # one read.
    env = moto_cells()
    run("tenant", "add", "t1", "-f", "-", input=tenant_yaml("t1"), app=cells_app(env))
    listing_reads.clear()
    removed = run("tenant", "remove", "t1", "--yes", app=cells_app(env))
    assert removed.exit_code == 0, removed.output
    assert listing_reads["get"] == 1 and listing_reads["load_all"] == 0


class _Runner:
    """Every database step answers "done", nothing runs (the counts are the point here)."""

    where = "local"
    access = None

    def run(self, step: Step) -> dict[str, object]:
        return {}


def test_tenant_add_provision_reads_once(
    s3: S3Client, run: Invoke, listing_reads: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BaseWorkspace, "runner", lambda self, kind: _Runner())
    monkeypatch.setattr(provision, "migrate_with", lambda ws, kind: lambda t, c: "run-1")
    run("tenant", "add", "t1", "-f", "-", input=tenant_yaml("t1"))
    listing_reads.clear()
    provisioned = run(
        "tenant", "add", "t2", "-f", "-", "--provision", "--executor", "local",
        input=tenant_yaml("t2"),
    )  # fmt: skip
    assert "provisioned tenant t2" in provisioned.stderr
    # Two writes (the document, then status: active), one listing, one scope check.
    assert counted(listing_reads, provisioned) == ONCE


READ_ONCE = {"load_all": 1, "list": 1, "check_writable": 0}


def test_readers_read_the_listing_once(
    s3: S3Client, run: Invoke, listing_reads: Counter[str], tmp_path: Path
) -> None:
    """render vhosts, migrate, entrypoint serve and doctor: one read each, nothing checked for
    writing (none of them writes a document)."""
    for name in ("t1", "t2"):
        run("tenant", "add", name, "-f", "-", input=tenant_yaml(name))
    listing_reads.clear()
    rendered = run("--domain", "example.com", "render", "vhosts", "--redacted")
    assert counted(listing_reads, rendered) == READ_ONCE
    planned = run("migrate", "--all", "--dry-run", "--executor", "local")
    assert counted(listing_reads, planned) == READ_ONCE
    app = cells_app({"REDMICA_DOMAIN": "example.com", "REDMICA_VHOSTS_FILE": str(tmp_path / "v")})
    assert counted(listing_reads, run("entrypoint", "serve", "--no-check", app=app)) == READ_ONCE
    doctor = run("doctor")  # exit 1 here (no cluster, no service): its findings are not the point
    assert doctor.exit_code in (0, 1), doctor.output
    assert listing_reads["load_all"] == 1


def test_readers_with_cells_read_the_listing_once(
    s3: S3Client, run: Invoke, listing_reads: Counter[str], moto_rollouts: None
) -> None:
    env = moto_cells()
    for name, cell in (("t1", "a"), ("t2", "b")):
        run(
            "tenant", "add", name, "-f", "-", "--cell", cell, input=tenant_yaml(name),
            app=cells_app(env),
        )  # fmt: skip
    listing_reads.clear()
    for args in (["migrate", "--cell", "a", "--dry-run"], ["migrate", "--all", "--dry-run"]):
        assert counted(listing_reads, run(*args, app=cells_app(env))) == READ_ONCE, args
    assert counted(listing_reads, run("cells", "list", app=cells_app(env))) == READ_ONCE


def test_the_onboarding_commands_read_the_listing_once(
    s3: S3Client, run: Invoke, listing_reads: Counter[str], tmp_path: Path
) -> None:
    # Issue 28's commands, on a bucket with a document under a key that is not a tenant id.
    for name in ("t1", "t2"):
        run("tenant", "add", name, "-f", "-", input=tenant_yaml(name))
    s3.put_object(Bucket="redmica-config-test", Key="tenants/Odd.yaml", Body=b"db: {}\n")
    listing_reads.clear()
    one = {"load_all": 1, "list": 1}

    def reads_of(*args: str) -> dict[str, int]:
        result = run(*args)
        assert result.exit_code in (0, 1), result.output
        found = {k: listing_reads[k] for k in ("load_all", "list")}
        listing_reads.clear()
        return found

    assert reads_of("tenant", "list", "--status", "ok") == one
    assert reads_of("tenant", "claims", "rebuild", "--dry-run") == one
    assert reads_of("tenant", "claims", "rebuild") == one
    assert reads_of("tenant", "rename-key", "Odd.yaml", "odd", "--yes") == one
    assert reads_of("tenant", "export", str(tmp_path / "x.tar")) == {"load_all": 0, "list": 1}
    s3.create_bucket(Bucket="redmica-other")
    imported = run("tenant", "import", str(tmp_path / "x.tar"), "--yes", bucket="redmica-other")
    assert imported.exit_code == 2  # odd.yaml does not validate: nothing written
    listing_reads.clear()
    directory = tmp_path / "valid"
    directory.mkdir()
    for name in ("t1", "t2"):
        (directory / f"{name}.yaml").write_text(tenant_yaml(name))
    imported = run("tenant", "import", str(directory), "--yes", bucket="redmica-other")
    assert counted(listing_reads, imported) == {"load_all": 1, "list": 1, "check_writable": 2}

"""Issue 28: taking over a bucket of hand-written documents (docs/onboarding-an-existing-fleet.md)
and the counts and words a new operator tripped on. Through the CLI, on moto."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.tenants.registry import TenantRegistry
from redmica_ops.tenants.store import TenantStore
from tests.conftest import BUCKET, Invoke, objects_in, tenant_yaml

POISON = {
    # A customer's document under a key that is not a tenant id, and one with the old suffix.
    "tenants/Cust-Upper.yaml": tenant_yaml("cust-upper").encode(),
    "tenants/old.yml": tenant_yaml("old").encode(),
}


def put(s3: S3Client, name: str, **overrides: Any) -> None:
    body = tenant_yaml(name, **overrides).encode()
    s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=body)


@pytest.fixture
def fleet(s3: S3Client) -> Iterator[S3Client]:
    """Three hand-written documents (no claims) and the two poison ones."""
    for name in ("acme", "beta", "gamma"):
        put(s3, name)
    for key, body in POISON.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    yield s3


# -- export: every document, the invalid ones too; never a directory called exp.zip ------------
def test_export_writes_invalid_documents_too_and_counts_them(
    fleet: S3Client, run: Invoke, tmp_path: Path
) -> None:
    archive = tmp_path / "all.tar.gz"
    result = run("tenant", "export", str(archive))
    assert result.exit_code == 0, result.output
    with tarfile.open(archive) as opened:
        names = sorted(opened.getnames())
    assert names == ["Cust-Upper.yaml", "acme.yaml", "beta.yaml", "gamma.yaml", "old.yml"]
    assert "exported 5 document(s)" in result.stderr
    assert "3 valid, 2 invalid, as stored (Cust-Upper.yaml, old.yml" in result.stderr
    directory = tmp_path / "dir"
    as_json = run("tenant", "export", str(directory), "--output", "json").json()
    assert as_json["invalid"] == ["Cust-Upper.yaml", "old.yml"]
    assert (directory / "Cust-Upper.yaml").read_bytes() == POISON["tenants/Cust-Upper.yaml"]


@pytest.mark.parametrize("name", ["exp.zip", "exp.tar.bz2", "EXP.ZIP"])
def test_export_refuses_an_archive_it_cannot_write(
    fleet: S3Client, run: Invoke, tmp_path: Path, name: str
) -> None:
    result = run("tenant", "export", str(tmp_path / name))
    assert result.exit_code == 2
    assert "an export is a directory, a .tar or .tar.gz file, or -" in result.stderr
    assert ".tar.gz" in result.stderr.split("hint:", 1)[1]
    assert not (tmp_path / name).exists()


# -- import: progress, and finishing an interrupted one by running it again -----------------------
def test_an_interrupted_import_finishes_when_run_again(
    s3: S3Client, run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = tmp_path / "export"
    export.mkdir()
    for number in range(8):
        name = f"t{number}"
        (export / f"{name}.yaml").write_text(tenant_yaml(name))
    create = TenantRegistry._create
    calls = {"n": 0}

    def interrupted(self: TenantRegistry, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # Ctrl-C after three of eight
        return create(self, *args, **kwargs)

    monkeypatch.setattr(TenantRegistry, "_create", interrupted)
    stopped = run("tenant", "import", str(export), "--yes")
    assert stopped.exit_code == 130, stopped.output
    assert "run the same `redmica tenant import` again to finish it" in stopped.stderr
    assert "import interrupted after creating 3 of 8 tenant(s)" in stopped.stderr
    monkeypatch.setattr(TenantRegistry, "_create", create)
    assert len(TenantStore(s3, BUCKET).load_all().tenants) == 3
    again = run("tenant", "import", str(export), "--yes")
    assert again.exit_code == 0, again.output
    assert "imported 5 tenant(s)" in again.stderr
    assert "(3 already there with the same content: skipped)" in again.stderr
    # Progress on stderr: without a terminal, the first line at once, then every ~10 s.
    assert "import: created 1 of 5" in again.stderr
    assert run("tenant", "claims", "check").exit_code == 0
    done = run("tenant", "import", str(export), "--yes", "--output", "json").json()
    assert done == {"imported": [], "already_present": [f"t{n}" for n in range(8)]}


# -- claims rebuild: a dry run, a summary, the clashes decided for the older tenant ---------------
def test_claims_rebuild_dry_run_writes_nothing_and_says_what_it_would(
    fleet: S3Client, run: Invoke
) -> None:
    put(fleet, "zeta", property__sub_domain="acme")  # newer than acme: it loses the host
    before = objects_in(fleet)
    dry = run("tenant", "claims", "rebuild", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert objects_in(fleet) == before
    lines = dry.stdout.splitlines()
    assert lines == ["clash: property.sub_domain 'acme' of zeta: kept by tenant 'acme'"], (
        lines
    )  # one line per clash, no line per claim
    assert "dry run: would create" in dry.stderr and "for 4 tenant(s) of 4" in dry.stderr
    assert "1 clash(es), each left to the tenant that keeps it" in dry.stderr
    verbose = run("tenant", "claims", "rebuild", "--dry-run", "--verbose")
    assert "would claim property.sub_domain 'acme' for acme" in verbose.stdout
    as_json = run("tenant", "claims", "rebuild", "--dry-run", "-O", "json").json()
    assert as_json["dry_run"] is True and len(as_json["claimed"]) > 4
    real = run("tenant", "claims", "rebuild")
    assert real.exit_code == 0, real.output
    assert "created" in real.stderr and len(real.stdout.splitlines()) == 1
    assert "already claimed by tenant 'acme'" in real.stdout
    assert run("tenant", "claims", "rebuild", "--dry-run", "-O", "json").json()["claimed"] == []


# -- rename-key: conditional, never over a clash ---------------------------------------------------
def test_rename_key_moves_a_document_whose_key_is_not_a_tenant_id(
    fleet: S3Client, run: Invoke
) -> None:
    listed = run("tenant", "list")
    assert "tenant rename-key KEY NEW_ID" in listed.stderr  # the hint names it
    before = objects_in(fleet)
    dry = run("tenant", "rename-key", "Cust-Upper.yaml", "cust-upper", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would rename s3://redmica-config-test/tenants/Cust-Upper.yaml" in dry.stderr
    # The dry run says whether the document is valid under its new id (and, below, why not).
    assert "as cust-upper the document is valid and takes no value another tenant" in dry.stderr
    fleet.put_object(
        Bucket=BUCKET, Key="tenants/Bad.yaml", Body=tenant_yaml("x", db__port="five").encode()
    )
    before = objects_in(fleet)
    bad = run("tenant", "rename-key", "Bad.yaml", "bad", "--dry-run")
    assert bad.exit_code == 0, bad.output
    assert "under its new id the document would still be invalid: " in bad.stderr
    assert "tenants/bad.yaml: db.port" in bad.stderr and "is valid" not in bad.stderr
    assert (
        run("tenant", "rename-key", "Bad.yaml", "bad", "--dry-run", "-O", "json").json()["valid"]
        is False
    )
    assert objects_in(fleet) == before
    done = run("tenant", "rename-key", "Cust-Upper.yaml", "cust-upper", "--yes")
    assert done.exit_code == 0, done.output
    body = fleet.get_object(Bucket=BUCKET, Key="tenants/cust-upper.yaml")["Body"].read()
    assert body == POISON["tenants/Cust-Upper.yaml"]  # byte for byte
    keys = [o["Key"] for o in fleet.list_objects_v2(Bucket=BUCKET, Prefix="tenants/")["Contents"]]
    assert "tenants/Cust-Upper.yaml" not in keys
    statuses = {t["tenant"]: t["status"] for t in run("tenant", "list", "-O", "json").json()}
    assert statuses["cust-upper"] == "ok"


def test_rename_key_refuses_a_clash_an_existing_id_and_a_change_since_the_listing(
    fleet: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("tenant", "claims", "rebuild").exit_code == 0
    before = objects_in(fleet)
    taken = run("tenant", "rename-key", "old.yml", "acme", "--yes")
    assert taken.exit_code == 4 and "tenants/acme.yaml exists already" in taken.stderr
    clash = tenant_yaml("x", property__sub_domain="beta").encode()
    fleet.put_object(Bucket=BUCKET, Key="tenants/Clash.yaml", Body=clash)
    before = objects_in(fleet)
    dry = run("tenant", "rename-key", "Clash.yaml", "clash", "--dry-run")
    assert dry.exit_code == 4 and "would clash" in dry.stderr, dry.output  # the clash
    assert "is valid" not in dry.stderr
    refused = run("tenant", "rename-key", "Clash.yaml", "clash", "--yes")
    assert refused.exit_code == 4, refused.output
    assert "would clash" in refused.stderr or "already claimed" in refused.stderr
    assert objects_in(fleet) == before
    valid = run("tenant", "rename-key", "acme.yaml", "acme2", "--yes")
    assert valid.exit_code == 2 and "a tenant's id is not renamed" in valid.stderr
    # Someone rewrites old.yml between the listing and the copy: nothing is renamed.
    load_all = TenantStore.load_all

    def then_changed(self: TenantStore) -> Any:
        listing = load_all(self)
        fleet.put_object(Bucket=BUCKET, Key="tenants/old.yml", Body=b"db: {}\n")
        return listing

    monkeypatch.setattr(TenantStore, "load_all", then_changed)
    before = objects_in(fleet)
    changed = run("tenant", "rename-key", "old.yml", "old", "--yes")
    assert changed.exit_code == 4 and "changed since it was listed" in changed.stderr
    after = objects_in(fleet)
    assert [k for k, _ in after if k == "tenants/old.yaml"] == []
    assert len(after) == len(before) + 1  # only the colleague's write


# -- restore --if-match and a delete marker ------------------------------------------------------
def test_restore_if_match_and_a_delete_marker(s3: S3Client, run: Invoke) -> None:
    assert run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme")).exit_code == 0
    first = run("tenant", "history", "acme", "-O", "json").json()[0]["version_id"]
    changed = tenant_yaml("acme", db__port=6000)
    assert run("tenant", "update", "acme", "-f", "-", input=changed).exit_code == 0
    decided = run("tenant", "history", "acme", "-O", "json").json()[0]["version_id"]
    # A colleague changes it after the operator decided.
    s3.put_object(
        Bucket=BUCKET, Key="tenants/acme.yaml", Body=tenant_yaml("acme", db__port=7000).encode()
    )
    before = objects_in(s3)
    stale = run("tenant", "restore", "acme", first, "--if-match", decided, "--yes")
    assert stale.exit_code == 4, stale.output
    assert f"not at the version --if-match names (version {decided})" in stale.stderr
    assert objects_in(s3) == before
    now = run("tenant", "history", "acme", "-O", "json").json()[0]["version_id"]
    restored = run("tenant", "restore", "acme", first, "--if-match", now, "--yes")
    assert restored.exit_code == 0, restored.output
    assert run("tenant", "remove", "acme", "--yes").exit_code == 0
    marker = run("tenant", "history", "acme", "-O", "json").json()[0]
    assert marker["deleted"] is True
    result = run("tenant", "restore", "acme", marker["version_id"], "--yes")
    assert result.exit_code == 2
    assert "is a delete marker (the tenant was removed at" in result.stderr
    assert "not found" not in result.stderr


# -- counts that add up ----------------------------------------------------------------------------
def test_problem_counts_add_up(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    stdin = run("tenant", "validate", "-", input=tenant_yaml("acme"))
    assert stdin.exit_code == 2
    assert "0 file(s)" not in stdin.stderr and "1 problem(s)" in stdin.stderr
    assert "stdin has no file name to take the tenant id from" in stdin.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    synced = run("tenant", "sync", str(empty))
    assert synced.exit_code == 2
    assert "of 0 file(s)" not in synced.stderr and "1 problem(s)" in synced.stderr
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as opened:
        for name in ("acme", "beta", "Bad_Name"):
            data = tenant_yaml(name).encode()
            info = tarfile.TarInfo(f"{name}.yaml")
            info.size = len(data)
            opened.addfile(info, io.BytesIO(data))
    imported = run("tenant", "import", str(archive), "--yes")
    assert imported.exit_code == 2
    assert "in 1 of 3 file(s)" in imported.stderr


def test_sync_apply_prints_one_line_per_change_and_the_counts(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for number in range(12):
        (repo / f"t{number}.yaml").write_text(tenant_yaml(f"t{number}"))
    result = run("tenant", "sync", str(repo), "--apply", "--yes", "--max-changes", "20")
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) < 120
    assert "added t11" in result.stdout.splitlines()
    assert "applied 12 change(s): 12 added" in result.stderr
    assert "sync: applied 1 of 12" in result.stderr  # progress

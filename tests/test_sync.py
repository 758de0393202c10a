"""`redmica tenant sync DIR`: plan by default, --apply to write, --prune to remove."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from mypy_boto3_s3 import S3Client

from tests.conftest import BUCKET, CANARY_PASSWORD, Invoke, objects_in, tenant_yaml


def write(directory: Path, name: str, password: str = CANARY_PASSWORD, **overrides: Any) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.yaml").write_text(tenant_yaml(name, password, **overrides))


def seed(run: Invoke, *names: str) -> None:
    for name in names:
        assert run("tenant", "add", name, "-f", "-", input=tenant_yaml(name)).exit_code == 0


def test_plan_changes_nothing_and_lists_adds_changes_extras(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    seed(run, "acme", "beta", "gamma")
    repo = tmp_path / "repo"
    write(repo, "acme")  # unchanged
    write(repo, "beta", "rotated-secret", db__port=6000)  # changed
    write(repo, "delta")  # new
    before = objects_in(s3)

    result = run("tenant", "sync", str(repo))

    assert result.exit_code == 0, result.output
    assert objects_in(s3) == before
    out = result.stdout
    assert f"+ add     delta  ({repo / 'delta.yaml'})" in out
    assert "~ change  beta" in out
    assert "db.password: changed (secret, not shown)" in out
    assert "db.port: added 6000" in out
    assert "- extra   gamma  (only in the bucket; --prune removes it)" in out
    assert "acme" not in out
    assert "plan only: nothing was changed" in result.stderr
    assert "rotated-secret" not in result.output and CANARY_PASSWORD not in result.output


def test_apply_without_prune_keeps_extras(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    seed(run, "acme", "gamma")
    repo = tmp_path / "repo"
    write(repo, "acme", db__port=6000)
    write(repo, "delta")
    result = run("tenant", "sync", str(repo), "--yes", "--apply", "-O", "json")
    assert result.exit_code == 0, result.output
    data = result.json()
    assert data["done"] == ["added delta", "changed acme"]
    assert data["changes"] == [
        {"tenant": "acme", "changes": [{"field": "db.port", "old": None, "new": 6000}]}
    ]
    keys = {k for k, _ in objects_in(s3) if "/_claims/" not in k and "/_incarnations/" not in k}
    assert keys == {"tenants/acme.yaml", "tenants/delta.yaml", "tenants/gamma.yaml"}


def test_apply_with_prune_removes_extras(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    seed(run, "acme", "gamma")
    repo = tmp_path / "repo"
    write(repo, "acme")
    result = run("tenant", "sync", str(repo), "--yes", "--apply", "--prune")
    assert result.exit_code == 0, result.output
    listed = run("tenant", "list", "-O", "json").json()
    assert [t["tenant"] for t in listed] == ["acme"]
    assert run("tenant", "sync", str(repo)).stderr.count("already matches") == 1


def test_invalid_directory_writes_nothing(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    seed(run, "acme")
    repo = tmp_path / "repo"
    write(repo, "delta")
    write(repo, "epsilon", db__port=0)
    before = objects_in(s3)
    result = run("tenant", "sync", str(repo), "--yes", "--apply")
    assert result.exit_code == 2
    assert f"{repo / 'epsilon.yaml'}: db.port: 0 is not a port number" in result.stderr
    assert objects_in(s3) == before


def test_clash_with_a_tenant_that_stays_writes_nothing(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    seed(run, "acme")
    repo = tmp_path / "repo"
    write(repo, "delta", property__sub_domain="acme")
    before = objects_in(s3)
    result = run("tenant", "sync", str(repo), "--yes", "--apply")
    assert result.exit_code == 4
    assert "property.sub_domain: 'acme' is already used by tenant 'acme'" in result.stderr
    assert objects_in(s3) == before
    # With --prune, acme goes away, so delta may take its sub-domain.
    pruned = run("tenant", "sync", str(repo), "--yes", "--apply", "--prune")
    assert pruned.exit_code == 0, pruned.output


def test_clash_inside_the_directory(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo, "acme")
    write(repo, "beta", db__name="acme")
    result = run("tenant", "sync", str(repo), "--yes", "--apply")
    assert result.exit_code == 2
    assert "db.name: 'acme' is already used by tenant 'acme'" in result.stderr
    assert objects_in(s3) == []


def test_sync_replaces_an_invalid_stored_document(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    s3.put_object(Bucket=BUCKET, Key="tenants/acme.yaml", Body=b"db: broken\n")
    repo = tmp_path / "repo"
    write(repo, "acme")
    result = run("tenant", "sync", str(repo), "--yes", "--apply")
    assert result.exit_code == 0, result.output
    assert "replaces an invalid document" in result.stdout
    body = s3.get_object(Bucket=BUCKET, Key="tenants/acme.yaml")["Body"].read()
    assert yaml.safe_load(body)["db"]["name"] == "acme"


def test_validate_directory_cross_file_checks(run: Invoke, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo, "acme")
    write(repo, "beta", property__sub_domain="acme")
    (repo / "acme.yml").write_text(tenant_yaml("zeta"))
    result = run("tenant", "validate", str(repo), bucket=None)
    assert result.exit_code == 2
    assert f"{repo / 'acme.yml'}: (tenant id): 'acme' is also defined by" in result.stderr
    assert f"{repo / 'beta.yaml'}: property.sub_domain: 'acme' is already used" in result.stderr
    ok = tmp_path / "ok"
    write(ok, "acme")
    write(ok, "beta")
    good = run("tenant", "validate", str(ok), "-O", "json", bucket=None)
    assert good.exit_code == 0
    assert good.json()["tenants"] == ["acme", "beta"]


def test_validate_missing_path(run: Invoke, tmp_path: Path) -> None:
    result = run("tenant", "validate", str(tmp_path / "nope"), bucket=None)
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr

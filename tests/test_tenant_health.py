"""Issue 28: a tenant that cannot reach a database is never ok, and `tenant list` for 800 rows
(filters, a cell column). The rule is tenants/selection.py's; these tests go through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mypy_boto3_s3 import S3Client

from tests.conftest import BUCKET, Invoke, objects_in, tenant_yaml


@pytest.fixture
def no_default_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDMICA_DB_HOST", raising=False)


def put(s3: S3Client, name: str, **overrides: Any) -> None:
    """A document written by hand (as the fleet's 800 were), not through `tenant add`."""
    body = tenant_yaml(name, **overrides).encode()
    s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=body)


def test_add_refuses_a_tenant_without_any_database_host(
    s3: S3Client, run: Invoke, no_default_host: None
) -> None:
    result = run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme"))
    assert result.exit_code == 2, result.output
    assert "tenant acme cannot reach a database; nothing was written" in result.stderr
    assert "db.host: no database host" in result.stderr
    assert "set the db_host setting" in result.stderr and "--db-host" in result.stderr
    assert objects_in(s3) == []
    # Either host is enough: the document's own, or the default.
    named = run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme", db__host="db1"))
    assert named.exit_code == 0, named.output
    defaulted = run(
        "--db-host", "db2", "tenant", "add", "beta", "-f", "-", input=tenant_yaml("beta")
    )
    assert defaulted.exit_code == 0, defaulted.output


def test_validate_notes_a_file_that_tenant_add_would_refuse_for_want_of_a_host(
    run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_default_host: None
) -> None:
    (tmp_path / "acme.yaml").write_text(tenant_yaml("acme"))
    (tmp_path / "beta.yaml").write_text(tenant_yaml("beta", db__host="db1"))
    result = run("tenant", "validate", str(tmp_path))
    assert result.exit_code == 0, result.output  # offline, a note and not an error
    note = "note: acme names no db.host: `tenant add` needs the db_host setting or --db-host"
    assert note in result.stderr
    assert "beta names no db.host" not in result.stderr
    as_json = run("tenant", "validate", str(tmp_path), "--output", "json").json()
    assert as_json["valid"] is True and note.removeprefix("note: ") in str(as_json["notes"])
    monkeypatch.setenv("REDMICA_DB_HOST", "aurora.example.internal")
    assert "names no db.host" not in run("tenant", "validate", str(tmp_path)).stderr


def test_list_and_doctor_flag_an_existing_hostless_tenant(
    s3: S3Client, run: Invoke, no_default_host: None
) -> None:
    put(s3, "acme", db__host="db1")
    put(s3, "solo")
    listed = run("tenant", "list", "--output", "json")
    assert listed.exit_code == 1
    status = {t["tenant"]: (t["status"], t["problems"]) for t in listed.json()}
    assert status["acme"] == ("ok", [])
    assert status["solo"][0] == "no_database"
    assert "no database host" in status["solo"][1][0]["message"]
    text = run("tenant", "list")
    assert "NO_DATABASE" in text.stdout
    # The word the table shows is the word the filter takes.
    filtered = run("tenant", "list", "--status", "NO_DATABASE", "--output", "json")
    assert [t["tenant"] for t in filtered.json()] == ["solo"]
    assert "warning: tenant solo has no database host and is not served:" in text.stderr
    assert "1 without a database host" in text.stderr
    doctor = run("doctor", "--output", "json")
    (check,) = [c for c in doctor.json() if c["name"] == "tenants"]
    assert check["status"] == "fail" and "1 without a database host" in check["detail"]


def test_render_sets_a_hostless_tenant_aside_with_the_reason(
    s3: S3Client, run: Invoke, tmp_path: Path, no_default_host: None
) -> None:
    put(s3, "acme", db__host="db1")
    put(s3, "solo")
    out = tmp_path / "site.conf"
    result = run("--domain", "d.example", "render", "vhosts", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "warning: tenant solo is NOT rendered (no_database):" in result.stderr
    assert "error:" not in result.stderr
    assert "wrote 1 tenant vhost(s) and the catch-all" in result.stderr
    assert "redmica-tenant-solo" not in out.read_text()
    strict = run("--domain", "d.example", "render", "vhosts", "-o", str(out), "--strict")
    assert strict.exit_code == 2
    # The same rule for a directory of files.
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "solo.yaml").write_text(tenant_yaml("solo"))
    from_dir = run("render", "vhosts", "--from-dir", str(repo), "--redacted", "--domain", "d.x")
    assert "warning: tenant solo is NOT rendered (no_database):" in from_dir.stderr
    assert "redmica-tenant-solo" not in from_dir.stdout


def test_list_filters_by_cell_status_and_lifecycle(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(s3, "acme", property__cell="a")
    put(s3, "beta", property__cell="b")
    put(s3, "gamma", property__cell="b", property__sub_domain="acme")  # clashes with acme
    sleepy = tenant_yaml("sleepy", property__cell="b") + "status: suspended\n"
    s3.put_object(Bucket=BUCKET, Key="tenants/sleepy.yaml", Body=sleepy.encode())
    s3.put_object(Bucket=BUCKET, Key="tenants/Cust-Upper.yaml", Body=b"db: {}\n")
    monkeypatch.setenv("REDMICA_CELLS", "a=svc-a,b=svc-b")

    def ids(*args: str) -> list[str]:
        result = run("tenant", "list", "--output", "json", *args)
        return [t["tenant"] or t["key"] for t in result.json()]

    assert ids("--cell", "b") == ["beta", "gamma", "sleepy"]
    assert ids("--status", "clash") == ["gamma"]
    assert ids("--status", "invalid") == ["tenants/Cust-Upper.yaml"]
    assert ids("--lifecycle", "suspended") == ["sleepy"]
    assert ids("--cell", "b", "--status", "ok", "--lifecycle", "active") == ["beta"]
    ok_only = run("tenant", "list", "--status", "ok")
    assert ok_only.exit_code == 0  # nothing listed is unwell
    header = ok_only.stdout.splitlines()[0].split()
    assert header[:2] == ["tenant", "cell"]
    # The summary counts the table's rows out of every document read (the invalid one too).
    assert "3 of 5 document(s) in s3://" in ok_only.stderr and "(filtered)" in ok_only.stderr
    invalid_only = run("tenant", "list", "--status", "invalid")
    rows = invalid_only.stdout.splitlines()[1:]
    assert len(rows) == 1 and rows[0].split()[-1] == "INVALID", rows
    summary = [line for line in invalid_only.stderr.splitlines() if "document(s) in" in line]
    assert summary and "1 of 5 document(s) in s3://" in summary[0], invalid_only.stderr
    assert summary[0].endswith("(filtered), 1 invalid"), summary
    assert "0 tenant(s)" not in invalid_only.stderr
    unknown = run("tenant", "list", "--cell", "zz")
    assert unknown.exit_code == 2 and "zz" in unknown.stderr
    # Without cells there is no cell column (one implicit cell).
    monkeypatch.delenv("REDMICA_CELLS")
    assert run("tenant", "list").stdout.splitlines()[0].split()[:2] == ["tenant", "site"]

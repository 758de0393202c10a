"""`redmica tenant ...` end to end in-process against moto."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from mypy_boto3_s3 import S3Client

from redmica_ops.cli.app import Application
from tests.conftest import BUCKET, CANARY_PASSWORD, EXAMPLES, Invoke, objects_in, tenant_yaml


def stored(s3: S3Client, tenant_id: str) -> dict[str, object]:
    body = s3.get_object(Bucket=BUCKET, Key=f"tenants/{tenant_id}.yaml")["Body"].read()
    data: dict[str, object] = yaml.safe_load(body)
    return data


def add(run: Invoke, tenant_id: str, **overrides: Any) -> None:
    result = run("tenant", "add", tenant_id, "-f", "-", input=tenant_yaml(tenant_id, **overrides))
    assert result.exit_code == 0, result.output


# -- add ------------------------------------------------------------------------------------------
def test_add_from_file_writes_the_document_with_content_type(s3: S3Client, run: Invoke) -> None:
    result = run("tenant", "add", "acme", "-f", str(EXAMPLES / "tenants" / "acme.yaml"))
    assert result.exit_code == 0, result.output
    assert "created tenant acme" in result.stderr
    head = s3.head_object(Bucket=BUCKET, Key="tenants/acme.yaml")
    assert head["ContentType"].startswith("application/yaml")
    doc = stored(s3, "acme")
    assert doc == yaml.safe_load((EXAMPLES / "tenants" / "acme.yaml").read_text())


def test_add_twice_is_a_conflict_and_keeps_the_first(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    before = objects_in(s3)
    result = run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme", db__port=1))
    assert result.exit_code == 4
    assert "tenant 'acme' already exists" in result.stderr
    assert objects_in(s3) == before


def test_add_refuses_clashing_sub_domain_database_and_folder(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    before = objects_in(s3)
    result = run("tenant", "add", "beta", "-f", "-", input=tenant_yaml("acme"))
    assert result.exit_code == 4
    assert "<stdin>: property.sub_domain: 'acme' is already used by tenant 'acme'" in result.stderr
    assert "<stdin>: db.name: 'acme' is already used" in result.stderr
    assert "<stdin>: s3.folder: s3://redmica-attachments/acme is already used" in result.stderr
    assert objects_in(s3) == before


def test_add_with_kms_key_uses_sse_kms(s3: S3Client, run: Invoke) -> None:
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    result = run(
        "--kms-key-id", key_id, "tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme")
    )
    assert result.exit_code == 0, result.output
    head = s3.head_object(Bucket=BUCKET, Key="tenants/acme.yaml")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]


FLAGS = [
    "--db-name",
    "acme",
    "--db-user",
    "acme_user",
    "--s3-bucket",
    "redmica-attachments",
    "--s3-folder",
    "acme",
    "--sub-domain",
    "acme",
    "--limit-ip",
    "10.0.0.0/8",
    "--limit-ip",
    "203.0.113.7",
    "--db-host",
    "db.internal",
    "--db-port",
    "5433",
]


def test_add_flag_form_with_password_from_stdin(s3: S3Client, run: Invoke) -> None:
    result = run(
        "tenant", "add", "acme", *FLAGS, "--db-password-stdin", input=CANARY_PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert stored(s3, "acme") == {
        "db": {
            "name": "acme",
            "user": "acme_user",
            "password": CANARY_PASSWORD,
            "host": "db.internal",
            "port": 5433,
        },
        "s3": {"bucket": "redmica-attachments", "folder": "acme"},
        "property": {"sub_domain": "acme", "limit_ips": ["10.0.0.0/8", "203.0.113.7"]},
    }
    assert CANARY_PASSWORD not in result.output


def test_generated_password_is_stored_and_hidden_unless_asked(s3: S3Client, run: Invoke) -> None:
    result = run("tenant", "add", "acme", *FLAGS, "--generate-password")
    assert result.exit_code == 0, result.output
    password = stored(s3, "acme")["db"]["password"]  # type: ignore[index]
    assert isinstance(password, str) and len(password) >= 32
    assert password not in result.output
    assert "not shown" in result.stderr

    shown = run(
        "-O",
        "json",
        "tenant",
        "add",
        "beta",
        *["beta" if v == "acme" else "beta_user" if v == "acme_user" else v for v in FLAGS],
        "--generate-password",
        "--show-generated-password",
    )
    assert shown.exit_code == 0, shown.output
    assert shown.json()["generated_password"] == stored(s3, "beta")["db"]["password"]  # type: ignore[index]


def test_flag_form_errors_name_the_flag(s3: S3Client, run: Invoke) -> None:
    result = run("tenant", "add", "acme", "--db-name", "Bad", "--generate-password")
    assert result.exit_code == 2
    assert "(flags): db.name (--db-name): 'Bad' is not a PostgreSQL identifier" in result.stderr
    assert "(flags): s3.bucket (--s3-bucket): is required" in result.stderr
    assert objects_in(s3) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db-password", "hunter2"], "passwords are never accepted as a command-line value"),
        (["-f", "x.yaml", "--db-name", "a"], "-f/--file cannot be combined with field flags"),
        (["--db-name", "a"], "needs --db-password-stdin or --generate-password"),
        (["--db-name", "a", "--generate-password", "--db-password-stdin"], "choose one of"),
        (["-f", "-", "--db-password-stdin"], "stdin cannot carry both"),
        ([], "nothing to add"),
        (
            ["--db-name", "a", "--show-generated-password", "--db-password-stdin"],
            "--show-generated-password needs --generate-password",
        ),
    ],
)
def test_add_usage_errors(s3: S3Client, run: Invoke, args: list[str], message: str) -> None:
    result = run("tenant", "add", "acme", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "hunter2" not in result.output
    assert objects_in(s3) == []


def test_add_rejects_the_redaction_placeholder_as_a_password(s3: S3Client, run: Invoke) -> None:
    result = run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme", "********"))
    assert result.exit_code == 2
    assert "db.password: ******** is the redaction placeholder" in result.stderr
    assert objects_in(s3) == []


def test_add_missing_file(s3: S3Client, run: Invoke) -> None:
    result = run("tenant", "add", "acme", "-f", "nope.yaml")
    assert result.exit_code == 2
    assert "nope.yaml: no such file" in result.stderr


# -- list / show ------------------------------------------------------------------------------
def test_list_table_and_json_are_redacted(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    add(run, "beta", property__limit_ips=None, db__host="db.beta")
    table = run("--domain", "example.com", "tenant", "list")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "tenant",
        "site",
        "database",
        "attachments",
        "allowed",
        "ips",
        "lifecycle",
        "status",
    ]
    assert lines[1].split()[:3] == ["acme", "acme.example.com", "acme@db.test.internal"]
    assert lines[2].split() == [
        "beta",
        "beta.example.com",
        "beta@db.beta",
        "s3://redmica-attachments/beta",
        "all",
        "active",
        "ok",
    ]
    data = run("tenant", "list", "--output", "json", "--db-host", "db.default").json()
    assert [t["tenant"] for t in data] == ["acme", "beta"]
    assert data[0]["db"]["password"] == "********"
    assert data[0]["effective_db_host"] == "db.default"
    assert data[1]["property"] == {"sub_domain": "beta"}
    assert CANARY_PASSWORD not in table.output + json.dumps(data)


def test_list_reports_invalid_documents_and_exits_1(s3: S3Client, run: Invoke) -> None:
    # Issue 12: every document is still listed, and the exit code says not all is well.
    add(run, "acme")
    s3.put_object(
        Bucket=BUCKET, Key="tenants/broken.yaml", Body=tenant_yaml("broken", db__port=0).encode()
    )
    s3.put_object(Bucket=BUCKET, Key="tenants/Not A Tenant.yaml", Body=b"x: 1")
    s3.put_object(Bucket=BUCKET, Key="tenants/sub/nested.yaml", Body=b"x: 1")
    result = run("tenant", "list", "-O", "json")
    assert result.exit_code == 1
    data = result.json()
    assert [(t["tenant"], t["valid"]) for t in data] == [
        ("acme", True),
        (None, False),
        ("broken", False),
    ]
    assert "tenants/broken.yaml is invalid" in result.stderr
    assert "db.port: 0 is not a port number" in result.stderr
    assert "is not named like a tenant document" in result.stderr
    assert CANARY_PASSWORD not in result.output


def test_list_pages_beyond_one_thousand(s3: S3Client, run: Invoke) -> None:
    body = tenant_yaml("x").encode()
    for i in range(1001):
        name = f"t{i:04d}"
        s3.put_object(
            Bucket=BUCKET,
            Key=f"tenants/{name}.yaml",
            Body=body.replace(b": x\n", f": {name}\n".encode()),
        )
    data = run("tenant", "list", "-O", "json").json()
    assert len(data) == 1001
    assert all(t["valid"] for t in data)
    assert data[-1]["tenant"] == "t1000"


def test_show_redacts_and_round_trips_through_update(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    shown = run("tenant", "show", "acme")
    assert shown.exit_code == 0
    assert "password: '********'" in shown.stdout
    assert CANARY_PASSWORD not in shown.output
    edited = shown.stdout.replace("sub_domain: acme", "sub_domain: acme-corp")
    result = run("tenant", "update", "acme", "-f", "-", input=edited)
    assert result.exit_code == 0, result.output
    assert "property.sub_domain: 'acme' -> 'acme-corp'" in result.stderr
    doc = stored(s3, "acme")
    assert doc["property"]["sub_domain"] == "acme-corp"  # type: ignore[index]
    assert doc["db"]["password"] == CANARY_PASSWORD  # type: ignore[index]


def test_show_missing_tenant_is_exit_3(s3: S3Client, run: Invoke) -> None:
    result = run("tenant", "show", "ghost")
    assert result.exit_code == 3
    assert "tenant 'ghost' not found" in result.stderr


def test_show_json(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    data = run("tenant", "show", "acme", "-O", "json").json()
    assert data["tenant"] == "acme" and data["db"]["password"] == "********"
    assert data["version_id"]


# -- update / edit ----------------------------------------------------------------------------
def test_update_reports_field_changes_and_hides_password_change(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    result = run(
        "tenant",
        "update",
        "acme",
        "-f",
        "-",
        input=tenant_yaml("acme", "brand-new-secret", db__port=6543),
    )
    assert result.exit_code == 0, result.output
    assert "db.password: changed (secret, not shown)" in result.stderr
    assert "db.port: added 6543" in result.stderr
    assert "brand-new-secret" not in result.output
    assert stored(s3, "acme")["db"]["password"] == "brand-new-secret"  # type: ignore[index]


def test_update_without_changes_writes_nothing(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    before = objects_in(s3)
    result = run("tenant", "update", "acme", "-f", "-", input=tenant_yaml("acme"))
    assert result.exit_code == 0
    assert "no changes; nothing written" in result.stderr
    assert objects_in(s3) == before


def test_update_missing_tenant_is_exit_3(s3: S3Client, run: Invoke) -> None:
    result = run("tenant", "update", "ghost", "-f", "-", input=tenant_yaml("ghost"))
    assert result.exit_code == 3


def test_update_cannot_take_another_tenants_sub_domain(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    add(run, "beta")
    before = objects_in(s3)
    result = run(
        "tenant",
        "update",
        "beta",
        "-f",
        "-",
        input=tenant_yaml("beta", property__sub_domain="acme"),
    )
    assert result.exit_code == 4
    assert "'acme' is already used by tenant 'acme'" in result.stderr
    assert objects_in(s3) == before


def test_edit_without_an_editor_or_a_terminal_is_one_line_never_vim(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 28: EDITOR empty, no terminal (a CI job, a pipe): click would start vi.
    add(run, "acme")
    monkeypatch.setenv("EDITOR", "")
    monkeypatch.delenv("VISUAL", raising=False)
    before = objects_in(s3)
    result = run("tenant", "edit", "acme")  # the real editor: Application's default
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "error: no editor: VISUAL and EDITOR are not set and this is not a terminal; "
        "nothing was written"
    )
    assert "set EDITOR" in result.stderr and "tenant update ID -f FILE" in result.stderr
    assert "\x1b" not in result.output
    assert objects_in(s3) == before


def _app_with_editor(edits: list[str | None], seen: list[str]) -> Application:
    app = Application()

    def editor(text: str) -> str | None:
        seen.append(text)
        return edits.pop(0)

    app.edit_text = editor
    return app


def _editor_view(run: Invoke, tenant_id: str) -> str:
    """What `tenant edit` shows in the editor (the probe cancels without saving)."""
    seen: list[str] = []
    run("tenant", "edit", tenant_id, app=_app_with_editor([None], seen))
    return seen[0]


def test_edit_applies_a_valid_edit_and_keeps_the_password(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    seen: list[str] = []
    shown = _editor_view(run, "acme")
    assert "password: '********'" in shown and CANARY_PASSWORD not in shown
    app = _app_with_editor([shown.replace("folder: acme", "folder: acme-files")], seen)
    result = run("tenant", "edit", "acme", app=app)
    assert result.exit_code == 0, result.output
    assert "s3.folder: 'acme' -> 'acme-files'" in result.stderr
    doc = stored(s3, "acme")
    assert doc["s3"]["folder"] == "acme-files"  # type: ignore[index]
    assert doc["db"]["password"] == CANARY_PASSWORD  # type: ignore[index]


def test_edit_reopens_with_the_problems_then_applies(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    shown = _editor_view(run, "acme")
    bad = shown.replace("sub_domain: acme", "sub_domain: Acme!")
    good = shown.replace("sub_domain: acme", "sub_domain: acme2")
    seen: list[str] = []
    app = _app_with_editor([bad, good], seen)
    result = run("tenant", "edit", "acme", app=app)
    assert result.exit_code == 0, result.output
    assert len(seen) == 2
    assert "# error: (edit of acme): property.sub_domain: 'Acme!' is not a DNS label" in seen[1]
    assert stored(s3, "acme")["property"]["sub_domain"] == "acme2"  # type: ignore[index]


def test_edit_gives_up_when_the_bad_document_is_saved_unchanged(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    shown = _editor_view(run, "acme")
    bad = shown.replace("sub_domain: acme", "sub_domain: Acme!")
    before = objects_in(s3)
    app = _app_with_editor([bad, None], [])
    result = run("tenant", "edit", "acme", app=app)
    # Cancelled while the document still had problems: not a success.
    assert result.exit_code == 2
    assert "property.sub_domain: 'Acme!' is not a DNS label" in result.stderr
    assert "hint: the edit was cancelled; nothing was written" in result.stderr
    assert objects_in(s3) == before


def test_edit_never_overwrites_a_concurrent_change(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    seen: list[str] = []

    def editor(text: str) -> str | None:
        seen.append(text)
        # Someone else changes the tenant while our editor is open.
        other = run("tenant", "update", "acme", "-f", "-", input=tenant_yaml("acme", db__port=7))
        assert other.exit_code == 0
        return text.replace("folder: acme", "folder: mine")

    app = Application()
    app.edit_text = editor
    result = run("tenant", "edit", "acme", app=app)
    assert result.exit_code == 4
    assert "changed or removed by someone else" in result.stderr
    doc = stored(s3, "acme")
    assert doc["db"]["port"] == 7 and doc["s3"]["folder"] == "acme"  # type: ignore[index]
    # The operator's edit is not lost: it is kept in a private file, ready to apply.
    kept = Path(result.stderr.split("your edit is kept in ", 1)[1].split()[0])
    assert "folder: mine" in kept.read_text() and CANARY_PASSWORD not in kept.read_text()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert f"redmica tenant update acme -f {kept}" in result.stderr
    kept.unlink()


# -- remove / history / restore ------------------------------------------------------------------
def test_remove_requires_yes_when_not_interactive(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    before = objects_in(s3)
    result = run("tenant", "remove", "acme")
    assert result.exit_code == 2
    assert "add --yes" in result.stderr
    assert objects_in(s3) == before


def test_remove_asks_on_a_terminal(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    app = Application()
    app.interactive = lambda: True
    declined = run("tenant", "remove", "acme", input="n\n", app=app)
    assert declined.exit_code == 6
    assert "Remove tenant 'acme'" in declined.stderr
    assert "nothing done: remove tenant 'acme'" in declined.stderr
    assert "Aborted" not in declined.output
    app = Application()
    app.interactive = lambda: True
    accepted = run("tenant", "remove", "acme", input="y\n", app=app)
    assert accepted.exit_code == 0
    assert run("tenant", "show", "acme").exit_code == 3


def test_remove_history_restore(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    assert (
        run(
            "tenant", "update", "acme", "-f", "-", input=tenant_yaml("acme", db__port=5433)
        ).exit_code
        == 0
    )
    assert run("tenant", "remove", "acme", "--yes").exit_code == 0
    assert run("tenant", "remove", "acme", "--yes").exit_code == 3
    history = run("tenant", "history", "acme", "-O", "json").json()
    assert [v["deleted"] for v in history] == [True, False, False]
    first = history[2]["version_id"]
    table = run("tenant", "history", "acme")
    assert first in table.stdout and "deleted" in table.stdout

    restored = run("tenant", "restore", "acme", first, "--yes")
    assert restored.exit_code == 0, restored.output
    doc = stored(s3, "acme")
    assert "port" not in doc["db"]  # type: ignore[operator]
    assert doc["db"]["password"] == CANARY_PASSWORD  # type: ignore[index]
    assert len(run("tenant", "history", "acme", "-O", "json").json()) == 4


def test_restore_rejects_a_version_that_would_clash(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    first = run("tenant", "history", "acme", "-O", "json").json()[0]["version_id"]
    run(
        "tenant",
        "update",
        "acme",
        "-f",
        "-",
        input=tenant_yaml("acme", property__sub_domain="acme-new"),
    )
    add(run, "beta", property__sub_domain="acme")
    result = run("tenant", "restore", "acme", first, "--yes")
    assert result.exit_code == 4
    assert "already used by tenant 'beta'" in result.stderr


def test_restore_unknown_version_is_not_found(s3: S3Client, run: Invoke) -> None:
    add(run, "acme")
    result = run("tenant", "restore", "acme", "no-such-version", "--yes")
    assert result.exit_code in (3, 5)
    assert "no-such-version" in result.stderr


def test_history_of_unknown_tenant(s3: S3Client, run: Invoke) -> None:
    assert run("tenant", "history", "ghost").exit_code == 3


# -- example ------------------------------------------------------------------------------------
def test_example_document_is_valid(run: Invoke, tmp_path: Path) -> None:
    result = run("tenant", "example", bucket=None)
    assert result.exit_code == 0
    (tmp_path / "acme.yaml").write_text(result.stdout)
    assert run("tenant", "validate", str(tmp_path / "acme.yaml"), bucket=None).exit_code == 0

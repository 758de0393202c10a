"""Blast radius of one: a poison object in the bucket is reported, every other tenant is served.

The corpus is put straight into the bucket, as an `aws s3 cp` by hand would. Every reader
(list, show, render, serve, migrate, doctor) must carry on with the good tenants, and the
loader must never raise anything but a validation problem (property-tested).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mypy_boto3_s3 import S3Client

from redmica_ops.aws import ClientFactory
from redmica_ops.cli.app import Application
from redmica_ops.tenants.model import parse_tenant_bytes
from redmica_ops.tenants.safeyaml import load_document
from tests.conftest import BUCKET, CANARY_PASSWORD, Invoke, tenant_yaml

GOOD = ("acme", "globex", "initech")

# key -> bytes: at least every shape issue 12 lists.
POISON: dict[str, bytes] = {
    "date-password": tenant_yaml("date-password").replace(CANARY_PASSWORD, "2024-13-45").encode(),
    "deep": b"db: " + b"[" * 500 + b"]" * 500 + b"\n",
    "not-utf8": b"db: {name: \xff\xfe}\n",
    "a-list": b"- db\n- s3\n",
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "alias-bomb": b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n",
}
POISON["huge-port"] = (
    tenant_yaml("huge-port").replace("db:\n", "db:\n  port: " + "9" * 5000 + "\n").encode()
)


def put_fleet(s3: S3Client, run: Invoke) -> None:
    for name in GOOD:
        assert run("tenant", "add", name, "-f", "-", input=tenant_yaml(name)).exit_code == 0
    for name, body in POISON.items():
        s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=body)


def deny_reads_of(app: Application, key: str) -> Application:
    """AccessDenied on one object (as when it was written with another KMS key)."""
    original = app._client_factory or ClientFactory

    class Denied:
        status_code = 403

    def factory(settings: Any) -> Any:
        clients = original(settings)

        def handler(params: dict[str, Any], **_: Any) -> Any:
            # before-call sees the serialised request: the key is at the end of its path.
            if str(params.get("url_path", "")).endswith(key):
                error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
                return Denied(), {**error, "ResponseMetadata": {"HTTPStatusCode": 403}}
            return None

        clients.s3().meta.events.register("before-call.s3.GetObject", handler)
        return clients

    app._client_factory = factory
    return app


def test_the_poison_corpus_parses_to_problems_only() -> None:
    for name, body in POISON.items():
        tenant, problems = parse_tenant_bytes(name, body, name)
        assert tenant is None and problems, name
        assert all(CANARY_PASSWORD not in str(p) for p in problems)
    (problem,) = parse_tenant_bytes("x", POISON["deep"], "deep")[1]
    assert "nested deeper than" in problem.message
    date = parse_tenant_bytes("x", POISON["date-password"], "d")[1]
    assert [p.field for p in date] == ["db.password"] and "2024" not in str(date[0])


def test_list_reports_every_poison_document_and_the_good_tenants(s3: S3Client, run: Invoke) -> None:
    put_fleet(s3, run)
    s3.put_object(Bucket=BUCKET, Key="tenants/denied.yaml", Body=tenant_yaml("denied").encode())
    app = deny_reads_of(Application(), "tenants/denied.yaml")
    result = run("tenant", "list", "-O", "json", app=app)
    assert result.exit_code == 1  # not everything is well, and it says so
    data = result.json()
    assert [t["tenant"] for t in data if t["status"] == "ok"] == list(GOOD)
    invalid = {t["tenant"] for t in data if t["status"] == "invalid"}
    assert invalid == {*POISON, "denied"}
    assert "tenants/denied.yaml: cannot be read: access denied" in result.stderr
    assert "internal error" not in result.output


def test_render_and_serve_serve_the_good_tenants(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    put_fleet(s3, run)
    out = tmp_path / "site.conf"
    rendered = run("--domain", "d.example", "render", "vhosts", "-o", str(out))
    assert rendered.exit_code == 0, rendered.output
    text = out.read_text()
    for name in GOOD:
        assert f'ServerName "{name}.d.example"' in text
    for name in POISON:
        assert f"tenant {name} is NOT rendered (invalid)" in rendered.stderr

    calls: list[list[str]] = []
    # The container's master secret (entrypoint serve derives each tenant's from it).
    app = Application(env={**os.environ, "SECRET_KEY_BASE": "m" * 64})
    app.exec_process = lambda argv, env: calls.append(argv)
    vhosts = tmp_path / "tenants.conf"
    app.overrides["vhosts_file"] = str(vhosts)
    result = run("--domain", "d.example", "entrypoint", "serve", "--no-check", app=app)
    assert result.exit_code == 0, result.output
    assert calls, "Apache was not started"
    assert all(f"{name}.d.example" in vhosts.read_text() for name in GOOD)
    for name in POISON:
        assert f"warning: tenant {name} is NOT served (invalid):" in result.stderr


def test_migrate_dry_run_and_doctor_carry_on(s3: S3Client, run: Invoke) -> None:
    put_fleet(s3, run)
    doctor = run("doctor", "-O", "json")
    checks = {c["name"]: c for c in doctor.json()}
    assert checks["tenants"]["status"] == "fail"
    assert f"{len(GOOD)} valid, {len(POISON)} invalid" in checks["tenants"]["detail"]
    assert "internal error" not in doctor.output


def test_show_prints_a_poison_document_redacted_and_update_repairs_it(
    s3: S3Client, run: Invoke
) -> None:
    put_fleet(s3, run)
    shown = run("tenant", "show", "date-password")
    assert shown.exit_code == 2
    assert "password: '********'" in shown.stdout and "2024-13-45" not in shown.output
    assert "db.password: line" in shown.stderr and "tenant update" in shown.stderr
    as_json = run("tenant", "show", "huge-port", "-O", "json").json()
    assert as_json["valid"] is False and as_json["problems"]

    fixed = run("tenant", "update", "date-password", "-f", "-", input=tenant_yaml("date-password"))
    assert fixed.exit_code == 0, fixed.output
    assert "tenants/date-password.yaml" not in fixed.stderr  # its own broken version is gone
    assert run("tenant", "show", "date-password").exit_code == 0
    body = s3.get_object(Bucket=BUCKET, Key="tenants/date-password.yaml")["Body"].read()
    assert yaml.safe_load(body)["db"]["password"] == CANARY_PASSWORD


def test_a_poison_document_keeps_its_readable_password_on_repair(s3: S3Client, run: Invoke) -> None:
    # The stored document parses but does not validate: ******** keeps its password.
    broken = tenant_yaml("beta", db__port=0)
    s3.put_object(Bucket=BUCKET, Key="tenants/beta.yaml", Body=broken.encode())
    shown = run("tenant", "show", "beta").stdout.replace("  port: 0\n", "")
    repaired = run("tenant", "update", "beta", "-f", "-", input=shown)
    assert repaired.exit_code == 0, repaired.output
    body = s3.get_object(Bucket=BUCKET, Key="tenants/beta.yaml")["Body"].read()
    assert yaml.safe_load(body)["db"]["password"] == CANARY_PASSWORD


def test_edit_repairs_an_invalid_document(s3: S3Client, run: Invoke) -> None:
    s3.put_object(
        Bucket=BUCKET, Key="tenants/beta.yaml", Body=tenant_yaml("beta", db__port=0).encode()
    )
    app = Application()
    seen: list[str] = []

    def editor(text: str) -> str:
        seen.append(text)
        return text.replace("port: 0", "port: 5432")

    app.edit_text = editor
    result = run("tenant", "edit", "beta", app=app)
    assert result.exit_code == 0, result.output
    assert "# error:" in seen[0] and "port: 0 is not a port number" in seen[0]
    assert CANARY_PASSWORD not in seen[0]
    body = s3.get_object(Bucket=BUCKET, Key="tenants/beta.yaml")["Body"].read()
    assert yaml.safe_load(body)["db"] == {**yaml.safe_load(body)["db"], "port": 5432}


# -- the loader, property-tested: nothing but problems, ever -----------------------------------

yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_any_bytes_give_a_tenant_or_problems(raw: bytes) -> None:
    tenant, problems = parse_tenant_bytes("acme", raw, "fuzz")
    assert (tenant is None) == bool(problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=600))
def test_any_text_gives_a_tenant_or_problems(text: str) -> None:
    tenant, problems = parse_tenant_bytes("acme", text.encode("utf-8", "surrogatepass"), "fuzz")
    assert (tenant is None) == bool(problems)


@settings(max_examples=200, deadline=None)
@given(yaml_values)
def test_any_yaml_structure_gives_a_tenant_or_problems(value: Any) -> None:
    raw = yaml.safe_dump(value).encode()
    _, problems = load_document(raw, "fuzz")
    tenant, problems = parse_tenant_bytes("acme", raw, "fuzz")
    assert (tenant is None) == bool(problems)


@pytest.mark.parametrize("depth", [9, 100, 5000])
def test_nesting_beyond_the_schema_is_refused_without_recursion(depth: int) -> None:
    raw = b"db: " + b"{a: " * depth + b"1" + b"}" * depth + b"\n"
    tenant, problems = parse_tenant_bytes("acme", raw[:60000], "deep")
    assert tenant is None and problems

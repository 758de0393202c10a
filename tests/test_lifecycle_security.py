"""Issue #23 without a database server: what the lifecycle's libpq children are given, and the
settings that say where its connections may go.

The findings that need real PostgreSQL are in tests/live/test_lifecycle_security.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from redmica_ops.errors import UsageError, ValidationFailed
from redmica_ops.lifecycle import sql as sql_module
from redmica_ops.lifecycle.site import DatabaseAccess
from redmica_ops.lifecycle.sql import Connection, Psql, libpq_env
from redmica_ops.settings.loading import load_settings
from redmica_ops.tenants.model import parse_tenant
from tests.conftest import tenant_document

PASSWORD = "Tenant-Pa55word-for-one-child"
CA = "/etc/ssl/rds-bundle.pem"


def test_libpq_children_get_an_allow_listed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY_BASE", "m" * 64)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("PGSERVICE", "elsewhere")  # could point libpq at another host
    with libpq_env(Connection("db.internal", 5432, "acme", PASSWORD, CA), "acme") as env:
        assert "SECRET_KEY_BASE" not in env
        assert not any(name.startswith("AWS_") for name in env)
        assert "PGSERVICE" not in env
        assert env["PATH"]
        # The one pgpass line names exactly this host and port.
        line = Path(env["PGPASSFILE"]).read_text()
        assert line == f"db.internal:5432:*:acme:{PASSWORD}\n"
        assert env["PGSSLMODE"] == "verify-full" and env["PGSSLROOTCERT"] == CA
        assert "PGCHANNELBINDING" not in env and "PGOPTIONS" not in env  # a tenant's login


def test_the_administrators_connection_requires_tls_channel_binding_and_a_safe_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = Connection("db.internal", 5432, "master", PASSWORD, CA, admin=True)
    for major, require_auth in ((15, None), (16, "scram-sha-256"), (17, "scram-sha-256")):
        monkeypatch.setattr(sql_module, "libpq_major", lambda major=major: major)
        with libpq_env(admin, "postgres") as env:
            assert env["PGCHANNELBINDING"] == "require"
            assert env["PGSSLMODE"] == "verify-full"
            assert env.get("PGREQUIREAUTH") == require_auth
            assert env["PGOPTIONS"] == "-c search_path=pg_catalog,pg_temp"
    # Without the CA bundle no TCP connection is attempted at all.
    with (
        pytest.raises(UsageError) as missing,
        libpq_env(Connection("db.internal", 5432, "master", PASSWORD, admin=True), "postgres"),
    ):
        pass
    assert "CA bundle" in missing.value.message and "DB_SSL_ROOT_CERT" in (missing.value.hint or "")
    # A socket directory that a setting names: no TLS (libpq has none there), the same path.
    with libpq_env(Connection("/run/postgresql", 5432, "master", admin=True), "postgres") as env:
        assert "PGSSLMODE" not in env and env["PGHOST"] == "/run/postgresql"
        assert env["PGOPTIONS"] == "-c search_path=pg_catalog,pg_temp"


def test_psql_never_prompts_for_a_password(tmp_path: Path) -> None:
    seen = tmp_path / "argv"
    fake = tmp_path / "psql"
    fake.write_text(f'#!/bin/sh\necho "$@" > {seen}\n')
    fake.chmod(0o755)
    Psql(Connection("db.internal", 5432, "postgres", root_cert=CA), str(fake)).query("SELECT 1;")
    assert "-w" in seen.read_text().split()


def tenant(**db: object) -> object:
    doc = tenant_document("acme")
    doc["db"].update(db)
    return parse_tenant("acme", yaml.safe_dump(doc).encode(), "acme.yaml")


def test_only_the_configured_endpoints_are_allowed() -> None:
    settings = load_settings(
        {},
        {
            "REDMICA_DB_HOST": "DB.internal",
            "REDMICA_DB_ADMIN_HOSTS": "db2.internal:6432,[fd00::5]",
            "REDMICA_DB_SSL_ROOT_CERT": CA,
        },
    )
    access = DatabaseAccess.from_settings(settings)
    assert access.endpoint_of(tenant(), "acme") == ("DB.internal", 5432)  # type: ignore[arg-type]
    assert access.endpoint_of(tenant(host="db.internal", port=5432), "acme")  # type: ignore[arg-type]
    assert access.endpoint_of(tenant(host="db2.internal", port=6432), "acme")  # type: ignore[arg-type]
    assert access.endpoint_of(tenant(host="fd00::5"), "acme") == ("fd00::5", 5432)  # type: ignore[arg-type]
    for db in ({"host": "evil.example"}, {"port": 55440}, {"host": "db2.internal"}):
        with pytest.raises(UsageError) as refused:
            access.endpoint_of(tenant(**db), "acme")  # type: ignore[arg-type]
        assert refused.value.exit_code == 2 and "db_admin_hosts" in (refused.value.hint or "")
    with pytest.raises(UsageError, match="db_host"):
        DatabaseAccess().endpoint_of(tenant(), "acme")  # type: ignore[arg-type]
    # A socket directory only from the setting; a document can never name a path.
    assert load_settings({}, {"REDMICA_DB_HOST": "/run/postgresql"}).db_host == "/run/postgresql"
    with pytest.raises(ValidationFailed):
        tenant(host="/run/postgresql")
    with pytest.raises(ValidationFailed) as bad:
        load_settings({}, {"REDMICA_DB_ADMIN_HOSTS": "db2:notaport"})
    assert "HOST[:PORT]" in str(bad.value.problems[0])

"""Issue #23 without a database server: what the lifecycle's libpq children are given.

The findings that need real PostgreSQL are in tests/live/test_lifecycle_security.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from redmica_ops.lifecycle.sql import Connection, Psql, libpq_env

PASSWORD = "Tenant-Pa55word-for-one-child"


@pytest.mark.xfail(strict=True, reason="issue #23 low: reproduced, not fixed yet")
def test_libpq_children_get_an_allow_listed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY_BASE", "m" * 64)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("PGSERVICE", "elsewhere")  # could point libpq at another host
    with libpq_env(Connection("db.internal", 5432, "acme", PASSWORD), "acme") as env:
        assert "SECRET_KEY_BASE" not in env
        assert not any(name.startswith("AWS_") for name in env)
        assert "PGSERVICE" not in env
        assert env["PATH"]


@pytest.mark.xfail(strict=True, reason="issue #23 low: reproduced, not fixed yet")
def test_psql_never_prompts_for_a_password(tmp_path: Path) -> None:
    seen = tmp_path / "argv"
    fake = tmp_path / "psql"
    fake.write_text(f'#!/bin/sh\necho "$@" > {seen}\n')
    fake.chmod(0o755)
    Psql(Connection("db.internal", 5432, "postgres"), str(fake)).query("SELECT 1;")
    assert "-w" in seen.read_text().split()

"""The local executor hands a migration only what it needs: an allow-listed environment plus
the tenant's, and writes its log for the owner only."""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path

import pytest

from redmica_ops.container.keys import tenant_secret_key_base
from redmica_ops.runs.executors import Job, Launched
from redmica_ops.runs.executors.local import LocalExecutor, LocalTarget
from redmica_ops.tenants.model import validate_data

DUMP_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def tenant() -> object:
    data = {
        "db": {"name": "acme", "user": "acme", "password": "pw-acme"},
        "s3": {"bucket": "files-bucket", "folder": "acme"},
        "property": {"sub_domain": "acme"},
    }
    found, problems = validate_data("acme", data, "acme")
    assert found is not None, problems
    return found


def run_once(tmp_path: Path) -> tuple[dict[str, str], Path]:
    executor = LocalExecutor(
        {"acme": tenant()},  # type: ignore[dict-item]
        LocalTarget(log_dir=tmp_path / "logs", extra_env={"EXTRA_SETTING": "yes"}),
    )
    executor.preflight()
    launched = executor.launch(Job("acme", 1, [sys.executable, "-c", DUMP_ENV]))
    assert isinstance(launched, Launched)
    deadline = time.monotonic() + 30
    while not executor.poll([launched.handle])[launched.handle].stopped:
        assert time.monotonic() < deadline, "the child did not finish"
        time.sleep(0.02)
    log = executor.log_path("acme")
    line = next(x for x in log.read_text().splitlines() if x.startswith("{"))
    return json.loads(line), log


def test_the_operators_credentials_never_reach_a_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret-key")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "operator-session-token")
    monkeypatch.setenv("GITHUB_TOKEN", "operator-github-token")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("GEM_HOME", "/opt/gems")
    monkeypatch.setenv("SECRET_KEY_BASE", "m" * 64)
    env, log = run_once(tmp_path)
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GITHUB_TOKEN"):
        assert name not in env
    assert "operator-" not in log.read_text()
    assert env["LC_ALL"] == "C.UTF-8" and env["GEM_HOME"] == "/opt/gems" and env["PATH"]
    assert env["EXTRA_SETTING"] == "yes"
    assert env["RAILS_DB_PASSWORD"] == "pw-acme" and env["REDMICA_TENANT"] == "acme"
    # The tenant's own key, never the master.
    assert env["SECRET_KEY_BASE"] == tenant_secret_key_base("m" * 64, "acme")


def test_logs_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    old = tmp_path / "logs" / "acme.log"
    old.write_text("an earlier attempt\n")
    old.chmod(0o644)  # a log left by an older version keeps no wider mode
    _, log = run_once(tmp_path)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text().startswith("an earlier attempt\n")

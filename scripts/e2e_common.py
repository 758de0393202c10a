"""What scripts/e2e_lifecycle.py adds to the shared end-to-end helpers.

The machine-level helpers (packages, PostgreSQL, HTTP, Redmine's config) are in
tests/live/redmine.py and the step runner in scripts/e2e_redmine.py; this module only adds the
sandbox as the config bucket, the local executor's environment and finding a tenant's processes.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
from pathlib import Path

from tests.live.redmine import FILES_ROOT, REDMINE, environ_value, pids, wait_for

from scripts.e2e_redmine import Run


def start_sandbox(run: Run, redmica_bin: str, bucket: str) -> subprocess.Popen[bytes]:
    """`redmica sandbox` as the config bucket; its variables land in run.env."""
    run.logs["sandbox"] = run.work / "sandbox.log"
    env_file = run.work / "sandbox.env"
    sandbox = subprocess.Popen(
        [redmica_bin, "sandbox", "--bucket", bucket, "--env-file", str(env_file)],
        stdout=subprocess.DEVNULL,
        stderr=run.logs["sandbox"].open("wb"),
        start_new_session=True,
    )
    wait_for(env_file.exists, "the sandbox")
    for line in env_file.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        run.env[key] = value
    return sandbox


def stop_sandbox(sandbox: subprocess.Popen[bytes] | None) -> None:
    if sandbox is not None and sandbox.poll() is None:
        sandbox.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            sandbox.wait(timeout=30)


def local_executor_env(run: Run, domain: str, log_dir: Path) -> None:
    """The local executor's settings, and a master SECRET_KEY_BASE for this run: the shipped
    initializer makes every Redmine process (web or rake) need a key derived from it."""
    run.env.update(
        {
            "REDMICA_DOMAIN": domain,
            "REDMICA_LOCAL_WORKDIR": str(REDMINE),
            "REDMICA_LOCAL_USER": "www-data",
            "REDMICA_LOCAL_ENV": (
                "RAILS_ENV=production,REDMINE_LANG=en,SCHEMA=/dev/null,"
                f"REDMICA_ATTACHMENTS_ROOT={FILES_ROOT}"
            ),
            "REDMICA_LOCAL_LOG_DIR": str(log_dir),
            "REDMICA_POLL_INTERVAL": "1",
            "SECRET_KEY_BASE": secrets.token_hex(64),
        }
    )


def tenant_pids(tenant: str) -> set[int]:
    """Processes whose environment says REDMICA_TENANT=<tenant> (its Ruby processes)."""
    return {pid for pid in pids() if environ_value(pid, "REDMICA_TENANT") == tenant}

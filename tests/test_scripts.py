"""The shell scripts people read the output of: bootstrap (make demo/test) and the demo."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASH = shutil.which("bash") or "/bin/bash"


def _fake_venv(tmp_path: Path, pip_exit: int) -> Path:
    """A venv whose pip prints a hundred warnings like a noisy pip.conf, then exits pip_exit."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "Python 3.11.7"; exit 0; fi\n'
        "i=0; while [ $i -lt 100 ]; do\n"
        "  echo \"WARNING: Location 'file:///opt/pypi/simple/x$i/' is ignored\" >&2\n"
        "  i=$((i+1)); done\n"
        f"exit {pip_exit}\n"
    )
    python.chmod(0o755)
    return venv


def _bootstrap(venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(ROOT / "scripts" / "bootstrap.sh"), str(venv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bootstrap_is_quiet_when_it_works(tmp_path: Path) -> None:
    done = _bootstrap(_fake_venv(tmp_path, pip_exit=0))
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stdout + done.stderr
    assert done.stderr.splitlines() == [f"bootstrap: {tmp_path / 'venv'} ready (Python 3.11.7)"]


def test_bootstrap_shows_the_log_when_it_fails(tmp_path: Path) -> None:
    done = _bootstrap(_fake_venv(tmp_path, pip_exit=1))
    assert done.returncode == 1
    assert done.stderr.count("WARNING: Location") == 100
    assert done.stderr.splitlines()[-1].startswith("bootstrap: failed: ")


def _demo_step(stderr: int | None) -> bytes:
    script = f". {ROOT / 'scripts' / 'demo-lib.sh'}; step 'Add tenants'"
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": "xterm"}
    done = subprocess.run(
        [BASH, "-c", script], stderr=stderr, stdout=subprocess.PIPE, env=env, timeout=30
    )
    return done.stdout


def test_demo_writes_no_escape_codes_into_a_log_file(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    with log.open("wb") as handle:
        _demo_step(handle.fileno())
    assert log.read_bytes() == b"\n== Add tenants\n"


@pytest.mark.parametrize("no_color", [False, True])
def test_demo_bold_only_on_a_terminal_without_no_color(no_color: bool) -> None:
    leader, follower = pty.openpty()
    script = f". {ROOT / 'scripts' / 'demo-lib.sh'}; step 'Add tenants'"
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": "xterm"}
    if no_color:
        env["NO_COLOR"] = "1"
    try:
        subprocess.run([BASH, "-c", script], stderr=follower, env=env, timeout=30, check=True)
        written = os.read(leader, 1024)
    finally:
        os.close(follower)
        os.close(leader)
    assert (b"\x1b[1m" in written) is not no_color
    assert b"== Add tenants" in written

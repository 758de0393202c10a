"""scripts/debian13-root.sh: the root's name follows its recipe, and a run leaves nothing behind.

The machinery (namespaces, overlay, chroot, cleanup) is exercised on this machine's own root
as the overlay's lower layer (REDMICA_DEBIAN13_ROOT=/), so no Debian 13 root is built here;
`make e2e` uses the real one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "debian13-root.sh"
BASH = shutil.which("bash") or "/bin/bash"

needs_namespaces = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("apt-get"),
    reason="needs root on Debian with unshare (as `make test` has in CI)",
)


def fake_clone(tmp_path: Path, script_text: str | None = None) -> Path:
    """A clone with the script and an up-to-date .venv-debian13 stamp (nothing to install)."""
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    (clone / "scripts" / "debian13-root.sh").write_text(script_text or SCRIPT.read_text())
    (clone / "scripts" / "bootstrap.sh").write_text("exit 1\n")
    (clone / "pyproject.toml").write_text("")
    (clone / ".venv-debian13").mkdir()
    stamp = clone / ".venv-debian13" / ".installed"
    stamp.touch()
    os.utime(stamp, (time.time() + 60, time.time() + 60))
    return clone


def script(clone: Path, *args: str) -> list[str]:
    return [BASH, str(clone / "scripts" / "debian13-root.sh"), *args]


def where(tmp_path: Path, text: str) -> str:
    clone = fake_clone(tmp_path / uuid.uuid4().hex, text)
    env = {**os.environ, "REDMICA_ROOT_CACHE": str(tmp_path / "cache")}
    env.pop("REDMICA_DEBIAN13_ROOT", None)
    done = subprocess.run(
        script(clone, "where"), capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def test_the_roots_name_follows_the_recipe_only(tmp_path: Path) -> None:
    text = SCRIPT.read_text()
    assert text.count("PACKAGES=(") == 1 and "PASS_ENV=(TERM" in text
    original = where(tmp_path, text)
    assert original.startswith(f"{tmp_path / 'cache'}/debian13-")
    # A package more is another root; a change outside the recipe (how runs enter) is not.
    assert where(tmp_path, text.replace("PACKAGES=(", "PACKAGES=(\n  tmux")) != original
    assert where(tmp_path, text.replace("PASS_ENV=(TERM", "PASS_ENV=(TERM LANGUAGE")) == original


def marker_processes(marker: str) -> list[int]:
    """The `sleep MARKER` processes (not the shells whose command line names them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", marker.encode()]:
                found.append(int(entry.name))
    return found


def run_env(tmp_path: Path) -> dict[str, str]:
    runs = tmp_path / "runs"
    runs.mkdir(exist_ok=True)
    return {
        **os.environ,
        "REDMICA_DEBIAN13_ROOT": "/",
        "TMPDIR": str(runs),
        "AWS_SECRET_ACCESS_KEY": "host-only-value",
        "CI": "true",
    }


@needs_namespaces
def test_a_run_ends_every_process_it_started_and_keeps_its_exit_code(tmp_path: Path) -> None:
    clone = fake_clone(tmp_path)
    marker = f"{time.time_ns() % 10**6}.{os.getpid()}"  # a sleep duration nobody else uses
    command = (
        f"setsid sh -c 'sleep {marker} &' ; sleep {marker} & "
        "pwd; env; test -f .venv-debian13/.installed; exit 3"
    )
    done = subprocess.run(
        script(clone, "run", "sh", "-c", command),
        capture_output=True,
        text=True,
        env=run_env(tmp_path),
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "/src"  # the clone, mounted at /src
    # Only the allowed variables reach the command; the host's AWS keys do not.
    assert "CI=true" in lines and not any("host-only-value" in line for line in lines)
    assert marker_processes(marker) == []
    assert list((tmp_path / "runs").iterdir()) == []  # the run's overlay is gone too


@needs_namespaces
def test_ctrl_c_ends_every_process_and_removes_the_run(tmp_path: Path) -> None:
    clone = fake_clone(tmp_path)
    marker = f"{time.time_ns() % 10**6}.{os.getpid()}1"
    started = clone / "started"
    command = (
        f"setsid sh -c 'sleep {marker} &'; sleep {marker} & touch /src/started; exec sleep {marker}"
    )
    outer = subprocess.Popen(
        script(clone, "run", "sh", "-c", command),
        env=run_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # As from a terminal: a shell that started this suite in the background (CI may) has
        # it ignore SIGINT, and an ignored signal stays ignored across exec.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # Started: the file is there and the three sleeps have been exec'd (setsid does not
        # wait for its child, so they may come a moment after the file).
        deadline = time.monotonic() + 60
        while not started.exists() or len(marker_processes(marker)) < 3:
            assert outer.poll() is None, outer.stderr.read() if outer.stderr else ""
            assert time.monotonic() < deadline, f"started: {marker_processes(marker)}"
            time.sleep(0.05)
        assert len(marker_processes(marker)) == 3
        os.killpg(outer.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground job
        outer.wait(timeout=60)
    finally:
        if outer.poll() is None:  # a failure here must not leave the run behind either
            os.killpg(outer.pid, signal.SIGKILL)  # unshare --kill-child ends the namespace
            outer.wait(timeout=60)
    assert outer.returncode != 0
    assert marker_processes(marker) == []
    assert list((tmp_path / "runs").iterdir()) == []


def test_without_root_it_says_it_skipped() -> None:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root to become nobody (setpriv)")
    # A clone nobody can read (pytest's own temporary folders are private to root).
    clone = Path(tempfile.mkdtemp(prefix="redmica-nobody-"))
    try:
        clone.chmod(0o755)
        (clone / "scripts").mkdir(mode=0o755)
        shutil.copy(SCRIPT, clone / "scripts" / "debian13-root.sh")
        (clone / "scripts" / "debian13-root.sh").chmod(0o644)
        nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        done = subprocess.run(
            [*nobody, *script(clone, "run", "true")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        shutil.rmtree(clone)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "debian13 root: 0 passed, 0 failed, 1 skipped"
    assert "skipped: needs root" in done.stderr

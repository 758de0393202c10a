"""What README promises a new operator: the wheel installs a working `redmica`, and the sandbox
snippet works when pasted as one block (it once sourced the env file before it existed)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PIP = (sys.executable, "-m", "pip")


def _readme_block(after_heading: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"## {after_heading}\n", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match is not None, f"README's {after_heading} has no sh block"
    return match.group(1)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDMICA_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return env


def test_readme_install_does_not_promise_a_published_package() -> None:
    block = _readme_block("Install")
    assert "pip install redmica-ops" not in block
    assert "pipx install '.[sandbox]'" in block
    assert "pip wheel --no-deps -w dist ." in block


@pytest.mark.subprocess
def test_the_built_wheel_carries_the_cli_and_every_file_it_reads(tmp_path: Path) -> None:
    dist, target, work = tmp_path / "dist", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("redmica_ops-*-py3-none-any.whl")
    subprocess.run(
        [*PIP, "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    # The wheel's code first on the path, run away from the source tree: a file the package
    # reads but the wheel lacks would be found in the checkout otherwise.
    env = {**_clean_env(), "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import redmica_ops; print(redmica_ops.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(target))
    script = target / "bin" / "redmica"
    assert script.exists(), "the wheel declares no redmica console script"
    example = subprocess.run(
        [sys.executable, str(script), "tenant", "example"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert example.returncode == 0, example.stderr
    (work / "tenants").mkdir()
    (work / "tenants" / "acme.yaml").write_text(example.stdout)
    rendered = subprocess.run(
        [
            sys.executable,
            str(script),
            "render",
            "vhosts",
            "--from-dir",
            "tenants",
            "-o",
            "v.conf",
            "--domain",
            "redmine.example.com",
            "--db-host",
            "db.example.internal",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert "PassengerAppGroupName" in (work / "v.conf").read_text()


@pytest.mark.subprocess
def test_the_readme_sandbox_snippet_works_pasted_as_one_block(tmp_path: Path) -> None:
    block = _readme_block("Try it without AWS")
    env_file = tmp_path / "sandbox.env"
    # A stale file from a sandbox killed earlier must not pass for this one.
    env_file.write_text("export AWS_ENDPOINT_URL=http://127.0.0.1:9\n")
    block = block.replace("/tmp/sandbox.env", str(env_file))
    block = block.replace("examples/tenants/", f"{ROOT}/examples/tenants/")
    shell = subprocess.Popen(
        ["bash", "-e", "-c", block],
        cwd=tmp_path,
        env=_clean_env(),
        text=True,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = shell.communicate(timeout=120)
    finally:  # a failing line leaves the background sandbox running: stop the whole group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(shell.args, shell.returncode, out, err)
    assert result.returncode == 0, result.stderr
    assert "acme" in result.stdout
    assert not env_file.exists(), "the sandbox leaves its env file behind"

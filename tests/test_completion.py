"""`redmica completion bash|zsh|fish`: the script loads in the shell and completes commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Invoke

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_prints_the_script_for_each_shell(run: Invoke, shell: str) -> None:
    result = run("completion", shell)
    assert result.exit_code == 0
    assert "_REDMICA_COMPLETE" in result.stdout
    assert f"{shell}_complete" in result.stdout or "complete_" in result.stdout
    assert run("completion", shell, "--output", "json").json()["shell"] == shell


def test_an_unknown_shell_is_a_usage_error(run: Invoke) -> None:
    result = run("completion", "powershell")
    assert result.exit_code == 2
    assert "'powershell' is not one of 'bash', 'zsh', 'fish'" in result.stderr


def test_bash_completes_command_names_through_the_loaded_script() -> None:
    bash = shutil.which("bash")
    assert bash is not None
    script = (
        'eval "$(redmica completion bash)"\n'
        "COMP_WORDS=(redmica tenant re); COMP_CWORD=2\n"
        "_redmica_completion redmica\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [bash, "-c", script], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    assert done.stdout.split() == ["remove", "restore", "restore-db", "resume"]


def test_readme_documents_it() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert 'eval "$(redmica completion bash)"' in readme

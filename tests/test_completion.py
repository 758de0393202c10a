"""`redmica completion bash|zsh|fish`: the script loads in the shell and completes commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from tests.conftest import BUCKET, Invoke, tenant_yaml

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
    assert done.stdout.split() == ["remove", "rename-key", "restore", "restore-db", "resume"]


def test_readme_documents_it() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert 'eval "$(redmica completion bash)"' in readme


def complete(words: str, **env: str) -> list[str]:
    """What bash would offer for the last word of `words`, through click's completion (the
    script above calls the same entry point)."""
    from click.testing import CliRunner

    from redmica_ops.cli.app import Application
    from redmica_ops.cli.main import cli

    parts = words.split(" ")
    result = CliRunner().invoke(
        cli,
        [],
        prog_name="redmica",
        env={
            "_REDMICA_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
            **env,
        },
        obj=Application(),
    )
    return [line.split(",", 1)[1] for line in result.output.splitlines() if line]


def test_tenant_ids_run_ids_and_cells_complete(s3: S3Client, run: Invoke) -> None:
    # Issue 28: 800 tenants are not typed from memory.
    for name in ("acme", "alpha", "beta"):
        s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=tenant_yaml(name).encode())
    bucket = {"REDMICA_BUCKET": BUCKET}
    assert complete("redmica tenant show a", **bucket) == ["acme", "alpha"]
    assert complete("redmica tenant history b", **bucket) == ["beta"]
    assert complete("redmica migrate a", **bucket) == ["acme", "alpha"]
    migrated = run("migrate", "acme", "--executor", "local", "--command", "true")
    assert migrated.exit_code == 0, migrated.output
    (run_id,) = complete("redmica runs show ", **bucket)
    assert run_id.startswith("20")
    cells = {**bucket, "REDMICA_CELLS": "a=svc-a,b=svc-b,c2=svc-c"}
    assert complete("redmica tenant list --cell ", **cells) == ["a", "b", "c2"]
    assert complete("redmica tenant move acme --to c", **cells) == ["c2"]
    # No bucket, no credentials: nothing offered, no traceback in the shell.
    assert complete("redmica tenant show a") == []


def test_the_docs_say_how_to_complete_values() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "tenant ids, run ids and cells" in readme

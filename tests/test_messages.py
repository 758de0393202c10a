"""What the operator reads: sizes, suggestions and errors say what is true, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from tests.conftest import Invoke, objects_in, tenant_yaml


def _oversized(size: int) -> bytes:
    body = tenant_yaml("acme").encode()
    return body + b"# " + b"x" * (size - len(body) - 3) + b"\n"


def test_an_oversized_file_reports_its_real_size_and_the_limit(run: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_bytes(_oversized(70_122))
    result = run("tenant", "validate", str(path))
    assert result.exit_code == 2
    assert f"{path}: document is 70122 bytes; the limit is 65536 bytes (64 KiB)" in result.stderr
    assert "65537" not in result.output


def test_oversized_stdin_says_larger_than_the_limit(run: Invoke) -> None:
    result = run("tenant", "add", "acme", "-f", "-", input=_oversized(70_122))
    assert result.exit_code == 2
    assert "<stdin>: document is larger than 65536 bytes; the limit is 65536 bytes" in result.stderr
    assert "65537" not in result.output


# -- usage errors: our one-line format, and a JSON error object with --output json ------------
@pytest.mark.parametrize(
    "argv",
    [
        ["--output", "json", "tenat", "list"],
        ["tenant", "lsit", "--output", "json"],
        ["tenant", "add", "--bogus", "-O", "json"],
        ["-Ojson", "tenant", "add"],
        ["cost", "--tasks", "many", "--output=json"],
    ],
)
def test_usage_errors_print_a_json_error_object_with_output_json(
    run: Invoke, argv: list[str]
) -> None:
    result = run(*argv)
    assert result.exit_code == 2
    document = result.json()
    assert document["exit_code"] == 2 and document["error"] and "--help" in document["hint"]
    assert result.stderr.startswith("error: ")
    assert "Usage:" not in result.output and "Error:" not in result.output


def test_a_usage_error_without_json_keeps_stdout_empty(run: Invoke) -> None:
    result = run("tenant", "add", "--bogus")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith("hint: usage: ")


def test_a_json_word_after_the_separator_is_not_the_output_flag(run: Invoke) -> None:
    result = run("tenant", "show", "--bogus", "--", "--output", "json")
    assert result.exit_code == 2 and result.stdout == ""


@pytest.mark.parametrize(
    ("typo", "meant"), [("tenat", "tenant"), ("migrat", "migrate"), ("rolback", "rollback")]
)
def test_a_mistyped_command_suggests_the_closest(run: Invoke, typo: str, meant: str) -> None:
    result = run(typo)
    assert result.exit_code == 2
    assert f"error: No such command '{typo}'. Did you mean '{meant}'?" in result.stderr


def test_a_mistyped_sub_command_suggests_the_closest(run: Invoke) -> None:
    assert "Did you mean 'list'?" in run("tenant", "lsit").stderr


def test_no_arguments_still_shows_the_help(run: Invoke) -> None:
    result = run(bucket=None)
    assert "[OPTIONS] COMMAND [ARGS]" in result.output and "Exit codes:" in result.output


# -- the editor and exec: our error format, a shell's exit codes ----------------------------------
def test_an_editor_that_fails_is_reported_in_our_format(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme")).exit_code == 0
    before = objects_in(s3)
    monkeypatch.setenv("EDITOR", "/no/such/editor")
    monkeypatch.delenv("VISUAL", raising=False)
    result = run("tenant", "edit", "acme")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the editor failed (/no/such/editor: Editing failed")
    assert "hint: set VISUAL or EDITOR" in result.stderr
    assert "\nError:" not in "\n" + result.output
    assert objects_in(s3) == before


def test_run_tenant_with_a_missing_program_exits_127_like_a_shell(
    s3: S3Client, run: Invoke
) -> None:
    assert run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme")).exit_code == 0
    result = run("entrypoint", "run-tenant", "acme", "--", "/no/such/program")
    assert result.exit_code == 127
    assert "error: cannot run '/no/such/program': No such file or directory" in result.stderr


def test_run_tenant_with_a_program_that_cannot_run_exits_126(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    assert run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme")).exit_code == 0
    not_executable = tmp_path / "script.sh"
    not_executable.write_text("#!/bin/sh\n")
    result = run("entrypoint", "run-tenant", "acme", "--", str(not_executable))
    assert result.exit_code == 126


# -- a read-only command never says "nothing was written" -----------------------------------------
@pytest.mark.parametrize("argv", [["cost", "--tasks", "3"], ["tenant", "list"], ["config", "show"]])
def test_read_only_commands_do_not_say_nothing_was_written(
    run: Invoke, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setenv("REDMICA_TASK_VCPU", "abc")
    result = run(*argv)
    assert result.exit_code == 2
    assert "error: validation failed: 1 problem\n" in result.stderr
    assert "nothing was written" not in result.stderr


def test_a_command_that_would_write_still_says_it(s3: S3Client, run: Invoke) -> None:
    result = run("tenant", "add", "acme", "-f", "-", input="db: {}\n")
    assert result.exit_code == 2
    assert "; nothing was written" in result.stderr

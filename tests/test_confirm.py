"""The one confirmation rule (cli/options.py `confirm`), shown through `tenant remove`."""

from __future__ import annotations

from mypy_boto3_s3 import S3Client

from redmica_ops.cli.app import Application
from tests.conftest import Invoke, objects_in, tenant_yaml


def _add(run: Invoke, name: str) -> None:
    assert run("tenant", "add", name, "-f", "-", input=tenant_yaml(name)).exit_code == 0


def _terminal(answer: bool | None = None) -> tuple[Application, list[str]]:
    """An app that believes it has a terminal; `answer` None means nobody may be asked."""
    asked: list[str] = []
    app = Application()
    app.interactive = lambda: True

    def ask(question: str) -> bool:
        asked.append(question)
        assert answer is not None, "asked although --yes was given"
        return answer

    app.ask = ask
    return app, asked


def test_no_answer_is_nothing_done_with_its_own_exit_code(s3: S3Client, run: Invoke) -> None:
    _add(run, "acme")
    before = objects_in(s3)
    app, asked = _terminal(answer=False)
    result = run("tenant", "remove", "acme", app=app)
    assert asked == ["Remove tenant 'acme' from s3://redmica-config-test?"]
    assert result.exit_code == 6
    assert result.stderr.startswith("nothing done: remove tenant 'acme'")
    assert "error" not in result.stderr and "Aborted" not in result.output
    assert objects_in(s3) == before


def test_no_answer_in_json_mode_is_a_json_document(s3: S3Client, run: Invoke) -> None:
    _add(run, "acme")
    app, _ = _terminal(answer=False)
    result = run("tenant", "remove", "acme", "--output", "json", app=app)
    assert result.exit_code == 6
    assert result.json()["exit_code"] == 6


def test_yes_skips_the_question(s3: S3Client, run: Invoke) -> None:
    _add(run, "acme")
    app, asked = _terminal(answer=None)
    assert run("tenant", "remove", "acme", "--yes", app=app).exit_code == 0
    assert asked == []


def test_without_a_terminal_it_refuses_before_asking(s3: S3Client, run: Invoke) -> None:
    _add(run, "acme")
    app, asked = _terminal(answer=None)
    app.interactive = lambda: False
    result = run("tenant", "remove", "acme", app=app)
    assert result.exit_code == 2
    assert "no terminal" in result.stderr and "hint: add --yes" in result.stderr
    assert asked == []


def test_the_real_prompt_reads_one_line_and_only_y_is_yes(s3: S3Client, run: Invoke) -> None:
    _add(run, "acme")
    for answer, code in (("\n", 6), ("", 6), ("nope\n", 6), ("YES\n", 0)):
        app = Application()
        app.interactive = lambda: True
        result = run("tenant", "remove", "acme", input=answer, app=app)
        assert result.exit_code == code, (answer, result.output)
        assert "[y/N]" in result.stderr


def test_the_rule_is_documented_once_in_the_root_help(run: Invoke) -> None:
    help_text = run("--help").stdout
    assert "Confirmations:" in help_text and "6 declined" in help_text

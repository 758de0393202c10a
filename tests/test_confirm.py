"""The one confirmation rule (cli/options.py `confirm`), shown through `tenant remove`."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def _repo(tmp_path: Path, *names: str) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    for name in names:
        (repo / f"{name}.yaml").write_text(tenant_yaml(name))
    return repo


def test_sync_apply_shows_the_plan_then_asks(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    repo = _repo(tmp_path, "acme", "beta")
    before = objects_in(s3)
    app, asked = _terminal(answer=False)
    result = run("tenant", "sync", str(repo), "--apply", app=app)
    assert result.exit_code == 6
    assert asked == [
        "Apply 2 add(s), 0 change(s) and 0 removal(s) to s3://redmica-config-test/tenants/?"
    ]
    assert "+ add     acme" in result.stderr  # the plan, before the question
    assert objects_in(s3) == before
    app, asked = _terminal(answer=True)
    applied = run("tenant", "sync", str(repo), "--apply", app=app)
    assert applied.exit_code == 0 and "applied 2 change(s): 2 added" in applied.stderr
    assert "added acme" in applied.stdout
    assert applied.stdout.count("+ add     acme") == 0  # not printed a second time


def test_sync_apply_without_a_terminal_needs_yes(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    repo = _repo(tmp_path, "acme")
    refused = run("tenant", "sync", str(repo), "--apply")
    assert refused.exit_code == 2 and "add --yes" in refused.stderr
    assert run("tenant", "sync", str(repo), "--apply", "--yes").exit_code == 0


def test_a_sync_plan_and_an_empty_apply_ask_nothing(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    repo = _repo(tmp_path, "acme")
    assert run("tenant", "sync", str(repo)).exit_code == 0  # plan only
    assert run("tenant", "sync", str(repo), "--apply", "--yes").exit_code == 0
    app, asked = _terminal(answer=None)
    assert run("tenant", "sync", str(repo), "--apply", app=app).exit_code == 0
    assert asked == []


def test_restore_asks_first(s3: S3Client, run: Invoke) -> None:
    _add(run, "acme")
    first = run("tenant", "history", "acme", "-O", "json").json()[0]["version_id"]
    before = objects_in(s3)
    app, asked = _terminal(answer=False)
    result = run("tenant", "restore", "acme", first, app=app)
    assert result.exit_code == 6 and len(asked) == 1
    assert asked[0].startswith(f"Make version {first} of tenant 'acme' the current one")
    assert objects_in(s3) == before
    assert run("tenant", "restore", "acme", first).exit_code == 2  # no terminal, no --yes


@pytest.mark.parametrize(
    ("argv", "question"),
    [
        (["deploy", "--image", "r:2"], "Deploy r:2 to service app in cluster prod?"),
        (
            ["release", "--image", "r:2"],
            "Migrate every tenant with r:2, then deploy it to service app in cluster prod?",
        ),
        (["rollback"], "Roll service app in cluster prod back to the last completed revision?"),
        # A restart of every task (issue #28: it asked nothing).
        (["reload"], "Restart every task of service app in cluster prod?"),
        # `rollback --to N` on a terminal reads the revisions first (so a missing one is said
        # before the question): tests/test_deploy_safety.py, against moto.
    ],
)
def test_production_commands_ask_first_and_refuse_without_a_terminal(
    run: Invoke, monkeypatch: pytest.MonkeyPatch, argv: list[str], question: str
) -> None:
    # No AWS behind these: a refusal or a "no" must come before the first call.
    monkeypatch.setenv("REDMICA_CLUSTER", "prod")
    monkeypatch.setenv("REDMICA_SERVICE", "app")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    refused = run(*argv)
    assert refused.exit_code == 2 and "hint: add --yes" in refused.stderr
    app, asked = _terminal(answer=False)
    declined = run(*argv, app=app)
    assert asked == [question]
    assert declined.exit_code == 6 and declined.stderr.startswith("nothing done: ")


def test_a_missing_setting_fails_before_anyone_is_asked(run: Invoke) -> None:
    app, asked = _terminal(answer=None)
    result = run("deploy", "--image", "r:2", app=app)
    assert result.exit_code == 2 and "cluster, service" in result.stderr
    assert asked == []

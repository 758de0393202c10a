"""cli/output.py: tables that fit an 80-column terminal, colour only where it helps."""

from __future__ import annotations

import io
import re

import pytest

from redmica_ops.cli.output import Output, fold
from redmica_ops.errors import NotFound

ESCAPE = "\x1b["
COLUMNS = ["tenant", "site", "database", "attachments", "allowed ips"]
ROWS = [
    [
        "acme",
        "https://acme.redmine.example.com",
        "acme_production@aurora.cluster-abc.us-east-1.rds.amazonaws.com",
        "s3://redmica-attachments/acme-files",
        "192.168.0.0/24, 10.0.0.0/8, 172.16.0.0/12",
    ],
    ["globex", "https://globex.redmine.example.com", "globex@db", "s3://b/globex", "ok"],
]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> tuple[Output, Terminal, Terminal]:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    stdout, stderr = Terminal(), Terminal()
    return Output(stdout=stdout, stderr=stderr), stdout, stderr


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _words(cell: str) -> set[str]:
    return set(re.split(r"[^A-Za-z]+", cell)) - {""}


def test_a_table_on_80_columns_fits_and_breaks_no_word(
    terminal: tuple[Output, Terminal, Terminal],
) -> None:
    out, stdout, _ = terminal
    out.table(COLUMNS, ROWS)
    lines = _plain(stdout.getvalue()).splitlines()
    assert max(len(line) for line in lines) <= 80
    shown = set(re.split(r"[^A-Za-z]+", " ".join(lines)))
    for row in ROWS:
        for cell in row:
            assert _words(cell) <= shown, f"a word of {cell!r} was cut"
    assert "redmica-at" not in stdout.getvalue()


def test_low_value_columns_are_dropped_first_and_the_operator_is_told(
    terminal: tuple[Output, Terminal, Terminal],
) -> None:
    out, stdout, stderr = terminal
    out.table(COLUMNS, ROWS, drop_first=["database"])
    assert "database" not in stdout.getvalue() and "aurora" not in stdout.getvalue()
    assert "(hidden to fit 80 columns: database; widen the terminal or use --output json)" in (
        stderr.getvalue()
    )


def test_a_table_that_fits_drops_nothing(terminal: tuple[Output, Terminal, Terminal]) -> None:
    out, stdout, stderr = terminal
    out.table(["a", "b"], [["1", "2"]], drop_first=["b"])
    assert "b" in stdout.getvalue() and stderr.getvalue() == ""


@pytest.mark.parametrize(
    ("value", "width", "lines"),
    [
        ("s3://redmica-attachments/acme", 14, ["s3://redmica-", "attachments/", "acme"]),
        ("10.0.0.0/8, 172.16.0.0/12", 14, ["10.0.0.0/8,", "172.16.0.0/12"]),
        ("abcdefghijkl", 5, ["abcde", "fghij", "kl"]),  # no separator: nothing better to do
        ("short", 10, ["short"]),
    ],
)
def test_fold_breaks_after_separators(value: str, width: int, lines: list[str]) -> None:
    assert fold(value, width).split("\n") == lines


def test_statuses_are_coloured_on_a_terminal(terminal: tuple[Output, Terminal, Terminal]) -> None:
    out, stdout, stderr = terminal
    out.table(["check", "status"], [["bucket", "ok"], ["ecs", "fail"]])
    assert "\x1b[32mok" in stdout.getvalue() and "\x1b[31mfail" in stdout.getvalue()
    out.error(NotFound("no such tenant"))
    assert stderr.getvalue().startswith("\x1b[1;31merror:\x1b[0m no such tenant")


def test_no_color_means_no_colour_and_no_bold(
    terminal: tuple[Output, Terminal, Terminal], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out, stdout, stderr = terminal
    out.table(["check", "status"], [["bucket", "ok"]])
    out.warn("careful")
    out.error(NotFound("no such tenant"))
    assert ESCAPE not in stdout.getvalue() + stderr.getvalue()


def test_nothing_but_text_on_a_pipe() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(stdout=stdout, stderr=stderr)
    out.table(["check", "status"], [["bucket", "ok"]])
    out.warn("careful")
    assert ESCAPE not in stdout.getvalue() + stderr.getvalue()
    assert stdout.getvalue().split() == ["check", "status", "bucket", "ok"]


def test_no_trailing_blanks_in_a_piped_table() -> None:
    stdout = io.StringIO()
    Output(stdout=stdout).table(["tenant", "status"], [["acme", "ok"], ["a-much-longer-name", ""]])
    assert all(line == line.rstrip() for line in stdout.getvalue().splitlines())


def test_a_piped_table_never_folds_however_long() -> None:
    stdout = io.StringIO()
    long_value = "/tmp/" + "x" * 300 + "/redmica.toml"
    Output(stdout=stdout).table(["setting", "source"], [["domain", long_value]])
    assert stdout.getvalue().splitlines()[1].split() == ["domain", long_value]

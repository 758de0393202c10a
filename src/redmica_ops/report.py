"""What a use case hands back to be shown: a JSON document, lines and tables, an exit code.

An outcome offers `report() -> Report` (or a module builds one from it), so the text of a
result lives in the library next to its JSON shape, and every front end shows the same thing:
the command line prints it (`cli/result.ReportResult`: `text` lines to stdout, `info`,
`success` and `warn` lines to stderr with their style, tables through the CLI's table printer,
`messages` to stderr in both output modes), the Lambda can log `plain_lines()`. Nothing here
prints or imports a terminal library.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from redmica_ops.errors import JSONValue

LineKind = Literal["text", "info", "success", "warn"]
CellValue: TypeAlias = "str | int | float | None"


@dataclass(frozen=True)
class Line:
    """One line: `text` is data for stdout; the other kinds are for the person (stderr)."""

    kind: LineKind
    text: str


@dataclass(frozen=True)
class Table:
    """Rows under headers; `drop_first` names the columns to leave out first when too wide."""

    headers: tuple[str, ...]
    rows: list[list[CellValue]]
    drop_first: tuple[str, ...] = ()


Part: TypeAlias = "Line | Table"


@dataclass
class Report:
    """A result as shown: the `--output json` document, the body people read, the messages
    for stderr (shown in both modes), and the exit code."""

    document: JSONValue
    body: list[Part] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    exit_code: int = 0

    def plain_lines(self) -> list[str]:
        """The body as plain lines (a table's rows tab-separated): for a log."""
        lines: list[str] = []
        for part in self.body:
            if isinstance(part, Table):
                lines.append("\t".join(part.headers))
                lines.extend("\t".join("" if c is None else str(c) for c in r) for r in part.rows)
            else:
                lines.append(part.text)
        return lines


def text(value: str) -> Line:
    return Line("text", value)


def info(value: str) -> Line:
    return Line("info", value)


def success(value: str) -> Line:
    return Line("success", value)


def warn(value: str) -> Line:
    return Line("warn", value)


def plain_json(value: object) -> JSONValue:
    """`value` as plain JSON (dataclass dicts with dates and enums become strings)."""
    loaded: JSONValue = json.loads(json.dumps(value, default=str))
    return loaded


def counting(status: Callable[[str], None], what: str) -> Callable[[int, int], None]:
    """Progress of counted work (an import, an export, a sync, a claims rebuild) on a status
    line (`Workspace.status`: live on a terminal, a line every ~10 s otherwise):
    "import: created 235 of 800"."""

    def show(done: int, total: int) -> None:
        status(f"{what} {done} of {total}")

    return show

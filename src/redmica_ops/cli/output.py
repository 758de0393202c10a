"""All human and machine output goes through here.

Data goes to stdout (a table, YAML, or JSON with `--output json`); messages, warnings, progress
and errors go to stderr, so `redmica ... --output json | jq` always gets clean JSON. Text from
tenants is never interpreted as rich markup.

Colour (and bold) only on a terminal, never with NO_COLOR set (https://no-color.org) or
TERM=dumb: a pipe or a log file gets plain text. Tables fit the terminal: low-value columns go
first, then long values fold at their separators (/ , . - _ :), not in the middle of a word.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

from redmica_ops.errors import RedmicaError

# Status words that mean the same to an operator, wherever they come from (doctor, ECS, runs).
STATUS_STYLES: dict[str, str] = {
    **dict.fromkeys(
        ("ok", "succeeded", "completed", "primary", "active", "running", "yes"), "green"
    ),
    **dict.fromkeys(
        ("warn", "pending", "in_progress", "launching", "queued", "draining", "skipped"),
        "yellow",
    ),
    **dict.fromkeys(
        ("fail", "failed", "error", "launch_failed", "timed_out", "interrupted", "inactive"),
        "red",
    ),
}
COLUMN_GAP = 3  # between two columns: rich pads each side by 1, SIMPLE_HEAD draws a space
_SEPARATORS = (r"(?<=[\s,])", r"(?<=[/@])", r"(?<=:)", r"(?<=[-_])", r"(?<=\.)")


def colour_enabled(stream: IO[str], env: Mapping[str, str] | None = None) -> bool:
    """Colour and bold only for a person at a terminal who has not opted out."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def fold(value: str, width: int) -> str:
    """Break `value` into lines of at most `width`: after a space or comma if it can, else
    after / or @, then :, then - or _, then . (an address stays whole before a path does), and in
    the middle of a word only when no separator is left."""
    if width < 1 or len(value) <= width:
        return value
    lines: list[str] = []
    line = ""
    for piece in _pieces(value, width, 0):
        if len(line) + len(piece.rstrip()) <= width:
            line += piece
            continue
        if line:
            lines.append(line)
        line = piece
    lines.append(line)
    return "\n".join(item.rstrip() for item in lines if item.strip())


def _pieces(value: str, width: int, level: int) -> list[str]:
    if len(value.rstrip()) <= width:
        return [value]
    if level == len(_SEPARATORS):
        return [value[i : i + width] for i in range(0, len(value), width)]
    pieces: list[str] = []
    for part in (p for p in re.split(_SEPARATORS[level], value) if p):
        pieces.extend(_pieces(part, width, level + 1))
    return pieces


def fit_columns(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    drop_first: Sequence[str] = (),
) -> tuple[list[int], list[int]]:
    """Which columns to show (indexes) and each one's width, so the table fits `width`.

    Columns named in `drop_first` are dropped, in that order, while the table is too wide; then
    the widest columns share what is left (each keeps at least its header's width).
    """
    natural = [
        max([len(name)] + [len(line) for row in rows for line in row[i].splitlines() or [""]])
        for i, name in enumerate(columns)
    ]
    shown = list(range(len(columns)))

    def total(indexes: list[int]) -> int:
        return sum(natural[i] for i in indexes) + COLUMN_GAP * (len(indexes) - 1)

    for name in drop_first:
        if total(shown) <= width:
            break
        if name in columns and len(shown) > 1:
            shown.remove(columns.index(name))
    budget = width - COLUMN_GAP * (len(shown) - 1)
    widths = {i: natural[i] for i in shown}
    # Water-filling: narrow columns keep their width, the wide ones share the rest equally.
    wide = sorted(shown, key=lambda i: natural[i])
    remaining = budget
    while wide:
        share = remaining // len(wide)
        if natural[wide[0]] <= share:
            remaining -= natural[wide.pop(0)]
            continue
        for i in wide:
            widths[i] = max(share, len(columns[i]))
        break
    return shown, [widths[i] for i in shown]


class Output:
    def __init__(
        self,
        json_mode: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    # -- messages (stderr) ------------------------------------------------------------------------
    def _err(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def _paint(self, text: str, style: str) -> str:
        """`text` in an SGR style (bold, red, yellow, green) when stderr shows colour."""
        if not colour_enabled(self.stderr):
            return text
        codes = {"bold": "1", "red": "31", "yellow": "33", "green": "32", "bold red": "1;31"}
        return f"\033[{codes[style]}m{text}\033[0m"

    def info(self, text: str) -> None:
        self._err(text)

    def success(self, text: str) -> None:
        self._err(text)

    def warn(self, text: str) -> None:
        self._err(f"{self._paint('warning:', 'yellow')} {text}")

    def error(self, error: RedmicaError) -> None:
        style = "bold red" if error.label == "error" else "bold"
        self._err(f"{self._paint(error.label + ':', style)} {error.message}")
        for problem in error.problems:
            self._err(f"  {problem}")
        if error.hint:
            self._err(f"hint: {error.hint}")
        if self.json_mode:
            self.data(error.as_dict())

    # -- data (stdout) ----------------------------------------------------------------------------
    def data(self, payload: Any) -> None:
        self.stdout.write(json.dumps(payload, indent=2, default=str, ensure_ascii=False) + "\n")
        self.stdout.flush()

    def text(self, text: str) -> None:
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        title: str = "",
        drop_first: Sequence[str] = (),
    ) -> None:
        """A table on stdout; on a terminal it fits the width (see `fit_columns`)."""
        cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
        is_tty = bool(getattr(self.stdout, "isatty", None) and self.stdout.isatty())
        width, shown, widths = _layout(columns, cells, is_tty, drop_first)
        rendered = _render_table(
            columns,
            cells,
            shown,
            widths,
            title=title,
            width=width,
            is_tty=is_tty,
            colour=colour_enabled(self.stdout),
        )
        # rich pads every cell to its column's width; trailing blanks only get in a reader's way.
        self.stdout.write("".join(line.rstrip() + "\n" for line in rendered.splitlines()))
        self.stdout.flush()
        hidden = [columns[i] for i in range(len(columns)) if i not in shown]
        if hidden:
            self.info(
                f"(hidden to fit {width} columns: {', '.join(hidden)}; "
                "widen the terminal or use --output json)"
            )


def _layout(
    columns: Sequence[str], cells: list[list[str]], is_tty: bool, drop_first: Sequence[str]
) -> tuple[int, list[int], list[int] | None]:
    """(the width to render at, the columns shown, their widths or None for unfolded)."""
    if not is_tty:  # a pipe is read by programs: never fold, however long the rows
        width = sum(
            max([len(name)] + [len(row[i]) for row in cells]) + COLUMN_GAP
            for i, name in enumerate(columns)
        )
        return width, list(range(len(columns))), None
    width = shutil.get_terminal_size().columns
    shown, widths = fit_columns(columns, cells, width, drop_first)
    return width, shown, widths


def _render_table(
    columns: Sequence[str],
    cells: list[list[str]],
    shown: list[int],
    widths: list[int] | None,
    *,
    title: str,
    width: int,
    is_tty: bool,
    colour: bool,
) -> str:
    """The table as rich prints it: kubectl-style plain columns when piped (easy to awk), a
    ruled header on a terminal; status words coloured when colour is on."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        color_system="auto" if colour else None,
        no_color=not colour,
        force_terminal=colour,
        highlight=False,
        emoji=False,
        markup=False,
    )
    table = Table(
        box=box.SIMPLE_HEAD if is_tty else None,
        title=title or None,
        title_justify="left",
        show_edge=False,
        pad_edge=False,
        header_style="bold" if colour else "",
    )
    for index in shown:
        table.add_column(columns[index], overflow="fold")
    for row in cells:
        texts = []
        for position, index in enumerate(shown):
            value = row[index] if widths is None else fold(row[index], widths[position])
            style = STATUS_STYLES.get(value.strip().lower(), "") if colour else ""
            texts.append(Text(value, style=style))
        table.add_row(*texts)
    console.print(table)
    return buffer.getvalue()

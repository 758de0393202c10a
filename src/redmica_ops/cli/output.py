"""All human and machine output goes through here.

Data goes to stdout (a table, YAML, or JSON with `--output json`); messages, warnings, progress
and errors go to stderr, so `redmica ... --output json | jq` always gets clean JSON. Text from
tenants is never interpreted as rich markup.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from typing import IO, Any

from redmica_ops.errors import RedmicaError


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

    def info(self, text: str) -> None:
        self._err(text)

    def success(self, text: str) -> None:
        self._err(text)

    def warn(self, text: str) -> None:
        self._err(f"warning: {text}")

    def error(self, error: RedmicaError) -> None:
        self._err(f"{error.label}: {error.message}")
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

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
        from rich import box
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        is_tty = self.stdout.isatty()
        # Piped output is never folded: a wrapped cell would break `awk` on the columns.
        width = shutil.get_terminal_size().columns if is_tty else 100_000
        console = Console(
            file=self.stdout,
            width=width,
            no_color=not is_tty,
            highlight=False,
            emoji=False,
            markup=False,
        )
        # kubectl-style plain columns when piped (easy to awk), a ruled header on a terminal.
        table = Table(
            box=box.SIMPLE_HEAD if is_tty else None,
            title=title or None,
            title_justify="left",
            show_edge=False,
            pad_edge=False,
        )
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
        console.print(table)

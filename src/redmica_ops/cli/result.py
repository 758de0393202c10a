"""What a command hands back, and the one place that prints it (as pypa/pipx's `render_result`).

A command does its work through the library, builds a `CommandResult` and returns it (most
often a `ReportResult` around the `Report` a library use case built); the CLI's
dispatcher passes it to `render_result`, which prints the JSON document with `--output json` or
the text for people otherwise, and turns the result's exit code into the process's. Commands never
branch on `app.json` themselves: the JSON shape and the text shape of one result live side by
side in one class, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from redmica_ops.errors import JSONValue
from redmica_ops.report import Part, Report, Table

if TYPE_CHECKING:
    from redmica_ops.cli.app import Application
    from redmica_ops.cli.output import Output

__all__ = ["CommandResult", "Done", "JSONValue", "ReportResult", "render_body", "render_result"]


@runtime_checkable
class CommandResult(Protocol):
    """Anything a command returns: its JSON document, its text, its exit code."""

    def to_json(self) -> JSONValue: ...

    def render_text(self, out: Output) -> None: ...

    @property
    def exit_code(self) -> int: ...


@dataclass
class Done:
    """The common result: a JSON document, the lines people read, and messages for stderr.

    `text` goes to stdout (data a script may read, e.g. a run id); `messages` go to stderr in
    both modes, so stdout stays pure JSON with `--output json`.
    """

    document: JSONValue
    text: Callable[[Output], None] | None = None
    messages: Sequence[str] = ()
    code: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> JSONValue:
        return self.document

    def render_text(self, out: Output) -> None:
        if self.text is not None:
            self.text(out)

    @property
    def exit_code(self) -> int:
        return self.code


@dataclass
class ReportResult:
    """A library `Report` as a command's result: its document, its body, its exit code."""

    report: Report

    def to_json(self) -> JSONValue:
        return self.report.document

    def render_text(self, out: Output) -> None:
        render_body(out, self.report.body)

    @property
    def messages(self) -> list[str]:
        return self.report.messages

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


def render_body(out: Output, body: Sequence[Part]) -> None:
    """`text` lines to stdout, the others to stderr in their style, tables as tables."""
    for part in body:
        if isinstance(part, Table):
            out.table(part.headers, part.rows, drop_first=part.drop_first)
        elif part.kind == "text":
            out.text(part.text)
        elif part.kind == "success":
            out.success(part.text)
        elif part.kind == "warn":
            out.warn(part.text)
        else:
            out.info(part.text)


def render_result(app: Application, result: CommandResult | None) -> int:
    """Print `result` once, in the format the operator asked for; return its exit code."""
    if result is None:
        return 0
    out = app.output
    if app.json:
        out.data(result.to_json())
    else:
        result.render_text(out)
    for message in getattr(result, "messages", ()):
        out.info(message)
    return result.exit_code

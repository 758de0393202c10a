"""What a command hands back, and the one place that prints it (as pypa/pipx's `render_result`).

A command does its work through the library, builds a `CommandResult` and returns it; the CLI's
dispatcher passes it to `render_result`, which prints the JSON document with `--output json` or
the text for people otherwise, and turns the result's exit code into the process's. Commands never
branch on `app.json` themselves: the JSON shape and the text shape of one result live side by
side in one class, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from redmica_ops.cli.app import Application
    from redmica_ops.cli.output import Output

JSONValue: TypeAlias = (
    "str | int | float | bool | Sequence[JSONValue] | Mapping[str, JSONValue] | None"
)


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

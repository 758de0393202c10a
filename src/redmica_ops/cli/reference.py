"""Generates docs/cli.md from the commands' own --help, so the reference cannot drift.

`make docs` writes it; a test fails when the committed file differs from what this produces.
"""

from __future__ import annotations

import click

from redmica_ops.errors import EXIT_CODE_HELP

WIDTH = 100

HEADER = """\
# `redmica` command reference

Generated from `redmica ... --help` by `make docs` (`python -m redmica_ops.cli.reference`);
a test keeps it equal to the real help. Do not edit by hand.

## Exit codes

| code | meaning |
|---|---|
{exit_rows}

Every command accepts the global options (`--output json`, `--bucket`, `--profile`, ...)
before or after the sub-command.
"""


def _exit_rows() -> str:
    rows = []
    for item in EXIT_CODE_HELP.rstrip(".").split(";"):
        code, meaning = item.strip().split(" ", 1)
        rows.append(f"| {code} | {meaning} |")
    return "\n".join(rows)


def _walk(command: click.Command, ctx: click.Context) -> list[tuple[str, str]]:
    pages = [(ctx.command_path, command.get_help(ctx))]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(
                sub, info_name=name, parent=ctx, terminal_width=WIDTH, max_content_width=WIDTH
            )
            pages.extend(_walk(sub, sub_ctx))
    return pages


def render_reference() -> str:
    from redmica_ops.cli.main import cli

    settings = {**cli.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    ctx = click.Context(cli, info_name="redmica", **settings)
    parts = [HEADER.format(exit_rows=_exit_rows())]
    for path, text in _walk(cli, ctx):
        parts.append(f"## `{path}`\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    import sys

    sys.stdout.write(render_reference())

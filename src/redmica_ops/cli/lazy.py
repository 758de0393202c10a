"""Command groups whose sub-commands are imported when used, so start-up stays fast.

`redmica --help` and `redmica tenant validate FILE` import only the modules they run: each
group names its sub-commands in a table (name -> module and attribute) instead of importing
them. Importing a sub-command's module registers it (its `@command(group, NAME)` decorator)
or, for the root's groups, `get_command` adds the module's attribute.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import click


class LazyCommand(NamedTuple):
    """Where a sub-command lives; `help`: its one-line help, for a group that lists its
    commands without importing them (the root's `--help`; a test keeps it true)."""

    module: str
    attribute: str
    help: str = ""


class LazyGroup(click.Group):
    """A click group that imports a sub-command's module on first use."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            where = self.lazy[cmd_name]
            module = importlib.import_module(where.module)
            if cmd_name not in self.commands:  # not registered by its decorator
                self.add_command(getattr(module, where.attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as error:
            # click suggests from the loaded commands only; ours load lazily.
            raise click.exceptions.NoSuchCommand(
                error.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None


def load_all(group: click.Group, ctx: click.Context) -> None:
    """Import every sub-command of `group`, nested groups included (the generated reference
    and the tests walk `group.commands`)."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            load_all(command, click.Context(command, info_name=name, parent=ctx))

"""`redmica config ...`: what settings are in effect and where each came from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.result import Done

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output


@click.group()
def config() -> None:
    """Inspect the effective settings.

    \b
    Examples:
      redmica config show
      redmica --config prod.toml config show --output json
    """


@command(config, "show")
@pass_app
def show(app: Application) -> Done:
    """Print every setting, its value and where it came from.

    Precedence: flag, then REDMICA_<NAME> (or the alias shown), then redmica.toml, then the
    default.

    \b
    Examples:
      redmica config show
      REDMICA_BUCKET=my-config redmica config show --output json
    """
    from redmica_ops.settings import SPECS_BY_NAME

    settings = app.settings

    def text(out: Output) -> None:
        rows = []
        for name, value, source in settings.as_rows():
            spec = SPECS_BY_NAME[name]
            env = ", ".join([spec.env_name, *spec.env_aliases])
            rows.append((name, "" if value is None else value, source, env))
        out.table(["setting", "value", "source", "environment"], rows)
        out.info(f"config file: {settings.config_file or 'none (no ./redmica.toml)'}")

    return Done(
        {
            "config_file": settings.config_file,
            "settings": {
                name: {"value": value, "source": source}
                for name, value, source in settings.as_rows()
            },
        },
        text,
    )

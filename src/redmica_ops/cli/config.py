"""`redmica config ...`: what settings are in effect and where each came from."""

from __future__ import annotations

import difflib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.result import Done, ReportResult
from redmica_ops.errors import UsageError
from redmica_ops.settings import SPECS, SPECS_BY_NAME, Settings, SettingValue
from redmica_ops.settings.from_stack import FromStackRequest
from redmica_ops.settings.from_stack import from_stack as derive

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output


@click.group()
def config() -> None:
    """Inspect the effective settings.

    \b
    Examples:
      redmica config show --changed
      redmica --config prod.toml config show --output json
      redmica config from-stack redmica-foundation redmica-database redmica --write redmica.toml
    """


@command(config, "show")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--changed", is_flag=True, help="only the settings that are not at their default")
@pass_app
def show(app: Application, names: tuple[str, ...], changed: bool) -> Done:
    """Print the settings in effect: value (as you would write it), source, environment name.

    Precedence: flag, then REDMICA_<NAME> (or the alias shown), then redmica.toml, then the
    default. Give NAMEs to see only those; --changed hides the ones at their default.

    \b
    Examples:
      redmica config show --changed
      redmica config show bucket region subnets
      REDMICA_BUCKET=my-config redmica config show --output json
    """
    unknown = [name for name in names if name.replace("-", "_") not in SPECS_BY_NAME]
    if unknown:
        close = difflib.get_close_matches(unknown[0].replace("-", "_"), SPECS_BY_NAME, n=1)
        raise UsageError(
            f"no setting named {unknown[0]!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
            "`redmica config show` lists every setting",
        )
    wanted = {name.replace("-", "_") for name in names}
    settings = app.settings
    rows = [
        (name, value, source)
        for name, value, source in _rows(settings)
        if (not wanted or name in wanted) and (not changed or source != "default")
    ]

    def text(out: Output) -> None:
        table = []
        for name, value, source in rows:
            spec = SPECS_BY_NAME[name]
            env = ", ".join([spec.env_name, *spec.env_aliases])
            table.append((name, display_value(value), source, env))
        if table:
            out.table(
                ["setting", "value", "source", "environment"], table, drop_first=["environment"]
            )
        else:
            out.info("every setting is at its default" if changed else "no setting matched")
        out.info(f"config file: {settings.config_file or 'none (no ./redmica.toml)'}")

    return Done(
        {
            "config_file": settings.config_file,
            "settings": {name: {"value": value, "source": source} for name, value, source in rows},
        },
        text,
    )


@command(config, "from-stack")
@click.argument("stacks", nargs=-1, required=True, metavar="STACK...")
@click.option(
    "--write",
    "write",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="PATH",
    help="write the settings to PATH (whole, or not at all) instead of printing them",
)
@click.option("--force", is_flag=True, help="with --write: replace PATH if it exists")
@pass_app
def from_stack(
    app: Application, stacks: tuple[str, ...], write: Path | None, force: bool
) -> ReportResult:
    """Derive redmica.toml from the platform's CloudFormation stacks.

    Reads the outputs of the main stack (redmica.yaml: the settings) and of the foundation,
    database and cell stacks you name (checked to belong to it), in the settings' region. Prints
    the TOML, or with --write writes it to a temporary file renamed into place; an existing file
    is replaced only with --force. A missing stack, a missing output, a stack of another region
    or of another platform is an error naming it, and nothing is written.

    \b
    Examples:
      redmica config from-stack redmica-foundation redmica-database redmica
      redmica --region eu-west-1 config from-stack redmica redmica-cell-b --write redmica.toml
      redmica config from-stack redmica --write redmica.toml --force && redmica doctor
    """
    if force and write is None:
        raise UsageError("--force needs --write PATH", "e.g. --write redmica.toml --force")
    outcome = derive(FromStackRequest(stacks, write, force), app.workspace())
    return ReportResult(outcome.report())


def _rows(settings: Settings) -> list[tuple[str, SettingValue, str]]:
    """Every setting, in declaration order: name, value, where the value came from."""
    return [(spec.name, getattr(settings, spec.name), settings.source(spec.name)) for spec in SPECS]


def display_value(value: SettingValue) -> str:
    """A value as an operator writes it in REDMICA_<NAME>: lists comma-separated, booleans as
    true/false, numbers without an exponent; blank when it is not set."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)

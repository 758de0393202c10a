"""The `redmica` root command: global options, sub-command groups, error handling."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from redmica_ops import __version__
from redmica_ops.cli.app import Application
from redmica_ops.cli.lazy import LazyCommand, LazyGroup, load_all
from redmica_ops.cli.options import CONFIRMATION_RULE, global_options
from redmica_ops.cli.result import CommandResult, render_result
from redmica_ops.errors import EXIT_CODE_HELP, ExitCode, RedmicaError, UsageError

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output

EXIT_CODE_LINES = "\n".join(f"  {line.strip()}" for line in EXIT_CODE_HELP.split(";"))


class RootGroup(LazyGroup):
    """Turns every RedmicaError into a one-line message, a hint and its exit code; loads
    sub-commands when they are used and lists them without loading them."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        argv = list(args)
        try:
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            _usage_error(error, argv)
        ctx.meta[ARGV] = argv
        return ctx

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy[name].help) for name in sorted(self.lazy)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        app = ctx.find_object(Application) or ctx.ensure_object(Application)
        try:
            try:
                result = super().invoke(ctx)
            finally:
                app.close()  # a live status line ends before the result or an error prints
            if isinstance(result, CommandResult):
                code = render_result(app, result)
                if code:
                    ctx.exit(code)
                return None
            return result
        except RedmicaError as error:
            if app.debug:
                import traceback  # only --debug prints it; every start-up would pay its import

                traceback.print_exc()
            _safe_output(app).error(error)
            ctx.exit(int(error.exit_code))
        except KeyboardInterrupt:
            sys.stderr.write("\ninterrupted\n")
            ctx.exit(int(ExitCode.INTERRUPTED))
        except click.UsageError as error:
            _usage_error(error, ctx.meta.get(ARGV, ()))
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as error:
            if app.debug:
                raise
            # Only the exception type: an unknown exception's text might quote input.
            wrapped = RedmicaError(
                f"internal error ({type(error).__name__}); this is a bug in redmica",
                "run again with --debug for the traceback and report it",
            )
            _safe_output(app).error(wrapped)
            ctx.exit(int(ExitCode.FAILED))


ARGV = "redmica.argv"


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asked for --output json: read from the words themselves, as a
    usage error can stop click before it stores any option."""
    words = list(argv)
    if "--" in words:
        words = words[: words.index("--")]
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else ""
        if word in ("--output", "-O") and following == "json":
            return True
        if word in ("--output=json", "-Ojson", "-O=json"):
            return True
    return False


def _usage_error(error: click.UsageError, argv: Sequence[str]) -> NoReturn:
    """A usage error in our format (one line and a hint), as JSON on stdout too when asked."""
    if isinstance(error, click.exceptions.NoArgsIsHelpError):
        raise error  # `redmica` or `redmica tenant` alone: click shows the help
    # Here, not at the top: `redmica --help` never needs cli/output.py; only errors do.
    from redmica_ops.cli.output import Output

    path = error.ctx.command_path if error.ctx else "redmica"
    usage = error.ctx.get_usage().removeprefix("Usage: ") if error.ctx else ""
    hint = f"usage: {usage}; see `{path} --help`" if usage else f"see `{path} --help`"
    Output(json_mode=_wants_json(argv)).error(UsageError(error.format_message(), hint))
    raise click.exceptions.Exit(int(ExitCode.USAGE))


def _safe_output(app: Application) -> Output:
    from redmica_ops.cli.output import Output  # not at the top: as in _usage_error

    try:
        return app.output
    except Exception:  # pragma: no cover - output setup itself failed
        return Output()


EPILOG = f"""\b
Exit codes:
{EXIT_CODE_LINES}

Confirmations: {CONFIRMATION_RULE}

\b
Examples:
  redmica --bucket my-config tenant list
  redmica tenant add acme -f acme.yaml
  redmica tenant list --output json | jq '.[].tenant'
  redmica config show
"""


# Sub-commands load on first use, so `redmica --help` and `tenant validate` start fast;
# their one-line help is here (a test keeps it equal to each command's own).
LAZY_COMMANDS: dict[str, LazyCommand] = {
    "tenant": LazyCommand(
        "redmica_ops.cli.tenant",
        "tenant",
        "Manage tenants: one YAML document each in the S3 config bucket.",
    ),
    "migrate": LazyCommand(
        "redmica_ops.cli.migrate",
        "migrate",
        "Migrate tenant databases: one task per tenant, paced to AWS's limits.",
    ),
    "deploy": LazyCommand(
        "redmica_ops.cli.deploy",
        "deploy",
        "Deploy a new image: a new task definition revision, then a rolling update.",
    ),
    "reload": LazyCommand(
        "redmica_ops.cli.deploy",
        "reload",
        "Restart every task with the current revision (a forced new deployment).",
    ),
    "rollback": LazyCommand(
        "redmica_ops.cli.deploy",
        "rollback",
        "Roll the service back to the revision that last completed a deployment (or --to).",
    ),
    "release": LazyCommand(
        "redmica_ops.cli.deploy",
        "release",
        "Release an image: migrate every tenant with it, then deploy it if they all succeeded.",
    ),
    "status": LazyCommand(
        "redmica_ops.cli.deploy",
        "status",
        "Show the service: deployments with counts and rollout state, and recent events.",
    ),
    "probe": LazyCommand(
        "redmica_ops.cli.probe",
        "probe",
        "Request every tenant's site and judge it: up, suspended, restricted or failed.",
    ),
    "doctor": LazyCommand(
        "redmica_ops.cli.doctor",
        "doctor",
        "Check the setup: settings, credentials, bucket, tenants, ECS, Apache.",
    ),
    "iam-policy": LazyCommand(
        "redmica_ops.cli.policy",
        "iam_policy",
        "Print the least-privilege IAM policy JSON for a principal.",
    ),
    "runs": LazyCommand(
        "redmica_ops.cli.runs",
        "runs",
        "Look at migrate runs (records in the config bucket under runs/).",
    ),
    "cost": LazyCommand(
        "redmica_ops.cli.cost", "cost", "Estimate the Fargate cost of TASKS tasks."
    ),
    "capacity": LazyCommand(
        "redmica_ops.cli.capacity",
        "capacity",
        "Size a fleet: tasks needed, pool settings, cold-start exposure, cost per tenant.",
    ),
    "render": LazyCommand(
        "redmica_ops.cli.render",
        "render",
        "Render Apache virtual hosts and Redmine config files.",
    ),
    "entrypoint": LazyCommand(
        "redmica_ops.cli.entrypoint",
        "entrypoint",
        "Container entry points: serve every tenant, or run a command as one tenant.",
    ),
    "config": LazyCommand("redmica_ops.cli.config", "config", "Inspect the effective settings."),
    "completion": LazyCommand(
        "redmica_ops.cli.completion",
        "completion",
        "Print the shell completion script for SHELL (bash, zsh or fish).",
    ),
    "cells": LazyCommand(
        "redmica_ops.cli.cells",
        "cells",
        "Cells: ECS services that each serve a share of the tenants (docs/cells.md).",
    ),
    "sandbox": LazyCommand(
        "redmica_ops.cli.sandbox",
        "sandbox",
        "Run an embedded AWS endpoint (moto) with a versioned config bucket.",
    ),
}


@click.group(
    cls=RootGroup,
    lazy=LAZY_COMMANDS,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="redmica")
@global_options(hidden=False)
def cli() -> None:
    """Operate multi-tenant Redmine/RedMica on AWS: tenants in an S3 config bucket.

    Settings come from a flag, else a REDMICA_<NAME> environment variable, else redmica.toml,
    else a default: see `redmica config show`.
    """


def load_all_commands() -> None:
    """Import every sub-command, nested ones too (for the generated reference and the tests)."""
    load_all(cli, click.Context(cli))


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="redmica", obj=Application())

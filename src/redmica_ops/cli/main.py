"""The `redmica` root command: global options, sub-command groups, error handling."""

from __future__ import annotations

import sys
import traceback
from typing import Any

import click

from redmica_ops import __version__
from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options
from redmica_ops.errors import EXIT_CODE_HELP, ExitCode, RedmicaError

EXIT_CODE_LINES = "\n".join(f"  {line.strip()}" for line in EXIT_CODE_HELP.split(";"))


class RootGroup(click.Group):
    """Turns every RedmicaError into a one-line message, a hint and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        app = ctx.find_object(Application) or ctx.ensure_object(Application)
        try:
            return super().invoke(ctx)
        except RedmicaError as error:
            if app.debug:
                traceback.print_exc()
            _safe_output(app).error(error)
            ctx.exit(int(error.exit_code))
        except KeyboardInterrupt:
            sys.stderr.write("\ninterrupted\n")
            ctx.exit(int(ExitCode.INTERRUPTED))
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


def _safe_output(app: Application) -> Any:
    from redmica_ops.output import Output

    try:
        return app.output
    except Exception:  # pragma: no cover - output setup itself failed
        return Output()


EPILOG = f"""\b
Exit codes:
{EXIT_CODE_LINES}

\b
Examples:
  redmica --bucket my-config tenant list
  redmica tenant add acme -f acme.yaml
  redmica tenant list --output json | jq '.[].tenant'
  redmica config show
"""


@click.group(
    cls=RootGroup,
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


def _register() -> None:
    from redmica_ops.cli import (
        config,
        cost,
        deploy,
        doctor,
        entrypoint,
        migrate,
        render,
        runs,
        sandbox,
        tenant,
    )

    cli.add_command(tenant.tenant)
    cli.add_command(migrate.migrate)
    cli.add_command(deploy.deploy)
    cli.add_command(deploy.reload)
    cli.add_command(deploy.rollback)
    cli.add_command(deploy.release)
    cli.add_command(deploy.status)
    cli.add_command(doctor.doctor)
    cli.add_command(doctor.iam_policy)
    cli.add_command(runs.runs)
    cli.add_command(cost.cost)
    cli.add_command(render.render)
    cli.add_command(entrypoint.entrypoint)
    cli.add_command(config.config)
    cli.add_command(sandbox.sandbox)


_register()


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="redmica", obj=Application())

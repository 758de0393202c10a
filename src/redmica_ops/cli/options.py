"""Global options, accepted both before and after the sub-command (like the AWS CLI).

`redmica --output json tenant list` and `redmica tenant list --output json` mean the same. On
sub-commands they are hidden from `--help` to keep it short; `redmica --help` lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from redmica_ops.cells.config import cell_map
from redmica_ops.cli.app import Application
from redmica_ops.errors import Declined, UsageError

F = TypeVar("F", bound=Callable[..., Any])


def _app(ctx: click.Context) -> Application:
    app = ctx.find_object(Application)
    if app is None:  # pragma: no cover - main() always provides one
        app = ctx.ensure_object(Application)
    return app


def _store_setting(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            _app(ctx).overrides[name] = value

    return callback


def setting_option(flag: str, name: str, **kwargs: Any) -> Callable[[F], F]:
    """A command's own option that sets a setting, as the global options do."""
    option: Callable[[F], F] = click.option(
        flag, expose_value=False, callback=_store_setting(name), **kwargs
    )
    return option


def _store_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _app(ctx).config_path = value


def _store_output(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _app(ctx).output_format = value


def _store_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _app(ctx).debug = True


SETTING_OPTIONS: list[tuple[str, str, str]] = [
    ("--bucket", "bucket", "S3 config bucket [env: REDMICA_BUCKET, CONFIG_BUCKET_NAME]"),
    ("--prefix", "prefix", "key prefix of tenant documents [default: tenants/]"),
    ("--kms-key-id", "kms_key_id", "KMS key id/ARN: every write uses SSE-KMS with it"),
    ("--domain", "domain", "service domain (vhost is <sub_domain>.<domain>)"),
    ("--db-host", "db_host", "default database host for tenants without db.host"),
    ("--profile", "profile", "AWS profile [env: AWS_PROFILE]"),
    ("--region", "region", "AWS region [env: AWS_REGION]"),
    ("--endpoint-url", "endpoint_url", "AWS endpoint URL [env: AWS_ENDPOINT_URL]"),
]


def global_options(hidden: bool, exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Add the global options; `exclude` drops flags the command uses for its own meaning."""

    def decorate(func: F) -> F:
        for flag, name, help_text in reversed(SETTING_OPTIONS):
            if flag in exclude:
                continue
            func = click.option(
                flag,
                help=help_text,
                expose_value=False,
                hidden=hidden,
                callback=_store_setting(name),
                metavar="TEXT",
            )(func)
        func = click.option(
            "--debug",
            is_flag=True,
            default=False,
            expose_value=False,
            hidden=hidden,
            callback=_store_debug,
            help="show tracebacks for errors",
        )(func)
        func = click.option(
            "--output",
            "-O",
            type=click.Choice(["text", "json"]),
            default=None,
            expose_value=False,
            hidden=hidden,
            callback=_store_output,
            help="text for people (default) or json for scripts",
        )(func)
        func = click.option(
            "--config",
            type=click.Path(dir_okay=False),
            default=None,
            expose_value=False,
            hidden=hidden,
            callback=_store_config,
            help="settings file [env: REDMICA_CONFIG; default: ./redmica.toml]",
        )(func)
        return func

    return decorate


pass_app = click.make_pass_decorator(Application)


def command(group: click.Group, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """A sub-command that also accepts the global options (hidden in its help)."""

    def decorate(func: F) -> F:
        epilog = kwargs.pop("epilog", None)
        exclude = kwargs.pop("exclude_globals", ())
        note = (
            "Global options (--output, --bucket, --profile, ...) work here too: "
            "see `redmica --help`."
        )
        kwargs["epilog"] = f"{epilog}\n\n{note}" if epilog else note
        with_globals = global_options(hidden=True, exclude=exclude)(func)
        registered: F = group.command(name, **kwargs)(with_globals)  # type: ignore[assignment]
        return registered

    return decorate


# -- confirmation: the one rule for every command that changes production -------------------------
CONFIRMATION_RULE = (
    "Commands that change production (deploy, release, rollback, reload, tenant "
    "remove/restore, tenant sync --apply) ask first on a terminal; --yes skips the question; "
    "without a terminal they refuse (exit 2) unless --yes is given; answering no does nothing "
    "(exit 6)."
)


def yes_option(func: F) -> F:
    """The `--yes/-y` flag of a command that asks before it changes production."""
    decorated: F = click.option(
        "--yes",
        "-y",
        is_flag=True,
        help="do not ask for confirmation (needed without a terminal)",
    )(func)
    return decorated


def confirm(app: Application, action: str, yes: bool) -> None:
    """Apply CONFIRMATION_RULE before `action` (e.g. "deploy redmica:2 to service app").

    Returns when the operator agreed (or gave --yes); raises UsageError when nobody can be
    asked, and Declined when the answer is no. Called before anything is written.
    """

    if yes:
        return
    if not app.interactive():
        raise UsageError(
            f"refusing to {action} without confirmation (no terminal to ask on)",
            "add --yes to run it from a script",
        )
    if not app.ask(f"{action[:1].upper()}{action[1:]}?"):
        raise Declined(f"{action} was not confirmed", "answer y to go ahead, or give --yes")


# -- provisioning: the same options on `tenant provision` and `tenant add --provision` ----------
def executor_option(func: F) -> F:
    """`--executor`: where a lifecycle step's SQL (and migrations) run."""
    decorated: F = click.option(
        "--executor",
        type=click.Choice(["ecs", "local"]),
        default="ecs",
        show_default=True,
        help="where the SQL runs: an ECS admin task (started by the admin broker, setting "
        "admin_broker), or this machine's psql/pg_dump",
    )(func)
    return decorated


def provisioning_options(func: F) -> F:
    """--executor, --admin-login and --admin-password-stdin, for every command that provisions."""
    for option in reversed(
        (
            executor_option,
            click.option(
                "--admin-login", default="admin", show_default=True, help="first administrator"
            ),
            click.option(
                "--admin-password-stdin",
                is_flag=True,
                help="read the administrator's password from stdin (default: generate, show once)",
            ),
        )
    ):
        func = option(func)
    return func


# -- cells: which cells a deploying verb changes, and in what order -----------------------------
def cell_options(waves: bool) -> Callable[[F], F]:
    """--cell (repeatable); with waves also --canary-cell and --max-parallel-cells."""

    def decorate(func: F) -> F:
        if waves:
            func = click.option(
                "--max-parallel-cells",
                type=click.IntRange(1),
                metavar="N",
                help="cells changed at once after the canary [default: setting, 1]",
            )(func)
            func = click.option(
                "--canary-cell",
                metavar="CELL",
                help="cell changed first, alone [default: setting canary_cell, else the first]",
            )(func)
        func = click.option(
            "--cell",
            "cells",
            multiple=True,
            metavar="CELL",
            shell_complete=complete_cells,
            help="only this cell (repeat for several) [default: every cell]",
        )(func)
        return func

    return decorate


def wave_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--cell, --canary-cell and --max-parallel-cells, handed to the command as one
    `cells.waves.WaveOptions` (its `waves` argument)."""

    @functools.wraps(func)
    def command(
        *args: Any,
        cells: tuple[str, ...],
        canary_cell: str | None,
        max_parallel_cells: int | None,
        **kwargs: Any,
    ) -> Any:
        # Imported when the command runs: `redmica --help` loads no library module.
        from redmica_ops.cells.waves import WaveOptions

        return func(*args, waves=WaveOptions(cells, canary_cell, max_parallel_cells), **kwargs)

    return cell_options(waves=True)(command)


def probe_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--max-probe-failures, --probe-path, --probe-base-url and --no-probe, handed to the
    command as one `probe.gate.WaveProbe` (its `probe` argument)."""

    @functools.wraps(func)
    def command(
        *args: Any,
        max_probe_failures: int | None,
        probe_path: str,
        probe_base_url: str | None,
        no_probe: bool,
        **kwargs: Any,
    ) -> Any:
        from redmica_ops.probe.gate import WaveProbe  # when the command runs, as above

        probe = WaveProbe(max_probe_failures, probe_path, probe_base_url, off=no_probe)
        return func(*args, probe=probe, **kwargs)

    for option in reversed(
        [
            click.option(
                "--max-probe-failures",
                type=int,
                metavar="N",
                help="probe each wave's sites once deployed; more than N failed sites stop "
                "the later waves and roll back [default: setting max_probe_failures, else no "
                "probe]",
            ),
            click.option(
                "--probe-path",
                default="/login",
                show_default=True,
                metavar="PATH",
                help="the path the probe requests on every site",
            ),
            click.option(
                "--probe-base-url",
                metavar="URL",
                help="send the probe's requests here [default: each cell's load balancer]",
            ),
            click.option("--no-probe", is_flag=True, help="no probe, whatever the setting says"),
        ]
    ):
        command = option(command)
    return command


WAIT_OPTIONS = [
    click.option(
        "--timeout",
        type=click.FloatRange(min=1),
        help="seconds to wait [default: setting deploy_timeout, 1800]",
    ),
    click.option("--no-wait", is_flag=True, help="start the deployment and return"),
]


def wait_options(func: F) -> F:
    """--timeout and --no-wait of a command that follows a rollout."""
    for option in reversed(WAIT_OPTIONS):
        func = option(func)
    return func


# -- shell completion of values: tenant ids, run ids, cells ---------------------------------------
# A completion runs on every Tab: it reads what it can and, when it cannot (no bucket set, no
# credentials, no network), offers nothing rather than printing a traceback into the shell.
def _completions(values: Callable[[Application], list[str]]) -> Callable[..., list[str]]:
    def complete(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
        try:
            found = values(_app(ctx))
        except Exception:  # whatever failed, a completion offers nothing
            return []
        return [value for value in found if value.startswith(incomplete)]

    return complete


def _tenant_ids(app: Application) -> list[str]:
    store = app.workspace().registry().store
    return sorted(t for key, _ in store.list_keys() if (t := store.tenant_id_for(key)))


def _run_ids(app: Application) -> list[str]:
    return app.workspace().run_store().list_ids()


def _cell_names(app: Application) -> list[str]:
    return cell_map(app.settings).names()


complete_tenants = _completions(_tenant_ids)
complete_runs = _completions(_run_ids)
complete_cells = _completions(_cell_names)

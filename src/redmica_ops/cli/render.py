"""`redmica render ...`: Apache vhosts and Redmine config files from the tenants."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.result import Done
from redmica_ops.errors import ValidationFailed

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redmica_ops.cli.output import Output
    from redmica_ops.errors import Problem
    from redmica_ops.tenants.model import Entry


@click.group()
def render() -> None:
    """Render Apache virtual hosts and Redmine config files.

    \b
    Examples:
      redmica render vhosts -o /etc/apache2/sites-enabled/redmica-tenants.conf --check
      redmica render redmine-config -o /usr/src/redmine/config
    """


@command(render, "vhosts")
@click.option(
    "--from-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="read tenant files from this directory instead of the config bucket",
)
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="file to write (atomically, mode 0600: it holds passwords)",
)
@click.option(
    "--check", is_flag=True, help="test the result with `apache2 -t` before installing it"
)
@click.option(
    "--redacted", is_flag=True, help="write passwords as ******** (for review; may go to stdout)"
)
@click.option(
    "--strict",
    is_flag=True,
    help="refuse to render if any tenant cannot be served (default: skip it loudly)",
)
@click.option("--app-root", help="Redmine directory (setting app_root)")
@click.option("--listen-port", type=int, help="port of the virtual hosts (setting listen_port)")
@click.option("--mkdir", is_flag=True, help="create the directory of -o when it does not exist")
@pass_app
def vhosts(
    app: Application,
    from_dir: Path | None,
    out: Path | None,
    check: bool,
    redacted: bool,
    strict: bool,
    app_root: str | None,
    listen_port: int | None,
    mkdir: bool,
) -> Done:
    """Write one Apache config with a virtual host per tenant.

    The first virtual host is a catch-all (unknown Host: 404, no process spawned). Each tenant
    gets ServerName <sub_domain>.<domain>, the shared app root, its own PassengerAppGroupName,
    SetEnv for its database and S3 folder, and `Require ip` when limit_ips is set. Output is
    deterministic. Without --redacted the file holds passwords, so it is never printed: give
    -o FILE, in a directory that exists (or add --mkdir). With --check the file is only
    installed if Apache accepts it. A tenant that cannot be served (invalid document, clash,
    a db.password_secret that cannot be read) is left out and named, unless --strict (exit
    2, nothing written); --redacted reads the secrets too, so it leaves out the same tenants.

    \b
    Examples:
      redmica render vhosts -o /etc/apache2/sites-enabled/redmica-tenants.conf --check
      redmica render vhosts --from-dir tenants/ --domain redmine.example.com -o site.conf
      redmica render vhosts --redacted | less
    """
    from redmica_ops.container.vhosts import (
        VhostSettings,
        render_vhosts,
        require_directory,
        write_private,
    )

    if app_root is not None:
        app.overrides["app_root"] = app_root
    if listen_port is not None:
        app.overrides["listen_port"] = listen_port
    if out is None and not redacted:
        raise click.UsageError(
            "-o FILE is required: the config holds passwords and is never "
            "printed (use --redacted to review it on stdout)"
        )
    if out is not None:
        require_directory(out.parent, f"-o {out}", mkdir)
    settings = VhostSettings.from_settings(app.settings)
    entries, excluded = _tenants(app, from_dir)
    # Tenants whose password is in a secret: read with this operator's credentials, with
    # --redacted too (values unused), so that both leave out the same tenants.
    passwords, failed = app.workspace().passwords().resolve_entries(entries)
    unreadable = [
        (entry.tenant_id, "secret", failed[entry.tenant_id])
        for entry in entries
        if entry.tenant_id in failed
    ]
    entries = [e for e in entries if e.tenant_id not in failed]
    left_out = sorted([*excluded, *unreadable], key=lambda item: item[0])
    if left_out and strict:
        raise ValidationFailed(
            [p for _, _, problems in left_out for p in problems],
            hint="fix them with `redmica tenant update` / `tenant edit` (or the secret); "
            "without --strict they are skipped",
            message=f"{len(left_out)} tenant(s) cannot be served (--strict)",
            before_writing=True,
        )
    # One bad tenant never stops the others: it is named and left out, as serve does.
    for name, label, problems in left_out:
        app.output.info(f"error: tenant {name} is NOT rendered ({label}):")
        for problem in problems:
            app.output.info(f"  {problem}")
    master = None
    if not redacted:
        from redmica_ops.container.keys import master_secret

        master = master_secret(app.env)
    # Part of each key: the incarnations in the bucket (one listing), as serve reads them.
    incarnations = (
        app.workspace().registry().incarnations.all() if master and from_dir is None else None
    )
    text = render_vhosts(
        entries,
        settings,
        redact=redacted,
        master_secret=master,
        passwords=passwords,
        incarnations=incarnations,
    )
    if out is None:
        # --redacted to stdout: the config itself is the output, in both formats.
        return Done(text, text=lambda o: o.text(text))
    if check:
        from redmica_ops.container.apache import config_checker

        write_private(out, text, check=config_checker(app.settings.apache_bin))
    else:
        write_private(out, text)
    message = f"wrote {len(entries)} tenant vhost(s) to {out}" + (
        " (Apache config test passed)" if check else ""
    )
    return Done(
        {
            "file": str(out),
            "tenants": len(entries),
            "checked": check,
            "left_out": [name for name, _, _ in left_out],
        },
        text=lambda o: o.success(message),
    )


def _tenants(
    app: Application, from_dir: Path | None
) -> tuple[list[Entry], list[tuple[str, str, Sequence[Problem]]]]:
    """The servable tenants, and (name, reason, problems) of those left out."""
    if from_dir is not None:
        from redmica_ops.tenants.files import load_paths

        files = load_paths([from_dir], app.settings.tenant_secrets_prefix)
        if files.problems:
            raise ValidationFailed(files.problems, before_writing=True)
        return files.entries, []
    from redmica_ops.tenants.selection import Use, select

    listing = app.workspace().tenants()
    selection = select(listing, Use.SERVE, app.workspace().registry().claims.owner_of)
    excluded = [(e.name, e.reason.label, e.problems) for e in selection.excluded]
    return selection.entries(), excluded


@command(render, "check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_app
def check_file(app: Application, file: Path) -> Done:
    """Test an Apache site file with `apache2 -t` inside a minimal wrapper config.

    Fails (exit 1) with Apache's own message when Apache rejects the file, and says so
    (exit 2) when Apache + Passenger are not installed: never a silent pass.

    \b
    Examples:
      redmica render check /etc/apache2/sites-enabled/redmica-tenants.conf
    """
    from redmica_ops.container.apache import config_test, find_apache

    config_test(file, find_apache(app.settings.apache_bin))
    return Done(
        {"file": str(file), "ok": True}, lambda o: o.success(f"{file}: Apache config test passed")
    )


@command(render, "redmine-config")
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="directory to write database.yml and s3.yml into (Redmine's config/)",
)
@click.option("--mkdir", is_flag=True, help="create the directory when it does not exist")
@pass_app
def redmine_config(app: Application, out: Path, mkdir: bool) -> Done:
    """Write Redmine's database.yml, configuration.yml and s3.yml (for redmica_s3).

    They read everything from the tenant's environment through ERB (RAILS_DB,
    RAILS_DB_USERNAME, RAILS_DB_PASSWORD, RAILS_DB_HOST, RAILS_DB_PORT, S3_BUCKET_NAME,
    S3_FOLDER_NAME), so one Redmine directory serves every tenant; configuration.yml gives each
    tenant its own attachments directory under REDMICA_ATTACHMENTS_ROOT. They hold no secrets
    and no access keys: the ECS task role supplies AWS credentials.

    \b
    Examples:
      redmica render redmine-config -o /usr/src/redmine/config
    """
    from redmica_ops.container.vhosts import (
        REDMINE_CONFIG_FILES,
        render_redmine_config,
        require_directory,
        write_private,
    )

    require_directory(out, f"-o {out}", mkdir)
    written: list[str] = []
    for name in REDMINE_CONFIG_FILES:
        write_private(out / name, render_redmine_config(name), mode=0o644)
        written.append(str(out / name))

    def text(o: Output) -> None:
        for path in written:
            o.success(f"wrote {path}")

    return Done({"files": written}, text)

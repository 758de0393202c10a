"""`redmica render ...`: Apache vhosts and Redmine config files from the tenants."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app, setting_option
from redmica_ops.cli.result import Done, ReportResult
from redmica_ops.container.apache import config_test, find_apache
from redmica_ops.container.plan import VhostsRequest, install, left_out_lines, plan_vhosts
from redmica_ops.container.vhosts import (
    REDMINE_CONFIG_FILES,
    render_redmine_config,
    require_directory,
    write_private,
)

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output


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
@setting_option("--app-root", "app_root", help="Redmine directory (setting app_root)")
@setting_option(
    "--listen-port", "listen_port", type=int, help="port of the virtual hosts (setting listen_port)"
)
@click.option("--mkdir", is_flag=True, help="create the directory of -o when it does not exist")
@pass_app
def vhosts(
    app: Application,
    from_dir: Path | None,
    out: Path | None,
    check: bool,
    redacted: bool,
    strict: bool,
    mkdir: bool,
) -> Done | ReportResult:
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
    if out is None and not redacted:
        raise click.UsageError(
            "-o FILE is required: the config holds passwords and is never "
            "printed (use --redacted to review it on stdout)"
        )
    if out is not None:
        require_directory(out.parent, f"-o {out}", mkdir)
    request = VhostsRequest(strict, redacted, from_dir, environ=app.env)
    plan = plan_vhosts(request, app.workspace())
    # One bad tenant never stops the others: it is named and left out, as serve does.
    for line in left_out_lines(plan, "rendered"):
        app.output.info(line)
    if out is None:
        # --redacted to stdout: the config itself is the output, in both formats.
        return Done(plan.text, text=lambda o: o.text(plan.text))
    install(plan, out, check, app.settings.apache_bin)
    return ReportResult(plan.written(out, check))


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
    require_directory(out, f"-o {out}", mkdir)
    written: list[str] = []
    for name in REDMINE_CONFIG_FILES:
        write_private(out / name, render_redmine_config(name), mode=0o644)
        written.append(str(out / name))

    def text(o: Output) -> None:
        for path in written:
            o.success(f"wrote {path}")

    return Done({"files": written}, text)

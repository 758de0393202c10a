"""`redmica doctor`: check the setup."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.cli.result import Done
from redmica_ops.container.apache import find_apache
from redmica_ops.doctor import Doctor, failed

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output


@click.command()
@global_options(hidden=True)
@pass_app
def doctor(app: Application) -> Done:
    """Check the setup: settings, credentials, bucket, tenants, ECS, Apache.

    Each check is ok, warn or fail, with a hint. Exit code 0 when nothing fails, 1 otherwise.

    \b
    Examples:
      redmica doctor
      redmica doctor --output json | jq '.[] | select(.status != "ok")'
    """

    settings = app.settings
    checks = Doctor(app.workspace(), apache_finder=lambda: find_apache(settings.apache_bin)).run()

    def text(out: Output) -> None:
        out.table(["check", "status", "detail"], [[c.name, c.status, c.detail] for c in checks])
        for check in checks:
            if check.hint and check.status != "ok":
                out.info(f"{check.status}: {check.name}: {check.hint}")

    return Done([c.as_dict() for c in checks], text, code=1 if failed(checks) else 0)

"""`redmica tenant list | show | history`: read-only views, passwords always redacted."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.result import Done
from redmica_ops.cli.tenant import tenant

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output


@command(tenant, "list")
@pass_app
def list_(app: Application) -> Done:
    """List every tenant in the config bucket (all pages, fetched in parallel).

    Documents that do not validate are listed as warnings, with their problems.

    \b
    Examples:
      redmica tenant list
      redmica tenant list --output json | jq -r '.[] | select(.valid) | .tenant'
    """
    from redmica_ops.tenants.views import invalid_view, tenant_row, tenant_view

    settings = app.settings
    listing = app.store().load_all()
    location = f"s3://{app.bucket()}/{settings.prefix}"

    def text(out: Output) -> None:
        rows = [tenant_row(s, settings.domain, settings.db_host) for s in listing.tenants]
        out.table(
            ["tenant", "status", "site", "database", "attachments", "allowed ips"],
            rows,
            drop_first=["attachments", "database"],
        )
        out.info(f"{len(listing.tenants)} tenant(s) in {location}")

    warnings: list[str] = []
    for doc in listing.invalid:
        warnings.append(f"warning: {doc.key} is invalid and is not served:")
        warnings.extend(f"  {problem}" for problem in doc.problems)
    return Done(
        [tenant_view(s, settings.domain, settings.db_host) for s in listing.tenants]
        + [invalid_view(d) for d in listing.invalid],
        text,
        messages=warnings,
    )


@command(tenant, "show")
@click.argument("tenant_id")
@pass_app
def show(app: Application, tenant_id: str) -> Done:
    """Show one tenant's document (the password as ********).

    The output can be edited and fed back to `tenant update`: a password left as ********
    keeps the stored one.

    \b
    Examples:
      redmica tenant show acme
      redmica tenant show acme > acme.yaml
      vi acme.yaml && redmica tenant update acme -f acme.yaml
    """
    from redmica_ops.tenants.views import tenant_view

    settings = app.settings
    stored = app.store().get(tenant_id)
    when = stored.last_modified.isoformat() if stored.last_modified else "?"
    where = f"# s3://{app.bucket()}/{stored.key} version {stored.version_id} ({when})"

    def text(out: Output) -> None:
        out.text(stored.tenant.to_yaml(redact=True))
        out.info(where)

    return Done(tenant_view(stored, settings.domain, settings.db_host), text)


@command(tenant, "history")
@click.argument("tenant_id")
@pass_app
def history(app: Application, tenant_id: str) -> Done:
    """List the stored versions of a tenant's document, newest first.

    Needs a versioned bucket. Bring one back with `redmica tenant restore ID VERSION_ID`.

    \b
    Examples:
      redmica tenant history acme
      redmica tenant history acme --output json | jq -r '.[1].version_id'
    """
    from redmica_ops.errors import NotFound
    from redmica_ops.tenants.views import version_view

    store = app.store()
    versions = store.history(tenant_id)
    if not versions:
        raise NotFound(
            f"tenant {tenant_id!r} has no stored versions",
            "check the id with `redmica tenant list`",
        )
    rows = [
        [
            v.version_id,
            v.last_modified.isoformat(),
            "deleted" if v.is_delete_marker else "",
            "latest" if v.is_latest else "",
            "" if v.size is None else str(v.size),
        ]
        for v in versions
    ]

    def text(out: Output) -> None:
        out.table(["version", "modified", "deleted", "latest", "bytes"], rows)
        if not store.versioning_enabled():
            out.warn(f"versioning is not enabled on s3://{store.bucket}: old versions are not kept")

    return Done([version_view(v) for v in versions], text)

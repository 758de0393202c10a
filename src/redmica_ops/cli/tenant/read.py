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

    Each tenant has a status: ok, clash (it shares a sub_domain, db.name, db role, secret or s3
    folder with a tenant that keeps it, and is not served) or invalid (the document cannot be
    read or does not validate; shown with its problems). The exit code is 1 when any tenant is
    not ok. Apart from that, its lifecycle: active, provisioning or suspended
    (docs/tenant-lifecycle.md; only active tenants get their application, the others a
    maintenance page).

    \b
    Examples:
      redmica tenant list
      redmica tenant list --output json | jq -r '.[] | select(.status != "ok") | .key'
      redmica tenant list --output json | jq -r '.[] | select(.lifecycle == "suspended") | .tenant'
    """
    from redmica_ops.tenants.selection import Reason, classify
    from redmica_ops.tenants.views import invalid_view, tenant_row, tenant_view

    settings = app.settings
    registry = app.workspace().registry()
    listing = registry.store.load_all()
    clashes = {
        e.tenant_id: list(e.problems)
        for e in classify(listing, registry.claims.owner_of)
        if e.reason is Reason.CLASH and e.tenant_id
    }
    location = f"s3://{app.workspace().bucket()}/{settings.prefix}"

    def text(out: Output) -> None:
        rows = [
            [
                *tenant_row(s, settings.domain, settings.db_host),
                "CLASH" if s.tenant_id in clashes else "ok",
            ]
            for s in listing.tenants
        ] + [[d.tenant_id or d.key, "", "", "", "", "", "INVALID"] for d in listing.invalid]
        out.table(
            ["tenant", "site", "database", "attachments", "allowed ips", "lifecycle", "status"],
            rows,
            drop_first=["attachments", "database"],
        )
        out.info(
            f"{len(listing.tenants)} tenant(s) in {location}"
            + (f", {len(clashes)} clashing" if clashes else "")
            + (f", {len(listing.invalid)} invalid" if listing.invalid else "")
        )

    warnings: list[str] = []
    for tenant_id, problems in sorted(clashes.items()):
        warnings.append(f"warning: tenant {tenant_id} clashes and is not served:")
        warnings.extend(f"  {problem}" for problem in problems)
    for doc in listing.invalid:
        warnings.append(f"warning: {doc.key} is invalid and is not served:")
        warnings.extend(f"  {problem}" for problem in doc.problems)
    if clashes or listing.invalid:
        warnings.append(
            "hint: see one with `redmica tenant show ID`, repair it with "
            "`redmica tenant update ID -f FILE` or `redmica tenant edit ID`"
        )
    return Done(
        [
            tenant_view(s, settings.domain, settings.db_host, clashes.get(s.tenant_id, ()))
            for s in listing.tenants
        ]
        + [invalid_view(d) for d in listing.invalid],
        text,
        messages=warnings,
        code=1 if clashes or listing.invalid else 0,
    )


@command(tenant, "show")
@click.argument("tenant_id")
@pass_app
def show(app: Application, tenant_id: str) -> Done:
    """Show one tenant's document (the password as ********).

    The output can be edited and fed back to `tenant update`: a password left as ********
    keeps the stored one, and the first line names the version shown, so the update is refused
    (exit 4) if the tenant changed in the meantime; keep that line. A document that does not
    validate is shown as stored (every `password:` value redacted) with its problems, exit code
    2: repair it with `tenant update` or `tenant edit`.

    \b
    Examples:
      redmica tenant show acme
      redmica tenant show acme > acme.yaml
      vi acme.yaml && redmica tenant update acme -f acme.yaml
    """
    from redmica_ops.errors import ExitCode, ValidationFailed
    from redmica_ops.tenants.basis import header
    from redmica_ops.tenants.store import StoredTenant
    from redmica_ops.tenants.views import redacted_raw, tenant_view

    settings = app.settings
    document = app.workspace().store().get_document(tenant_id)
    # On stdout, above the document: `tenant update -f` reads it back and writes only while
    # the tenant is still at this version (a colleague's change is never lost).
    where = header(document, f"s3://{app.workspace().bucket()}/{document.key}")
    if document.tenant is None:
        shown = redacted_raw(document.raw)
        error = ValidationFailed(
            document.problems,
            message=f"tenant {tenant_id}'s document is invalid and is not served",
            hint=f"replace it: `redmica tenant update {tenant_id} -f FILE` or "
            f"`redmica tenant edit {tenant_id}`",
        )

        def broken(out: Output) -> None:
            out.text(where + shown)
            out.error(error)

        return Done(
            {
                "tenant": tenant_id,
                "valid": False,
                "status": "invalid",
                "key": document.key,
                "etag": document.etag,
                "version_id": document.version_id,
                "text": shown,
                "problems": [p.as_dict() for p in document.problems],
            },
            broken,
            code=int(ExitCode.USAGE),
        )
    stored = StoredTenant(
        tenant_id,
        document.key,
        document.tenant,
        document.etag,
        document.version_id,
        document.last_modified,
    )
    yaml_text = document.tenant.to_yaml(redact=True)

    def text(out: Output) -> None:
        out.text(where + yaml_text)

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

    store = app.workspace().store()
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

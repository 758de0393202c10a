"""`redmica tenant update | edit | remove | restore`: changes that never lose a concurrent one."""

from __future__ import annotations

from pathlib import Path

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import (
    command,
    complete_tenants,
    confirm,
    pass_app,
    yes_option,
)
from redmica_ops.cli.result import ReportResult
from redmica_ops.cli.tenant import tenant
from redmica_ops.cli.tenant.inputs import stdin_bytes
from redmica_ops.errors import UsageError
from redmica_ops.tenants import change
from redmica_ops.tenants.inputs import read_document
from redmica_ops.tenants.remove import RemoveRequest
from redmica_ops.tenants.remove import remove as run_remove


@command(tenant, "update")
@click.argument("tenant_id", shell_complete=complete_tenants)
@click.option(
    "-f",
    "--file",
    "file",
    required=True,
    metavar="FILE",
    help="the complete new document ('-' = stdin)",
)
@click.option(
    "--if-match",
    "if_match",
    metavar="VERSION",
    help="write only if the tenant is at this version id (or ETag); overrides FILE's own",
)
@pass_app
def update(app: Application, tenant_id: str, file: str, if_match: str | None) -> ReportResult:
    """Replace a tenant's document with FILE, unless it changed since FILE was read.

    `tenant show` writes the version it read on the document's first line; `update` writes
    only while the tenant is still at that version (or at the one --if-match names): a
    colleague's change made in the meantime is never lost; you get exit code 4 with both
    versions named, and nothing is written. A FILE that names no version (hand-written, from a
    tenants repository) still replaces the current document, conditional on the version read
    just before the write, with a warning naming the version it replaced. A password given as
    ******** keeps the stored one. This is also how a document that does not validate (see
    `tenant list`) is repaired: it is replaced, conditional on the broken version.

    \b
    Examples:
      redmica tenant show acme > acme.yaml && vi acme.yaml
      redmica tenant update acme -f acme.yaml
      redmica tenant show acme | sed 's/sub_domain: acme/sub_domain: acme-corp/' \\
          | redmica tenant update acme -f -
      redmica tenant update acme -f tenants/acme.yaml --if-match 3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY
    """
    raw, source = read_document(file, stdin_bytes())
    return ReportResult(
        change.update(change.UpdateRequest(tenant_id, raw, source, if_match), app.workspace())
    )


@command(tenant, "edit")
@click.argument("tenant_id", shell_complete=complete_tenants)
@click.option(
    "--from",
    "resume",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="start from this file (an edit kept after a failure) instead of the stored document",
)
@pass_app
def edit(app: Application, tenant_id: str, resume: Path | None) -> ReportResult:
    """Edit a tenant's document in $EDITOR, like `kubectl edit`.

    The edited document is validated; on a problem the editor opens again with the problems
    at the top. The save is conditional on the version you started from, so someone else's
    change in the meantime is never overwritten (exit code 4). Your text is never lost: when
    the save fails (a conflict, or you give up on a problem), it is kept in a private file whose
    path is printed; continue with `--from PATH`. A --from file that `tenant show` wrote (its
    first line names a version) is refused before the editor opens if the tenant changed since
    (exit 4). A document that does not validate opens as
    stored (password redacted) with its problems, so it can be repaired here.

    \b
    Examples:
      redmica tenant edit acme
      EDITOR=nano redmica tenant edit acme
      redmica tenant edit acme --from /tmp/redmica-edit-acme-x1y2.yaml
    """
    return ReportResult(
        change.edit(change.EditRequest(tenant_id, resume), app.workspace(), app.edit_text)
    )


@command(tenant, "remove")
@click.argument("tenant_id", shell_complete=complete_tenants)
@yes_option
@click.option(
    "--purge",
    is_flag=True,
    help="also final backup, then drop its database and roles (docs/tenant-lifecycle.md)",
)
@click.option(
    "--delete-attachments", is_flag=True, help="with --purge: delete its attachment objects"
)
@click.option(
    "--archive-attachments",
    is_flag=True,
    help="with --purge: copy them to attachments_archive_prefix, verify, then delete them",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="with --purge: show the plan; writes and launches nothing (ecs: database not inspected)",
)
@click.option(
    "--executor",
    type=click.Choice(["ecs", "local"]),
    default="ecs",
    show_default=True,
    help="with --purge: where the backup and the SQL run",
)
@pass_app
def remove(
    app: Application,
    tenant_id: str,
    yes: bool,
    purge: bool,
    delete_attachments: bool,
    archive_attachments: bool,
    dry_run: bool,
    executor: str,
) -> ReportResult:
    """Remove a tenant's document from the config bucket (with --purge: its database too).

    Without --purge the tenant's site stops being served when the containers next restart;
    its database and attachments are NOT touched, and on a versioned bucket the document can
    be restored. With --purge: a final backup (which must succeed first), then its database
    and login roles are dropped, its attachments deleted if --delete-attachments (their count
    is shown first) or archived if --archive-attachments (copied to the archive prefix and
    checked before anything is dropped, deleted after), and the document removed with its
    uniqueness claims; each step is logged in a deprovision record.

    \b
    Examples:
      redmica tenant remove acme
      redmica tenant remove acme --yes
      redmica tenant remove acme --purge --dry-run
      redmica tenant remove acme --purge --delete-attachments --yes
      redmica tenant remove acme --purge --archive-attachments --yes
    """
    if (delete_attachments or archive_attachments or dry_run) and not purge:
        raise UsageError(
            "--delete-attachments, --archive-attachments and --dry-run go with --purge",
            "add --purge (e.g. `redmica tenant remove ID --purge --dry-run` to see the plan); "
            "without it, remove keeps the database and the attachments",
        )
    if delete_attachments and archive_attachments:
        raise UsageError(
            "choose one of --archive-attachments and --delete-attachments",
            "--archive-attachments deletes them too, after a verified copy",
        )
    if purge:
        from redmica_ops.cli.tenant.lifecycle import purge_tenant

        return purge_tenant(
            app, tenant_id, executor, delete_attachments, dry_run, yes, archive_attachments
        )
    confirm(app, f"remove tenant {tenant_id!r} from s3://{app.workspace().bucket()}", yes)
    return ReportResult(run_remove(RemoveRequest(tenant_id), app.workspace()).report())


@command(tenant, "restore")
@click.argument("tenant_id", shell_complete=complete_tenants)
@click.argument("version_id")
@click.option(
    "--if-match",
    "if_match",
    metavar="VERSION",
    help="restore only if the tenant is still at this version id (or ETag); else exit 4",
)
@yes_option
@pass_app
def restore(
    app: Application, tenant_id: str, version_id: str, if_match: str | None, yes: bool
) -> ReportResult:
    """Make an older version of a tenant's document the current one.

    The old version is validated again with today's rules and checked for clashes with the
    other tenants before it is written (as a new version; history is kept). With --if-match
    it is written only while the tenant is still at the version named (the one you decided
    on, from `tenant history`): a change made since is exit 4 with both versions named, and
    nothing is written. A delete marker's version holds no document: it is refused (exit 2)
    saying so. Asks first on a terminal (--yes for scripts).

    \b
    Examples:
      redmica tenant history acme
      redmica tenant restore acme 3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY
      redmica tenant restore acme 3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY --if-match 8aBxVq --yes
    """
    confirm(app, f"make version {version_id} of tenant {tenant_id!r} the current one", yes)
    return ReportResult(change.restore(tenant_id, version_id, app.workspace(), if_match))


@command(tenant, "rename-key")
@click.argument("old", metavar="KEY")
@click.argument("new_id", metavar="NEW_ID")
@click.option("--dry-run", is_flag=True, help="check and say what would happen; write nothing")
@yes_option
@pass_app
def rename_key(app: Application, old: str, new_id: str, dry_run: bool, yes: bool) -> ReportResult:
    """Move a document stored under a key that is not a tenant id to NEW_ID's key.

    For hand-written documents such as tenants/Cust-Upper.yaml or tenants/old.yml, which are
    listed as invalid and never served, and which `tenant update` cannot reach. KEY is the
    name under the prefix (Cust-Upper.yaml) or the whole key. The bytes move as stored, only
    while KEY is still the version the listing read (exit 4 on a change), never over an
    existing document, and never taking a value another tenant holds (exit 4, nothing
    written). A valid tenant's id is never renamed. Asks first on a terminal (--yes for
    scripts).

    \b
    Examples:
      redmica tenant list --status invalid
      redmica tenant rename-key Cust-Upper.yaml cust-upper --dry-run
      redmica tenant rename-key old.yml old --yes
    """
    from redmica_ops.tenants.rekey import RenameRequest, rename_key

    request = RenameRequest(old, new_id, dry_run)
    if not dry_run:
        confirm(app, f"rename {old} to {new_id}'s key in s3://{app.workspace().bucket()}", yes)
    return ReportResult(rename_key(request, app.workspace()).report())

"""`redmica tenant validate | sync | example`: tenant files on disk (a GitOps repository)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, confirm, pass_app, yes_option
from redmica_ops.cli.output import Output
from redmica_ops.cli.result import Done, JSONValue, ReportResult, render_body
from redmica_ops.cli.tenant import tenant
from redmica_ops.errors import ExitCode, UsageError, ValidationFailed

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output

# Bulk changes above this need --max-changes: a typo'd directory must not rewrite the fleet.
DEFAULT_MAX_CHANGES = 10


@command(tenant, "validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_app
def validate(app: Application, paths: tuple[Path, ...]) -> Done:
    """Check tenant files offline: each file's rules and uniqueness across all of them.

    A file's tenant id is its name without .yaml or .yml. Needs no AWS access (for CI of a
    repository of tenant files). Every problem is printed, one per line; exit code 2 if there
    are any.

    \b
    Examples:
      redmica tenant validate acme.yaml
      redmica tenant validate tenants/ --output json
    """
    from redmica_ops.tenants.files import load_paths, summary
    from redmica_ops.tenants.model import is_redacted

    result = load_paths(list(paths), app.settings.tenant_secrets_prefix)
    # The one ******** rule, said where it cannot yet be checked: offline, whether the tenant
    # exists is unknown, so these files can update a tenant but never add one.
    notes = [
        f"note: {e.source}: db.password: ******** keeps the stored password: this file can "
        "update an existing tenant, not add a new one"
        for e in result.entries
        if is_redacted(e.tenant)
    ]
    # The one host rule `tenant add` applies (tenants/selection.py), said without refusing:
    # the db_host setting may well be set where the file is added.
    if not app.settings.db_host:
        notes += [
            f"note: {e.tenant_id} names no db.host: `tenant add` needs the db_host setting "
            "or --db-host"
            for e in result.entries
            if not e.tenant.db.host
        ]
    document: dict[str, JSONValue] = {
        "valid": not result.problems,
        "files": result.files,
        "tenants": sorted(e.tenant_id for e in result.entries),
        "problems": [p.as_dict() for p in result.problems],
        "notes": notes,
    }
    if result.problems:
        error = ValidationFailed(
            result.problems, message=summary(result.problems, result.files, written=False)
        )

        def report(out: Output) -> None:
            out.error(error)

        # JSON: the document above on stdout; text: the one-line error and every problem.
        return Done(document, report, code=int(ExitCode.USAGE))
    message = f"{len(result.files)} file(s) valid, {len(result.entries)} tenant(s)"
    return Done(document, lambda out: out.success(message), messages=notes)


@command(tenant, "sync")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--apply", "apply_", is_flag=True, help="make the changes (default: only plan)")
@click.option(
    "--prune", is_flag=True, help="with --apply, remove tenants that have no file in DIRECTORY"
)
@click.option(
    "--max-changes",
    type=click.IntRange(0),
    default=DEFAULT_MAX_CHANGES,
    show_default=True,
    help="refuse a plan that adds, changes or removes more tenants than this",
)
@yes_option
@pass_app
def sync(
    app: Application, directory: Path, apply_: bool, prune: bool, max_changes: int, yes: bool
) -> ReportResult:
    """Make the bucket match a directory of tenant files (plan, then --apply).

    Without --apply nothing changes: the plan lists adds, field-level changes (secrets shown
    only as changed) and tenants that exist only in the bucket. Those are removed only with
    --prune. Every file is validated, and the resulting set checked for clashes, before the
    first write. --apply shows the plan and asks first on a terminal (--yes for scripts), and
    refuses a plan larger than --max-changes: a directory holding one file must never remove
    799 tenants. Every write and delete is conditional on what the plan read.

    \b
    Examples:
      redmica tenant sync tenants/
      redmica tenant sync tenants/ --apply
      redmica tenant sync tenants/ --apply --prune --yes --output json
      redmica tenant sync restored/ --apply --max-changes 1000 --yes   # disaster recovery
    """
    # Here, not at the top: `tenant validate` (this module) must not load the registry.
    from redmica_ops.tenants import sync as gitops

    ws = app.workspace()
    request = gitops.SyncRequest(directory, apply_, prune, max_changes)
    plan = gitops.plan(request, ws)
    shown = False
    done: list[str] = []
    if apply_ and not plan.empty:
        if not yes and app.interactive():
            # The plan is what the operator agrees to: shown before the question.
            render_body(Output(stdout=sys.stderr), gitops.plan_lines(plan))
            shown = True
        confirm(app, gitops.question(plan, ws), yes)
        done = gitops.apply(plan, ws)
    return ReportResult(gitops.report(request, plan, done, shown))


@command(tenant, "example")
@pass_app
def example(app: Application) -> Done:
    """Print an example tenant document to start from.

    \b
    Examples:
      redmica tenant example > acme.yaml
    """
    # Here, not at the top: `tenant validate` shares this module and never needs the
    # templates (27.6 M instructions).
    from redmica_ops.container.templates import template_text

    text = template_text("tenant.example.yaml")
    return Done(text, lambda out: out.text(text))


@command(tenant, "export")
@click.argument("destination", metavar="DEST")
@pass_app
def export(app: Application, destination: str) -> ReportResult:
    """Write every current tenant document, passwords included, for disaster recovery.

    DEST is a new (or empty) directory, a file ending in .tar or .tar.gz, or - for a tar
    stream on stdout (refused when stdout is a terminal); any other archive name (exp.zip) is
    refused. Everything is created mode 0600 (directories 0700): the documents hold database
    passwords. Every object under the prefix is written byte for byte as stored, under its
    name there, invalid ones included (a key that is not a tenant id, a .yml): the summary
    says how many of each. Load an export into an empty bucket with `redmica tenant import`.

    \b
    Examples:
      redmica tenant export /secure/backup/tenants-$(date +%F).tar.gz
      redmica tenant export /secure/backup/tenants/
      redmica tenant export - | gpg -e -r ops@example.com > tenants.tar.gpg
    """
    from redmica_ops.tenants import archive

    if destination == "-" and app.output_format == "json":
        raise UsageError("--output json cannot share stdout with the archive (DEST -)")
    request = archive.ExportRequest(destination, app.stdout_is_terminal())
    return ReportResult(archive.export(request, app.workspace(), sys.stdout.buffer).report())


@command(tenant, "import")
@click.argument("source", metavar="SOURCE", type=click.Path(path_type=Path, exists=True))
@yes_option
@pass_app
def import_(app: Application, source: Path, yes: bool) -> ReportResult:
    """Load a `tenant export` (directory, .tar or .tar.gz) into an empty bucket.

    Every document is validated and checked for clashes before the first write; each is
    created with its claims, conditionally (If-None-Match), with progress on stderr. A tenant
    already in the bucket with the same content is skipped, so an interrupted import (Ctrl-C
    at 235 of 800) is finished by running it again; any other document in the bucket refuses
    the import (exit 4): merge with `redmica tenant sync` instead. Asks first on a terminal
    (--yes without one).

    \b
    Examples:
      redmica tenant import /secure/backup/tenants-2026-11-28.tar.gz --yes
    """
    from redmica_ops.tenants import archive

    ws = app.workspace()
    plan = archive.plan_import(archive.ImportRequest(source), ws)
    if plan.create:
        where = f"s3://{ws.bucket()}"
        skipped = f" ({len(plan.present)} already there)" if plan.present else ""
        confirm(app, f"import {len(plan.create)} tenant(s) into {where}{skipped}", yes)
    return ReportResult(archive.apply_import(plan, ws).report())

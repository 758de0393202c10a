"""`redmica tenant validate | sync | example`: tenant files on disk (a GitOps repository)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, confirm, pass_app, yes_option
from redmica_ops.cli.result import Done, JSONValue
from redmica_ops.cli.tenant import tenant
from redmica_ops.errors import ExitCode, ValidationFailed

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output


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
    from redmica_ops.tenants.files import load_paths

    result = load_paths(list(paths))
    summary = f"{len(result.problems)} problem(s) in {len(result.files)} file(s)"
    document: dict[str, JSONValue] = {
        "valid": not result.problems,
        "files": result.files,
        "tenants": sorted(e.tenant_id for e in result.entries),
        "problems": [p.as_dict() for p in result.problems],
    }
    if result.problems:
        error = ValidationFailed(result.problems, message=summary)

        def report(out: Output) -> None:
            out.error(error)

        # JSON: the document above on stdout; text: the one-line error and every problem.
        return Done(document, report, code=int(ExitCode.USAGE))
    message = f"{len(result.files)} file(s) valid, {len(result.entries)} tenant(s)"
    return Done(document, lambda out: out.success(message))


@command(tenant, "sync")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--apply", "apply_", is_flag=True, help="make the changes (default: only plan)")
@click.option(
    "--prune", is_flag=True, help="with --apply, remove tenants that have no file in DIRECTORY"
)
@yes_option
@pass_app
def sync(app: Application, directory: Path, apply_: bool, prune: bool, yes: bool) -> Done:
    """Make the bucket match a directory of tenant files (plan, then --apply).

    Without --apply nothing changes: the plan lists adds, field-level changes (secrets shown
    only as changed) and tenants that exist only in the bucket. Those are removed only with
    --prune. Every file is validated, and the resulting set checked for clashes, before the
    first write. --apply shows the plan and asks first on a terminal (--yes for scripts).

    \b
    Examples:
      redmica tenant sync tenants/
      redmica tenant sync tenants/ --apply
      redmica tenant sync tenants/ --apply --prune --yes --output json
    """
    from redmica_ops.tenants.files import load_paths

    files = load_paths([directory])
    if files.problems:
        raise ValidationFailed(files.problems, before_writing=apply_)
    registry = app.registry()
    plan = registry.plan_sync(files.entries, prune=prune)
    out = app.output
    for warning in plan.warnings:
        out.warn(warning)

    def plan_text(out: Output) -> None:
        for entry in plan.adds:
            out.text(f"+ add     {entry.tenant_id}  ({entry.source})")
        for change in plan.changes:
            out.text(f"~ change  {change.entry.tenant_id}  ({change.entry.source})")
            for field_change in change.changes:
                out.text(f"      {field_change.describe()}")
            if not change.changes:
                out.text("      replaces an invalid document")
        for tenant_id in plan.removals:
            verb = "remove " if prune else "extra  "
            note = "" if prune else "  (only in the bucket; --prune removes it)"
            out.text(f"- {verb} {tenant_id}{note}")
        out.info(
            f"{len(plan.adds)} to add, {len(plan.changes)} to change, "
            f"{len(plan.removals) if prune else 0} to remove, {len(plan.unchanged)} unchanged"
        )

    shown = False
    done: list[str] = []
    if apply_ and not plan.empty:
        if not yes and app.interactive():
            from redmica_ops.cli.output import Output as Printer

            plan_text(Printer(stdout=sys.stderr))  # the plan is what the operator agrees to
            shown = True
        removals = len(plan.removals) if prune else 0
        confirm(
            app,
            f"apply {len(plan.adds)} add(s), {len(plan.changes)} change(s) and {removals} "
            f"removal(s) to s3://{registry.store.bucket}/{registry.store.prefix}",
            yes,
        )
        done = registry.apply_sync(plan)

    def text(out: Output) -> None:
        if not shown:
            plan_text(out)
        if plan.empty:
            out.info("the bucket already matches the directory")
        elif apply_:
            out.success(f"applied: {', '.join(done)}")
        else:
            out.info("plan only: nothing was changed; run again with --apply")

    return Done(
        {
            "applied": apply_,
            "prune": prune,
            "adds": [e.tenant_id for e in plan.adds],
            "changes": [
                {"tenant": c.entry.tenant_id, "changes": [f.as_dict() for f in c.changes]}
                for c in plan.changes
            ],
            "removals": plan.removals,
            "unchanged": plan.unchanged,
            "done": done,
        },
        text,
    )


@command(tenant, "example")
@pass_app
def example(app: Application) -> Done:
    """Print an example tenant document to start from.

    \b
    Examples:
      redmica tenant example > acme.yaml
    """
    from redmica_ops.container.templates import template_text

    text = template_text("tenant.example.yaml")
    return Done(text, lambda out: out.text(text))

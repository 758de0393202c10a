"""Changing a tenant's document without losing a concurrent change: `redmica tenant update |
edit | restore` minus the command line.

Every write is conditional on the version read (and, for a file from `tenant show`, on the
version it names); a warning the registry gives goes out as a message when it is known.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redmica_ops.errors import Conflict, JSONValue, Problem, ValidationFailed
from redmica_ops.report import Line, Report, info, success
from redmica_ops.tenants import basis
from redmica_ops.tenants.inputs import parse_document, validated
from redmica_ops.tenants.model import Tenant, parse_tenant_bytes
from redmica_ops.tenants.registry import Outcome
from redmica_ops.tenants.views import redacted_raw

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class UpdateRequest:
    tenant_id: str
    raw: bytes  # the complete new document, as read
    source: str  # its path, or <stdin>
    if_match: str | None = None  # overrides the version the document's first line names


def update(request: UpdateRequest, ws: Workspace) -> Report:
    """Replace the document, unless the tenant changed since the version it was based on."""
    tenant_id, raw, source = request.tenant_id, request.raw, request.source
    given = request.if_match
    based_on = basis.given(given) if given is not None else basis.from_document(raw, source)
    new = validated(tenant_id, parse_document(raw, source), source, flag_form=False)
    outcome = ws.registry().update(tenant_id, new, source, based_on=based_on)
    return change_report(tenant_id, outcome, "updated", ws)


def restore(tenant_id: str, version_id: str, ws: Workspace, if_match: str | None = None) -> Report:
    """Make an older version current again (validated and checked for clashes first); with
    `if_match` only while the tenant is still at that version (exit 4 otherwise)."""
    based_on = basis.given(if_match) if if_match is not None else None
    outcome = ws.registry().restore(tenant_id, version_id, based_on)
    return change_report(tenant_id, outcome, "restored", ws)


def change_report(tenant_id: str, outcome: Outcome, verb: str, ws: Workspace) -> Report:
    """The changes made (or none), the version written and the one it replaced; the
    registry's warnings go out now, before the result."""
    for warning in outcome.warnings:
        ws.message(f"warning: {warning}")
    result, previous = outcome.result, outcome.previous
    body: list[Line] = []
    if result is None:
        body.append(info(f"tenant {tenant_id}: no changes; nothing written"))
    else:
        body.extend(info(f"  {change.describe()}") for change in outcome.changes)
        versions = [f"version {result.version_id}"] if result.version_id else []
        if previous is not None and previous.version_id:
            versions.append(f"was {previous.version_id}")
        body.append(
            success(
                f"{verb} tenant {tenant_id}" + (f" ({', '.join(versions)})" if versions else "")
            )
        )
    document: dict[str, JSONValue] = {
        "tenant": tenant_id,
        verb: result is not None,
        "changes": [c.as_dict() for c in outcome.changes],
        "version_id": result.version_id if result else None,
        # The version this change replaced (or kept, when nothing changed), and the one
        # the new document was based on (FILE's first line or --if-match; null: neither).
        "previous_version_id": previous.version_id if previous else None,
        "based_on": outcome.based_on.as_dict() if outcome.based_on else None,
    }
    return Report(document, list(body))


# -- tenant edit ----------------------------------------------------------------------------------
EDIT_HEADER = """\
# Editing tenant {tenant_id} (s3://{bucket}/{key}, version {version}).
# Lines starting with '#' are ignored. Save and quit to apply; quit without saving to cancel.
# The password is shown as ********: leave it to keep the stored one, or type a new one.
"""

# The text to edit in, the edited text out (None: quit without saving).
Editor = Callable[[str], "str | None"]


@dataclass(frozen=True)
class EditRequest:
    tenant_id: str
    resume: Path | None = None  # --from: an edit kept after a failure, or a `tenant show` file


def strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def edit(request: EditRequest, ws: Workspace, editor: Editor) -> Report:
    """Edit until the document validates (its problems shown at the top each time), then save
    it conditionally on the version started from. The operator's text is never lost: a failed
    save keeps it in a private file, named in the error."""
    tenant_id, resume = request.tenant_id, request.resume
    registry = ws.registry()
    current = registry.store.get_document(tenant_id)
    resumed = resume.read_bytes() if resume else None
    based_on = basis.from_document(resumed, str(resume)) if resumed is not None else None
    if based_on is not None:
        # A file `tenant show` wrote: editing it must not undo what changed since (exit 4
        # before the editor opens, so no work is done in vain).
        basis.require(tenant_id, based_on, current, str(resume))
    header = EDIT_HEADER.format(
        tenant_id=tenant_id,
        bucket=registry.store.bucket,
        key=current.key,
        version=current.version_id,
    )
    if current.tenant is not None:
        original = current.tenant.to_yaml(redact=True)
        notes = ""
    else:
        original = redacted_raw(current.raw)
        notes = "# The stored document is invalid; fix these problems:\n" + "".join(
            f"# error: {p}\n" for p in current.problems
        )
    start = resumed.decode("utf-8", errors="replace") if resumed is not None else original
    text = header + notes + strip_comments(start).strip("\n") + "\n"
    unchanged = original if current.tenant is not None else None
    edited = _edit_until_valid(tenant_id, header, text, unchanged, editor)
    if edited is None:
        return Report(
            {"tenant": tenant_id, "updated": False, "changes": [], "version_id": None},
            messages=["edit cancelled: no changes made"],
        )
    body, new = edited
    try:
        outcome = registry.update(tenant_id, new, "(edit)", expected=current, based_on=based_on)
    except Conflict as conflict:
        kept = keep_edit(tenant_id, body)
        raise Conflict(
            f"{conflict.message}; your edit is kept in {kept}",
            f"see what changed with `redmica tenant show {tenant_id}`, then apply your edit with "
            f"`redmica tenant update {tenant_id} -f {kept}` (******** keeps the password) or "
            f"`redmica tenant edit {tenant_id} --from {kept}`",
        ) from None
    return change_report(tenant_id, outcome, "updated", ws)


def _edit_until_valid(
    tenant_id: str, header: str, text: str, original: str | None, editor: Editor
) -> tuple[str, Tenant] | None:
    """(the edited text, its tenant) once it validates; None when the edit is cancelled (or
    leaves a valid document as it was)."""
    problems: list[Problem] = []
    while True:
        edited = editor(text)
        if edited is None or (
            original is not None
            and strip_comments(edited).strip() == strip_comments(original).strip()
        ):
            if problems:
                # Cancelled while the document still had problems: not a success.
                raise ValidationFailed(problems, hint="the edit was cancelled; nothing was written")
            return None
        body = strip_comments(edited)
        new, problems = parse_tenant_bytes(
            tenant_id, body.encode("utf-8"), f"(edit of {tenant_id})"
        )
        if new is not None:
            return body, new
        if strip_comments(edited) == strip_comments(text):
            kept = keep_edit(tenant_id, body)
            raise ValidationFailed(
                problems,
                hint=f"the edit was not saved; your edit is kept in {kept}: continue with "
                f"`redmica tenant edit {tenant_id} --from {kept}`",
                before_writing=True,
            )
        lines = "".join(f"# error: {p}\n" for p in problems)
        text = (
            header
            + "# The document has problems; fix them or quit without saving:\n"
            + lines
            + body
            + "\n"
        )


def _same(edited: str, original: str) -> bool:
    return strip_comments(edited).strip() == strip_comments(original).strip()


def keep_edit(tenant_id: str, body: str) -> str:
    """Save an edit that could not be applied, so the operator's work is never lost (0600)."""
    handle, path = tempfile.mkstemp(prefix=f"redmica-edit-{tenant_id}-", suffix=".yaml")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(body if body.endswith("\n") else body + "\n")
    return path

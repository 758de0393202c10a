"""Plain data views of tenants for output, and the reports of `tenant list | show | history`:
every view is redacted."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redmica_ops.cells.config import cell_map
from redmica_ops.errors import JSONObject, JSONValue, NotFound, Problem, ValidationFailed
from redmica_ops.report import Line, Report, Table, info, text, warn
from redmica_ops.tenants.basis import header
from redmica_ops.tenants.model import REDACTED, Tenant
from redmica_ops.tenants.selection import NO_DB_HOST_HINT, Reason, classify
from redmica_ops.tenants.store import InvalidDocument, StoredTenant, Version

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


def host_for(tenant: Tenant, domain: str | None) -> str | None:
    return f"{tenant.sub_domain}.{domain}" if domain else None


def tenant_view(
    stored: StoredTenant,
    domain: str | None,
    db_host: str | None,
    cell: str | None = None,
    health: tuple[str, Sequence[Problem]] | None = None,
) -> JSONObject:
    tenant = stored.tenant
    document = tenant.to_document(redact=True)
    lifecycle = document.pop("status", tenant.status)
    status, problems = health or ("ok", ())
    return {
        "tenant": stored.tenant_id,
        "valid": True,
        # "clash": it shares a unique value with a tenant that keeps it, and is not served;
        # "no_database": it names no database host and db_host is not set.
        "status": status,
        "clashes": [p.as_dict() for p in problems] if status == "clash" else [],
        "problems": [p.as_dict() for p in problems],
        "cell": cell,
        # Where it is in its life (active, provisioning, suspended): the document's own
        # `status` field, named apart so it never hides the health above.
        "lifecycle": lifecycle,
        "host": host_for(tenant, domain),
        "effective_db_host": tenant.db.host or db_host,
        **document,
        "key": stored.key,
        "etag": stored.etag,
        "version_id": stored.version_id,
        "last_modified": stored.last_modified.isoformat() if stored.last_modified else None,
    }


def invalid_view(doc: InvalidDocument) -> JSONObject:
    return {
        "tenant": doc.tenant_id,
        "valid": False,
        "status": "invalid",
        "key": doc.key,
        "etag": doc.etag,
        "problems": [p.as_dict() for p in doc.problems],
    }


def tenant_row(
    stored: StoredTenant, domain: str | None, db_host: str | None, cell: str
) -> list[str]:
    t = stored.tenant
    host = t.db.host or db_host or "(no host)"
    port = f":{t.db.port}" if t.db.port else ""
    ips = t.properties.limit_ips
    return [
        stored.tenant_id,
        cell,
        host_for(t, domain) or t.sub_domain,
        f"{t.db.name}@{host}{port}",
        f"s3://{t.s3.bucket}/{t.s3.folder}",
        "all" if ips is None else ", ".join(ips),
        t.status,
    ]


_PASSWORD_VALUE = re.compile(
    r"""(\bpassword\s*:[ \t]*)("(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|[^,}\n#]*)"""
)


def redacted_raw(raw: bytes) -> str:
    """A stored document that does not validate, for `tenant show`: the text with every
    `password:` value replaced by ******** (it may be in any shape, so this works on the text,
    not on parsed YAML). Bytes that are not UTF-8 are not shown at all."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"# ({len(raw)} bytes that are not UTF-8 text; not shown)\n"
    lines: list[str] = []
    continuation_of: int | None = None  # indent of the password key whose value may go on
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if continuation_of is not None and line.strip() and indent > continuation_of:
            # A block scalar (`password: |`) or a multi-line scalar: every line is the value.
            lines.append(" " * indent + f"'{REDACTED}'")
            continue
        continuation_of = None
        # Quoted, as `tenant show` prints a valid document: a bare `*` starts a YAML alias.
        redacted, count = _PASSWORD_VALUE.subn(lambda m: f"{m.group(1)}'{REDACTED}'", line)
        if count:
            continuation_of = indent
        lines.append(redacted)
    return "\n".join(lines) + "\n"


def version_view(version: Version) -> JSONObject:
    return {
        "version_id": version.version_id,
        "last_modified": version.last_modified.isoformat(),
        "is_latest": version.is_latest,
        "deleted": version.is_delete_marker,
        "size": version.size,
        "etag": version.etag,
    }


# -- the read-only commands -----------------------------------------------------------------------
LIST_HEADERS = (
    "tenant",
    "cell",
    "site",
    "database",
    "attachments",
    "allowed ips",
    "lifecycle",
    "status",
)
STATUSES = ("ok", "clash", "no_database", "invalid")
LIFECYCLES = ("active", "provisioning", "suspended")
# A tenant's health in `tenant list`, from the one rule (tenants/selection.py).
_HEALTH = {Reason.CLASH: "clash", Reason.NO_DATABASE: "no_database"}


@dataclass(frozen=True)
class ListRequest:
    """`tenant list`'s filters; None: every value. An invalid document has no readable cell or
    lifecycle, so a --cell or --lifecycle filter leaves it out."""

    cell: str | None = None
    status: str | None = None
    lifecycle: str | None = None


def listing_report(ws: Workspace, request: ListRequest | None = None) -> Report:
    """`tenant list`: every tenant with its health (ok, clash, no_database, invalid) from one
    read; exit 1 when any listed is not ok, with each problem said on stderr."""
    request = request or ListRequest()
    settings = ws.settings
    registry = ws.registry()
    cells = cell_map(settings)
    if request.cell is not None:
        cells.get(request.cell)  # an unknown cell is a usage error naming the cells
    listing = ws.tenants()
    found: dict[str, tuple[str, list[Problem]]] = {}
    for e in classify(listing, registry.claims.owner_of, db_host=settings.db_host):
        if e.tenant_id and e.reason in _HEALTH and e.tenant_id not in found:
            found[e.tenant_id] = (_HEALTH[e.reason], list(e.problems))
    tenants = [
        s
        for s in listing.tenants
        if request.cell in (None, cells.cell_of(s.tenant))
        and request.lifecycle in (None, s.tenant.status)
        and request.status in (None, found.get(s.tenant_id, ("ok",))[0])
    ]
    unfiltered_by_content = request.cell is None and request.lifecycle is None
    invalid = (
        listing.invalid if request.status in (None, "invalid") and unfiltered_by_content else []
    )
    health = {s.tenant_id: found[s.tenant_id] for s in tenants if s.tenant_id in found}
    domain, db_host = settings.domain, settings.db_host
    rows: list[list[str | int | float | None]] = [
        [
            *tenant_row(s, domain, db_host, cells.cell_of(s.tenant)),
            _shown(health.get(s.tenant_id, ("ok",))[0]),
        ]
        for s in tenants
    ]
    rows += [[d.tenant_id or d.key, "", "", "", "", "", "", "INVALID"] for d in invalid]
    location = f"s3://{registry.store.bucket}/{settings.prefix}"
    filtered = request != ListRequest()
    counts = [
        f"{sum(1 for status, _ in health.values() if status == name)} {word}"
        for name, word in (("clash", "clashing"), ("no_database", "without a database host"))
        if any(status == name for status, _ in health.values())
    ]
    # Filtered, the count is of the table's rows (tenants and invalid documents alike) out of
    # every document read, so "3 of 800" matches the three rows shown.
    shown = (
        f"{len(tenants) + len(invalid)} of {len(listing.tenants) + len(listing.invalid)} "
        f"document(s) in {location} (filtered)"
        if filtered
        else f"{len(tenants)} tenant(s) in {location}"
    )
    summary = (
        shown
        + "".join(f", {count}" for count in counts)
        + (f", {len(invalid)} invalid" if invalid else "")
    )
    document: list[JSONValue] = [
        tenant_view(s, domain, db_host, cells.cell_of(s.tenant), health.get(s.tenant_id))
        for s in tenants
    ]
    document += [invalid_view(d) for d in invalid]
    headers = LIST_HEADERS if cells.configured else tuple(h for h in LIST_HEADERS if h != "cell")
    if not cells.configured:
        rows = [row[:1] + row[2:] for row in rows]
    return Report(
        document,
        [Table(headers, rows, drop_first=("attachments", "database")), info(summary)],
        _listing_warnings(health, invalid),
        1 if health or invalid else 0,
    )


def _shown(status: str) -> str:
    """A status in the table: ok, else loud (CLASH, NO_DATABASE): the word `--status` takes,
    in capitals (`tenant list --status no_database` finds what the table calls NO_DATABASE)."""
    return status if status == "ok" else status.upper()


def _listing_warnings(
    health: dict[str, tuple[str, list[Problem]]], invalid: list[InvalidDocument]
) -> list[str]:
    warnings: list[str] = []
    for tenant_id, (status, problems) in sorted(health.items()):
        why = "clashes" if status == "clash" else "has no database host"
        warnings.append(f"warning: tenant {tenant_id} {why} and is not served:")
        warnings.extend(f"  {problem}" for problem in problems)
    for doc in invalid:
        warnings.append(f"warning: {doc.key} is invalid and is not served:")
        warnings.extend(f"  {problem}" for problem in doc.problems)
    if any(status == "no_database" for status, _ in health.values()):
        warnings.append(f"hint: {NO_DB_HOST_HINT}")
    if invalid or any(status == "clash" for status, _ in health.values()):
        warnings.append(f"hint: {repair_hint(invalid)}")
    return warnings


def repair_hint(invalid: Sequence[InvalidDocument]) -> str:
    """How to repair: a document under a key that is not a tenant id is renamed first."""
    hint = (
        "see one with `redmica tenant show ID`, repair it with "
        "`redmica tenant update ID -f FILE` or `redmica tenant edit ID`"
    )
    if any(d.tenant_id is None for d in invalid):
        hint += "; a key that is not a tenant id: `redmica tenant rename-key KEY NEW_ID`"
    return hint


def show_report(ws: Workspace, tenant_id: str) -> tuple[Report, ValidationFailed | None]:
    """`tenant show`: the document (redacted) under the line naming its version, which
    `tenant update -f` reads back. An invalid document comes with the error to show after it
    (exit 2)."""
    store = ws.registry().store
    document = store.get_document(tenant_id)
    # On stdout, above the document: `tenant update -f` reads it back and writes only while
    # the tenant is still at this version (a colleague's change is never lost).
    where = header(document, f"s3://{store.bucket}/{document.key}")
    if document.tenant is None:
        shown = redacted_raw(document.raw)
        error = ValidationFailed(
            document.problems,
            message=f"tenant {tenant_id}'s document is invalid and is not served",
            hint=f"replace it: `redmica tenant update {tenant_id} -f FILE` or "
            f"`redmica tenant edit {tenant_id}`",
        )
        broken: JSONObject = {
            "tenant": tenant_id,
            "valid": False,
            "status": "invalid",
            "key": document.key,
            "etag": document.etag,
            "version_id": document.version_id,
            "text": shown,
            "problems": [p.as_dict() for p in document.problems],
        }
        return Report(broken, [text(where + shown)], exit_code=error.exit_code), error
    stored = document.as_stored(document.tenant)
    settings = ws.settings
    view = tenant_view(
        stored, settings.domain, settings.db_host, cell_map(settings).cell_of(stored.tenant)
    )
    return Report(view, [text(where + document.tenant.to_yaml(redact=True))]), None


def history_report(ws: Workspace, tenant_id: str) -> Report:
    """`tenant history`: the stored versions, newest first (exit 3 when there are none)."""
    store = ws.registry().store
    versions = store.history(tenant_id)
    if not versions:
        raise NotFound(
            f"tenant {tenant_id!r} has no stored versions",
            "check the id with `redmica tenant list`",
        )
    rows: list[list[str | int | float | None]] = [
        [
            v.version_id,
            v.last_modified.isoformat(),
            "deleted" if v.is_delete_marker else "",
            "latest" if v.is_latest else "",
            "" if v.size is None else str(v.size),
        ]
        for v in versions
    ]
    body: list[Line | Table] = [Table(("version", "modified", "deleted", "latest", "bytes"), rows)]
    if not store.versioning_enabled():
        body.append(
            warn(f"versioning is not enabled on s3://{store.bucket}: old versions are not kept")
        )
    return Report([version_view(v) for v in versions], body)

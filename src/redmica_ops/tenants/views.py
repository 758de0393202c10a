"""Plain data views of tenants for output: every view is redacted."""

from __future__ import annotations

import re
from collections.abc import Sequence

from redmica_ops.errors import JSONObject, Problem
from redmica_ops.tenants.model import REDACTED, Tenant
from redmica_ops.tenants.store import InvalidDocument, StoredTenant, Version


def host_for(tenant: Tenant, domain: str | None) -> str | None:
    return f"{tenant.sub_domain}.{domain}" if domain else None


def tenant_view(
    stored: StoredTenant,
    domain: str | None,
    db_host: str | None,
    clash: Sequence[Problem] = (),
) -> JSONObject:
    tenant = stored.tenant
    document = tenant.to_document(redact=True)
    lifecycle = document.pop("status", tenant.status)
    return {
        "tenant": stored.tenant_id,
        "valid": True,
        # "clash": it shares a unique value with a tenant that keeps it, and is not served.
        "status": "clash" if clash else "ok",
        "clashes": [p.as_dict() for p in clash],
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


def tenant_row(stored: StoredTenant, domain: str | None, db_host: str | None) -> list[str]:
    t = stored.tenant
    host = t.db.host or db_host or "(db_host unset)"
    port = f":{t.db.port}" if t.db.port else ""
    ips = t.properties.limit_ips
    return [
        stored.tenant_id,
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

"""Plain data views of tenants for output: every view is redacted."""

from __future__ import annotations

from redmica_ops.errors import JSONObject
from redmica_ops.tenants.model import Tenant
from redmica_ops.tenants.store import InvalidDocument, StoredTenant, Version


def host_for(tenant: Tenant, domain: str | None) -> str | None:
    return f"{tenant.sub_domain}.{domain}" if domain else None


def tenant_view(stored: StoredTenant, domain: str | None, db_host: str | None) -> JSONObject:
    tenant = stored.tenant
    document = tenant.to_document(redact=True)
    return {
        "tenant": stored.tenant_id,
        "valid": True,
        "status": tenant.status,
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
        t.status,
        host_for(t, domain) or t.sub_domain,
        f"{t.db.name}@{host}{port}",
        f"s3://{t.s3.bucket}/{t.s3.folder}",
        "all" if ips is None else ", ".join(ips),
    ]


def version_view(version: Version) -> JSONObject:
    return {
        "version_id": version.version_id,
        "last_modified": version.last_modified.isoformat(),
        "is_latest": version.is_latest,
        "deleted": version.is_delete_marker,
        "size": version.size,
        "etag": version.etag,
    }

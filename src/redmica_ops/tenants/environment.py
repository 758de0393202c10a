"""A tenant's process environment: what its vhost sets with SetEnv and `run-tenant` exports.

One function for both, so a migration task and the web processes of a tenant can never see
different databases.
"""

from __future__ import annotations

from redmica_ops.tenants.model import Tenant

# The names Redmine's config/database.yml and s3.yml read (see docs/container.md).
ENV_NAMES = (
    "RAILS_DB",
    "RAILS_DB_USERNAME",
    "RAILS_DB_PASSWORD",
    "RAILS_DB_HOST",
    "RAILS_DB_PORT",
    "S3_BUCKET_NAME",
    "S3_FOLDER_NAME",
    "REDMICA_TENANT",
)
SECRET_ENV_NAMES = frozenset({"RAILS_DB_PASSWORD"})


def tenant_environment(
    tenant_id: str, tenant: Tenant, default_db_host: str | None
) -> dict[str, str]:
    """The variables in ENV_NAMES order; host and port only when known."""
    env = {
        "RAILS_DB": tenant.db.name,
        "RAILS_DB_USERNAME": tenant.db.user,
        "RAILS_DB_PASSWORD": tenant.db.password.get_secret_value(),
    }
    host = tenant.db.host or default_db_host
    if host:
        env["RAILS_DB_HOST"] = host
    if tenant.db.port is not None:
        env["RAILS_DB_PORT"] = str(tenant.db.port)
    env["S3_BUCKET_NAME"] = tenant.s3.bucket
    env["S3_FOLDER_NAME"] = tenant.s3.folder
    env["REDMICA_TENANT"] = tenant_id
    return env

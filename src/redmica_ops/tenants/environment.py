"""A tenant's process environment: what its vhost sets with SetEnv and `run-tenant` exports.

One function for both, so a migration task and the web processes of a tenant can never see
different databases or keys.
"""

from __future__ import annotations

from redmica_ops.container.keys import tenant_secret_key_base
from redmica_ops.tenants.model import Tenant

# The names Redmine's config/database.yml, s3.yml and the shipped initializer read (see
# docs/container.md).
ENV_NAMES = (
    "RAILS_DB",
    "RAILS_DB_USERNAME",
    "RAILS_DB_PASSWORD",
    "RAILS_DB_HOST",
    "RAILS_DB_PORT",
    "S3_BUCKET_NAME",
    "S3_FOLDER_NAME",
    "REDMICA_TENANT",
    "SECRET_KEY_BASE",
)
# Never printed, and removed from every request's Rack env by the image's middleware
# (templates/redmine/initializers/redmica_ops.rb keeps the same list).
SECRET_ENV_NAMES = frozenset({"RAILS_DB_PASSWORD", "SECRET_KEY_BASE"})


def tenant_environment(
    tenant_id: str,
    tenant: Tenant,
    default_db_host: str | None,
    *,
    master_secret: str | None = None,
    password: str | None = None,
    incarnation: str | None = None,
) -> dict[str, str]:
    """The variables in ENV_NAMES order; host and port only when known.

    `password` is the resolved password of a tenant whose document names a secret
    (db.password_secret); `master_secret` gives the tenant its own derived SECRET_KEY_BASE.
    """
    if password is None:
        password = tenant.db.password_value()
    env = {
        "RAILS_DB": tenant.db.name,
        "RAILS_DB_USERNAME": tenant.db.user,
        "RAILS_DB_PASSWORD": password,
    }
    host = tenant.db.host or default_db_host
    if host:
        env["RAILS_DB_HOST"] = host
    if tenant.db.port is not None:
        env["RAILS_DB_PORT"] = str(tenant.db.port)
    env["S3_BUCKET_NAME"] = tenant.s3.bucket
    env["S3_FOLDER_NAME"] = tenant.s3.folder
    env["REDMICA_TENANT"] = tenant_id
    if master_secret is not None:
        env["SECRET_KEY_BASE"] = tenant_secret_key_base(master_secret, tenant_id, incarnation)
    return env

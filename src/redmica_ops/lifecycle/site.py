"""Where database steps run: the administrator's identity, the tools, and the bucket for dumps.

A `Site` is built in this process for the local executor (administrator from the libpq
environment: PGPASSFILE or ~/.pgpass, never a flag) and inside the ECS admin task for the ECS
executor (administrator from the RDS-managed master secret, read there with the task role).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from redmica_ops.lifecycle.sql import Connection, Psql
from redmica_ops.tenants.model import Tenant
from redmica_ops.tenants.passwords import password_of

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from redmica_ops.tenants.passwords import SecretReader


@dataclass(frozen=True)
class Site:
    s3: S3Client
    bucket: str
    backups_prefix: str
    kms_key_id: str | None
    default_db_host: str | None
    connection_limit: int
    admin_user: str
    admin_password: str | None = None  # only inside an admin task; never printed
    pg_bin: str = ""  # directory of psql/pg_dump/pg_restore; empty = PATH
    # db.password_secret, read with this process's role (the operator's, or the admin task's).
    passwords: SecretReader | None = None

    def __repr__(self) -> str:
        return f"Site(bucket={self.bucket!r}, admin_user={self.admin_user!r})"

    def tool(self, name: str) -> str:
        return f"{self.pg_bin.rstrip('/')}/{name}" if self.pg_bin else name

    def host_of(self, tenant: Tenant) -> str | None:
        return tenant.db.host or self.default_db_host

    def admin(self, tenant: Tenant) -> Connection:
        return Connection(
            self.host_of(tenant), tenant.db.port, self.admin_user, self.admin_password
        )

    def admin_sql(self, tenant: Tenant) -> Psql:
        return Psql(self.admin(tenant), self.tool("psql"))

    def admin_sql_at(self, host: str | None, port: str | None) -> Psql:
        connection = Connection(
            host or self.default_db_host,
            int(port) if port else None,
            self.admin_user,
            self.admin_password,
        )
        return Psql(connection, self.tool("psql"))

    def login(self, tenant: Tenant) -> Connection:
        """The tenant's own login (its document's user and password)."""
        return Connection(
            self.host_of(tenant),
            tenant.db.port,
            tenant.db.user,
            password_of(tenant, self.passwords),
        )

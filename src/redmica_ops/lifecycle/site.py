"""Where database steps run: the administrator's identity, the tools, and the bucket for dumps.

A `Site` is built in this process for the local executor (administrator from the libpq
environment: PGPASSFILE or ~/.pgpass, never a flag) and inside the ECS admin task for the ECS
executor (administrator from the RDS-managed master secret, read there with the task role).

Where its connections go is the settings' decision, never a document's (`DatabaseAccess`): a
tenant's db.host/db.port is used only when it names the configured database (`db_host`, port
5432) or an endpoint listed in `db_admin_hosts`; anything else is refused (exit 2) before a
connection is made. The tenant's own logins (pg_dump, pg_restore, the checks in its database)
obey the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.errors import UsageError
from redmica_ops.lifecycle.sql import Connection, Psql, Sql
from redmica_ops.settings import missing_setting, split_endpoint
from redmica_ops.tenants import rules
from redmica_ops.tenants.model import Tenant
from redmica_ops.tenants.passwords import password_of

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from redmica_ops.settings import Settings
    from redmica_ops.tenants.passwords import SecretReader

Endpoint = tuple[str, int]  # (host or socket directory, port)


@dataclass(frozen=True)
class DatabaseAccess:
    """The database endpoints the lifecycle may connect to, and the CA they must prove
    themselves with (TCP). Built from the settings only."""

    default_host: str | None = None  # db_host: a host, an address or a socket directory
    others: frozenset[Endpoint] = field(default_factory=frozenset)  # db_admin_hosts
    root_cert: str | None = None  # db_ssl_root_cert

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseAccess:
        others = (split_endpoint(value) for value in settings.db_admin_hosts)
        return cls(
            settings.db_host,
            frozenset(e for e in others if e is not None),
            settings.db_ssl_root_cert,
        )

    @property
    def allowed(self) -> frozenset[Endpoint]:
        default = {(_key(self.default_host), rules.DEFAULT_PG_PORT)} if self.default_host else set()
        return self.others | default

    def check(self, host: str | None, port: int | None, whose: str) -> Endpoint:
        """The endpoint for a db.host/db.port (None: the default), or a refusal (exit 2)."""
        chosen = host or self.default_host
        if chosen is None:
            raise missing_setting(
                ["db_host"],
                message=f"{whose} names no db.host and the setting db_host is not set: the "
                "lifecycle connects only to a configured database; nothing was changed",
            )
        endpoint = (chosen, port or rules.DEFAULT_PG_PORT)
        if (_key(chosen), endpoint[1]) not in self.allowed:
            raise UsageError(
                f"{whose}: db.host/db.port {chosen}:{endpoint[1]} is not a configured database "
                "(db_host, port 5432, or an endpoint in db_admin_hosts); no connection was "
                "made and nothing was changed",
                "the lifecycle sends credentials only to the databases the settings name: fix "
                "the document's db.host/db.port, or add HOST:PORT to db_admin_hosts if that "
                "server really is one of yours",
            )
        return endpoint

    def endpoint_of(self, tenant: Tenant, tenant_id: str = "") -> Endpoint:
        whose = f"tenant {tenant_id!r}" if tenant_id else f"the tenant of {tenant.db.name!r}"
        return self.check(tenant.db.host, tenant.db.port, whose)


def _key(host: str) -> str:
    return host if host.startswith("/") else host.lower()


@dataclass(frozen=True)
class Site:
    s3: S3Client
    bucket: str
    backups_prefix: str
    kms_key_id: str | None
    access: DatabaseAccess
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

    def _admin_at(self, endpoint: Endpoint) -> Connection:
        host, port = endpoint
        return Connection(
            host, port, self.admin_user, self.admin_password, self.access.root_cert, admin=True
        )

    def admin(self, tenant: Tenant) -> Connection:
        return self._admin_at(self.access.endpoint_of(tenant))

    def admin_sql(self, tenant: Tenant) -> Psql:
        """The administrator, in the `postgres` database of the tenant's server: never in a
        database a tenant controls (see login_sql)."""
        return Psql(self.admin(tenant), self.tool("psql"))

    def admin_sql_at(self, host: str | None, port: str | None) -> Psql:
        """For a tenant whose document is not written yet: the same allow-list."""
        endpoint = self.access.check(host, int(port) if port else None, "the new tenant")
        return Psql(self._admin_at(endpoint), self.tool("psql"))

    def login(self, tenant: Tenant) -> Connection:
        """The tenant's own login (its document's user and password), at an allowed endpoint."""
        host, port = self.access.endpoint_of(tenant)
        return Connection(
            host,
            port,
            tenant.db.user,
            password_of(tenant, self.passwords),
            self.access.root_cert,
        )

    def login_sql(self, tenant: Tenant) -> Sql:
        """SQL inside the tenant's database runs as the tenant: whatever it planted there
        (functions, triggers, a search_path) then runs with its own rights only."""
        return self.psql(self.login(tenant))

    def psql(self, connection: Connection) -> Sql:
        return Psql(connection, self.tool("psql"))

"""What the lifecycle verbs share: reading a tenant, changing its status, the one-login rule,
and what a destructive step must prove first (the tenant owns what it would touch)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from pydantic import SecretStr

from redmica_ops.errors import Conflict, UsageError
from redmica_ops.lifecycle.database import login_pair
from redmica_ops.lifecycle.sql import scram_verifier
from redmica_ops.tenants.claims import ClaimStore
from redmica_ops.tenants.incarnations import Incarnations
from redmica_ops.tenants.model import Status, Tenant
from redmica_ops.tenants.passwords import SecretReader, password_of
from redmica_ops.tenants.registry import TenantRegistry
from redmica_ops.tenants.store import Listing, StoredTenant, TenantStore

if TYPE_CHECKING:
    from redmica_ops.lifecycle.site import DatabaseAccess


def new_password() -> SecretStr:
    # 32 URL-safe characters: nothing Apache, YAML or a shell would read specially.
    return SecretStr(secrets.token_urlsafe(24))


def verifier_of(tenant: Tenant, passwords: SecretReader | None = None) -> str:
    """The SCRAM verifier of the tenant's password (the password itself never leaves here)."""
    return scram_verifier(password_of(tenant, passwords))


def refuse_secret_rotation(tenant_id: str, tenant: Tenant) -> None:
    """Rotation writes a fresh password into the document: not for a password kept in a
    secret, which would then leave the secret store for the config bucket."""
    if tenant.db.password_secret is not None:
        raise UsageError(
            f"tenant {tenant_id!r} keeps its database password in a secret "
            f"(db.password_secret {tenant.db.password_secret}); `tenant rotate-password` only "
            "rotates passwords held in the document; nothing was changed",
            "rotate the secret where it lives (Secrets Manager rotation, or a new SSM value "
            "and ALTER ROLE), then `redmica reload`",
        )


def check_roles_unused(tenant_id: str, tenant: Tenant, listing: Listing) -> None:
    """A role (or its rotation twin) used by another tenant: exit 4 before any SQL runs."""
    mine = login_pair(tenant.db.user)
    for other in listing.tenants:
        if other.tenant_id == tenant_id:
            continue
        shared = mine & login_pair(other.tenant.db.user)
        if shared:
            raise Conflict(
                f"tenant {tenant_id!r}: database role {sorted(shared)[0]!r} is already used by "
                f"tenant {other.tenant_id!r}; nothing was changed",
                "each tenant needs its own db.user (and its rotation twin <user>_2)",
            )


def claims_of_store(store: TenantStore) -> ClaimStore:
    return ClaimStore(store.s3, store.bucket, store.prefix, store.kms_key_id)


def require_endpoint(access: DatabaseAccess | None, stored: StoredTenant) -> None:
    """A document naming a database the settings do not allow: exit 2 before anything."""
    if access is not None:
        access.endpoint_of(stored.tenant, stored.tenant_id)


def incarnation_of(store: TenantStore, tenant_id: str) -> str | None:
    """The tenant's current incarnation, from the bucket (never from its document)."""
    return Incarnations(store.s3, store.bucket, store.prefix, store.kms_key_id).of(tenant_id)


def check_owns(store: TenantStore, stored: StoredTenant, listing: Listing | None = None) -> None:
    """Before a purge, replace or rotation touches a database or role: this tenant holds the
    uniqueness claims of its db.name and both logins, and no other document names them
    (exit 4 otherwise, nothing done). A document written straight to the bucket with another
    tenant's names holds none of their claims."""
    tenant_id, tenant = stored.tenant_id, stored.tenant
    claims = claims_of_store(store)
    wanted = [("db.name", tenant.db.name)] + [
        ("db.user", role) for role in sorted(login_pair(tenant.db.user))
    ]
    for field, value in wanted:
        holder = claims.owner_of(field, value)
        if holder != tenant_id:
            raise Conflict(
                f"tenant {tenant_id!r} does not hold the claim on its {field} {value!r} ("
                + (f"tenant {holder!r} does" if holder else "nobody does")
                + "); it does not provably own that database or role, so nothing was done",
                "`redmica tenant list` marks clashing documents; a document older than claims "
                "is adopted with `redmica tenant claims rebuild`",
            )
    mine = {tenant.db.name} | login_pair(tenant.db.user)
    for other in (listing or store.load_all()).tenants:
        theirs = {other.tenant.db.name} | login_pair(other.tenant.db.user)
        if other.tenant_id != tenant_id and mine & theirs:
            raise Conflict(
                f"tenant {other.tenant_id!r} also names {sorted(mine & theirs)[0]!r} of tenant "
                f"{tenant_id!r}; nothing was done while two documents claim one database",
                f"look at both (`redmica tenant show {other.tenant_id}`) and remove or fix the "
                "wrong one first",
            )


def set_status(
    registry: TenantRegistry,
    stored: StoredTenant,
    status: Status,
    message: str | None = None,
    listing: Listing | None = None,
) -> StoredTenant:
    """Write the new status conditionally on what was read; return the fresh stored tenant.
    `listing`: the caller's, when it read one (a status names no unique value)."""
    tenant = stored.tenant
    if tenant.status == status and tenant.status_message == message:
        return stored
    registry.update(
        stored.tenant_id,
        tenant.with_status(status, message),
        "(lifecycle)",
        stored,
        listing=listing,
    )
    return registry.store.get(stored.tenant_id)


def require_status(stored: StoredTenant, allowed: tuple[Status, ...], action: str) -> None:
    if stored.tenant.status not in allowed:
        raise UsageError(
            f"tenant {stored.tenant_id!r} is {stored.tenant.status}; cannot {action}",
            f"{action} needs status {' or '.join(allowed)} (see `redmica tenant show "
            f"{stored.tenant_id}`)",
        )

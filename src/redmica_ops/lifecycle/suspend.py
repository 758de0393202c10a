"""Suspend and resume: the tenant's host answers 503 + Retry-After, its data untouched.

Only the document's `status` changes; the vhost of a suspended tenant is rendered like the
catch-all (`PassengerEnabled off`, no environment), so its application is never spawned.
The change reaches Apache at the next render (container start or `redmica reload`).
"""

from __future__ import annotations

from dataclasses import dataclass

from redmica_ops.errors import UsageError
from redmica_ops.lifecycle.common import require_status, set_status
from redmica_ops.tenants.registry import TenantRegistry
from redmica_ops.tenants.rules import check_status_message
from redmica_ops.tenants.store import StoredTenant


@dataclass(frozen=True)
class SuspendRequest:
    tenant_id: str
    message: str | None = None  # shown on the maintenance page (validated by the model)
    clear_message: bool = False  # without a message: drop the one there (else it is kept)


@dataclass(frozen=True)
class ResumeRequest:
    tenant_id: str


@dataclass(frozen=True)
class StatusChange:
    tenant_id: str
    before: str
    after: str
    changed: bool


def suspend(registry: TenantRegistry, request: SuspendRequest) -> StatusChange:
    if request.message is not None and (problem := check_status_message(request.message)):
        # The model's rule, said for the flag that carried the text (one line, a hint).
        raise UsageError(
            f"--message (status_message): {problem}; nothing was written",
            'write a plain sentence, e.g. --message "Back at 14:00 UTC"',
        )
    stored = registry.store.get(request.tenant_id)
    require_status(stored, ("active", "suspended"), "suspend")
    message = request.message
    if message is None and not request.clear_message:
        message = stored.tenant.status_message  # suspending again keeps what the page says
    after = set_status(registry, stored, "suspended", message)
    return _change(stored, after)


def resume(registry: TenantRegistry, request: ResumeRequest) -> StatusChange:
    stored = registry.store.get(request.tenant_id)
    require_status(stored, ("suspended", "active"), "resume")
    after = set_status(registry, stored, "active", None)
    return _change(stored, after)


def _change(before: StoredTenant, after: StoredTenant) -> StatusChange:
    return StatusChange(
        before.tenant_id,
        before.tenant.status,
        after.tenant.status,
        before.etag != after.etag,
    )

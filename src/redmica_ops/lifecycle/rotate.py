"""Password rotation with no window: two login roles that take turns (alternating users).

The document names one login (`acme` or its twin `acme_2`). A rotation gives the *other* one a
fresh password, then switches the document to it. Until the next rotation the previous login
keeps its password, so processes still running with it (until the reload drains them) keep
working; new processes use the new login. Both are the same owner's (database.py), so what a
process can see does not change. Two rotations must be at least one reload apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from redmica_ops.errors import OperationFailed
from redmica_ops.lifecycle.common import (
    check_owns,
    new_password,
    refuse_secret_rotation,
    require_endpoint,
    require_status,
)
from redmica_ops.lifecycle.database import twin_of
from redmica_ops.lifecycle.sql import scram_verifier
from redmica_ops.lifecycle.steps import Runner, Step, guard_args
from redmica_ops.tenants.registry import TenantRegistry


@dataclass(frozen=True)
class RotateRequest:
    tenant_id: str


@dataclass(frozen=True)
class RotateOutcome:
    tenant_id: str
    previous_login: str
    login: str
    version_id: str | None


def rotate(registry: TenantRegistry, runner: Runner, request: RotateRequest) -> RotateOutcome:
    stored = registry.store.get(request.tenant_id)
    require_status(stored, ("active", "suspended"), "rotate the password")
    refuse_secret_rotation(request.tenant_id, stored.tenant)
    require_endpoint(runner.access, stored)
    # Only a tenant that provably owns its roles has one of them changed.
    check_owns(registry.store, stored)
    state = runner.run(Step("inspect", request.tenant_id))
    owner = state.get("owner")
    if not isinstance(owner, str):
        raise OperationFailed(
            f"database {stored.tenant.db.name!r} of tenant {request.tenant_id!r} does not exist",
            f"provision it first: `redmica tenant provision {request.tenant_id}`",
        )
    current = stored.tenant.db.user
    login = twin_of(owner) if current == owner else owner
    password: SecretStr = new_password()
    runner.run(
        Step(
            "set-login",
            request.tenant_id,
            {
                "login": login,
                "verifier": scram_verifier(password.get_secret_value()),
                **guard_args(stored, owner),
            },
        )
    )
    # Conditional on the version read above: a concurrent edit is never overwritten.
    outcome = registry.update(
        request.tenant_id, stored.tenant.with_login(login, password), "(rotate)", stored
    )
    return RotateOutcome(
        request.tenant_id,
        current,
        login,
        outcome.result.version_id if outcome.result else None,
    )

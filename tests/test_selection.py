"""The one rule for which tenants are served and migrated (tenants/selection.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from redmica_ops.errors import Problem
from redmica_ops.runs.selection import select_tenants
from redmica_ops.tenants.model import parse_tenant_bytes
from redmica_ops.tenants.selection import Reason, Use, classify, select
from redmica_ops.tenants.store import InvalidDocument, Listing, StoredTenant
from tests.conftest import tenant_yaml

DB_HOST = "aurora.example.internal"  # the db_host setting


def stored(name: str, **overrides: Any) -> StoredTenant:
    tenant, problems = parse_tenant_bytes(name, tenant_yaml(name, **overrides).encode(), name)
    assert tenant is not None, problems
    return StoredTenant(name, f"tenants/{name}.yaml", tenant, f'"{name}"')


def broken(name: str) -> InvalidDocument:
    key = f"tenants/{name}.yaml"
    return InvalidDocument(name, key, '"x"', [Problem(key, "db.port", "is not a number")])


def fleet() -> Listing:
    # beta takes acme's sub_domain; gamma is fine; delta does not validate.
    return Listing(
        tenants=[
            stored("gamma"),
            stored("beta", property__sub_domain="acme"),
            stored("acme"),
        ],
        invalid=[broken("delta")],
    )


def test_every_reason_is_reported_once_with_its_problems() -> None:
    exclusions = classify(fleet(), db_host=DB_HOST)
    assert [(e.name, e.reason) for e in exclusions] == [
        ("beta", Reason.CLASH),
        ("delta", Reason.INVALID),
    ]
    assert "already used by tenant 'acme'" in exclusions[0].describe()


def test_serving_leaves_out_invalid_and_clashing_tenants() -> None:
    selection = select(fleet(), Use.SERVE, db_host=DB_HOST)
    assert [s.tenant_id for s in selection.eligible] == ["acme", "gamma"]
    assert {e.name for e in selection.excluded} == {"beta", "delta"}


def test_migrating_leaves_out_only_invalid_tenants() -> None:
    # A clash takes the site away, not the database: beta's own schema still needs migrating.
    selection = select(fleet(), Use.MIGRATE, db_host=DB_HOST)
    assert [s.tenant_id for s in selection.eligible] == ["acme", "beta", "gamma"]
    assert [e.name for e in selection.excluded] == ["delta"]


def test_migrate_selection_uses_the_rule() -> None:
    chosen = select_tenants(fleet(), [], all_tenants=True, exclude=[], db_host=DB_HOST)
    assert sorted(chosen.tenants) == ["acme", "beta", "gamma"]
    assert list(chosen.invalid) == ["delta"] and "db.port" in chosen.invalid["delta"]


def test_the_claim_holder_keeps_a_clashing_value() -> None:
    # beta sorts first and acme is older, but beta holds the claim on the sub_domain.
    selection = select(fleet(), Use.SERVE, claim_owner=lambda field, value: "beta", db_host=DB_HOST)
    assert "beta" in [s.tenant_id for s in selection.eligible]
    (lost,) = selection.excluded_by(Reason.CLASH)
    assert lost.name == "acme" and "holds its claim" in lost.describe()


def test_without_claims_the_older_document_keeps_it_never_the_newcomer() -> None:
    from datetime import UTC, datetime

    old = datetime(2020, 1, 1, tzinfo=UTC)
    new = datetime(2026, 1, 1, tzinfo=UTC)
    established = dataclasses.replace(
        stored("zeta", property__sub_domain="shop"), last_modified=old
    )
    newcomer = dataclasses.replace(stored("aaa", property__sub_domain="shop"), last_modified=new)
    selection = select(Listing(tenants=[newcomer, established]), Use.SERVE, db_host=DB_HOST)
    assert [s.tenant_id for s in selection.eligible] == ["zeta"]
    assert "the older document" in selection.excluded[0].describe()


def test_each_reason_names_the_uses_it_blocks() -> None:
    for reason in Reason:
        assert reason.blocks <= set(Use) and reason.blocks, reason
        assert reason.label == reason.name.lower()


def test_a_tenant_without_any_database_host_is_fit_for_nothing() -> None:
    # tenants.md's smallest document names no db.host; without the db_host setting the tenant
    # would start without RAILS_DB_HOST: never served, never migrated, with the reason.
    hostless = Listing(tenants=[stored("acme", db__host="db1"), stored("solo")])
    for use in Use:
        selection = select(hostless, use, db_host=None)
        assert [s.tenant_id for s in selection.eligible] == ["acme"]
        (left,) = selection.excluded_by(Reason.NO_DATABASE)
        assert left.name == "solo" and "no database host" in left.describe()
    # With a default host it is fine again.
    assert len(select(hostless, Use.SERVE, db_host=DB_HOST).eligible) == 2

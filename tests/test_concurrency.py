"""Conditional writes under contention: one create wins, no update is lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import yaml
from mypy_boto3_s3 import S3Client

from redmica_ops.errors import Conflict
from redmica_ops.tenants.model import parse_tenant
from redmica_ops.tenants.registry import TenantRegistry
from redmica_ops.tenants.store import TenantStore
from tests.conftest import BUCKET, tenant_yaml


def test_twenty_concurrent_adds_of_one_id_exactly_one_wins(s3: S3Client) -> None:
    registry = TenantRegistry(TenantStore(s3, BUCKET))

    def attempt(i: int) -> str:
        tenant = parse_tenant("acme", tenant_yaml("acme", db__port=1000 + i).encode(), "x")
        try:
            registry.add("acme", tenant, f"attempt-{i}")
        except Conflict:
            return "conflict"
        return f"won-{i}"

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(attempt, range(20)))

    winners = [r for r in results if r.startswith("won")]
    assert len(winners) == 1
    assert results.count("conflict") == 19
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="tenants/acme.yaml")["Versions"]
    assert len(versions) == 1
    claims = s3.list_objects_v2(Bucket=BUCKET, Prefix="tenants/_claims/")["Contents"]
    assert len(claims) == 5  # sub_domain, db.name, s3 folder, role and twin: held by acme
    body = s3.get_object(Bucket=BUCKET, Key="tenants/acme.yaml")["Body"].read()
    assert yaml.safe_load(body)["db"]["port"] == 1000 + int(winners[0].split("-")[1])


def test_concurrent_updates_from_the_same_read_lose_nothing(s3: S3Client) -> None:
    store = TenantStore(s3, BUCKET)
    store.create("acme", parse_tenant("acme", tenant_yaml("acme").encode(), "x"))
    registry = TenantRegistry(store)
    read = store.get("acme")  # everyone starts from the same version

    def attempt(i: int) -> bool:
        tenant = parse_tenant("acme", tenant_yaml("acme", db__port=2000 + i).encode(), "x")
        try:
            registry.update("acme", tenant, f"update-{i}", expected=read)
        except Conflict:
            return False
        return True

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(attempt, range(10)))

    assert results.count(True) == 1
    winner = results.index(True)
    assert store.get("acme").tenant.db.port == 2000 + winner
    documents = s3.list_object_versions(Bucket=BUCKET, Prefix="tenants/acme.yaml")
    assert len(documents["Versions"]) == 2

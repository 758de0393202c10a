"""TenantStore details that the CLI tests do not show: parallel fetching, bounded reads."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.tenants.store import TenantStore
from tests.conftest import BUCKET, tenant_yaml


class BarrierS3:
    """A fake S3 client whose get_object waits until `parties` reads are in flight at once.

    If the store fetched one object after another, the barrier would break (after its
    timeout) instead of opening: this proves concurrency without measuring time.
    """

    def __init__(self, names: list[str], parties: int) -> None:
        self.bodies = {f"tenants/{n}.yaml": tenant_yaml(n).encode() for n in names}
        self.barrier = threading.Barrier(parties, timeout=30)
        self.peak = 0
        self.active = 0
        self.lock = threading.Lock()

    def get_paginator(self, _name: str) -> Any:
        bodies = self.bodies

        class Paginator:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"Contents": [{"Key": k, "ETag": '"e"'} for k in bodies]}]

        return Paginator()

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        import io

        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait()
        with self.lock:
            self.active -= 1
        return {"Body": io.BytesIO(self.bodies[Key]), "ETag": '"e"', "VersionId": "v"}


def test_load_all_fetches_in_parallel_with_a_bounded_pool() -> None:
    names = [f"t{i:02d}" for i in range(40)]
    fake = BarrierS3(names, parties=8)
    store = TenantStore(fake, BUCKET, max_workers=8)  # type: ignore[arg-type]
    listing = store.load_all()
    assert [s.tenant_id for s in listing.tenants] == names
    assert not fake.barrier.broken, "reads did not overlap: the fetch is sequential"
    assert fake.peak == 8  # never more than the pool's bound


def test_oversized_object_is_rejected_without_reading_it_all(s3: S3Client) -> None:
    s3.put_object(Bucket=BUCKET, Key="tenants/big.yaml", Body=b"# " + b"x" * 200_000)
    store = TenantStore(s3, BUCKET)
    listing = store.load_all()
    assert [str(p) for d in listing.invalid for p in d.problems] == [
        "s3://redmica-config-test/tenants/big.yaml: document is 200002 bytes; "
        "the limit is 65536 bytes (64 KiB)"
    ]


def test_prefix_scopes_the_store(s3: S3Client) -> None:
    s3.put_object(Bucket=BUCKET, Key="tenants/acme.yaml", Body=tenant_yaml("acme").encode())
    s3.put_object(Bucket=BUCKET, Key="staging/beta.yaml", Body=tenant_yaml("beta").encode())
    assert [t.tenant_id for t in TenantStore(s3, BUCKET).load_all().tenants] == ["acme"]
    staging = TenantStore(s3, BUCKET, prefix="staging/")
    assert [t.tenant_id for t in staging.load_all().tenants] == ["beta"]
    assert staging.key_for("beta") == "staging/beta.yaml"


@pytest.mark.parametrize("key", ["tenants/UPPER.yaml", "tenants/x.yml", "tenants/a_b.yaml"])
def test_badly_named_keys_are_reported(s3: S3Client, key: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=tenant_yaml("x").encode())
    listing = TenantStore(s3, BUCKET).load_all()
    assert listing.tenants == []
    assert "is not named like a tenant document" in str(listing.invalid[0].problems[0])

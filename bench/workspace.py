"""A workspace for the benchmarks: the simulated ECS, tenants and run records in memory.

The benchmarks call the very `runs.migrations.run` the CLI and the Lambda call; only the
surroundings differ (no S3, a virtual clock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from redmica_ops.errors import NotFound
from redmica_ops.runs.pacing import FakeClock
from redmica_ops.runs.record import RunRecord
from redmica_ops.runs.results import MemoryResults
from redmica_ops.settings import Settings
from redmica_ops.tenants.model import parse_tenant
from redmica_ops.tenants.store import Listing, StoredTenant
from redmica_ops.workspace import BaseWorkspace

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

SAMPLE = b"""\
db: {name: bench, user: bench, password: bench-password-1}
s3: {bucket: bench-files, folder: bench}
property: {sub_domain: bench}
"""


class MemoryRecords:
    """Run records kept in memory; `sizes` holds the size of every save (JSON bytes)."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        self.sizes: list[int] = []

    def save(self, record: RunRecord) -> None:
        text = record.to_json()
        self.records[record.run_id] = text
        self.sizes.append(len(text))

    def load(self, run_id: str) -> RunRecord:
        if run_id not in self.records:
            raise NotFound(f"run {run_id!r} not found")
        return RunRecord.from_json(self.records[run_id])

    def location(self, run_id: str) -> str:
        return f"memory:{run_id}"

    def list_ids(self) -> list[str]:
        return sorted(self.records, reverse=True)


class SimWorkspace(BaseWorkspace):
    """The base workspace (the same executors, targets and fleet as the CLI's) over the
    simulated ECS, with tenants, run records and results in memory and a virtual clock."""

    def __init__(
        self,
        ecs: object,
        clock: FakeClock,
        tenant_ids: list[str],
        settings: Settings,
        records: MemoryRecords | None = None,
        results: MemoryResults | None = None,
    ) -> None:
        super().__init__(settings, make_clock=lambda _cancellation: clock)
        self._ecs = ecs
        self.records = records or MemoryRecords()
        self.result_objects = results or MemoryResults()
        # The ECS executor never reads a tenant's document: one parsed document serves all.
        tenant = parse_tenant("bench", SAMPLE, "bench")
        self._listing = Listing(
            tenants=[StoredTenant(t, f"tenants/{t}.yaml", tenant, '"e"') for t in tenant_ids]
        )

    def tenants(self) -> Listing:
        return self._listing

    def run_store(self) -> MemoryRecords:
        return self.records

    def results(self) -> MemoryResults:
        return self.result_objects

    def ecs(self) -> ECSClient:
        return cast("ECSClient", self._ecs)

    def ecs_rollouts(self, within: float | None = None) -> ECSClient:
        return cast("ECSClient", self._ecs)

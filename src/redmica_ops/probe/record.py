"""The probe record: what a probe found for each site, kept in the config bucket beside the
migration runs, as `<runs_prefix>probes/<probe id>.json`.

Written when the probe starts (state `running`) and when it ends (`finished` or `interrupted`),
conditionally like every write to the bucket: the first write must create the object
(If-None-Match), the last must replace the version this process wrote (If-Match), so two
probes can never overwrite each other's record. Under the runs prefix because the roles that
release already write there; `runs list` lists only `runs/<id>.json`, so probes do not show up
as migration runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from redmica_ops.errors import JSONObject
from redmica_ops.probe.model import SiteResult
from redmica_ops.runs.record import JsonObjects

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PROBES_FOLDER = "probes/"


@dataclass
class ProbeRecord:
    probe_id: str
    created_at: str
    updated_at: str
    state: str = "running"  # running | finished | interrupted
    request: JSONObject = field(default_factory=dict)
    sites: list[SiteResult] = field(default_factory=list)
    skipped: list[JSONObject] = field(default_factory=list)

    def to_json(self) -> str:
        data = {
            "probe_id": self.probe_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "state": self.state,
            "request": self.request,
            "sites": [s.as_dict() for s in self.sites],
            "skipped": self.skipped,
        }
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ProbeRecord:
        data = json.loads(text)
        return cls(
            probe_id=str(data["probe_id"]),
            created_at=str(data["created_at"]),
            updated_at=str(data["updated_at"]),
            state=str(data.get("state", "running")),
            request=dict(data.get("request", {})),
            sites=[SiteResult.from_dict(s) for s in data.get("sites", [])],
            skipped=list(data.get("skipped", [])),
        )


class ProbeRecords(Protocol):
    def save(self, record: ProbeRecord) -> str:
        """Write the record; returns where a person finds it."""

    def load(self, probe_id: str) -> ProbeRecord: ...


class ProbeStore(JsonObjects):
    """Probe records in the config bucket, every write conditional (`runs.record.JsonObjects`)."""

    noun = "probe"
    conflict_hint = "probe ids are unique per run: start the probe again"

    def __init__(
        self, s3: S3Client, bucket: str, runs_prefix: str = "runs/", kms_key_id: str | None = None
    ) -> None:
        super().__init__(s3, bucket, f"{runs_prefix}{PROBES_FOLDER}", kms_key_id)

    def save(self, record: ProbeRecord) -> str:
        return self.write(record.probe_id, record.to_json())

    def load(self, probe_id: str) -> ProbeRecord:
        return ProbeRecord.from_json(self.read(probe_id))

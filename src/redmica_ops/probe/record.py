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

from redmica_ops.aws import put_object_once, translate_errors
from redmica_ops.errors import Conflict, JSONObject, NotFound, UsageError
from redmica_ops.probe.model import SiteResult

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


class ProbeStore:
    """Probe records in the config bucket, every write conditional."""

    def __init__(
        self, s3: S3Client, bucket: str, runs_prefix: str = "runs/", kms_key_id: str | None = None
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = f"{runs_prefix}{PROBES_FOLDER}"
        self.kms_key_id = kms_key_id
        self._etags: dict[str, str] = {}

    def key_for(self, probe_id: str) -> str:
        return f"{self.prefix}{probe_id}.json"

    def save(self, record: ProbeRecord) -> str:
        key = self.key_for(record.probe_id)
        try:
            result = put_object_once(
                self.s3,
                self.bucket,
                key,
                record.to_json().encode(),
                if_match=self._etags.get(record.probe_id),
                content_type="application/json",
                kms_key_id=self.kms_key_id,
                action=f"writing probe record s3://{self.bucket}/{key}",
            )
        except Conflict:
            raise Conflict(
                f"probe record {record.probe_id} was written by another process",
                "probe ids are unique per run: start the probe again",
            ) from None
        self._etags[record.probe_id] = result.etag
        return f"s3://{self.bucket}/{key}"

    def load(self, probe_id: str) -> ProbeRecord:
        if not probe_id or "/" in probe_id:
            raise UsageError(f"{probe_id!r} is not a probe id")
        key = self.key_for(probe_id)
        try:
            with translate_errors(f"reading probe record s3://{self.bucket}/{key}", self.bucket):
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except NotFound:
            raise NotFound(
                f"probe {probe_id!r} not found in s3://{self.bucket}/{self.prefix}"
            ) from None
        return ProbeRecord.from_json(body.decode("utf-8"))

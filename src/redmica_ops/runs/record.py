"""The run record: what a `migrate` run did for each tenant, kept in S3 as `runs/<id>.json`.

It is written when the run starts and updated as results arrive, so a crashed or interrupted
CLI can be resumed (`--resume`), failures retried (`--only-failed`), and a run launched
without waiting (`--no-wait`, the scheduled job) looked at later (`redmica runs show`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from redmica_ops.aws import put_object_once, translate_errors
from redmica_ops.errors import Conflict, JSONObject, NotFound, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class Status(StrEnum):
    PENDING = "pending"  # selected, not launched yet
    RUNNING = "running"  # launched; a task / process exists
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the migration exited non-zero: never retried automatically
    FAILED_TO_START = "failed_to_start"
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"  # stopped by the operator (second Ctrl-C)
    NOT_STARTED = "not_started"  # never launched: --max-failures, --canary, interrupt
    SKIPPED = "skipped"  # excluded


FINAL = frozenset(
    {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.FAILED_TO_START,
        Status.TIMED_OUT,
        Status.STOPPED,
        Status.NOT_STARTED,
        Status.SKIPPED,
    }
)
FAILURES = frozenset({Status.FAILED, Status.FAILED_TO_START, Status.TIMED_OUT, Status.STOPPED})


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and short: it goes into ECS startedBy (36 characters at most)."""
    moment = (now or utcnow()).strftime("%Y%m%dT%H%M%SZ")
    return f"{moment}-{secrets.token_hex(3)}"


@dataclass
class TenantRun:
    tenant: str
    status: Status = Status.PENDING
    task_arn: str | None = None
    attempts: int = 0
    exit_code: int | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    reason: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    log_stream: str | None = None
    # From the tenant's result object (runs/results.py): what ran, and how a failure ended.
    image: str | None = None
    fingerprint: str | None = None
    tail: list[str] | None = None

    def as_dict(self) -> JSONObject:
        data = asdict(self)
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_dict(cls, data: JSONObject) -> TenantRun:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["status"] = Status(known.get("status", "pending"))
        return cls(**known)


@dataclass
class RunRecord:
    run_id: str
    executor: str
    command: list[str]
    created_at: str
    updated_at: str
    # running | finished (every tenant final) | interrupted (resume it) | launched (--no-wait)
    state: str = "running"
    options: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)  # cluster, task definition, log group
    parent_run: str | None = None
    tenants: dict[str, TenantRun] = field(default_factory=dict)
    error: str | None = None  # why an interrupted run stopped

    def complete(self) -> bool:
        return all(t.status in FINAL for t in self.tenants.values())

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.tenants.values():
            counts[str(run.status)] = counts.get(str(run.status), 0) + 1
        return dict(sorted(counts.items()))

    def with_status(self, *statuses: Status) -> list[TenantRun]:
        return [t for t in self.tenants.values() if t.status in statuses]

    def all_succeeded(self) -> bool:
        selected = [t for t in self.tenants.values() if t.status != Status.SKIPPED]
        return all(t.status == Status.SUCCEEDED for t in selected)

    def to_json(self) -> str:
        data = asdict(self)
        data["tenants"] = {k: v.as_dict() for k, v in sorted(self.tenants.items())}
        return json.dumps(data, indent=1, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        data = json.loads(text)
        tenants = {k: TenantRun.from_dict(v) for k, v in data.pop("tenants", {}).items()}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known, tenants=tenants)


class RunRecords(Protocol):
    """Where run records live: the config bucket (`RunStore`), or memory in the benchmarks."""

    def save(self, record: RunRecord) -> None: ...

    def load(self, run_id: str) -> RunRecord: ...

    def location(self, run_id: str) -> str:
        """Where a person finds the record (an s3:// URL)."""

    def list_ids(self) -> list[str]:
        """Run ids, newest first."""


class RunStore:
    """Run records in the config bucket; writes are conditional so two CLIs never fight."""

    def __init__(
        self, s3: S3Client, bucket: str, prefix: str = "runs/", kms_key_id: str | None = None
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.kms_key_id = kms_key_id
        self._etags: dict[str, str] = {}

    def key_for(self, run_id: str) -> str:
        return f"{self.prefix}{run_id}.json"

    def location(self, run_id: str) -> str:
        return f"s3://{self.bucket}/{self.key_for(run_id)}"

    def save(self, record: RunRecord) -> None:
        key = self.key_for(record.run_id)
        try:
            # Conditional, and safe to retry: a 412 on our own applied write is success.
            result = put_object_once(
                self.s3,
                self.bucket,
                key,
                record.to_json().encode(),
                if_match=self._etags.get(record.run_id),
                content_type="application/json",
                kms_key_id=self.kms_key_id,
                action=f"writing run record s3://{self.bucket}/{key}",
            )
        except Conflict:
            raise Conflict(
                f"run {record.run_id} was changed by another redmica process",
                "only one `migrate` may drive a run at a time",
            ) from None
        self._etags[record.run_id] = result.etag

    def load(self, run_id: str) -> RunRecord:
        if not run_id or "/" in run_id:
            raise UsageError(f"{run_id!r} is not a run id", "list runs with `redmica runs list`")
        key = self.key_for(run_id)
        try:
            with translate_errors(f"reading run record s3://{self.bucket}/{key}", self.bucket):
                response = self.s3.get_object(Bucket=self.bucket, Key=key)
                body = response["Body"].read()
        except NotFound:
            raise NotFound(
                f"run {run_id!r} not found in s3://{self.bucket}/{self.prefix}",
                "list runs with `redmica runs list`",
            ) from None
        self._etags[run_id] = response["ETag"]
        return RunRecord.from_json(body.decode("utf-8"))

    def list_ids(self) -> list[str]:
        ids: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        with translate_errors(f"listing s3://{self.bucket}/{self.prefix}", self.bucket):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(self.prefix) :]
                    if name.endswith(".json") and "/" not in name:
                        ids.append(name[: -len(".json")])
        return sorted(ids, reverse=True)

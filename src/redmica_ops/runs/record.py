"""The run record: what a `migrate` run did for each tenant, kept in S3 as `runs/<id>.json`.

It is written when the run starts and updated as results arrive, so a crashed or interrupted
CLI can be resumed (`--resume`), failures retried (`--only-failed`), and a run launched
without waiting (`--no-wait`, the scheduled job) looked at later (`redmica runs show`).
"""

from __future__ import annotations

import functools
import json
import secrets
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

from redmica_ops.aws import put_object_once, translate_errors
from redmica_ops.errors import Conflict, JSONValue, NotFound, OperationFailed, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")


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


class RunState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"  # every tenant has a final status
    INTERRUPTED = "interrupted"  # resume it
    LAUNCHED = "launched"  # --no-wait: the tasks run on, collected later


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

    def as_dict(self) -> dict[str, JSONValue]:
        return _object(self)


@dataclass(frozen=True)
class RunOptions:
    """The pacing and failure policy a run was started with; a resume keeps them."""

    concurrency: int
    rate: float
    burst: int
    timeout: float
    max_failures: int | None = None
    canary: int | None = None
    max_start_attempts: int = 5
    tenants_per_task: int = 1
    wait: bool = True


@dataclass
class RunTarget:
    """What a run runs on, as the executor's preflight found it (and --skip-current's count)."""

    SPARSE: ClassVar[bool] = True  # written without its unset fields: each executor sets its own

    # The ECS executor's.
    cluster: str | None = None
    task_definition: str | None = None  # the revision's ARN: a resume runs the same one
    image: str | None = None
    container: str | None = None
    log_group: str | None = None
    # The local executor's.
    log_dir: str | None = None
    workdir: str | None = None
    user: str | None = None
    fingerprint: str | None = None  # the migrations this host would apply
    skipped_current: int | None = None  # --skip-current: tenants left out as already migrated


@dataclass
class RunRecord:
    run_id: str
    executor: str
    command: list[str]
    created_at: str
    updated_at: str
    state: RunState = RunState.RUNNING
    options: RunOptions | None = None  # None: a record from before options were kept
    target: RunTarget = field(default_factory=RunTarget)
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
        data = _object(self)
        data["tenants"] = {k: v.as_dict() for k, v in sorted(self.tenants.items())}
        return json.dumps(data, indent=1, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RunRecordError(f"a run record is not JSON ({exc})") from None
        run_id = data.get("run_id") if isinstance(data, dict) else None
        return from_plain(cls, data, f"run record {run_id or '(no run_id)'}")


def prepare_resume(record: RunRecord, found: dict[str, str]) -> list[str]:
    """Tenants of an earlier run still to do; launched-but-unrecorded tasks are re-attached."""
    order = []
    for tenant, run in sorted(record.tenants.items()):
        if run.status in (Status.PENDING, Status.NOT_STARTED):
            if tenant in found:
                run.status, run.task_arn, run.reason = Status.RUNNING, found[tenant], None
                run.attempts = max(run.attempts, 1)
            else:
                run.status, run.reason = Status.PENDING, None
                order.append(tenant)
    record.state = RunState.RUNNING
    return order


# -- the JSON codec: dataclasses, enums and the JSON types, walked by their annotations -------
class RunRecordError(OperationFailed):
    """A run record (or a part of one) that does not have the shape this version reads."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            "the record was changed outside redmica; fix or remove it (runs/<id>.json in the "
            "config bucket)",
        )


def to_plain(value: object) -> JSONValue:
    """A dataclass, enum, list or dict of them as JSON values, in field order. An unset
    optional dataclass is written as {} (so older readers find an object); a SPARSE
    dataclass leaves out its None fields."""
    if is_dataclass(value) and not isinstance(value, type):
        return _object(value)
    if isinstance(value, Enum):
        return to_plain(value.value)
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _object(value: object) -> dict[str, JSONValue]:
    kind: type = type(value)
    sparse, layout = _layout(kind)
    data: dict[str, JSONValue] = {}
    for name, object_when_unset in layout:
        item = getattr(value, name)
        if item is None:
            if not sparse:
                data[name] = {} if object_when_unset else None
        elif isinstance(item, str | int | float):  # the common case, and Status (a str)
            data[name] = item.value if isinstance(item, Enum) else item
        else:
            data[name] = to_plain(item)
    return data


@functools.cache
def _layout(kind: type) -> tuple[bool, tuple[tuple[str, bool], ...]]:
    """Whether `kind` is SPARSE, and each field's name and whether unset is written as {}."""
    hints = typing.get_type_hints(kind)
    layout = tuple((f.name, _optional_dataclass(hints[f.name])) for f in fields(kind))
    return bool(getattr(kind, "SPARSE", False)), layout


def from_plain(cls: type[T], data: object, where: str) -> T:
    """`cls` from JSON values, checked against its annotations: unknown keys are ignored (a
    newer version's), a missing key takes the field's default, an int is read as a float,
    {} as an unset optional dataclass; anything else of the wrong type is a `RunRecordError`
    naming `where` and the field."""
    return typing.cast(T, _decode(cls, data, where, ""))


def _decode(kind: object, value: object, where: str, path: str) -> object:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if value == {} and _optional_dataclass(kind):
            return None
        return _decode(inner[0], value, where, path) if len(inner) == 1 else _wrong(where, path)
    if origin is list and isinstance(value, list):
        return [_decode(args[0], v, where, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict and isinstance(value, dict):
        return {str(k): _decode(args[1], v, where, _at(path, str(k))) for k, v in value.items()}
    if isinstance(kind, type) and is_dataclass(kind) and isinstance(value, dict):
        return _dataclass(kind, value, where, path)
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(value)
        except ValueError:
            return _wrong(where, path, value)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind in (int, str, bool) and type(value) is kind:
        return value
    return _wrong(where, path, value)


def _dataclass(kind: type, value: dict[str, object], where: str, path: str) -> object:
    hints = typing.get_type_hints(kind)
    known: dict[str, object] = {}
    for f in fields(kind):
        if f.name in value:
            known[f.name] = _decode(hints[f.name], value[f.name], where, _at(path, f.name))
        elif f.default is MISSING and f.default_factory is MISSING:
            raise RunRecordError(f"{where}: {_at(path, f.name)} is missing")
    return kind(**known)


def _optional_dataclass(kind: object) -> bool:
    inner = [a for a in typing.get_args(kind) if a is not type(None)]
    return len(inner) == 1 and type(None) in typing.get_args(kind) and is_dataclass(inner[0])


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _wrong(where: str, path: str, value: object = None) -> object:
    shown = (
        json.dumps(value)[:40]
        if isinstance(value, str | int | float | bool)
        else type(value).__name__
    )
    raise RunRecordError(f"{where}: {path or 'the record'} has an unexpected value ({shown})")


class RunRecords(Protocol):
    """Where run records live: the config bucket (`RunStore`), or memory in the benchmarks."""

    def save(self, record: RunRecord) -> None: ...

    def load(self, run_id: str) -> RunRecord: ...

    def location(self, run_id: str) -> str:
        """Where a person finds the record (an s3:// URL)."""

    def list_ids(self) -> list[str]:
        """Run ids, newest first."""


class JsonObjects:
    """Records kept as one JSON object each under a prefix of the config bucket (run records,
    probe records). Every write is conditional: the first creates the object (If-None-Match),
    a later one must replace the version this process wrote or read (If-Match on the ETag it
    remembers), so two processes never overwrite each other's record."""

    noun = "record"  # how messages name one: "run", "probe"
    conflict_hint = ""  # what a person does when another process changed the record
    list_hint: str | None = None  # how to find the ids

    def __init__(
        self, s3: S3Client, bucket: str, prefix: str, kms_key_id: str | None = None
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.kms_key_id = kms_key_id
        self._etags: dict[str, str] = {}

    def key_for(self, record_id: str) -> str:
        return f"{self.prefix}{record_id}.json"

    def location(self, record_id: str) -> str:
        return f"s3://{self.bucket}/{self.key_for(record_id)}"

    def write(self, record_id: str, body: str) -> str:
        """Write one record conditionally; returns its location."""
        key = self.key_for(record_id)
        try:
            # Conditional, and safe to retry: a 412 on our own applied write is success.
            result = put_object_once(
                self.s3,
                self.bucket,
                key,
                body.encode(),
                if_match=self._etags.get(record_id),
                content_type="application/json",
                kms_key_id=self.kms_key_id,
                action=f"writing {self.noun} record s3://{self.bucket}/{key}",
            )
        except Conflict:
            raise Conflict(
                f"{self.noun} {record_id} was changed by another redmica process",
                self.conflict_hint,
            ) from None
        self._etags[record_id] = result.etag
        return f"s3://{self.bucket}/{key}"

    def read(self, record_id: str) -> str:
        """One record's text; its ETag is remembered for the next conditional write."""
        if not record_id or "/" in record_id:
            raise UsageError(f"{record_id!r} is not a {self.noun} id", self.list_hint)
        key = self.key_for(record_id)
        try:
            with translate_errors(
                f"reading {self.noun} record s3://{self.bucket}/{key}", self.bucket
            ):
                response = self.s3.get_object(Bucket=self.bucket, Key=key)
                body = response["Body"].read()
        except NotFound:
            raise NotFound(
                f"{self.noun} {record_id!r} not found in s3://{self.bucket}/{self.prefix}",
                self.list_hint,
            ) from None
        self._etags[record_id] = response["ETag"]
        return body.decode("utf-8")


class RunStore(JsonObjects):
    """Run records in the config bucket; writes are conditional so two CLIs never fight."""

    noun = "run"
    conflict_hint = "only one `migrate` may drive a run at a time"
    list_hint = "list runs with `redmica runs list`"

    def __init__(
        self, s3: S3Client, bucket: str, prefix: str = "runs/", kms_key_id: str | None = None
    ) -> None:
        super().__init__(s3, bucket, prefix, kms_key_id)

    def save(self, record: RunRecord) -> None:
        self.write(record.run_id, record.to_json())

    def load(self, run_id: str) -> RunRecord:
        return RunRecord.from_json(self.read(run_id))

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

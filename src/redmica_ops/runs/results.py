"""Each tenant's result as an object in the config bucket, written by the task that ran it.

`redmica entrypoint run-tenant` (inside every migration task) runs the command as a child,
passes its output through to the task's log, keeps the last lines (secrets masked), and
writes `runs/<run>/results/<tenant>/<attempt>.json` when the command ends: exit code, start
and end, image, task definition, the migration fingerprint and the tail. The fan-out,
`runs show`/`runs collect`, `--resume` and the Lambda read these, so a run's results do not
depend on ECS remembering its tasks (it forgets stopped ones after about an hour).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from redmica_ops.aws import translate_errors
from redmica_ops.errors import Conflict, NotFound
from redmica_ops.runs.record import Status

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from redmica_ops.runs.record import TenantRun

TAIL_LINES = 40
MASK = "********"
# Environment names whose values are secrets wherever they appear in output.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE|_KEY$|KEY_BASE", re.I)


@dataclass
class TenantResult:
    run_id: str
    tenant: str
    attempt: int
    exit_code: int | None  # None: the command could not be started
    started_at: str
    ended_at: str
    image: str | None = None
    task_definition: str | None = None
    task_arn: str | None = None
    fingerprint: str | None = None  # the migrations baked into the image (see fingerprint())
    tail: list[str] = field(default_factory=list)  # last lines of output, secrets masked
    error: str | None = None  # why the command could not be started

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> TenantResult:
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def merge_result(run: TenantRun, result: TenantResult) -> None:
    """Settle a tenant's run from its own result object: it outranks what ECS says."""

    run.exit_code = result.exit_code
    run.started_at = result.started_at or run.started_at
    run.stopped_at = result.ended_at or run.stopped_at
    run.image = result.image or run.image
    run.fingerprint = result.fingerprint
    if result.exit_code == 0:
        run.status, run.reason, run.tail = Status.SUCCEEDED, None, None
        return
    run.tail = list(result.tail)
    if result.exit_code is None:
        # The command never ran (no such program, an invalid document): nothing half-applied.
        run.status = Status.FAILED_TO_START
        run.reason = result.error or "the command could not be started"
    else:
        run.status = Status.FAILED
        run.reason = f"the migration exited with {result.exit_code}"


class MemoryResults:
    """Results kept in memory (tests, benchmarks)."""

    def __init__(self) -> None:
        self.results: dict[tuple[str, str, int], TenantResult] = {}

    def put(self, result: TenantResult) -> None:
        self.results[(result.run_id, result.tenant, result.attempt)] = result

    def get(self, run_id: str, tenant: str, attempt: int) -> TenantResult | None:
        return self.results.get((run_id, tenant, attempt))

    def latest(self, run_id: str) -> dict[str, TenantResult]:
        newest: dict[str, TenantResult] = {}
        for (rid, tenant, attempt), result in sorted(self.results.items()):
            if rid == run_id and attempt >= newest.get(tenant, result).attempt:
                newest[tenant] = result
        return newest


class ResultSource(Protocol):
    """Where the fan-out looks for results (S3 in real runs; memory in tests and benchmarks)."""

    def put(self, result: TenantResult) -> object: ...

    def get(self, run_id: str, tenant: str, attempt: int) -> TenantResult | None: ...

    def latest(self, run_id: str) -> dict[str, TenantResult]:
        """tenant -> the result of its highest attempt."""


class ResultStore:
    """Result objects under the runs prefix; written once each (If-None-Match)."""

    def __init__(
        self, s3: S3Client, bucket: str, prefix: str = "runs/", kms_key_id: str | None = None
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.kms_key_id = kms_key_id

    def run_prefix(self, run_id: str) -> str:
        return f"{self.prefix}{run_id}/results/"

    def key(self, run_id: str, tenant: str, attempt: int) -> str:
        return f"{self.run_prefix(run_id)}{tenant}/{attempt}.json"

    def put(self, result: TenantResult) -> str:
        key = self.key(result.run_id, result.tenant, result.attempt)
        extra: dict[str, str] = {}
        if self.kms_key_id:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        try:
            with translate_errors(f"writing result s3://{self.bucket}/{key}", self.bucket):
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=result.to_json().encode(),
                    ContentType="application/json",
                    IfNoneMatch="*",
                    **extra,  # type: ignore[arg-type]
                )
        except Conflict:
            raise Conflict(
                f"a result for {result.tenant} (attempt {result.attempt}) of run "
                f"{result.run_id} already exists",
                "one attempt writes one result; this attempt ran twice",
            ) from None
        return key

    def get(self, run_id: str, tenant: str, attempt: int) -> TenantResult | None:
        key = self.key(run_id, tenant, attempt)
        try:
            with translate_errors(f"reading result s3://{self.bucket}/{key}", self.bucket):
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except NotFound:
            return None
        return TenantResult.from_json(body.decode("utf-8"))

    def latest(self, run_id: str) -> dict[str, TenantResult]:
        newest: dict[str, tuple[int, str]] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        prefix = self.run_prefix(run_id)
        with translate_errors(f"listing s3://{self.bucket}/{prefix}", self.bucket):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    tenant, _, name = obj["Key"][len(prefix) :].partition("/")
                    number = name.removesuffix(".json")
                    if number.isdigit() and int(number) > newest.get(tenant, (0, ""))[0]:
                        newest[tenant] = (int(number), obj["Key"])
        results = {}
        for tenant, (attempt, _key) in sorted(newest.items()):
            result = self.get(run_id, tenant, attempt)
            if result is not None:
                results[tenant] = result
        return results


# -- what run-tenant does ------------------------------------------------------------------------
def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values to mask in captured output: every secret-named variable's (long enough to be one)."""
    values = {v for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= 6}
    return sorted(values, key=len, reverse=True)


def mask(line: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in line:
            line = line.replace(secret, MASK)
    return line


def tee(
    stream: IO[bytes], sink: IO[bytes], secrets: list[str], lines: int = TAIL_LINES
) -> list[str]:
    """Copy `stream` to `sink` as it comes; return its last `lines` lines, secrets masked."""
    tail: deque[str] = deque(maxlen=lines)
    for raw in iter(stream.readline, b""):
        sink.write(raw)
        sink.flush()
        tail.append(mask(raw.decode("utf-8", "replace").rstrip("\r\n"), secrets)[:1000])
    return list(tail)


def fingerprint(app_root: str | Path) -> str | None:
    """The migration versions baked into the image (Redmine's and its plugins'), hashed.

    Two images with the same fingerprint run the same migrations: a tenant that succeeded
    with one is current for the other (`migrate --skip-current`). None without db/migrate.
    """
    root = Path(app_root)
    versions: set[str] = set()
    found = False
    for folder in [root / "db" / "migrate", *sorted((root / "plugins").glob("*/db/migrate"))]:
        if not folder.is_dir():
            continue
        found = True
        plugin = folder.parent.parent.name if folder.parent.parent != root else ""
        for path in folder.glob("*.rb"):
            version = path.name.split("_", 1)[0]
            versions.add(f"{plugin}:{version}")
    if not found:
        return None
    digest = hashlib.sha256("\n".join(sorted(versions)).encode()).hexdigest()[:16]
    return f"mig-{len(versions)}-{digest}"


def task_metadata(env: Mapping[str, str], timeout: float = 2.0) -> dict[str, str]:
    """Image, task definition and task ARN from ECS's task metadata endpoint (best effort)."""
    uri = env.get("ECS_CONTAINER_METADATA_URI_V4")
    if not uri:
        return {}
    # Here, not at the top: only the in-task runner asks, and urllib.request (http.client,
    # ssl, email) is 60 M instructions every `deploy --help` or `tenant --help` would pay.
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri}/task", timeout=timeout) as response:  # noqa: S310
            task = json.loads(response.read())
    except (OSError, ValueError):
        return {}
    facts = {"task_arn": str(task.get("TaskARN") or "")}
    if task.get("Family"):
        facts["task_definition"] = f"{task['Family']}:{task.get('Revision', '')}"
    name = env.get("REDMICA_CONTAINER")
    for container in task.get("Containers", []):
        if name is None or container.get("Name") == name:
            facts["image"] = str(container.get("ImageID") or container.get("Image") or "")
            break
    return {k: v for k, v in facts.items() if v}


def run_and_record(
    command: list[str],
    env: Mapping[str, str],
    *,
    run_id: str,
    tenant: str,
    attempt: int,
    app_root: str,
    sink: IO[bytes],
    now: Callable[[], str],
) -> TenantResult:
    """Run `command` as a child (output passed through to `sink`), return its result.

    The child gets `env` (the tenant's); its output is masked of every secret in that
    environment before a line is kept for the tail. It is the caller's to store the result.
    """

    started = now()
    facts = task_metadata(env)
    try:
        child = subprocess.Popen(
            command,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except OSError as exc:
        return TenantResult(
            run_id,
            tenant,
            attempt,
            None,
            started,
            now(),
            image=facts.get("image"),
            task_definition=facts.get("task_definition"),
            task_arn=facts.get("task_arn"),
            error=f"cannot run {command[0]!r}: {exc.strerror}",
        )
    assert child.stdout is not None
    tail = tee(child.stdout, sink, secret_values(env))
    code = child.wait()
    return TenantResult(
        run_id,
        tenant,
        attempt,
        code,
        started,
        now(),
        image=facts.get("image"),
        task_definition=facts.get("task_definition"),
        task_arn=facts.get("task_arn"),
        fingerprint=fingerprint(app_root),
        tail=tail,
    )

"""The typed run record: records written by earlier versions load, round-trip and resume with
their own pacing; a value of the wrong type is an error naming the run and the field.

`tests/data/run-record-2026-11.json` is a record as the code before the typed record wrote it
(committed before the change); `run-record-2026-11-26.json` is the first shape (no
`tenants_per_task` in its options, no image, fingerprint or tail per tenant);
`run-record-no-options.json` has `options: {}` and `target: {}`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.cli.app import Application
from redmica_ops.errors import ExitCode
from redmica_ops.runs.pacing import FakeClock
from redmica_ops.runs.record import (
    RunOptions,
    RunRecord,
    RunRecordError,
    RunState,
    RunTarget,
    Status,
    from_plain,
    to_plain,
)
from redmica_ops.tenants.model import parse_tenant
from redmica_ops.tenants.store import TenantStore
from redmica_ops.workspace import BaseWorkspace
from tests.conftest import BUCKET, Invoke, tenant_yaml
from tests.ecs_support import FAMILY, create_ecs_target, moto_ecs_spy

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("run-record-*.json"))


def fixture(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def test_the_fixtures_are_there() -> None:
    assert [p.name for p in FIXTURES] == [
        "run-record-2026-11-26.json",
        "run-record-2026-11.json",
        "run-record-no-options.json",
    ]


def test_a_record_as_written_before_the_typed_record_round_trips_byte_for_byte() -> None:
    text = fixture("run-record-2026-11.json")
    record = RunRecord.from_json(text)
    assert record.state is RunState.FINISHED
    assert record.options == RunOptions(50, 20.0, 100, 1800.0, None, 5, 5, 2, True)
    assert record.target == RunTarget(
        cluster="prod",
        task_definition="arn:aws:ecs:us-east-1:123456789012:task-definition/redmica:42",
        image="registry.example.com/redmica:v6",
        container="app",
        log_group="/redmica/app",
        skipped_current=3,
    )
    assert record.tenants["globex"].status is Status.FAILED
    assert record.tenants["globex"].tail == ["rake aborted!"]
    assert record.to_json() == text.rstrip("\n")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_older_shape_loads_and_round_trips(path: Path) -> None:
    record = RunRecord.from_json(path.read_text(encoding="utf-8"))
    written = record.to_json()
    assert RunRecord.from_json(written) == record
    data = json.loads(written)
    # Written as today's records are: every key, options as an object (older readers call
    # .get on it), the target without the fields its executor does not set.
    assert list(data) == [
        "run_id",
        "executor",
        "command",
        "created_at",
        "updated_at",
        "state",
        "options",
        "target",
        "parent_run",
        "tenants",
        "error",
    ]
    assert isinstance(data["options"], dict)
    assert None not in data["target"].values()


def test_older_options_take_the_defaults_of_their_time() -> None:
    first = RunRecord.from_json(fixture("run-record-2026-11-26.json"))
    # Written before several tenants per task existed: one per task; an int rate reads as float.
    assert first.options == RunOptions(7, 3.0, 100, 900.0, 4, None, 5, 1, True)
    assert first.tenants["acme"].image is None and first.tenants["acme"].tail is None
    assert first.state is RunState.INTERRUPTED and first.error
    bare = RunRecord.from_json(fixture("run-record-no-options.json"))
    assert bare.options is None and bare.target == RunTarget()
    assert json.loads(bare.to_json())["options"] == {}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["options"].update(rate="fast"), "options.rate"),
        (lambda d: d.update(state="paused"), "state"),
        (lambda d: d["tenants"]["acme"].update(attempts="1"), "tenants.acme.attempts"),
        (lambda d: d["tenants"]["acme"].update(tail="rake aborted!"), "tenants.acme.tail"),
        (lambda d: d["target"].update(skipped_current=True), "target.skipped_current"),
        (lambda d: d.pop("run_id"), "run_id is missing"),
        (lambda d: d.update(command="bundle exec rake"), "command"),
    ],
)
def test_a_wrong_type_is_an_error_naming_the_run_and_the_field(change: object, named: str) -> None:
    data = json.loads(fixture("run-record-2026-11.json"))
    change(data)  # type: ignore[operator]
    with pytest.raises(RunRecordError) as raised:
        RunRecord.from_json(json.dumps(data))
    assert named in raised.value.message
    if named != "run_id is missing":
        assert "run record 20261126T060000Z-1a2b3c" in raised.value.message
    assert raised.value.exit_code == ExitCode.FAILED and raised.value.hint


def test_not_json_is_a_record_error() -> None:
    with pytest.raises(RunRecordError, match="not JSON"):
        RunRecord.from_json("{")


def test_unknown_keys_of_a_newer_version_are_ignored() -> None:
    data = json.loads(fixture("run-record-2026-11.json"))
    data["cell"] = "b"
    data["options"]["jitter"] = 0.5
    data["tenants"]["acme"]["region"] = "eu-west-1"
    assert RunRecord.from_json(json.dumps(data)) == RunRecord.from_json(
        fixture("run-record-2026-11.json")
    )


def test_the_codec_round_trips_the_options_and_a_sparse_target() -> None:
    options = RunOptions(3, 1.5, 10, 60.0, max_failures=2)
    assert from_plain(RunOptions, to_plain(options), "x") == options
    target = RunTarget(log_dir="/var/log/runs", fingerprint="sha256:1")
    assert to_plain(target) == {"log_dir": "/var/log/runs", "fingerprint": "sha256:1"}
    assert from_plain(RunTarget, to_plain(target), "x") == target


# -- resuming an older record ---------------------------------------------------------------------
def make_app(env: dict[str, str]) -> Application:
    app = Application(env={**os.environ, **env})
    app.make_clock = lambda cancellation: FakeClock()
    return app


def put_fixture(s3: S3Client, name: str, revision: str | None = None) -> RunRecord:
    """The fixture in the config bucket (its revision replaced by moto's); its tenants seeded."""
    record = RunRecord.from_json(fixture(name))
    if revision is not None:
        record.target = dataclasses.replace(record.target, task_definition=revision)
    s3.put_object(Bucket=BUCKET, Key=f"runs/{record.run_id}.json", Body=record.to_json().encode())
    store = TenantStore(s3, BUCKET)
    for tenant in record.tenants:
        store.create(tenant, parse_tenant(tenant, tenant_yaml(tenant).encode(), tenant))
    return record


def test_resuming_an_older_record_keeps_its_pacing_and_revision(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = create_ecs_target()
    record = put_fixture(s3, "run-record-2026-11-26.json", FAMILY)
    run_id = record.run_id
    plan = run("migrate", "--resume", run_id, "--dry-run", "-O", "json", app=make_app(env))
    assert plan.exit_code == 0, plan.output
    assert plan.json()["pacing"] == {
        "rate": 3.0,
        "burst": 100,
        "concurrency": 7,
        "timeout": 900.0,
        "max_failures": 4,
        "canary": None,
    }
    # The request still overrides what the record kept.
    faster = run(
        "migrate", "--resume", run_id, "--dry-run", "--rate", "9", "-O", "json", app=make_app(env)
    )
    assert faster.json()["pacing"]["rate"] == 9.0
    with moto_ecs_spy(monkeypatch) as spy:
        resumed = run("migrate", "--resume", run_id, "-O", "json", app=make_app(env))
    assert resumed.exit_code == 0, resumed.output
    assert spy.launched == ["globex"]  # acme had succeeded
    assert {d.rsplit("/", 1)[-1] for d in spy.task_definitions} == {f"{FAMILY}:1"}
    assert resumed.json()["summary"] == {"succeeded": 2}
    saved = RunRecord.from_json(
        s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}.json")["Body"].read().decode()
    )
    assert saved.state is RunState.FINISHED and saved.options == record.options


def test_resuming_a_record_without_options_takes_the_settings(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    record = put_fixture(s3, "run-record-no-options.json")
    env = {
        "REDMICA_CONCURRENCY": "3",
        "REDMICA_LAUNCH_RATE": "2",
        "REDMICA_LOCAL_LOG_DIR": str(tmp_path),
    }
    plan = run("migrate", "--resume", record.run_id, "--dry-run", "-O", "json", app=make_app(env))
    assert plan.exit_code == 0, plan.output
    pacing = plan.json()["pacing"]
    assert (pacing["concurrency"], pacing["rate"], pacing["canary"]) == (3, 2.0, None)


def test_a_run_builds_its_ecs_target_once(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = create_ecs_target()
    store = TenantStore(s3, BUCKET)
    for tenant in ("acme", "globex"):
        store.create(tenant, parse_tenant(tenant, tenant_yaml(tenant).encode(), tenant))
    calls: list[str | None] = []
    original = BaseWorkspace.ecs_target

    def counted(self: BaseWorkspace, task_definition: str | None = None) -> object:
        calls.append(task_definition)
        return original(self, task_definition)

    monkeypatch.setattr(BaseWorkspace, "ecs_target", counted)
    with moto_ecs_spy(monkeypatch):
        planned = run("migrate", "--all", "--dry-run", app=make_app(env))
        assert planned.exit_code == 0, planned.output
        assert len(calls) == 1
        launched = run("migrate", "--all", "--no-wait", "-O", "json", app=make_app(env))
        assert launched.exit_code == 0, launched.output
        assert len(calls) == 2
        resumed = run("migrate", "--resume", launched.json()["run_id"], app=make_app(env))
        assert resumed.exit_code == 0, resumed.output
    assert len(calls) == 3  # one per run: the executor is handed the run's target

"""The serving task's memory from the ECS task metadata endpoint v4, served by a local server.

A tiny HTTP server on 127.0.0.1 answers like the ECS agent (`$ECS_CONTAINER_METADATA_URI_V4`
and `.../task`); the fallback to the setting is tested for every way the endpoint can fail.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.container.memory import (
    METADATA_ENV,
    MetadataUnavailable,
    memory_budget,
    memory_from_metadata,
)
from redmica_ops.settings.loading import load_settings
from tests.conftest import Invoke
from tests.test_entrypoint import recording_app, seed, serve_args

APP_ID = "abc123app"


def task_document(task_memory: int | None, sidecar: int | None = 256) -> dict[str, Any]:
    containers: list[dict[str, Any]] = [
        {"DockerId": APP_ID, "Name": "app", "Limits": {"CPU": 2048}},
    ]
    if sidecar is not None:
        containers.append({"DockerId": "f1", "Name": "log-router", "Limits": {"Memory": sidecar}})
    doc: dict[str, Any] = {"Cluster": "c", "Containers": containers}
    if task_memory is not None:
        doc["Limits"] = {"CPU": 2, "Memory": task_memory}
    return doc


class Metadata:
    """What the fake agent answers; `hang` makes it never answer (a timeout)."""

    def __init__(self) -> None:
        self.container: dict[str, Any] = {"DockerId": APP_ID, "Name": "app", "Limits": {}}
        self.task: Any = task_document(4096)
        self.status = 200
        self.hang = threading.Event()
        self.release = threading.Event()


@pytest.fixture
def metadata() -> Iterator[tuple[Metadata, str]]:
    state = Metadata()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if state.hang.is_set():
                state.release.wait(5)
                return
            body = state.task if self.path.endswith("/task") else state.container
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v4/{APP_ID}"
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


def test_task_memory_minus_the_sidecars_limit(metadata: tuple[Metadata, str]) -> None:
    _, url = metadata
    budget = memory_from_metadata(url)
    assert budget.memory_mib == 4096 - 256
    assert budget.source == "ECS task metadata: task 4096 MiB - 256 MiB for log-router"


def test_our_own_container_limit_caps_it(metadata: tuple[Metadata, str]) -> None:
    state, url = metadata
    state.container["Limits"] = {"Memory": 3000}
    budget = memory_from_metadata(url)
    assert budget.memory_mib == 3000
    assert budget.source == "ECS task metadata: container limit 3000 MiB"


def test_without_a_task_limit_the_container_limit_is_used(metadata: tuple[Metadata, str]) -> None:
    state, url = metadata
    state.task = task_document(None)
    state.container["Limits"] = {"Memory": 1536}
    assert memory_from_metadata(url).memory_mib == 1536


@pytest.mark.parametrize(
    ("task", "why"),
    [
        (task_document(None), "has no memory limit"),
        (task_document(256, sidecar=256), "leaves no memory"),
        (b"not json", "did not answer JSON"),
        (b"[1, 2]", "did not answer a JSON object"),
    ],
)
def test_useless_answers_fall_back_to_the_setting(
    metadata: tuple[Metadata, str], task: Any, why: str
) -> None:
    state, url = metadata
    state.task = task
    with pytest.raises(MetadataUnavailable, match=why):
        memory_from_metadata(url)
    settings = load_settings({}, {"REDMICA_SERVE_MEMORY_MIB": "3072"})
    budget = memory_budget(settings, {METADATA_ENV: url})
    assert budget.memory_mib == 3072
    assert budget.source == "setting serve_memory_mib (env REDMICA_SERVE_MEMORY_MIB)"
    assert budget.note is not None and why in budget.note


def test_an_error_status_falls_back(metadata: tuple[Metadata, str]) -> None:
    state, url = metadata
    state.status = 500
    budget = memory_budget(load_settings({}, {}), {METADATA_ENV: url})
    assert budget.memory_mib == 2048  # the default of serve_memory_mib
    assert budget.note is not None and "did not answer (HTTPError)" in budget.note


def test_a_silent_endpoint_times_out_quickly(metadata: tuple[Metadata, str]) -> None:
    state, url = metadata
    state.hang.set()
    with pytest.raises(MetadataUnavailable, match="did not answer"):
        memory_from_metadata(url, timeout=0.2)


def test_a_refused_connection_falls_back() -> None:
    budget = memory_budget(load_settings({}, {}), {METADATA_ENV: "http://127.0.0.1:9/v4/x"})
    assert budget.memory_mib == 2048 and budget.note is not None


def test_outside_ecs_the_setting_is_used_without_a_note() -> None:
    budget = memory_budget(load_settings({}, {}), {})
    assert (budget.memory_mib, budget.note) == (2048, None)
    assert budget.source == "setting serve_memory_mib (default)"


def test_serve_sizes_the_pool_from_the_metadata(
    s3: S3Client, run: Invoke, tmp_path: Path, metadata: tuple[Metadata, str]
) -> None:
    state, url = metadata
    state.task = task_document(8192, sidecar=512)
    seed(run, "acme", "beta")
    target = tmp_path / "tenants.conf"
    app, recorder = recording_app(REDMICA_VHOSTS_FILE=str(target), **{METADATA_ENV: url})
    result = run(*serve_args(tmp_path), app=app)
    assert result.exit_code == 0, result.output
    # (8192 - 512 sidecar - 256 reserve) // 160 = 46
    assert "PassengerMaxPoolSize 46\n" in target.read_text()
    assert "pool 46 processes (derived) from 7680 MiB (ECS task metadata: task 8192 MiB" in (
        result.stderr
    )
    assert recorder.calls


def test_serve_warns_when_explicit_values_cannot_fit(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    seed(run, "acme", "beta", "gamma")
    target = tmp_path / "tenants.conf"
    app, recorder = recording_app(
        REDMICA_VHOSTS_FILE=str(target),
        REDMICA_MAX_POOL_SIZE="40",
        REDMICA_MIN_INSTANCES="20",
    )
    result = run(*serve_args(tmp_path), app=app)
    assert result.exit_code == 0, result.output  # explicit values win: it still serves
    assert "PassengerMaxPoolSize 40\n" in target.read_text()
    # 256 + 40 x 160 = 6656 MiB > 2048
    assert "warning: max_pool_size 40 needs 6656 MiB" in result.stderr
    assert "warning: min_instances 20 x 3 tenants keeps 60 processes warm" in result.stderr
    assert recorder.calls


def test_serve_refuses_a_budget_without_room_and_writes_nothing(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    seed(run, "acme")
    target = tmp_path / "tenants.conf"
    app, recorder = recording_app(REDMICA_VHOSTS_FILE=str(target), REDMICA_SERVE_MEMORY_MIB="300")
    result = run(*serve_args(tmp_path), app=app)
    assert result.exit_code == 2
    assert "holds no Passenger process" in result.stderr
    assert not target.exists() and not recorder.calls

"""A real Ctrl-C (SIGINT) to a running `redmica migrate`, then `--resume`: nothing runs twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import tenant_yaml

pytestmark = pytest.mark.subprocess
REDMICA = str(Path(sys.executable).parent / "redmica")
BUCKET = "redmica-interrupt-test"

# Each "migration" appends a line to <tenant>.runs, then waits (with a deadline) for a go file.
CHILD = (
    "import os, pathlib, time; out = pathlib.Path(os.environ['OUT']);"
    "t = os.environ['REDMICA_TENANT'];"
    "open(out / (t + '.runs'), 'a').write('run\\n');"
    "deadline = time.monotonic() + 60\n"
    "while not (out / 'go').exists() and time.monotonic() < deadline: time.sleep(0.02)"
)


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for name in ("t1", "t2", "t3", "t4", "t5"):
        s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=tenant_yaml(name).encode())
    yield url
    server.stop()


def wait_for(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_ctrl_c_lets_running_migrations_finish_and_resume_does_the_rest(
    endpoint: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "REDMICA_BUCKET": BUCKET,
        "REDMICA_CONCURRENCY": "2",
        "REDMICA_TENANTS_PER_TASK": "1",  # two migrations at once, one per process
        "REDMICA_POLL_INTERVAL": "0.05",
        "REDMICA_LOCAL_ENV": f"OUT={out}",
        "REDMICA_LOCAL_LOG_DIR": str(tmp_path / "logs"),
    }
    command = f'{sys.executable} -c "{CHILD}"'
    process = subprocess.Popen(
        [REDMICA, "migrate", "--all", "--executor", "local", "--command", command, "-O", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr_lines: list[str] = []
    stream = process.stderr
    assert stream is not None
    reader = threading.Thread(
        target=lambda: stderr_lines.extend(iter(stream.readline, "")), daemon=True
    )
    reader.start()

    wait_for(lambda: len(list(out.glob("*.runs"))) == 2, "two migrations to start")
    process.send_signal(signal.SIGINT)
    wait_for(
        lambda: any("no new migrations start" in line for line in stderr_lines),
        "redmica to acknowledge Ctrl-C",
    )
    (out / "go").touch()  # the two running migrations may now finish
    # communicate() and the reader thread share the stderr pipe: keep what each got.
    stdout, rest = process.communicate(timeout=60)
    reader.join(timeout=10)
    stderr_lines.append(rest)

    assert process.returncode == 130, "".join(stderr_lines)
    first = json.loads(stdout)
    assert first["state"] == "interrupted"
    assert first["summary"] == {"not_started": 3, "succeeded": 2}
    assert any("redmica migrate --resume" in line for line in stderr_lines)

    resumed = subprocess.run(
        [REDMICA, "migrate", "--resume", first["run_id"], "-O", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["summary"] == {"succeeded": 5}
    runs = {p.stem: p.read_text().count("run") for p in out.glob("*.runs")}
    assert runs == {"t1": 1, "t2": 1, "t3": 1, "t4": 1, "t5": 1}

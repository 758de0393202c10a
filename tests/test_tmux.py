"""Interactive flows on a real terminal: tmux (Debian's) types, `capture-pane` reads.

`tenant edit` in vi while someone else changes the tenant keeps the operator's edit in a file;
a confirmation prompt answered "n" does nothing and exits 6. Skipped without tmux and vi
(`scripts/install-live-deps.sh` installs both).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import CANARY_PASSWORD, tenant_yaml

pytestmark = pytest.mark.skipif(
    not (shutil.which("tmux") and shutil.which("vi")), reason="needs tmux and vi (apt-get)"
)
BIN = Path(sys.executable).parent


@pytest.fixture
def endpoint() -> Iterator[dict[str, str]]:
    # moto's backends are per process: a bucket of its own for each test.
    bucket = f"redmica-tmux-{uuid.uuid4().hex[:12]}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "REDMICA_BUCKET": bucket,
    }
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    yield env
    server.stop()


class Pane:
    """One tmux session on a private socket, running bash."""

    def __init__(self, socket: Path, env: dict[str, str]) -> None:
        self.socket = str(socket)
        self.env = env
        self._tmux("new-session", "-d", "-x", "200", "-y", "50", "-s", "t", "bash --norc -i")

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", self.socket, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
            check=True,
        )
        return done.stdout

    def type(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-t", "t")

    def wait_for(self, predicate: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + 30
        while True:
            text = self.screen()
            if predicate(text):
                return text
            assert time.monotonic() < deadline, f"waited for {what}; the screen:\n{text}"
            time.sleep(0.05)  # polling a screen with a deadline, not waiting for time to pass

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], env=self.env, check=False)


@pytest.fixture
def pane(tmp_path: Path, endpoint: dict[str, str]) -> Iterator[Pane]:
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TERM": "xterm-256color",
        "TMPDIR": str(tmp_path),
        "EDITOR": "vi -u NONE -n",
        "NO_COLOR": "1",
        **endpoint,
    }
    env.pop("VISUAL", None)
    created = Pane(tmp_path / "tmux.sock", env)
    yield created
    created.close()


def _redmica(env: dict[str, str], *args: str, stdin: str = "") -> None:
    done = subprocess.run(
        [str(BIN / "redmica"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _exit_code(screen: str) -> int | None:
    found = re.search(r"^exit=(\d+)$", screen, re.M)
    return int(found.group(1)) if found else None


def test_edit_with_a_conflict_keeps_the_edit(pane: Pane, endpoint: dict[str, str]) -> None:
    _redmica(endpoint, "tenant", "add", "acme", "-f", "-", stdin=tenant_yaml("acme"))
    pane.type('redmica tenant edit acme; echo "exit=$?"', "Enter")
    pane.wait_for(lambda s: "folder: acme" in s and "# Editing tenant acme" in s, "the editor")
    # Someone else changes the tenant while our editor is open.
    _redmica(endpoint, "tenant", "update", "acme", "-f", "-", stdin=tenant_yaml("acme", db__port=7))
    pane.type(":%s/folder: acme/folder: mine/", "Enter")
    pane.type(":wq", "Enter")
    screen = pane.wait_for(lambda s: _exit_code(s) is not None, "redmica to finish")
    assert _exit_code(screen) == 4
    assert "changed or removed by someone else" in screen
    kept = Path(screen.split("your edit is kept in ", 1)[1].split()[0])
    assert "folder: mine" in kept.read_text() and CANARY_PASSWORD not in kept.read_text()
    assert f"redmica tenant update acme -f {kept}" in screen


def test_a_confirmation_answered_no_does_nothing(pane: Pane, endpoint: dict[str, str]) -> None:
    _redmica(endpoint, "tenant", "add", "acme", "-f", "-", stdin=tenant_yaml("acme"))
    pane.type('redmica tenant remove acme; echo "exit=$?"', "Enter")
    pane.wait_for(
        lambda s: "Remove tenant 'acme' from s3://redmica-tmux-" in s and "? [y/N]:" in s,
        "the prompt",
    )
    pane.type("n", "Enter")
    screen = pane.wait_for(lambda s: _exit_code(s) is not None, "redmica to finish")
    assert _exit_code(screen) == 6
    assert "nothing done: remove tenant 'acme'" in screen and "Aborted" not in screen
    _redmica(endpoint, "tenant", "show", "acme")  # still there

"""config/redmica_boot.rb, the file every tenant's process loads first (setting max_booting):
at most N processes boot at once, the next one waits before loading anything and goes on when
a place is given back. Run with the machine's Ruby on the shipped template; no Redmine needed."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from redmica_ops.container.templates import template_text

RUBY = shutil.which("ruby")
pytestmark = pytest.mark.skipif(RUBY is None, reason="needs ruby")
DEADLINE = 60.0


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An app root with the prelude in config/ and a tmp/, as the image has them."""
    (tmp_path / "config").mkdir()
    (tmp_path / "tmp").mkdir()
    (tmp_path / "config" / "redmica_boot.rb").write_text(template_text("redmine/redmica_boot.rb"))
    return tmp_path


@pytest.fixture
def held_slot(app: Path) -> Iterator[int]:
    """Slot 0 taken by another process (this one): the fd, to give it back with close()."""
    slots = app / "tmp" / "boot-slots"
    slots.mkdir(mode=0o700)
    fd = os.open(slots / "0", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield fd
    finally:
        with contextlib.suppress(OSError):  # the test may have given it back already
            os.close(fd)


def ruby(app: Path, code: str, slots: int) -> subprocess.Popen[str]:
    assert RUBY is not None
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REDMICA_MAX_BOOTING": str(slots)}
    return subprocess.Popen(
        [RUBY, f"-r{app}/config/redmica_boot.rb", "-e", code],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(stream: object, wanted: str) -> list[str]:
    """Lines read from `stream` until one holds `wanted` (in a thread, with a deadline)."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)
            if wanted in line:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert found.wait(DEADLINE), f"no {wanted!r} in {lines}"
    return lines


SHOW_SLOT = "puts File.basename(RedmicaBoot.instance_variable_get(:@slot).path); $stdout.flush"


def test_a_free_place_is_taken_at_once(app: Path, held_slot: int) -> None:
    proc = ruby(app, SHOW_SLOT, slots=2)
    out, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, err
    assert out.strip() == "1"  # slot 0 is held: the process took the other one
    assert "waiting" not in err


def test_the_next_process_waits_until_a_place_is_given_back(app: Path, held_slot: int) -> None:
    proc = ruby(app, SHOW_SLOT, slots=1)
    try:
        wait_for_line(proc.stderr, "waiting for a boot slot")
        assert proc.poll() is None, "it went on while the only place was taken"
        os.close(held_slot)
        out = proc.stdout.read() if proc.stdout else ""
        assert proc.wait(timeout=DEADLINE) == 0
        assert out.strip() == "0"  # the place given back
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_release_gives_the_place_back_while_the_process_runs(app: Path) -> None:
    code = 'RedmicaBoot.release; puts "released"; $stdout.flush; $stdin.read'
    proc = ruby(app, code, slots=1)
    try:
        assert proc.stdout is not None
        wait_for_line(proc.stdout, "released")
        fd = os.open(app / "tmp" / "boot-slots" / "0", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
        finally:
            os.close(fd)
    finally:
        proc.kill()
        proc.wait()


def test_without_max_booting_nothing_is_locked(app: Path) -> None:
    proc = ruby(app, "puts RedmicaBoot.instance_variable_get(:@slot).inspect", slots=0)
    out, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, err
    assert out.strip() == "nil"
    assert not (app / "tmp" / "boot-slots").exists()


def test_the_initializer_gives_the_place_back_once_rails_has_booted() -> None:
    initializer = template_text("redmine/initializers/redmica_ops.rb")
    assert "config.after_initialize { RedmicaBoot.release if defined?(RedmicaBoot) }" in initializer

"""Two real Apache + Passenger instances on this machine acting as two cells.

Each renders its vhosts with `redmica entrypoint serve --cell X` from one (moto) config bucket,
so each serves only its own tenants: a request for the other cell's tenant gets the catch-all
404. Then a tenant is moved with the library's `move_tenant`, whose cell restarts re-render and
restart the real servers: during the move both cells answer for it, never neither, and
afterwards it answers from its new cell only.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from redmica_ops.cells.config import Cell, cell_map
from redmica_ops.cells.move import MoveRequest, move_tenant
from redmica_ops.cli.app import Application
from redmica_ops.cli.main import cli
from redmica_ops.container.apache import ApacheInstall, find_apache
from redmica_ops.container.keys import without_master
from redmica_ops.errors import RedmicaError
from redmica_ops.runs.pacing import FakeClock
from redmica_ops.settings.loading import load_settings
from redmica_ops.tenants.model import parse_tenant
from redmica_ops.tenants.store import TenantStore
from tests.conftest import DEFAULT_DB_HOST, tenant_yaml
from tests.live.server import LiveApache, free_port, make_app

DOMAIN = "cells.test"
BUCKET = "redmica-cells-live"
MASTER = "cells-live-master-secret-0123456789abcdef0123456789"
CELLS = "a=redmica-a,b=redmica-b"
TENANTS = {"alpha": "a", "beta": "b", "gamma": None}  # gamma: no cell = the first (a)


@pytest.fixture(scope="module")
def install() -> ApacheInstall:
    try:
        return find_apache()
    except RedmicaError as error:
        pytest.skip(
            f"Apache + Passenger are not installed here ({error.message}); "
            "`make test` installs them with apt-get"
        )


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="redmica-cells-"))
    root.chmod(0o755)  # Passenger runs the app as www-data
    yield root
    shutil.rmtree(root, ignore_errors=True)


class LiveCells:
    """The two cells: render a cell's vhosts from the bucket and (re)start its Apache."""

    def __init__(self, install: ApacheInstall, workdir: Path, app_root: Path) -> None:
        self.app_root = app_root
        self.servers: dict[str, LiveApache] = {}
        for name in ("a", "b"):
            run = workdir / f"cell-{name}"
            run.mkdir()
            run.chmod(0o755)
            env = without_master({**os.environ, "SECRET_KEY_BASE": MASTER})
            self.servers[name] = LiveApache(install, run, run / "site.conf", free_port(), env=env)

    def render(self, cell: str) -> Any:
        server = self.servers[cell]
        app = Application(
            env={
                **os.environ,
                "SECRET_KEY_BASE": MASTER,
                "REDMICA_BUCKET": BUCKET,
                "REDMICA_DOMAIN": DOMAIN,
                # Module-scoped: set here, not by conftest's per-test environment. A tenant
                # with no database host at all is never served.
                "REDMICA_DB_HOST": DEFAULT_DB_HOST,
                "REDMICA_CELLS": CELLS,
                "REDMICA_APP_ROOT": str(self.app_root),
                "REDMICA_LISTEN_PORT": str(server.port),
                "REDMICA_VHOSTS_FILE": str(server.site_file),
            }
        )
        app.exec_process = lambda argv, environ: None
        result = CliRunner().invoke(
            cli, ["entrypoint", "serve", "--cell", cell, "-O", "json"], obj=app
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    # -- what `tenant move` needs from deployments (cells.move.CellRestarts) -----------------
    def reload(self, cell: Cell) -> tuple[bool, str]:
        self.render(cell.name)
        server = self.servers[cell.name]
        server.stop()
        server.start()
        return True, "restarted"

    def image(self, cell: Cell) -> str | None:
        return "redmica:live"


def status(server: LiveApache, tenant: str) -> tuple[int, str | None]:
    response = server.get(f"{tenant}.{DOMAIN}")
    if response.status != 200:
        return response.status, None
    db = json.loads(response.body)["RAILS_DB"]
    return 200, bytes.fromhex(db).decode()


@pytest.fixture(scope="module")
def cells(install: ApacheInstall, workdir: Path) -> Iterator[LiveCells]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        store = TenantStore(s3, BUCKET)
        for name, cell in TENANTS.items():
            text = tenant_yaml(name, property__limit_ips=None, property__cell=cell)
            store.create(name, parse_tenant(name, text.encode(), name))
        live = LiveCells(install, workdir, make_app(workdir))
        try:
            for name in ("a", "b"):
                assert live.render(name)["cell"] == name
                live.servers[name].start()
            yield live
        finally:
            for server in live.servers.values():
                server.stop()


def test_each_cell_serves_only_its_tenants(cells: LiveCells) -> None:
    a, b = cells.servers["a"], cells.servers["b"]
    assert status(a, "alpha") == (200, "alpha")
    assert status(a, "gamma") == (200, "gamma")
    assert status(b, "beta") == (200, "beta")
    # The other cell's tenant reaches the catch-all: 404, no tenant process.
    assert status(a, "beta") == (404, None)
    assert status(b, "alpha") == (404, None)
    assert status(b, "gamma") == (404, None)


def test_a_moved_tenant_answers_from_its_new_cell(cells: LiveCells) -> None:
    a, b = cells.servers["a"], cells.servers["b"]
    observed: list[tuple[str, tuple[int, str | None], tuple[int, str | None]]] = []

    class Watching:
        """Restart as the real cells do, and look at both after every restart."""

        def reload(self, cell: Cell) -> tuple[bool, str]:
            done = cells.reload(cell)
            observed.append((cell.name, status(a, "alpha"), status(b, "alpha")))
            return done

        def image(self, cell: Cell) -> str | None:
            return cells.image(cell)

    settings = load_settings({}, {"REDMICA_CELLS": CELLS})
    store = TenantStore(boto3.client("s3", region_name="us-east-1"), BUCKET)
    report = move_tenant(
        MoveRequest("alpha", "b", drain_seconds=5),
        store,
        cell_map(settings),
        Watching(),
        None,
        FakeClock(),
    )
    assert report.ok, report.as_dict()
    # After the target restarted both cells answered for it (never neither); after the source
    # restarted only the new cell does.
    assert observed == [
        ("b", (200, "alpha"), (200, "alpha")),
        ("a", (404, None), (200, "alpha")),
    ]
    moved = store.get("alpha").tenant.properties
    assert (moved.cell, moved.moving_from) == ("b", None)
    # The other tenants did not move.
    assert status(a, "gamma") == (200, "gamma") and status(b, "beta") == (200, "beta")

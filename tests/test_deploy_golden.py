"""The single-service deploy verbs' output, byte for byte, against golden transcripts.

`deploy`, `reload`, `rollback`, `release` and `status` without the `cells` setting (the one
implicit cell) are run against moto, in text and in JSON, on their happy paths and their
failures; each transcript (exit code, stdout, stderr) must equal the one recorded in
tests/golden/deploy/ before the verbs went through the fleet's waves (issue #24, WP5). What
moto makes up afresh on every run (times, deployment and task ids, run ids) is numbered in
order of appearance, so the shape of the output is still compared.

Record again (only when a change of output is intended, and say so in the commit):
`REDMICA_GOLDEN_RECORD=1 .venv/bin/pytest tests/test_deploy_golden.py`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto.moto_api._internal import mock_random
from mypy_boto3_s3 import S3Client

from redmica_ops.cli import progress
from redmica_ops.cli.app import Application
from tests.cells_support import add_tenant, cells_app, fail_rollouts, moto_cells
from tests.conftest import CliResult, Invoke
from tests.test_deploy import NEW_IMAGE, app_for, moto_service, release_app, seed_tenants

GOLDEN = Path(__file__).parent / "golden" / "deploy"
RECORD = os.environ.get("REDMICA_GOLDEN_RECORD") == "1"


class FrozenStatusLine(progress.StatusLine):
    """The status line of a log (not a terminal) whose clock never moves: its first state
    line prints, the later ones within the interval do not, however slow the machine is."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: 0.0, live=False)


_VOLATILE = [
    # ISO times (events, deployments, run records), with or without a zone and fractions.
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?"), "TIME"),
    # Run ids: a compact UTC time and a random suffix.
    (re.compile(r"\b\d{8}T\d{6}Z-[0-9a-f]+\b"), "RUN"),
    (re.compile(r"ecs-svc/\d+"), "DEPLOYMENT"),
    (re.compile(r"\b[0-9a-f]{32}\b|\b[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}\b"), "ID"),
]


def normalise(text: str) -> str:
    """Each distinct volatile value becomes KIND-n, n in order of first appearance."""
    for pattern, kind in _VOLATILE:
        seen: dict[str, str] = {}

        def number(match: re.Match[str], seen: dict[str, str] = seen, kind: str = kind) -> str:
            return seen.setdefault(match.group(0), f"<{kind}-{len(seen) + 1}>")

        text = pattern.sub(number, text)
    return text


@dataclass(frozen=True)
class Scenario:
    name: str
    args: tuple[str, ...]
    app: Callable[[], Application] = app_for
    before: Callable[[S3Client, Invoke, pytest.MonkeyPatch], None] | None = None


def _no_service() -> Application:
    app = app_for()
    app.env = {k: v for k, v in app.env.items() if k != "REDMICA_SERVICE"}
    return app


def _absent() -> Application:
    return app_for(REDMICA_SERVICE="absent")


def _deploy_once(s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("deploy", "--image", NEW_IMAGE, "--yes", app=app_for()).exit_code == 0


def _failing(s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    fail_rollouts(monkeypatch, {"redmica"})


def _tenants(s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_tenants(s3, "acme", "beta")


def _failing_gate(s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.ecs_support import moto_ecs_spy

    seed_tenants(s3, "acme", "beta")
    spy = moto_ecs_spy(monkeypatch).__enter__()  # undone with monkeypatch's teardown
    spy.exit_codes = {"beta": 1}


def _invalid_tenant(s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import BUCKET

    seed_tenants(s3, "acme")
    s3.put_object(Bucket=BUCKET, Key="tenants/broken.yaml", Body=b"db: [not, a, mapping]\n")


def _both(name: str, *args: str, **fields: object) -> list[Scenario]:
    return [
        Scenario(f"{name}-text", args, **fields),  # type: ignore[arg-type]
        Scenario(f"{name}-json", (*args, "-O", "json"), **fields),  # type: ignore[arg-type]
    ]


SCENARIOS = [
    *_both("deploy", "deploy", "--image", NEW_IMAGE, "--yes"),
    *_both("deploy-no-wait", "deploy", "--image", NEW_IMAGE, "--yes", "--no-wait"),
    *_both("deploy-failed", "deploy", "--image", NEW_IMAGE, "--yes", before=_failing),
    *_both("deploy-diff", "deploy", "--image", NEW_IMAGE, "--diff"),
    *_both("deploy-diff-error", "deploy", "--image", NEW_IMAGE, "--container", "nope", "--diff"),
    *_both("deploy-bad-image", "deploy", "--image", "redmica", "--yes"),
    *_both("deploy-no-terminal", "deploy", "--image", NEW_IMAGE),
    *_both("deploy-no-service-setting", "deploy", "--image", NEW_IMAGE, "--yes", app=_no_service),
    *_both("deploy-absent-service", "deploy", "--image", NEW_IMAGE, "--yes", app=_absent),
    *_both("reload", "reload", "--yes"),
    *_both("reload-no-wait", "reload", "--no-wait", "--yes"),
    *_both("rollback", "rollback", "--yes", before=_deploy_once),
    *_both("rollback-to", "rollback", "--to", "1", "--yes", before=_deploy_once),
    *_both("rollback-unchanged", "rollback", "--to", "1", "--yes"),
    *_both("rollback-nothing-earlier", "rollback", "--yes"),
    *_both("rollback-to-missing", "rollback", "--to", "9", "--yes"),
    *_both("release", "release", "--image", NEW_IMAGE, "--yes", app=release_app, before=_tenants),
    *_both(
        "release-gate-failed",
        "release",
        "--image",
        NEW_IMAGE,
        "--yes",
        app=release_app,
        before=_failing_gate,
    ),
    *_both(
        "release-invalid-tenant",
        "release",
        "--image",
        NEW_IMAGE,
        "--yes",
        app=release_app,
        before=_invalid_tenant,
    ),
    *_both("status", "status", "--events", "3", before=_deploy_once),
    *_both("status-no-events", "status", "--events", "0"),
    *_both("status-absent-service", "status", app=_absent),
    *_both("reload-absent-service", "reload", "--yes", app=_absent),
    *_both("reload-no-terminal", "reload"),
]


def transcript(args: tuple[str, ...], exit_code: int, stdout: str, stderr: str) -> str:
    return normalise(
        f"$ redmica {' '.join(args)}\nexit {exit_code}\n--- stdout\n{stdout}--- stderr\n{stderr}"
    )


def compare(name: str, args: tuple[str, ...], result: CliResult) -> None:
    got = transcript(args, result.exit_code, result.stdout, result.stderr)
    path = GOLDEN / f"{name}.txt"
    if RECORD:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert got == path.read_text(), f"{name}: output differs from {path}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_single_service_output_is_unchanged(
    scenario: Scenario,
    s3: S3Client,
    run: Invoke,
    moto_rollouts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress, "StatusLine", FrozenStatusLine)
    mock_random.seed(24)  # the service's first deployment id: the width of a table column
    moto_service()
    if scenario.before is not None:
        scenario.before(s3, run, monkeypatch)
    compare(scenario.name, scenario.args, run(*scenario.args, app=scenario.app()))


def _cells_both(name: str, *args: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(f"{name}-text", args), (f"{name}-json", (*args, "-O", "json"))]


CELL_SCENARIOS = [
    *_cells_both("cells-deploy", "deploy", "--image", "redmica:2", "--yes"),
    *_cells_both("cells-reload", "reload", "--yes"),
    *_cells_both("cells-rollback-unchanged", "rollback", "--to", "1", "--yes"),
    *_cells_both("cells-release", "release", "--image", "redmica:2", "--yes"),
    *_cells_both("cells-status", "status", "--events", "0"),
    *_cells_both("cells-deploy-diff", "deploy", "--image", "redmica:2", "--diff"),
    *_cells_both("cells-no-wait", "reload", "--no-wait", "--yes"),
]


@pytest.mark.parametrize(("name", "args"), CELL_SCENARIOS, ids=[n for n, _ in CELL_SCENARIOS])
def test_one_configured_cell_reports_per_cell(
    name: str,
    args: tuple[str, ...],
    s3: S3Client,
    run: Invoke,
    moto_rollouts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the `cells` setting naming one cell, the verbs report the per-cell table."""
    monkeypatch.setattr(progress, "StatusLine", FrozenStatusLine)
    mock_random.seed(24)
    env = moto_cells(("a",))
    if "release" in name:
        add_tenant(run, env, "acme", "--cell", "a")
    compare(name, args, run(*args, app=cells_app(env)))

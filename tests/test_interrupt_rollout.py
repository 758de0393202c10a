"""Ctrl-C during `deploy` and `release` says what goes on and what to do (issue #28, item 6).

The Ctrl-C is injected through the clock (a sleep that raises, as Python does on SIGINT, or
that escalates the cancellation, as `sigint_escalates` does while a release migrates): no
signals, no sleeps.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.cli.app import Application
from redmica_ops.runs.pacing import Cancellation, FakeClock
from redmica_ops.runs.record import TenantRun
from tests.conftest import Invoke
from tests.ecs_support import FakeEcs, MotoServiceDeployments
from tests.test_deploy import NEW_IMAGE, app_for, moto_service, release_app, seed_tenants
from tests.test_fanout import Run, names


class CtrlC(FakeClock):
    """A clock on which the operator presses Ctrl-C during the sleep `when()` picks."""

    def __init__(self, cancellation: Cancellation, when: Callable[[], bool], raises: bool):
        super().__init__()
        self.cancellation = cancellation
        self.when = when
        self.raises = raises
        self.pressed = False

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if not self.pressed and self.when():
            self.pressed = True
            if self.raises:
                raise KeyboardInterrupt
            self.cancellation.escalate()


def with_ctrl_c(app: Application, when: Callable[[], bool], raises: bool) -> Application:
    app.make_clock = lambda cancellation: CtrlC(cancellation, when, raises)
    return app


def test_ctrl_c_during_deploy_says_the_rollout_goes_on_and_how_to_watch_or_stop_it(
    s3: S3Client, run: Invoke, moto_rollouts: MotoServiceDeployments
) -> None:
    moto_service()
    moto_rollouts.outcomes = {NEW_IMAGE: "hang"}
    app = with_ctrl_c(app_for(), lambda: True, raises=True)
    result = run("deploy", "--image", NEW_IMAGE, "--yes", app=app)
    assert result.exit_code == 130, result.output
    assert "the rollout goes on in ECS (service redmica)" in result.stderr
    assert "redmica-app:2" in result.stderr
    assert "watch it with `redmica status`; stop it with `redmica rollback`" in result.stderr
    assert "--to REVISION where ECS cannot say which" in result.stderr
    assert moto_rollouts.deployments[-1].status == "IN_PROGRESS"  # nothing was undone
    as_json = run(
        "deploy",
        "--image",
        NEW_IMAGE,
        "--yes",
        "-O",
        "json",
        app=with_ctrl_c(app_for(), lambda: True, raises=True),
    )
    assert as_json.exit_code == 130 and "goes on in ECS" in as_json.json()["error"]


def test_ctrl_c_while_the_gate_ran_but_every_tenant_migrated_says_so_and_deploys_nothing(
    s3: S3Client,
    run: Invoke,
    moto_rollouts: MotoServiceDeployments,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.ecs_support import moto_ecs_spy

    ecs, first = moto_service()
    seed_tenants(s3, "acme", "beta")
    # The first sleep of the gate's polling comes after both launches.
    app = with_ctrl_c(release_app(), lambda: True, raises=False)
    with moto_ecs_spy(monkeypatch) as spy:
        result = run("release", "--image", NEW_IMAGE, "--yes", app=app)
    assert sorted(spy.launched) == ["acme", "beta"]
    assert result.exit_code == 130, result.output
    assert "interrupted (Ctrl-C) after the migration gate passed: 2 tenant(s): succeeded 2" in (
        result.stderr
    )
    assert "redmica-app:2 is registered but NOT deployed" in result.stderr
    assert f"deploy it with `redmica deploy --image {NEW_IMAGE}`" in result.stderr
    assert "did not pass" not in result.stderr
    service = ecs.describe_services(cluster="prod", services=["redmica"])["services"][0]
    assert service["taskDefinition"] == first
    runs = run("runs", "list", "-O", "json", app=release_app()).json()
    assert runs[0]["state"] == "finished"  # not "interrupted": nothing to --resume


def test_ctrl_c_during_the_release_deploy_names_the_migrations_and_the_next_step(
    s3: S3Client,
    run: Invoke,
    moto_rollouts: MotoServiceDeployments,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.ecs_support import moto_ecs_spy

    moto_service()
    seed_tenants(s3, "acme", "beta")
    moto_rollouts.outcomes = {NEW_IMAGE: "hang"}

    def deploying() -> bool:
        return len(moto_rollouts.deployments) > 1  # the release's deployment has started

    app = with_ctrl_c(release_app(), deploying, raises=False)
    with moto_ecs_spy(monkeypatch):
        result = run("release", "--image", NEW_IMAGE, "--yes", app=app)
    assert result.exit_code == 130, result.output
    assert "the rollout goes on in ECS" in result.stderr
    assert "the migration gate passed: 2 tenant(s): succeeded 2 (run " in result.stderr
    assert "`redmica status`" in result.stderr and "`redmica rollback`" in result.stderr


def test_a_ctrl_c_after_every_tenant_finished_leaves_a_finished_run() -> None:
    """Ctrl-C after the last launch: the running ones finish, nothing is left to --resume."""
    fake = FakeEcs(polls_to_stop=3)
    cancellation = Cancellation()
    launched: list[str] = []

    def on_launch(run: TenantRun) -> None:
        launched.append(run.tenant)
        if len(launched) == 4:
            cancellation.escalate()  # after the last launch

    record = Run(fake, names(4), cancellation=cancellation, on_launch=on_launch).go()
    assert record.summary() == {"succeeded": 4}
    assert record.state == "finished"

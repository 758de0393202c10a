"""`rollback` without --to: the last revision that completed a deployment of the service.

On moto with the service-deployments API simulated as ECS has it (`MotoServiceDeployments`,
tests/ecs_support.py): issue #28's sequence good :2, bad :3 (rolled back by the circuit
breaker), hanging :4 (rolled back on our timeout), good :5; `rollback` then goes to :2, never
to :4 or :3, although both are ACTIVE and newer.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from tests.conftest import Invoke
from tests.ecs_support import MotoServiceDeployments
from tests.test_deploy import app_for, moto_service


def running(ecs: Any) -> str:
    service = ecs.describe_services(cluster="prod", services=["redmica"])["services"][0]
    return str(service["taskDefinition"]).rsplit(":", 1)[1]


def test_good_bad_hang_good_then_rollback_ends_on_the_last_good_revision(
    s3: S3Client, run: Invoke, moto_rollouts: MotoServiceDeployments
) -> None:
    ecs, _ = moto_service()
    moto_rollouts.outcomes = {"redmica:bad": "fail", "redmica:hang": "hang"}
    for image, code, now in (
        ("redmica:good2", 0, "2"),
        ("redmica:bad", 1, "2"),  # :3, rolled back by the circuit breaker
        ("redmica:hang", 1, "2"),  # :4, rolled back when --timeout passed
        ("redmica:good5", 0, "5"),
    ):
        deployed = run("deploy", "--image", image, "--yes", "--timeout", "60", app=app_for())
        assert deployed.exit_code == code, deployed.output
        assert running(ecs) == now, image
    assert [d.status for d in moto_rollouts.deployments] == [
        "SUCCESSFUL",  # :1, the service's first deployment
        "SUCCESSFUL",
        "ROLLBACK_SUCCESSFUL",
        "ROLLBACK_SUCCESSFUL",  # our StopServiceDeployment(ROLLBACK) after the timeout
        "SUCCESSFUL",
    ]
    back = run("rollback", "--yes", app=app_for())
    assert back.exit_code == 0, back.output
    assert running(ecs) == "2"
    assert "redmica-app:2" in back.stderr and "redmica-app:4" not in back.stderr


def test_a_second_rollback_goes_further_back_not_forward(
    s3: S3Client, run: Invoke, moto_rollouts: MotoServiceDeployments
) -> None:
    """After :4 -> :3, :4 is the most recent completed deployment but newer than :3."""
    ecs, _ = moto_service()
    for tag in ("2", "3", "4"):
        assert run("deploy", "--image", f"redmica:{tag}", "--yes", app=app_for()).exit_code == 0
    assert run("rollback", "--yes", app=app_for()).exit_code == 0
    assert running(ecs) == "3"
    assert run("rollback", "--yes", app=app_for()).exit_code == 0
    assert running(ecs) == "2"


def test_nothing_completed_before_is_a_one_line_error_naming_to(
    s3: S3Client, run: Invoke, moto_rollouts: MotoServiceDeployments
) -> None:
    ecs, _ = moto_service()
    moto_rollouts.outcomes = {"redmica:bad": "fail"}
    assert run("deploy", "--image", "redmica:bad", "--yes", app=app_for()).exit_code == 1
    # :2 failed; :1 is the only one that ever completed, and it runs.
    result = run("rollback", "--yes", app=app_for())
    assert result.exit_code == 3, result.output
    assert "no revision of redmica-app older than 1 is known to have completed" in result.stderr
    assert "--to REVISION" in result.stderr and "2, 1" in result.stderr
    assert running(ecs) == "1"


def test_without_the_service_deployments_api_it_asks_for_to(
    s3: S3Client,
    run: Invoke,
    moto_rollouts: MotoServiceDeployments,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ECS endpoint without the API (or a role without ecs:ListServiceDeployments): nothing
    is known to have worked, so nothing is guessed."""
    from moto.core.exceptions import JsonRESTError
    from moto.ecs.responses import EC2ContainerServiceResponse

    def unknown(self: Any) -> Any:
        raise JsonRESTError("UnknownOperationException", "no such operation")

    ecs, _ = moto_service()
    assert run("deploy", "--image", "redmica:2", "--yes", app=app_for()).exit_code == 0
    monkeypatch.setattr(EC2ContainerServiceResponse, "list_service_deployments", unknown)
    result = run("rollback", "--yes", app=app_for())
    assert result.exit_code == 3, result.output
    assert "ECS does not say which revisions of redmica-app completed" in result.stderr
    assert "--to REVISION" in result.stderr
    assert running(ecs) == "2"


def test_with_cells_a_cell_that_cannot_choose_stops_the_rollback_before_any_cell(
    s3: S3Client,
    run: Invoke,
    moto_rollouts: MotoServiceDeployments,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each cell's target is chosen before any cell is rolled back: an ECS without the API, or
    a --to that one cell's family lacks, is exit 3 with the hint, and every cell stays put (the
    sandbox answered exit 1 per cell; `--to 3` rolled cell a back and then failed on b)."""
    from moto.ecs.responses import EC2ContainerServiceResponse

    from tests.cells_support import cells_app, moto_cells
    from tests.test_cells_waves import revisions

    env = moto_cells(("a", "b", "c"))
    for tag in ("2", "3"):
        deployed = run("deploy", "--image", f"redmica:{tag}", "--yes", app=cells_app(env))
        assert deployed.exit_code == 0, deployed.output
    before = revisions()
    ecs = boto3.client("ecs", region_name="us-east-1")
    ecs.deregister_task_definition(taskDefinition="redmica-b:2")  # b lacks what --to 2 names
    refused = run("rollback", "--cell", "b", "--to", "2", "--yes", app=cells_app(env))
    assert refused.exit_code == 3, refused.output
    assert revisions() == before
    monkeypatch.setattr(EC2ContainerServiceResponse, "list_service_deployments", unknown_op)
    result = run("rollback", "--yes", app=cells_app(env))
    assert result.exit_code == 3, result.output
    assert "--to REVISION" in result.stderr
    assert revisions() == before


def unknown_op(self: Any) -> Any:
    from moto.core.exceptions import JsonRESTError

    raise JsonRESTError("UnknownOperationException", "no such operation")


def test_one_to_for_several_cells_is_refused_before_any_cell_is_touched(
    s3: S3Client, run: Invoke, moto_rollouts: MotoServiceDeployments
) -> None:
    """Each cell's service has its own family: a trial's `rollback --to 1` moved only the
    cells whose :1 differed from what they ran and said every cell succeeded. One --to for
    several cells is a usage error (exit 2) with the per-cell way; one cell still takes it."""
    from tests.cells_support import cells_app, moto_cells
    from tests.test_cells_waves import revisions

    env = moto_cells(("a", "b"))
    deployed = run("deploy", "--image", "redmica:2", "--yes", app=cells_app(env))
    assert deployed.exit_code == 0, deployed.output
    before = revisions()
    for args in (("--to", "1"), ("--cell", "a", "--cell", "b", "--to", "1")):
        refused = run("rollback", *args, "--yes", app=cells_app(env))
        assert refused.exit_code == 2, refused.output
        assert "acts on 2 cells (a, b)" in refused.stderr
        assert "redmica rollback --cell NAME --to REVISION" in refused.stderr
        assert revisions() == before
    one = run("rollback", "--cell", "a", "--to", "1", "--yes", app=cells_app(env))
    assert one.exit_code == 0, one.output
    after = revisions()
    assert after != before and {k: v for k, v in after.items() if k != "a"} == {
        k: v for k, v in before.items() if k != "a"
    }


def test_the_help_says_which_revision_rollback_goes_to(run: Invoke) -> None:
    """Not "the previous revision" (a trial read it as one back): the last that completed a
    deployment, exit 3 where ECS cannot say."""
    import re

    result = run("rollback", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "previous" not in text
    assert "default: the last revision that completed a deployment of the service" in text
    assert "exit 3 where ECS cannot say" in text
    listed = " ".join(run("--help").output.split())
    assert re.search(r"rollback +Roll the service back to the revision that last", listed)

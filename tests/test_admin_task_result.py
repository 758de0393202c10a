"""An admin task that stops without writing its result: the error says what that means and
where to look (issue #28, item 7: "stopped (exit 0, no reason) without writing its result")."""

from __future__ import annotations

from typing import Any, cast

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.errors import OperationFailed
from redmica_ops.lifecycle.steps import EcsRunner, Step
from redmica_ops.runs.executors.ecs import EcsTarget
from redmica_ops.runs.pacing import FakeClock
from tests.conftest import BUCKET

TASK = "arn:aws:ecs:us-east-1:123456789012:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
ADMIN_DEFINITION = "arn:aws:ecs:us-east-1:123456789012:task-definition/admin:3"


class StoppedAdminTask:
    """ECS as the operator's runner sees it: the admin task stopped with `exit_code`."""

    def __init__(self, exit_code: int) -> None:
        self.exit_code = exit_code

    def describe_tasks(self, cluster: str, tasks: list[str], **_: Any) -> dict[str, Any]:
        return {
            "tasks": [
                {
                    "taskArn": TASK,
                    "taskDefinitionArn": ADMIN_DEFINITION,
                    "lastStatus": "STOPPED",
                    "stopCode": "EssentialContainerExited",
                    "containers": [{"name": "app", "exitCode": self.exit_code}],
                }
            ],
            "failures": [],
        }

    def describe_task_definition(self, taskDefinition: str) -> dict[str, Any]:
        log = {
            "logDriver": "awslogs",
            "options": {"awslogs-group": "/redmica/admin", "awslogs-stream-prefix": "admin"},
        }
        return {
            "taskDefinition": {
                "containerDefinitions": [
                    {"name": "log_router", "image": "fluent-bit:1"},
                    {"name": "app", "image": "redmica:1", "logConfiguration": log},
                ]
            }
        }


class Launcher:
    def launch(self, request_id: str) -> str:
        return TASK


def runner(s3: S3Client, exit_code: int) -> EcsRunner:
    return EcsRunner(
        cast("Any", StoppedAdminTask(exit_code)),
        s3,
        Launcher(),
        EcsTarget("prod", "admin", "app"),
        BUCKET,
        "lifecycle/",
        FakeClock(),
        poll_interval=1,
    )


def test_exit_0_without_a_result_says_what_it_means_and_where_to_look(s3: S3Client) -> None:
    with pytest.raises(OperationFailed) as caught:
        runner(s3, 0).run(Step("backup", "acme", {"reason": "test"}))
    error = caught.value
    assert "stopped (exit 0, no reason) without writing its result to s3://" in error.message
    assert f"{BUCKET}/lifecycle/results/" in error.message
    assert "it ran without redmica's lifecycle entrypoint (`entrypoint admin-sql`" in error.message
    assert "or it could not write to the bucket" in error.message
    hint = str(error.hint)
    stream = "admin/app/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert f"CloudWatch Logs group /redmica/admin, stream {stream}" in hint
    assert f"aws logs tail /redmica/admin --log-stream-names {stream}" in hint
    assert f"s3:PutObject on s3://{BUCKET}/lifecycle/results/*" in hint


def test_a_failing_exit_without_a_result_still_names_the_log(s3: S3Client) -> None:
    with pytest.raises(OperationFailed) as caught:
        runner(s3, 1).run(Step("backup", "acme", {"reason": "test"}))
    assert "stopped (exit 1, no reason)" in caught.value.message
    assert "lifecycle entrypoint" not in caught.value.message  # it ran something that failed
    assert "stream admin/app/" in str(caught.value.hint)

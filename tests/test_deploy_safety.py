"""Safe deploys: a diff before anything is registered (exit 0/1/2 for CI gates), image
references checked, a rollback to a revision that does not exist says which ones do, and a
missing cluster or service is "not found" (tests/test_iam_scope.py), all against moto."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.deploy.model import ServiceTarget, check_image_reference
from redmica_ops.deploy.plan import compare
from redmica_ops.deploy.rollout import ServiceDeployer, roll_out
from redmica_ops.runs.pacing import FakeClock
from tests.conftest import Invoke
from tests.ecs_support import FakeService
from tests.test_deploy import NEW_IMAGE, app_for, moto_service


@pytest.mark.parametrize(
    "image",
    [
        "redmica:1",
        "registry.example.com/redmica:v6",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/redmica:2026.11.26",
        "localhost:5000/team/redmica_app:1.0-rc.1",
        "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
        "redmica@sha256:" + "a" * 64,
        "ghcr.io/acme/redmica:v6@sha256:" + "0" * 64,
    ],
)
def test_image_references_that_are_accepted(image: str) -> None:
    assert check_image_reference(image) is None


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("", "is not a container image reference"),
        (" ", "is not a container image reference"),
        ("Redmica:1", "is not a container image reference"),  # repositories are lower case
        ("redmica:1 --privileged", "is not a container image reference"),
        ("redmica:", "is not a container image reference"),
        ("redmica:1\nx", "is not a container image reference"),
        ("redmica@sha256:abc", "is not a container image reference"),
        ("redmica", "has no tag or digest"),
        ("registry.example.com:5000/redmica", "has no tag or digest"),
    ],
)
def test_image_references_that_are_refused(image: str, words: str) -> None:
    problem = check_image_reference(image)
    assert problem is not None and words in problem


def task_definition_count() -> int:
    ecs = boto3.client("ecs", region_name="us-east-1")
    return len(ecs.list_task_definitions(familyPrefix="redmica-app")["taskDefinitionArns"])


def test_an_empty_image_is_refused_and_nothing_registered(s3: S3Client, run: Invoke) -> None:
    moto_service()
    result = run("deploy", "--image", "", app=app_for())
    assert result.exit_code == 2
    assert "--image '' is not a container image reference" in result.stderr
    assert task_definition_count() == 1


def test_diff_shows_the_change_and_registers_nothing(s3: S3Client, run: Invoke) -> None:
    ecs, current = moto_service()
    result = run("deploy", "--image", NEW_IMAGE, "--diff", "-O", "json", app=app_for())
    assert result.exit_code == 1, result.output
    data = result.json()
    assert data["changed"] and data["task_definition"] == current
    assert data["changes"] == [
        {"path": "containers[app].image", "old": "redmica:1", "new": NEW_IMAGE}
    ]
    text = run("deploy", "--image", NEW_IMAGE, "--dry-run", app=app_for())
    assert text.exit_code == 1
    assert f"~ containers[app].image: redmica:1 -> {NEW_IMAGE}" in text.stdout
    assert task_definition_count() == 1
    service = ecs.describe_services(cluster="prod", services=["redmica"])["services"][0]
    assert service["taskDefinition"] == current and len(service["deployments"]) == 1


def test_diff_without_a_change_exits_0(s3: S3Client, run: Invoke) -> None:
    moto_service()
    result = run("deploy", "--image", "redmica:1", "--diff", app=app_for())
    assert result.exit_code == 0, result.output
    assert "no change" in result.stdout


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--image", "redmica"], {}),  # no tag
        (["--image", NEW_IMAGE, "--container", "nope"], {}),  # no such container
        (["--image", NEW_IMAGE], {"REDMICA_SERVICE": "absent"}),  # not found is still 2
    ],
)
def test_diff_errors_exit_2(
    s3: S3Client, run: Invoke, args: list[str], env: dict[str, str]
) -> None:
    moto_service()
    result = run("deploy", *args, "--diff", app=app_for(**env))
    assert result.exit_code == 2, result.output
    assert task_definition_count() == 1


def test_the_diff_hides_secret_looking_environment_values() -> None:
    old = {
        "containerDefinitions": [
            {"name": "app", "environment": [{"name": "DB_PASSWORD", "value": "a"}]}
        ]
    }
    new = {
        "containerDefinitions": [
            {
                "name": "app",
                "environment": [
                    {"name": "DB_PASSWORD", "value": "b"},
                    {"name": "MODE", "value": "x"},
                ],
            }
        ]
    }
    lines = [c.line() for c in compare(old, new)]
    assert lines == [
        "~ containers[app].environment.DB_PASSWORD: (set) -> (changed)",
        "+ containers[app].environment.MODE: x",
    ]


def test_rollback_to_a_missing_revision_lists_the_real_ones(s3: S3Client, run: Invoke) -> None:
    moto_service()
    result = run("rollback", "--to", "99", "--yes", app=app_for())
    assert result.exit_code == 3, result.output
    assert "revision redmica-app:99 does not exist" in result.stderr
    assert "active revisions of redmica-app: 1" in result.stderr


# -- the service-deployments API, where ECS has it ------------------------------------------------

OLD = "arn:aws:ecs:us-east-1:1:task-definition/redmica-app:5"
SD_ARN = "arn:aws:ecs:us-east-1:1:service-deployment/c/redmica/abc"


@dataclass
class FakeWithServiceDeployments(FakeService):
    """FakeService plus ListServiceDeployments/DescribeServiceDeployments/StopServiceDeployment."""

    sd_status: str = "IN_PROGRESS"
    stops: list[dict[str, Any]] = field(default_factory=list)

    def list_service_deployments(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["createdAt"]["after"] is not None
        return {"serviceDeployments": [{"serviceDeploymentArn": SD_ARN}] if self.updates else []}

    def describe_service_deployments(self, serviceDeploymentArns: list[str]) -> dict[str, Any]:
        assert len(serviceDeploymentArns) <= 20
        return {
            "serviceDeployments": [
                {"serviceDeploymentArn": SD_ARN, "status": self.sd_status, "createdAt": "2026"}
            ]
        }

    def stop_service_deployment(self, **kwargs: Any) -> dict[str, Any]:
        self.stops.append(kwargs)
        self.sd_status = "ROLLBACK_IN_PROGRESS"
        # ECS brings the previous revision back as the primary deployment.
        for deployment in self.deployments:
            deployment["status"] = "ACTIVE"
        back = self._deployment(OLD, "PRIMARY", "COMPLETED", running=self.desired)
        self.deployments[:] = [back]
        return {"serviceDeploymentArn": kwargs["serviceDeploymentArn"]}


def deployer_of(fake: FakeService) -> ServiceDeployer:
    return ServiceDeployer(cast("Any", fake), ServiceTarget("c", "redmica"), FakeClock())


def test_a_rollback_state_fails_the_rollout_before_the_list_shows_it() -> None:
    def script(service: FakeService, ours: dict[str, Any], poll: int) -> None:
        if poll == 2:  # the deployment list still says IN_PROGRESS here
            cast(FakeWithServiceDeployments, service).sd_status = "ROLLBACK_IN_PROGRESS"
        if poll == 4:  # later ECS shows the old revision as primary again
            cast(FakeWithServiceDeployments, service).stop_service_deployment(
                serviceDeploymentArn=SD_ARN
            )

    fake = FakeWithServiceDeployments(script=script)
    d = deployer_of(fake)
    new, _ = d.register_with_image(OLD, "app", NEW_IMAGE)
    report = roll_out(d, "deploy", new, OLD, timeout=600, rollback=False)
    assert not report.ok
    # Decided by the service-deployments API (the list would have said "went back to").
    assert "ECS service deployment" in report.reason and "ROLLBACK_IN_PROGRESS" in report.reason
    assert report.rolled_back_to == OLD and report.rollback_result == "succeeded"
    assert len(fake.updates) == 1  # ECS's breaker rolled back; we did not update again


def test_a_timed_out_rollout_is_stopped_with_rollback_by_ecs() -> None:
    fake = FakeWithServiceDeployments(script=None)  # never finishes
    d = deployer_of(fake)
    new, _ = d.register_with_image(OLD, "app", NEW_IMAGE)
    report = roll_out(d, "deploy", new, OLD, timeout=60)
    assert not report.ok and report.result == "timed_out"
    assert fake.stops == [{"serviceDeploymentArn": SD_ARN, "stopType": "ROLLBACK"}]
    assert len(fake.updates) == 1  # no UpdateService back to the old revision: ECS did it
    assert report.rolled_back_to == OLD and report.rollback_result == "succeeded"


def test_without_the_api_the_deployment_list_decides() -> None:
    fake = FakeService(script=None)
    d = deployer_of(fake)
    new, _ = d.register_with_image(OLD, "app", NEW_IMAGE)
    report = roll_out(d, "deploy", new, OLD, timeout=60)
    assert report.result == "timed_out"
    assert [u.get("taskDefinition") for u in fake.updates] == [new, OLD]  # our own rollback


def test_status_lists_service_deployments_when_ecs_has_them() -> None:
    from redmica_ops.cells.fleet import Fleet
    from redmica_ops.deploy import status
    from redmica_ops.settings import Settings

    class Workspace:
        settings = Settings(cluster="c", service="redmica")

        def ecs(self) -> Any:
            fake = FakeWithServiceDeployments(sd_status="ROLLBACK_SUCCESSFUL")
            fake.updates.append({"id": "x"})  # it lists only after an update
            return fake

        def clock(self) -> FakeClock:
            return FakeClock()

        def message(self, text: str) -> None:
            pass

        def status(self, text: str) -> None:
            pass

        def fleet(self) -> Fleet:
            return Fleet(self.settings, self.ecs(), self.clock(), status=self.status)

    result = status.run(status.StatusRequest(), cast("Any", Workspace())).cells[0].service
    assert result.service_deployments == [(SD_ARN, "ROLLBACK_SUCCESSFUL")]
    plain = status.ServiceStatus(None, None, None, None, None, None)
    assert plain.as_dict()["service_deployments"] is None


# -- with cells, and the other verbs that register an image ---------------------------------------


def test_diff_across_cells_shows_each_cell_and_registers_nothing(s3: S3Client, run: Invoke) -> None:
    from tests.cells_support import cells_app, moto_cells

    env = moto_cells(("a", "b"))
    ecs = boto3.client("ecs", region_name="us-east-1")

    def registered() -> int:
        return sum(
            len(ecs.list_task_definitions(familyPrefix=f"redmica-{n}")["taskDefinitionArns"])
            for n in "ab"
        )

    result = run(
        "deploy", "--image", NEW_IMAGE, "--diff", "--cell", "b", "-O", "json", app=cells_app(env)
    )
    assert result.exit_code == 1, result.output
    data = result.json()
    assert [c["cell"] for c in data["cells"]] == ["b"] and data["changed"]
    assert data["cells"][0]["changes"] == [
        {"path": "containers[app].image", "old": "redmica:1", "new": NEW_IMAGE}
    ]
    every = run("deploy", "--image", NEW_IMAGE, "--dry-run", app=cells_app(env))
    assert every.exit_code == 1, every.output
    assert "cell a: task definition redmica-a:1 -> new revision" in every.stdout
    assert "cell b: task definition redmica-b:1 -> new revision" in every.stdout
    same = run("deploy", "--image", "redmica:1", "--diff", app=cells_app(env))
    assert same.exit_code == 0, same.output
    assert same.stdout.count("no change") == 2
    unknown = run("deploy", "--image", NEW_IMAGE, "--diff", "--cell", "z", app=cells_app(env))
    assert unknown.exit_code == 2 and "no cell 'z'" in unknown.stderr
    assert registered() == 2


@pytest.mark.parametrize("verb", ["deploy", "release"])
def test_a_bad_image_is_refused_before_the_question_in_cells_too(
    s3: S3Client, run: Invoke, verb: str
) -> None:
    from tests.cells_support import cells_app, moto_cells

    env = moto_cells(("a", "b"))
    # No --yes and no terminal: reaching the question would be a different error.
    result = run(verb, "--image", "redmica", app=cells_app(env))
    assert result.exit_code == 2, result.output
    assert "--image 'redmica' has no tag or digest" in result.stderr
    assert "confirmation" not in result.stderr
    ecs = boto3.client("ecs", region_name="us-east-1")
    assert len(ecs.list_task_definitions(familyPrefix="redmica-a")["taskDefinitionArns"]) == 1


def test_the_library_refuses_a_bad_image_wherever_a_revision_is_registered() -> None:
    from redmica_ops.deploy.model import clone_with_image
    from redmica_ops.errors import UsageError

    definition: Any = {"family": "f", "containerDefinitions": [{"name": "app", "image": "a:1"}]}
    with pytest.raises(UsageError, match="is not a container image reference"):
        clone_with_image(definition, "app", "")
    assert clone_with_image(definition, "app", "a:2")["containerDefinitions"] == [
        {"name": "app", "image": "a:2"}
    ]


def _terminal_app() -> tuple[Any, list[str]]:
    """An app on a terminal that records each question (and would answer yes)."""
    app = app_for()
    asked: list[str] = []
    app.interactive = lambda: True

    def ask(question: str) -> bool:
        asked.append(question)
        return True

    app.ask = ask
    return app, asked


def _service_revision() -> str:
    ecs = boto3.client("ecs", region_name="us-east-1")
    return ecs.describe_services(cluster="prod", services=["redmica"])["services"][0][
        "taskDefinition"
    ]


def test_a_missing_revision_is_said_before_the_question(s3: S3Client, run: Invoke) -> None:
    moto_service()
    app, asked = _terminal_app()
    result = run("rollback", "--to", "99", app=app)
    assert result.exit_code == 3, result.output
    assert asked == []
    assert "active revisions of redmica-app: 1" in result.stderr


@pytest.mark.parametrize("to", ["", " ", "abc", "-1", "0", "redmica-app:", ":3", "1.5"])
def test_a_malformed_rollback_to_is_a_usage_error_with_a_hint(
    s3: S3Client, run: Invoke, to: str
) -> None:
    moto_service()
    before = _service_revision()
    app, asked = _terminal_app()
    result = run("rollback", "--to", to, app=app)
    assert result.exit_code == 2, result.output
    assert "is not a revision number, family:revision or task definition ARN" in result.stderr
    assert "hint: e.g. --to 41" in result.stderr
    assert asked == [] and _service_revision() == before


@pytest.mark.parametrize("command", ["deploy", "release"])
def test_an_empty_container_is_a_usage_error(s3: S3Client, run: Invoke, command: str) -> None:
    moto_service()
    before = _service_revision(), task_definition_count()
    result = run(command, "--image", NEW_IMAGE, "--container", "", "--yes", app=app_for())
    assert result.exit_code == 2, result.output
    assert "--container is empty" in result.stderr and "REDMICA_CONTAINER" in result.stderr
    assert (_service_revision(), task_definition_count()) == before
    diff = run("deploy", "--image", NEW_IMAGE, "--container", "", "--diff", app=app_for())
    assert diff.exit_code == 2, diff.output


def test_a_very_long_image_keeps_its_closing_quote_in_the_error(s3: S3Client, run: Invoke) -> None:
    moto_service()
    image = "registry.example.com/" + "x" * 300 + ":v1 bad"
    result = run("deploy", "--image", image, "--yes", app=app_for())
    assert result.exit_code == 2, result.output
    assert "...' is not a container image reference" in result.stderr


def test_rollback_to_an_existing_revision_asks_naming_it_and_no_changes_nothing(
    s3: S3Client, run: Invoke
) -> None:
    moto_service()
    before = _service_revision()
    app, asked = _terminal_app()
    app.ask = lambda question: asked.append(question) or False  # type: ignore[func-returns-value]
    result = run("rollback", "--to", "1", app=app)
    assert result.exit_code == 6, result.output
    assert asked == ["Roll service redmica in cluster prod back to revision redmica-app:1?"]
    assert _service_revision() == before
    refused = run("rollback", "--to", "1", app=app_for())  # no terminal: refused, nothing read
    assert refused.exit_code == 2 and "hint: add --yes" in refused.stderr

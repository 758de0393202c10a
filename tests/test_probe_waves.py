"""The site probe as the wave gate (issue #26), on moto in-process with the sites served by a
real HTTP server on 127.0.0.1 (`--probe-base-url`): a wave whose sites fail stops the release,
its cells go back with every cell already changed, later waves are untouched, exit 1, and the
report names the failed tenant."""

from __future__ import annotations

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from tests.cells_support import DOMAIN, add_tenant, cells_app, moto_cells
from tests.conftest import BUCKET, Invoke
from tests.probe_support import Reply, Sites, serve
from tests.test_cells_waves import revisions
from tests.test_deploy import app_for, moto_service, seed_tenants


def sites_of(*names: str, failing: str | None = None) -> Sites:
    sites = Sites({f"{name}.{DOMAIN}": Reply() for name in names})
    if failing:
        sites.replies[f"{failing}.{DOMAIN}"] = Reply(500, body="We're sorry")
    return sites


def gated(verb: str, base: str) -> list[str]:
    """`deploy`/`release` of redmica:2 with the probe (no failed site allowed) against `base`."""
    probe = ["--max-probe-failures", "0", "--probe-base-url", base]
    return [verb, "--image", "redmica:2", "--yes", *probe]


def probe_keys(s3: S3Client) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/probes/").get("Contents", [])
    return [obj["Key"] for obj in listed]


def test_a_release_whose_second_wave_has_a_failing_site_stops_and_rolls_back(
    s3: S3Client, run: Invoke, moto_rollouts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.ecs_support import moto_ecs_spy

    env = moto_cells()
    for name, cell in (("t1", "a"), ("t2", "b"), ("t3", "c")):
        add_tenant(run, env, name, "--cell", cell)
    sites = sites_of("t1", "t2", "t3", failing="t2")
    with serve(sites) as base, moto_ecs_spy(monkeypatch) as spy:
        result = run(*gated("release", base), "-O", "json", app=cells_app(env))
    assert result.exit_code == 1, result.output
    report = result.json()
    assert report["ok"] is False and report["stopped_after_wave"] == 2
    by_cell = {c["cell"]: c for c in report["cells"]}
    # Wave 1 (the canary) passed its probe; wave 2's cell was deployed, its site failed.
    assert by_cell["a"]["probe"]["ok"] is True
    assert by_cell["b"]["probe"]["failed"] == ["t2"]
    assert by_cell["b"]["detail"].startswith("deployed, but its sites failed the probe: t2")
    assert "failed: t2 (at most 0 allowed)" in by_cell["b"]["probe"]["summary"]
    # The failed wave went back explicitly (its own rollout had succeeded), and so did the
    # canary, as after a failed deployment.
    assert by_cell["b"]["status"] == "rolled_back" and by_cell["b"]["undo"] == "succeeded"
    assert by_cell["a"]["status"] == "rolled_back" and by_cell["a"]["undo"] == "succeeded"
    # The third wave was never started: not migrated, not registered, not probed.
    assert by_cell["c"]["status"] == "not_started" and by_cell["c"]["probe"] is None
    assert spy.launched == ["t1", "t2"]
    assert revisions() == {"a": "redmica-a:1", "b": "redmica-b:1", "c": "redmica-c:1"}
    # Each wave's sites probed once, after its deploy, with the tenant's host.
    assert [host for host, _, _ in sites.seen] == [f"t1.{DOMAIN}", f"t2.{DOMAIN}"]
    assert len(probe_keys(s3)) == 2
    assert "the probe failed" in result.stderr and "t2" in result.stderr


def test_the_text_report_names_the_failed_tenant(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    env = moto_cells()
    for name, cell in (("t1", "a"), ("t2", "b")):
        add_tenant(run, env, name, "--cell", cell)
    with serve(sites_of("t1", "t2", failing="t1")) as base:
        result = run(*gated("deploy", base), app=cells_app(env))
    assert result.exit_code == 1, result.output
    assert "FAILED in wave 1" in result.stderr
    assert "its sites failed the probe: t1" in result.stdout
    assert revisions() == {"a": "redmica-a:1", "b": "redmica-b:1", "c": "redmica-c:1"}


def test_a_budget_tolerates_failed_sites_and_every_wave_goes_on(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    """The setting max_probe_failures turns the probe on; one failed site within a budget of 1
    lets every wave go on."""
    env = {**moto_cells(), "REDMICA_MAX_PROBE_FAILURES": "1"}
    for name, cell in (("t1", "a"), ("t2", "b"), ("t3", "c")):
        add_tenant(run, env, name, "--cell", cell)
    sites = sites_of("t1", "t2", "t3", failing="t3")
    with serve(sites) as base:
        args = ("deploy", "--image", "redmica:2", "--yes", "--probe-base-url", base)
        result = run(*args, "-O", "json", app=cells_app(env))
        off = run(*args[:4], "--yes", "--no-probe", "-O", "json", app=cells_app(env))
    assert result.exit_code == 0, result.output
    assert [c["status"] for c in result.json()["cells"]] == ["succeeded"] * 3
    assert result.json()["cells"][2]["probe"]["failed"] == ["t3"]
    assert off.exit_code == 0 and all(c["probe"] is None for c in off.json()["cells"])
    assert len(sites.seen) == 3  # --no-probe asked no site
    assert revisions() == {"a": "redmica-a:3", "b": "redmica-b:3", "c": "redmica-c:3"}


def test_the_single_service_is_rolled_back_when_its_sites_fail(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    ecs, old = moto_service()
    seed_tenants(s3, "acme", "beta")
    with serve(sites_of("acme", "beta", failing="beta")) as base:
        result = run("--domain", DOMAIN, *gated("deploy", base), app=app_for())
    assert result.exit_code == 1, result.output
    assert "error: the site probe failed" in result.stderr and "failed: beta" in result.stderr
    assert "rolled back to redmica-app:1" in result.stderr
    service = ecs.describe_services(cluster="prod", services=["redmica"])["services"][0]
    assert service["taskDefinition"] == old


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--max-probe-failures", "-1"), "--max-probe-failures -1 must not be negative"),
        # The message names the option as the command spells it, not probe's --path.
        (("--max-probe-failures", "0", "--probe-path", "login"), "--probe-path 'login' is not"),
        (("--max-probe-failures", "0", "--probe-base-url", "ftp://x"), "--probe-base-url 'ftp"),
        (("--max-probe-failures", "0", "--probe-base-url", "http://x/a"), "with --probe-path)"),
        (("--max-probe-failures", "0", "--no-probe"), "not both"),
        (("--max-probe-failures", "0", "--cell", "zz"), "there is no cell 'zz'"),
    ],
)
def test_bad_probe_options_exit_2_before_anything_is_deployed(
    s3: S3Client,
    run: Invoke,
    moto_rollouts: None,
    flags: tuple[str, ...],
    message: str,
) -> None:
    env = moto_cells()
    for verb in ("deploy", "release"):
        result = run(verb, "--image", "redmica:2", "--yes", *flags, app=cells_app(env))
        assert result.exit_code == 2, result.output
        assert message in result.stderr
    assert revisions() == {"a": "redmica-a:1", "b": "redmica-b:1", "c": "redmica-c:1"}
    assert probe_keys(s3) == []
    ecs = boto3.client("ecs", region_name="us-east-1")
    assert len(ecs.list_task_definitions(familyPrefix="redmica-a")["taskDefinitionArns"]) == 1

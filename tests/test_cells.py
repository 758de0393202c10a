"""Cells under moto: placement, routing kept in step with the registry, moves, serve --cell."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import boto3
import pytest
import yaml
from mypy_boto3_route53 import Route53Client
from mypy_boto3_route53.literals import ChangeActionType
from mypy_boto3_route53.type_defs import ChangeTypeDef
from mypy_boto3_s3 import S3Client

from tests.cells_support import DOMAIN, cells_app, moto_cells, routed
from tests.cells_support import add_tenant as add
from tests.conftest import BUCKET, Invoke, tenant_yaml


def cells_of(s3: S3Client) -> dict[str, str | None]:
    found = {}
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="tenants/").get("Contents", []):
        if item["Key"].startswith(("tenants/_claims/", "tenants/_incarnations/")):  # not documents
            continue
        body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        doc = yaml.safe_load(body)
        found[item["Key"].removeprefix("tenants/").removesuffix(".yaml")] = doc["property"].get(
            "cell"
        )
    return found


def expected_routes(s3: S3Client) -> dict[str, str]:
    return {f"{t}.{DOMAIN}": cell or "a" for t, cell in cells_of(s3).items()}


def test_add_places_in_the_roomiest_cell_and_routes_it(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    env = moto_cells()
    for name in ("t1", "t2", "t3", "t4"):
        add(run, env, name)
    # Equal room: the earlier cell wins, so the fleet fills evenly and predictably.
    assert cells_of(s3) == {"t1": "a", "t2": "b", "t3": "c", "t4": "a"}
    add(run, env, "t5", "--cell", "c")
    assert cells_of(s3)["t5"] == "c"
    zone = env["REDMICA_HOSTED_ZONE_ID"]
    assert routed(zone) == expected_routes(s3)
    listing = run("cells", "list", "-O", "json", app=cells_app(env)).json()
    # 1024 MiB tasks: (1024 - 256 reserve) // 160 MiB = 4 processes; at 10% active, 40 tenants.
    assert [(c["cell"], c["tenants"], c["capacity"], c["room"]) for c in listing] == [
        ("a", 2, 40, 38),
        ("b", 1, 40, 39),
        ("c", 2, 40, 38),
    ]
    # Placement follows the active_share setting: twice as many active, half the room.
    busier = cells_app(env, REDMICA_ACTIVE_SHARE="0.2")
    shares = run("cells", "list", "-O", "json", app=busier).json()
    assert [c["capacity"] for c in shares] == [20, 20, 20]


def test_full_fleet_refuses_and_writes_nothing(s3: S3Client, run: Invoke) -> None:
    env = {**moto_cells(), "REDMICA_CELL_CAPACITY": "1"}
    for name in ("t1", "t2", "t3"):
        add(run, env, name)
    result = run("tenant", "add", "t4", "-f", "-", input=tenant_yaml("t4"), app=cells_app(env))
    assert result.exit_code == 1
    assert "every cell is full (a 1/1, b 1/1, c 1/1)" in result.stderr
    assert "t4" not in cells_of(s3)
    assert f"t4.{DOMAIN}" not in routed(env["REDMICA_HOSTED_ZONE_ID"])


def test_unknown_cell_is_a_usage_error(s3: S3Client, run: Invoke) -> None:
    env = moto_cells()
    result = run(
        "tenant",
        "add",
        "t1",
        "-f",
        "-",
        "--cell",
        "zz",
        input=tenant_yaml("t1"),
        app=cells_app(env),
    )
    assert result.exit_code == 2
    assert "there is no cell 'zz' (cells: a, b, c)" in result.stderr
    assert cells_of(s3) == {}


def test_move_and_remove_keep_routing_equal_to_the_registry(
    s3: S3Client, run: Invoke, moto_rollouts: None, route53_pending: None
) -> None:
    env = moto_cells()
    zone = env["REDMICA_HOSTED_ZONE_ID"]
    for name in ("t1", "t2", "t3"):
        add(run, env, name)
    moved = run("tenant", "move", "t1", "--to", "c", "--yes", "-O", "json", app=cells_app(env))
    assert moved.exit_code == 0, moved.output
    report = moved.json()
    assert [s["step"] for s in report["steps"]] == [
        "both-cells",
        "serve-target",
        "route",
        "drain",
        "target-only",
        "stop-source",
    ]
    assert (report["from"], report["to"]) == ("a", "c")
    assert cells_of(s3)["t1"] == "c"
    assert routed(zone) == expected_routes(s3)
    assert routed(zone)[f"t1.{DOMAIN}"] == "c"
    # Both cells were restarted: the target first (to serve), the source last (to stop).
    ecs = boto3.client("ecs", region_name="us-east-1")
    services = ecs.describe_services(cluster="prod", services=["redmica-a", "redmica-c"])
    assert all(s["deployments"][0]["id"].startswith("ecs-svc/new") for s in services["services"])
    removed = run("tenant", "remove", "t2", "--yes", app=cells_app(env))
    assert removed.exit_code == 0, removed.output
    assert routed(zone) == expected_routes(s3)
    assert f"t2.{DOMAIN}" not in routed(zone)
    assert run("cells", "routes", app=cells_app(env)).exit_code == 0


def test_moving_a_tenant_to_its_own_cell_says_so(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    # Issue 28: not "moved a -> a".
    env = moto_cells()
    add(run, env, "t1")
    cell = cells_of(s3)["t1"]
    result = run("tenant", "move", "t1", "--to", cell, "--yes", app=cells_app(env))
    assert result.exit_code == 0, result.output
    assert f"tenant t1 is already in cell {cell}: nothing to do" in result.stderr
    assert "moved" not in result.output
    again = run("tenant", "move", "t1", "--to", cell, "--yes", "-O", "json", app=cells_app(env))
    assert again.json()["moved"] is False
    # Nothing to do is found before anyone is asked: no --yes, no terminal, still exit 0.
    unasked = run("tenant", "move", "t1", "--to", cell, app=cells_app(env))
    assert unasked.exit_code == 0, unasked.output
    assert "nothing to do" in unasked.stderr
    # An unknown tenant is an error before the question too (not "refusing ... without
    # confirmation").
    unknown = run("tenant", "move", "nosuch", "--to", cell, app=cells_app(env))
    assert unknown.exit_code != 0
    assert "confirmation" not in unknown.output


def test_move_refuses_while_cells_run_different_images(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    env = moto_cells()
    add(run, env, "t1")
    assert (
        run("deploy", "--image", "redmica:2", "--cell", "b", "--yes", app=cells_app(env)).exit_code
        == 0
    )
    before = cells_of(s3)
    result = run("tenant", "move", "t1", "--to", "b", "--yes", app=cells_app(env))
    assert result.exit_code == 4
    assert "run different images (redmica:1 vs redmica:2)" in result.stderr
    assert cells_of(s3) == before
    assert routed(env["REDMICA_HOSTED_ZONE_ID"])[f"t1.{DOMAIN}"] == "a"


def test_update_cannot_change_the_cell_and_keeps_it(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    env = moto_cells()
    add(run, env, "t1", "--cell", "b")
    other = tenant_yaml("t1", property__cell="c")
    result = run("tenant", "update", "t1", "-f", "-", input=other, app=cells_app(env))
    assert result.exit_code == 2
    assert "property.cell" in result.stderr and "tenant move" in result.stderr
    plain = tenant_yaml("t1", db__port=6000)
    result = run("tenant", "update", "t1", "-f", "-", input=plain, app=cells_app(env))
    assert result.exit_code == 0, result.output
    assert cells_of(s3)["t1"] == "b"


def test_routes_finds_and_fixes_drift(s3: S3Client, run: Invoke, moto_rollouts: None) -> None:
    env = moto_cells()
    zone = env["REDMICA_HOSTED_ZONE_ID"]
    add(run, env, "t1")
    add(run, env, "t2")
    elbv2 = boto3.client("elbv2", region_name="us-east-1")
    lb = {b["LoadBalancerName"]: b for b in elbv2.describe_load_balancers()["LoadBalancers"]}
    route53 = boto3.client("route53", region_name="us-east-1")

    def alias(host: str, cell: str, action: ChangeActionType = "UPSERT") -> ChangeTypeDef:
        balancer = lb[f"redmica-{cell}"]
        return {
            "Action": action,
            "ResourceRecordSet": {
                "Name": host,
                "Type": "A",
                "AliasTarget": {
                    "HostedZoneId": balancer["CanonicalHostedZoneId"],
                    "DNSName": balancer["DNSName"],
                    "EvaluateTargetHealth": False,
                },
            },
        }

    route53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                alias(f"ghost.{DOMAIN}", "b"),
                alias(f"t1.{DOMAIN}", "c"),
                alias(f"t2.{DOMAIN}", "b", "DELETE"),
            ]
        },
    )
    # A record that is not an alias of a cell is none of our business.
    route53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": f"www.{DOMAIN}",
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "192.0.2.1"}],
                    },
                }
            ]
        },
    )
    found = run("cells", "routes", "-O", "json", app=cells_app(env))
    assert found.exit_code == 1
    kinds = {(f["kind"], f["host"]) for f in found.json()["findings"]}
    assert kinds == {
        ("orphan", f"ghost.{DOMAIN}."),
        ("wrong_cell", f"t1.{DOMAIN}."),
        ("missing", f"t2.{DOMAIN}."),
    }
    doctor = run("doctor", "-O", "json", app=cells_app(env))
    routing = [c for c in doctor.json() if c["name"].startswith("routing")]
    assert routing and routing[0]["status"] == "fail"
    assert "ghost" in routing[0]["detail"] and "t1" in routing[0]["detail"]
    fixed = run("cells", "routes", "--fix", app=cells_app(env))
    assert fixed.exit_code == 0, fixed.output
    assert routed(zone) == expected_routes(s3)
    names = [
        r["Name"]
        for r in route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    ]
    assert f"www.{DOMAIN}." in names  # not ours: left alone


def test_serve_renders_only_its_cells_tenants(
    s3: S3Client, run: Invoke, moto_rollouts: None, tmp_path: Path
) -> None:
    env = moto_cells()
    add(run, env, "t1")  # a
    add(run, env, "t2")  # b
    s3.put_object(
        Bucket=BUCKET,
        Key="tenants/old.yaml",
        Body=tenant_yaml("old").encode(),  # no property.cell: the first cell's
    )
    s3.put_object(
        Bucket=BUCKET,
        Key="tenants/mover.yaml",
        Body=tenant_yaml("mover", property__cell="b", property__moving_from="a").encode(),
    )
    served = {}
    for cell in ("a", "b", "c"):
        target = tmp_path / f"{cell}.conf"
        app = cells_app(env, REDMICA_VHOSTS_FILE=str(target))
        result = run("entrypoint", "serve", "--no-check", "--cell", cell, app=app)
        assert result.exit_code == 0, result.output
        text = target.read_text()
        served[cell] = sorted(t for t in ("t1", "t2", "old", "mover") if f"{t}.{DOMAIN}" in text)
    assert served == {"a": ["mover", "old", "t1"], "b": ["mover", "t2"], "c": []}
    bad = run("entrypoint", "serve", "--no-check", "--cell", "zz", app=cells_app(env))
    assert bad.exit_code == 2


def test_single_service_setups_are_unchanged(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    result = run("tenant", "add", "t1", "-f", "-", input=tenant_yaml("t1"))
    assert result.exit_code == 0, result.output
    assert cells_of(s3) == {"t1": None}  # the document is not touched
    target = tmp_path / "v.conf"
    app = cells_app({"REDMICA_DOMAIN": DOMAIN, "REDMICA_VHOSTS_FILE": str(target)})
    assert run("entrypoint", "serve", "--no-check", app=app).exit_code == 0
    assert f"t1.{DOMAIN}" in target.read_text()


@pytest.mark.parametrize("statuses", [["PENDING", "PENDING", "INSYNC"], ["PENDING"] * 500])
def test_route53_changes_are_waited_for_until_insync(statuses: list[str]) -> None:
    from redmica_ops.cells.routing import AliasTarget, Route53Gateway, Router
    from redmica_ops.errors import OperationFailed
    from redmica_ops.runs.pacing import FakeClock

    calls: list[str] = []
    pending = iter(statuses)

    class Client:
        def change_resource_record_sets(self, **kwargs: Any) -> dict[str, Any]:
            calls.append("change")
            return {"ChangeInfo": {"Id": "/change/C1", "Status": next(pending)}}

        def get_change(self, Id: str) -> dict[str, Any]:
            calls.append("get")
            return {"ChangeInfo": {"Id": Id, "Status": next(pending)}}

    clock = FakeClock()
    router = Router(
        Route53Gateway(cast(Route53Client, Client())),
        "Z1",
        DOMAIN,
        {"a": AliasTarget("lb-a.elb.amazonaws.com", "ZLB")},
        clock,
        timeout=60,
        poll=5,
    )
    if statuses[-1] == "INSYNC":
        router.route("t1", "a", "test")
        assert calls == ["change", "get", "get"]
        assert clock.now() == 10
    else:
        with pytest.raises(OperationFailed, match="not INSYNC within 60s"):
            router.route("t1", "a", "test")
        assert clock.now() >= 60


def test_add_with_activate_restarts_only_the_tenants_cell(
    s3: S3Client, run: Invoke, moto_rollouts: None
) -> None:
    env = moto_cells()
    ecs = boto3.client("ecs", region_name="us-east-1")

    def deployment_ids() -> dict[str, str]:
        found = ecs.describe_services(
            cluster="prod", services=["redmica-a", "redmica-b", "redmica-c"]
        )["services"]
        return {s["serviceName"]: s["deployments"][0]["id"] for s in found}

    before = deployment_ids()
    add(run, env, "t1", "--cell", "b", "--activate")
    after = deployment_ids()
    assert [name for name in before if before[name] != after[name]] == ["redmica-b"]

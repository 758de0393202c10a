"""The capacity model: memory -> pool, caps, explicit overrides, warnings, fleet sizes and cost.

Every expected number is worked out by hand in the comment next to it.
"""

from __future__ import annotations

import pytest

from redmica_ops.capacity import (
    CapacityError,
    PoolRequest,
    TaskSize,
    derive_pool,
    parse_task_size,
    plan_fleet,
    pool_size_for,
    room_left,
    tasks_needed,
    tenants_per_task,
)
from redmica_ops.cli.app import Application
from tests.conftest import Invoke

PRICE_VCPU = 0.0008426666667
PRICE_GB = 0.00009216666667


def test_pool_is_memory_minus_reserve_over_process_cost() -> None:
    # (2048 - 256) / 160 = 11.2 -> 11 processes
    assert pool_size_for(2048, 256, 160) == 11
    # (8192 - 256) / 160 = 49.6 -> 49
    assert pool_size_for(8192, 256, 160) == 49
    # exactly one process: 256 + 160 = 416
    assert pool_size_for(416, 256, 160) == 1


def test_a_budget_without_room_for_one_process_is_an_error() -> None:
    with pytest.raises(CapacityError, match="leaves 159 MiB, less than one process"):
        pool_size_for(415, 256, 160)
    with pytest.raises(CapacityError, match="must be positive"):
        pool_size_for(2048, 256, 0)


def test_derived_defaults_scale_to_zero_with_direct_spawning() -> None:
    pool = derive_pool(PoolRequest(memory_mib=2048, tenants=30))
    assert pool.max_pool_size == 11  # (2048 - 256) // 160
    assert pool.pool_source == "derived"
    assert pool.process_mib == 160  # measured default for direct spawning
    assert pool.min_instances == 0
    assert pool.spawn_method == "direct"
    assert pool.max_preloader_idle_time is None  # no preloader without smart spawning
    assert pool.max_instances_per_app == 2
    assert pool.max_request_queue_size == 100
    assert pool.memory_needed_mib == 256 + 11 * 160 == 2016
    assert pool.warnings == ()


def test_smart_spawning_costs_more_and_keeps_a_preloader_idle_time() -> None:
    pool = derive_pool(PoolRequest(memory_mib=2048, spawn_method="smart"))
    assert pool.max_pool_size == 8  # (2048 - 256) // 200
    assert pool.max_preloader_idle_time == 300


def test_a_measured_cost_replaces_the_default() -> None:
    pool = derive_pool(PoolRequest(memory_mib=4096, reserve_mib=512, process_mib=120))
    assert pool.max_pool_size == 29  # (4096 - 512) // 120 = 29.87


def test_an_explicit_pool_wins_and_warns_when_it_cannot_fit() -> None:
    fits = derive_pool(PoolRequest(memory_mib=2048, max_pool_size=10))
    assert (fits.max_pool_size, fits.pool_source, fits.warnings) == (10, "explicit", ())
    too_big = derive_pool(PoolRequest(memory_mib=2048, max_pool_size=20, memory_source="ECS"))
    assert too_big.max_pool_size == 20
    # 256 + 20 x 160 = 3456 MiB > 2048
    assert too_big.warnings == (
        "max_pool_size 20 needs 3456 MiB (256 MiB reserve + 20 x 160 MiB) but the task has "
        "2048 MiB (ECS): a full pool can run out of memory",
    )


def test_an_explicit_pool_survives_a_budget_that_holds_nothing() -> None:
    pool = derive_pool(PoolRequest(memory_mib=300, max_pool_size=2))
    assert pool.max_pool_size == 2
    assert "needs 576 MiB" in pool.warnings[0]  # 256 + 2 x 160


def test_keeping_every_tenant_warm_is_flagged() -> None:
    pool = derive_pool(PoolRequest(memory_mib=2048, min_instances=1, tenants=30))
    assert pool.min_instances == 1  # explicit wins
    assert pool.warnings == (
        "min_instances 1 x 30 tenants keeps 30 processes warm but the pool holds 11: "
        "Passenger will churn; use min_instances 0",
    )
    assert derive_pool(PoolRequest(memory_mib=2048, min_instances=1, tenants=11)).warnings == ()


def test_a_per_tenant_cap_larger_than_the_pool_is_flagged() -> None:
    pool = derive_pool(PoolRequest(memory_mib=800, processes_per_tenant=4))
    assert pool.max_pool_size == 3  # (800 - 256) // 160 = 3.4
    assert pool.warnings == (
        "processes_per_tenant 4 exceeds the pool of 3: one tenant can take every process",
    )


def test_tenants_per_task_and_tasks_needed() -> None:
    # 49 processes, 10% of tenants active with one process each: 49 / 0.1 = 490 tenants
    room = tenants_per_task(49, 0.1)
    assert room.tenants_per_task == 490
    assert tasks_needed(800, 490) == 2  # ceil(800 / 490)
    assert room_left(800, 490) == 180  # 2 x 490 - 800
    assert tasks_needed(0, 490) == 0
    assert room_left(490, 490) == 0
    # 11 / (0.5 x 2) = 11
    assert tenants_per_task(11, 0.5, 2).tenants_per_task == 11
    # 10 / 0.1 must be 100, not 99 by floating-point rounding
    assert tenants_per_task(10, 0.1).tenants_per_task == 100


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_active_share_must_be_a_fraction(share: float) -> None:
    with pytest.raises(CapacityError, match="active share"):
        tenants_per_task(10, share)


def test_task_sizes_parse() -> None:
    assert parse_task_size("2x8") == TaskSize(2.0, 8192)
    assert parse_task_size("0.25x0.5") == TaskSize(0.25, 512)
    assert parse_task_size("16x120").label == "16 vCPU / 120 GB"
    for bad in ("2", "x8", "2x0", "axb", "-1x2"):
        with pytest.raises(CapacityError, match="VCPUxGB"):
            parse_task_size(bad)


def test_monthly_price_of_a_task() -> None:
    # per minute: 2 x 0.0008426666667 + 8 x 0.00009216666667 = 0.00242266666676 USD
    # x 60 x 730 = 106.1128 USD a month
    assert TaskSize(2, 8192).monthly_usd(PRICE_VCPU, PRICE_GB) == pytest.approx(106.1128, abs=1e-3)


def test_plan_a_fleet_of_800() -> None:
    plan = plan_fleet(
        800,
        TaskSize(2, 8192),
        PoolRequest(memory_mib=0),
        active_share=0.1,
        price_vcpu_minute=PRICE_VCPU,
        price_gb_minute=PRICE_GB,
    )
    assert plan.pool.max_pool_size == 49  # (8192 - 256) // 160
    assert plan.pool.memory_source == "task size 2 vCPU / 8 GB"
    assert plan.room.tenants_per_task == 490  # 49 / 0.1
    assert plan.tasks == 2
    assert plan.room_left == 180
    assert plan.cold_tenants_per_task == 441  # 490 tenants, 49 warm at most
    assert plan.monthly_usd == pytest.approx(212.2256, abs=1e-3)  # 2 x 106.1128
    assert plan.monthly_usd_per_tenant == pytest.approx(0.26528, abs=1e-4)  # 212.2256 / 800
    data = plan.as_dict()
    assert data["tasks"] == 2 and data["monthly_usd_per_tenant"] == pytest.approx(0.2653)


def test_fleet_plan_judges_min_instances_per_task() -> None:
    plan = plan_fleet(
        800,
        TaskSize(2, 8192),
        PoolRequest(memory_mib=0, min_instances=1),
        active_share=0.1,
        price_vcpu_minute=PRICE_VCPU,
        price_gb_minute=PRICE_GB,
    )
    # each task serves 490 tenants; keeping them all warm needs 490 > 49 processes
    assert "min_instances 1 x 490 tenants keeps 490 processes warm" in plan.pool.warnings[0]


# -- `redmica capacity` ---------------------------------------------------------------------------
def test_capacity_json_for_800_tenants(run: Invoke) -> None:
    result = run(
        "capacity",
        "--tenants",
        "800",
        "--task-size",
        "2x8",
        "--task-size",
        "1x2",
        "-O",
        "json",
        bucket=None,
    )
    assert result.exit_code == 0, result.output
    data = result.json()
    assert data["tenants"] == 800 and data["active_share"] == 0.1
    best = data["recommended"]
    # 2 vCPU / 8 GB: pool (8192 - 256) // 160 = 49; 49 / 0.1 = 490 per task; ceil(800/490) = 2
    assert best["task"] == {"vcpu": 2.0, "memory_mib": 8192}
    assert (best["tasks"], best["tenants_per_task"], best["room_left"]) == (2, 490, 180)
    assert best["pool"]["max_pool_size"] == 49
    assert best["pool"]["min_instances"] == 0 and best["pool"]["spawn_method"] == "direct"
    assert best["cold_tenants_per_task"] == 441  # 490 - 49
    assert best["monthly_usd"] == 212.23  # 2 x 106.1128
    assert best["monthly_usd_per_tenant"] == 0.2653  # 212.2256 / 800
    # 1 vCPU / 2 GB: pool (2048 - 256) // 160 = 11, 110 per task, ceil(800/110) = 8 tasks;
    # 8 x (0.0008426666667 + 2 x 0.00009216666667) x 43800 = 359.86 USD
    other = data["plans"][1]
    assert (other["tasks"], other["pool"]["max_pool_size"], other["monthly_usd"]) == (
        8,
        11,
        359.86,
    )


def test_capacity_text_names_the_numbers(run: Invoke) -> None:
    result = run(
        "capacity", "--tenants", "800", "--task-size", "2x8", "--active-share", "0.2", bucket=None
    )
    assert result.exit_code == 0, result.output
    # 49 / 0.2 = 245 per task; ceil(800 / 245) = 4 tasks; 4 x 106.1128 = 424.45 USD
    assert "cheapest: 4 task(s) of 2 vCPU / 8 GB for 800 tenants (245 per task" in result.stdout
    assert "424.45 USD/month, 0.5306 USD per tenant" in result.stdout
    assert "PassengerMaxPoolSize 49 ((8192 - 256) MiB / 160 MiB)" in result.stdout
    assert "the other 196 tenants of a full task wait about 2.5 s" in result.stdout  # 245 - 49
    row = next(line for line in result.stdout.splitlines() if line.startswith("2 vCPU"))
    assert row.split()[5:11] == ["49", "245", "4", "180", "196", "424.45"]  # 4 x 245 - 800


def test_capacity_follows_the_settings_and_warns(run: Invoke) -> None:
    env = {"REDMICA_SPAWN_METHOD": "smart", "REDMICA_MIN_INSTANCES": "1", "PATH": "/bin"}
    result = run(
        "capacity",
        "--tenants",
        "100",
        "--task-size",
        "2x4",
        "-O",
        "json",
        app=Application(env=env),
        bucket=None,
    )
    best = result.json()["recommended"]
    # smart: (4096 - 256) // 200 = 19; 19 / 0.1 = 190 per task
    assert best["pool"]["max_pool_size"] == 19 and best["tenants_per_task"] == 190
    assert best["pool"]["warnings"] == [
        "min_instances 1 x 190 tenants keeps 190 processes warm but the pool holds 19: "
        "Passenger will churn; use min_instances 0"
    ]
    text = run(
        "capacity", "--tenants", "100", "--task-size", "2x4", app=Application(env=env), bucket=None
    )
    assert "warning: min_instances 1 x 190 tenants" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task-size", "2by8"], "--task-size: '2by8' is not VCPUxGB"),
        (["--task-size", "0.25x0.25"], "no task size holds a single process"),
        (["--active-share", "0"], "Invalid value for '--active-share'"),
    ],
)
def test_capacity_bad_input(run: Invoke, args: list[str], message: str) -> None:
    result = run("capacity", "--tenants", "10", *args, bucket=None)
    assert result.exit_code == 2
    assert message in result.stderr

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

"""The benchmark's simulated control plane, reused as a test: the engine against AWS's quotas."""

from __future__ import annotations

import math

from bench.run import baseline, fanout
from bench.simulator import Quotas, SimulatedEcs

from redmica_ops.runs.pacing import FakeClock


def test_fanout_stays_near_the_quota_bound_and_loses_nothing() -> None:
    result = fanout(300)
    assert result["lost"] == 0 and result["launched_twice"] == 0
    assert result["throttles_surfaced"] == 0
    assert result["summary"].get("failed_to_start", 0) == 0
    assert result["describe_calls"] <= result["describe_allowed"]
    assert result["ratio"] <= 1.10
    assert result["calls"]["RunTask"] == 300


def test_the_talks_loop_is_throttled_and_collects_nothing() -> None:
    result = baseline(400)
    # The SDK's retries absorb it here, but it runs into the launch quota and never waits.
    assert result["throttled"]["FargateLaunch"] > 0
    assert result["calls"] > 400
    assert result["launch_s"] >= (400 - 100) / 20.0


def test_simulator_throttles_beyond_the_launch_quota() -> None:
    sim = SimulatedEcs(FakeClock(), Quotas(launch_rate=1.0, launch_burst=2.0), latency=0.0)
    overrides = {
        "containerOverrides": [{"environment": [{"name": "REDMICA_TENANT", "value": "t"}]}]
    }
    sim.run_task(overrides=overrides)
    sim.run_task(overrides=overrides)
    try:
        sim.run_task(overrides=overrides)
    except Exception as exc:
        assert "ThrottlingException" in str(exc)
    else:
        raise AssertionError("the third launch in the same instant was not throttled")
    assert sim.throttled == {"FargateLaunch": 1}
    assert math.isclose(sim.lower_bound([]), 0.0)

"""What `migrate`, `runs show`, `deploy` and `release` print: each fact once, true for the case.

The reports are the library's (`runs/report.py`, `deploy/report.py`), shown as the CLI shows them.
"""

from __future__ import annotations

import io

from redmica_ops.cli.output import Output
from redmica_ops.cli.result import ReportResult
from redmica_ops.deploy.model import RolloutReport
from redmica_ops.deploy.report import rollout_report
from redmica_ops.report import Report
from redmica_ops.runs.fanout import FanOutOptions
from redmica_ops.runs.migrations import MigrationOutcome
from redmica_ops.runs.record import RunRecord, RunState, RunTarget, Status, TenantRun
from redmica_ops.runs.report import launch_lines


def _printed(report: Report) -> str:
    stdout, stderr = io.StringIO(), io.StringIO()
    ReportResult(report).render_text(Output(stdout=stdout, stderr=stderr))
    return stdout.getvalue() + stderr.getvalue()


def test_runs_show_lists_a_failed_tenant_once() -> None:
    record = RunRecord("r1", "ecs", ["migrate"], "t0", "t1", state=RunState.FINISHED)
    record.target = RunTarget(log_group="/redmica/app")
    record.tenants = {
        "acme": TenantRun("acme", Status.SUCCEEDED, exit_code=0, attempts=1),
        "globex": TenantRun(
            "globex", Status.FAILED, exit_code=1, attempts=1, reason="exited 1", log_stream="s/1"
        ),
    }
    shown = _printed(MigrationOutcome(record=record).report(every_tenant=True))
    assert shown.count("globex") == 2  # its row, and where its logs are
    assert shown.count("exited 1") == 1
    assert "logs of globex: aws logs tail /redmica/app --log-stream-names s/1" in shown
    after_a_run = _printed(MigrationOutcome(record=record).report())
    assert after_a_run.count("exited 1") == 1  # `migrate` itself: the failure table only


def test_the_launch_estimate_is_true_for_a_few_tenants() -> None:
    options = FanOutOptions(command=["migrate"])
    assert launch_lines(4, 0.0, 1, options) == [
        f"  launches: all 4 at once (within the burst of {options.burst})"
    ]
    many = launch_lines(800, 35.0, 8, options)
    assert many[0] == (
        f"  launches: the first {options.burst} at once, the other {800 - options.burst} "
        f"at {options.rate:g}/s: at least 35s"
    )
    assert many[1] == f"  waves:    8 (at most {options.concurrency} tasks in flight at a time)"
    assert launch_lines(0, 0.0, 0, options) == []


def _report(result: str, reason: str) -> RolloutReport:
    return RolloutReport("deploy", False, result, reason, "arn:td/app:3", "arn:td/app:2")


def test_a_failed_deploy_says_failed_once() -> None:
    text = _printed(rollout_report(_report("failed", "tasks failed to start")))
    assert "error: deploy failed: tasks failed to start\n" in text
    assert "FAILED" not in text and "failed: failed" not in text
    timed_out = _printed(rollout_report(_report("timed_out", "did not finish within 60s")))
    assert "error: deploy failed (timed out): did not finish within 60s" in timed_out


def test_a_followed_rollout_does_not_print_its_events_a_second_time() -> None:
    report = _report("failed", "tasks failed to start")
    report.events = ["(service app) deployment failed: circuit breaker: rolling back."]
    text = _printed(rollout_report(report))
    assert "circuit breaker" not in text  # streamed as "event: ..." while it happened
    assert "`redmica status --events 10`" in text

"""The scheduled job as an AWS Lambda handler: the talk's loop, done right.

    {"action": "migrate"}                 -> launch `migrate --all` without waiting
    {"action": "migrate", "exclude": [..]}
    {"action": "status", "run_id": "..."} -> the run's state and counts (collected first)
    {"action": "collect"}                 -> merge results into every incomplete recent run
    {"action": "collect", "run_id": "..."}   (safe on a schedule: the template runs it)

Settings come from the function's environment (REDMICA_BUCKET, REDMICA_CLUSTER, ...). The
launch is the CLI's own library call (`runs.migrations.run`), paced the same way, and leaves
a run record in S3; a later "status" event (or `redmica runs show`, `redmica migrate
--resume`) collects the results. Nothing here imports the CLI.

`admin_broker` is a second function (its own Lambda function and role, handler
`redmica_ops.aws_lambda.admin_broker`): the only way to start a lifecycle admin task.

    {"request_id": "20261128T041500Z-acme-backup-1a2b3c4d"}
        -> {"ok": true, "task_arn": "...", "tenant": "acme", "step": "backup", ...}
        -> {"ok": false, "error": "...", "hint": "...", "exit_code": 2}   (nothing started)
"""

from __future__ import annotations

from collections.abc import Mapping

from redmica_ops.errors import RedmicaError, UsageError
from redmica_ops.lifecycle.broker import BrokerRequest, launch_admin_task
from redmica_ops.runs import migrations
from redmica_ops.runs.collect import collect, collect_recent
from redmica_ops.runs.record import FAILURES, RunRecord
from redmica_ops.settings import require
from redmica_ops.workspace import AwsWorkspace

Event = Mapping[str, object]
Response = dict[str, object]


def handler(event: Event | None, context: object = None) -> Response:
    event = event or {}
    ws = AwsWorkspace.from_environment(message=print)
    action = event.get("action", "migrate")
    if action == "migrate":
        excluded = event.get("exclude", ())
        if not isinstance(excluded, (list, tuple)):
            raise UsageError("exclude must be a list of tenant ids")
        request = migrations.MigrationRequest(
            all_tenants=True, exclude=tuple(str(t) for t in excluded), wait=False
        )
        outcome = migrations.run(request, ws)
        record = outcome.record
        assert record is not None  # not a dry run
        for line in outcome.report().plain_lines():  # what `migrate --no-wait` shows, logged
            ws.message(line)
        return {"run_id": record.run_id, "state": str(record.state), "summary": record.summary()}
    if action in ("status", "collect"):
        return _collected(ws, str(action), event.get("run_id"))
    raise UsageError(f"unknown action {action!r} (migrate, status or collect)")


def _collected(ws: AwsWorkspace, action: str, run_id: object) -> Response:
    """One run (status, collect with a run id) or every recent one, collected first."""
    if not run_id and action == "status":
        raise UsageError("a status event needs run_id")
    if run_id:
        record = ws.run_store().load(str(run_id))
        pairs = [(record, collect(record, ws))]
    else:
        pairs = collect_recent(ws)
    reports = [_state(record, collected, action == "collect") for record, collected in pairs]
    return reports[0] if run_id else {"runs": reports}


def _state(record: RunRecord, collected: int, with_collected: bool) -> Response:
    report: Response = {
        "run_id": record.run_id,
        "state": str(record.state),
        "summary": record.summary(),
        "failed": sorted(t.tenant for t in record.tenants.values() if t.status in FAILURES),
    }
    if with_collected:
        report.update(complete=record.complete(), collected=collected)
    return report


def admin_broker(event: Event | None, context: object = None) -> Response:
    """Start the admin task for one request id (`lifecycle.broker.launch_admin_task`).

    Settings (cluster, admin_task_definition, container, subnets, bucket) come from this
    function's environment; the event carries the request id and nothing else.
    """
    return answer_broker_event(event or {}, AwsWorkspace.from_environment(message=print))


def answer_broker_event(event: Event, ws: AwsWorkspace) -> Response:
    """The broker's answer. A refusal is an answer, not a crash: the operator's CLI turns it
    back into the error with its exit code."""
    settings = ws.settings
    try:
        request = BrokerRequest.from_event(event)
        require(settings, ["admin_task_definition"], "the admin broker needs")
        launched = launch_admin_task(
            request,
            ws.clients().s3(),
            ws.ecs(),
            ws.bucket(),
            settings.lifecycle_prefix,
            ws.ecs_target(settings.admin_task_definition),
            settings.admin_request_max_age,
        )
    except RedmicaError as error:
        ws.message(f"admin-broker: refused: {error.message}")
        return {"ok": False, **error.as_dict()}
    ws.message(f"admin-broker: {launched.request_id} -> {launched.task_arn}")
    return launched.as_dict()

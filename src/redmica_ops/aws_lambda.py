"""The scheduled job as an AWS Lambda handler: the talk's loop, done right.

    {"action": "migrate"}                 -> launch `migrate --all` without waiting
    {"action": "migrate", "exclude": [..]}
    {"action": "status", "run_id": "..."} -> the run's state and counts

Settings come from the function's environment (REDMICA_BUCKET, REDMICA_CLUSTER, ...). The
launch is paced like the CLI's and leaves a run record in S3; a later "status" event (or
`redmica runs show`, `redmica migrate --resume`) collects the results.
"""

from __future__ import annotations

from typing import Any

from redmica_ops.errors import UsageError


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    from redmica_ops.cli.app import Application
    from redmica_ops.cli.migrate import run_migration
    from redmica_ops.runs.record import FAILURES

    app = Application()
    app.output_format = "json"
    action = (event or {}).get("action", "migrate")
    if action == "migrate":
        exclude = tuple(str(t) for t in event.get("exclude", ()))
        record = run_migration(app, all_tenants=True, exclude=exclude, no_wait=True)
        return {"run_id": record.run_id, "state": record.state, "summary": record.summary()}
    if action == "status":
        run_id = event.get("run_id")
        if not run_id:
            raise UsageError("a status event needs run_id")
        record = app.run_store().load(str(run_id))
        return {
            "run_id": record.run_id,
            "state": record.state,
            "summary": record.summary(),
            "failed": sorted(t.tenant for t in record.tenants.values() if t.status in FAILURES),
        }
    raise UsageError(f"unknown action {action!r} (migrate or status)")

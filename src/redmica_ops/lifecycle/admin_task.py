"""Inside the ECS admin task: take the request, resolve the master secret, run the step, leave
a result.

The request is taken before anything else (`lifecycle/broker.py`): read, removed from the
bucket (conditionally, and its stored version with it, since a set-admin step holds a password
hash), then refused when older than `admin_request_max_age`; so a request runs at most once
and never long after it was written. The RDS-managed master secret (a JSON document with
`username` and `password`) is read here, with the task role, and goes no further than this
process and the PGPASSFILE of its psql child. The result never holds a secret (errors
included).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, cast

from redmica_ops.aws import translate_errors
from redmica_ops.errors import RedmicaError, UsageError
from redmica_ops.lifecycle.broker import check_fresh, consume, fetch_request, utc_now
from redmica_ops.lifecycle.steps import StepResult, execute, write_result

if TYPE_CHECKING:
    from redmica_ops.workspace import BaseWorkspace


class SecretsClient(Protocol):
    def get_secret_value(self, *, SecretId: str) -> Mapping[str, object]: ...


def master_credentials(secrets: SecretsClient, secret_id: str) -> tuple[str, str]:
    with translate_errors("reading the database master secret"):
        response = secrets.get_secret_value(SecretId=secret_id)
    try:
        data = json.loads(str(response["SecretString"]))
        return str(data["username"]), str(data["password"])
    except (KeyError, ValueError, TypeError):
        # Never echo the secret's content, not even a part of it.
        raise UsageError(
            "the master secret is not an RDS-managed secret (JSON with username and password)",
            "point db_master_secret at the cluster's MasterUserSecret ARN",
        ) from None


def run_admin_request(
    request_id: str, ws: BaseWorkspace, pg_bin: str = "", now: Callable[[], datetime] = utc_now
) -> StepResult:
    settings = ws.settings
    s3, bucket, prefix = ws.clients().s3(), ws.bucket(), settings.lifecycle_prefix
    # A request that cannot be read or taken gets no result: it is not ours to answer (another
    # task took it, or it never existed). One that is too old is taken too: it may hold a hash.
    pending = fetch_request(s3, bucket, prefix, request_id)
    consume(s3, bucket, prefix, pending)
    step = pending.step
    try:
        check_fresh(pending, now(), settings.admin_request_max_age)
        if not settings.db_master_secret:
            raise UsageError(
                "the admin task has no db_master_secret setting",
                "set REDMICA_DB_MASTER_SECRET in the task definition (not in an override)",
            )
        secrets = cast(SecretsClient, ws.clients().client("secretsmanager"))
        user, password = master_credentials(secrets, settings.db_master_secret)
        # The tenant's own login (dumps, restores) reads a password kept in a secret with the
        # task role: the workspace's password resolver.
        result = execute(step, ws.site(user, password, pg_bin), ws.store())
    except RedmicaError as error:
        write_result(s3, bucket, prefix, request_id, None, error, settings.kms_key_id)
        raise
    write_result(s3, bucket, prefix, request_id, result, None, settings.kms_key_id)
    return result

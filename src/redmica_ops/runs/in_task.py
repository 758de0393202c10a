"""Inside a migration task: run a command as one tenant, or as each of several in turn.

`entrypoint run-tenant` is what a migration task runs. It reads each tenant's document from the
config bucket and gives the command the same variables as the tenant's vhost (RAILS_DB,
RAILS_DB_PASSWORD, S3_FOLDER_NAME, ...), so an ECS RunTask override carries only tenant ids,
never a password. Alone (no REDMICA_RUN_ID) it replaces itself with the command (`exec_plan`);
inside a migrate run it supervises each tenant's command as a child and leaves the tenant's
result in the bucket (`run_in_task`), so the run knows it even after ECS has forgotten this
task; one tenant's failure never keeps the next from running.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from redmica_ops.container.keys import master_secret
from redmica_ops.errors import JSONObject, RedmicaError, UsageError
from redmica_ops.runs.record import utcnow
from redmica_ops.runs.results import TenantResult, run_and_record
from redmica_ops.tenants.environment import tenant_environment
from redmica_ops.tenants.passwords import password_of

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class InTaskRequest:
    tenant_ids: tuple[str, ...]
    command: tuple[str, ...]
    environ: Mapping[str, str] = field(default_factory=dict)  # this process's environment

    @property
    def run_id(self) -> str | None:
        return self.environ.get("REDMICA_RUN_ID") or None

    @property
    def attempt(self) -> int:
        return int(self.environ.get("REDMICA_ATTEMPT", "1") or "1")


@dataclass(frozen=True)
class InTaskOutcome:
    run_id: str
    exit_codes: dict[str, int | None]  # None: the command could not be started
    result_keys: dict[str, str]

    @property
    def exit_code(self) -> int:
        """One tenant: its command's (127 when it could not start, 128+n for signal n);
        several: 0 when every one succeeded, else 1."""
        if len(self.exit_codes) == 1:
            code = next(iter(self.exit_codes.values()))
            code = 127 if code is None else code
            return code if code >= 0 else 128 - code
        return 0 if all(c == 0 for c in self.exit_codes.values()) else 1

    def as_dict(self) -> JSONObject:
        tenants: JSONObject = {name: code for name, code in self.exit_codes.items()}
        return {"tenants": tenants, "run_id": self.run_id}


def tenant_env(tenant_id: str, ws: Workspace, environ: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with the tenant's variables; a password kept in a secret is
    read with this task's role, and the master secret is replaced by the tenant's own key
    (same name, as Rails reads it)."""
    registry = ws.registry()
    tenant = registry.store.get(tenant_id).tenant
    master = master_secret(environ)
    variables = tenant_environment(
        tenant_id,
        tenant,
        ws.settings.db_host,
        master_secret=master,
        password=password_of(tenant, ws.passwords()),
        incarnation=registry.incarnations.of(tenant_id) if master else None,
    )
    return {**environ, **variables}


def exec_plan(request: InTaskRequest, ws: Workspace) -> tuple[list[str], dict[str, str]]:
    """One tenant outside a run: the command and the environment to replace this process with."""
    if len(request.tenant_ids) != 1:
        raise UsageError(
            "several tenants run in turn only inside a migrate run (REDMICA_RUN_ID)",
            "run one tenant at a time, or use `redmica migrate --tenants-per-task K`",
        )
    (tenant_id,) = request.tenant_ids
    env = tenant_env(tenant_id, ws, request.environ)
    ws.message(f"entrypoint: running as tenant {tenant_id}: {shlex.join(request.command)}")
    return list(request.command), env


def _now() -> str:
    return utcnow().isoformat()


def run_in_task(request: InTaskRequest, ws: Workspace, sink: IO[bytes]) -> InTaskOutcome:
    """Each tenant's command in turn as a child (its output passed to `sink`), each result
    written to the bucket."""
    run_id = request.run_id
    assert run_id is not None, "run_in_task runs inside a migrate run"
    results = ws.results()
    bucket = ws.registry().store.bucket
    codes: dict[str, int | None] = {}
    keys: dict[str, str] = {}
    for one in request.tenant_ids:
        try:
            env = tenant_env(one, ws, request.environ)
        except RedmicaError as error:
            result = TenantResult(
                run_id, one, request.attempt, None, _now(), _now(), error=error.message
            )
        else:
            ws.message(f"entrypoint: running as tenant {one}: {shlex.join(request.command)}")
            result = run_and_record(
                list(request.command),
                env,
                run_id=run_id,
                tenant=one,
                attempt=request.attempt,
                app_root=ws.settings.app_root,
                sink=sink,
                now=_now,
            )
        keys[one] = str(results.put(result))
        codes[one] = result.exit_code
        ws.message(
            f"entrypoint: {one} exited with {result.exit_code}; result: s3://{bucket}/{keys[one]}"
        )
    return InTaskOutcome(run_id, codes, keys)

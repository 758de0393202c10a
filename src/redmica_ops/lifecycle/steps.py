"""The database steps of the lifecycle, and the two places they run: here, or in an ECS task.

A `Step` names what to do for one tenant and carries no secret: role passwords travel as
SCRAM verifiers, the first administrator's as Redmine's salted hash, and anything that needs
the tenant's own password (pg_dump, pg_restore, the first administrator) reads the tenant's
document where it runs.

Where a step runs, nothing in the request or the document is taken on trust: the document's
database endpoint must be one the settings allow (site.DatabaseAccess); every step but
`inspect` carries the database and document version its verb checked and runs only if the
document is still that version and names that database (a document switched while the
migrations or an ECS task start run is refused, not followed); a step that drops, replaces,
changes a login or dumps a database (`GUARDED`, `backup`) runs only if the tenant holds the
claims of that database and its roles with no other document naming them
(common.check_owns); steps that log in as the tenant (set-admin, backup, restore) first check,
as the administrator, that the database's owner is one of the tenant's logins and not a role
marked for another tenant. Otherwise nothing is done (exit 4).

- `LocalRunner` executes a step in this process with the local PostgreSQL client tools.
- `EcsRunner` stores the step as a request object in the config bucket, has the admin broker
  (`lifecycle/broker.py`, a Lambda function) start a one-off task of the admin task definition
  running `redmica entrypoint admin-sql REQUEST_ID` (the override carries that id and nothing
  else), waits for it, and reads the result object the task wrote. The task resolves the
  RDS-managed master secret itself, with its task role; the operator never starts it directly.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias, cast, get_args

from redmica_ops.aws import translate_errors
from redmica_ops.errors import (
    Conflict,
    NotFound,
    OperationFailed,
    RedmicaError,
    UsageError,
    error_from_dict,
)
from redmica_ops.lifecycle import database, dumps
from redmica_ops.lifecycle.common import check_owns, incarnation_of
from redmica_ops.lifecycle.site import DatabaseAccess, Site
from redmica_ops.lifecycle.sql import Sql
from redmica_ops.runs.executors.ecs import EcsTarget, poll_tasks, stop_task
from redmica_ops.tenants.store import StoredTenant, TenantStore

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_s3 import S3Client

    from redmica_ops.runs.pacing import Clock

StepName = Literal[
    "create-database", "set-admin", "set-login", "drop", "backup", "restore", "replace", "inspect"
]
STEP_NAMES: tuple[str, ...] = get_args(StepName)
Value: TypeAlias = "str | int | bool | list[str] | dict[str, int] | None"
StepResult = dict[str, Value]
SECRET_ARGS = frozenset({"password", "db_password"})  # refused in a step, always
GUARDED = frozenset({"drop", "replace", "set-login"})  # re-checked where the step runs
# Steps that need the claims too: a backup of a database that is not the tenant's would put
# another tenant's data under this tenant's backups (and so into its database at a restore).
OWNED = GUARDED | {"backup"}
# Steps that log in as the tenant (its document's user and password) inside its database.
AS_TENANT = frozenset({"set-admin", "backup", "restore"})


@dataclass(frozen=True)
class Step:
    name: StepName
    tenant: str
    args: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        leaked = SECRET_ARGS & set(self.args)
        if leaked:
            raise UsageError(f"a lifecycle step may not carry {sorted(leaked)}")

    def to_json(self) -> str:
        return json.dumps({"step": self.name, "tenant": self.tenant, "args": dict(self.args)})

    @classmethod
    def from_json(cls, text: str) -> Step:
        data = json.loads(text)
        if data.get("step") not in STEP_NAMES:
            raise UsageError(f"unknown lifecycle step {data.get('step')!r}")
        return cls(cast(StepName, data["step"]), str(data["tenant"]), dict(data.get("args", {})))


def guard_args(stored: StoredTenant, owner: str | None) -> dict[str, str]:
    """What a guarded step expects to find where it runs (see `verify`)."""
    args = {"database": stored.tenant.db.name, "version": stored.etag}
    if owner is not None:
        args["owner"] = owner
    return args


def verify(step: Step, stored: StoredTenant, store: TenantStore) -> None:
    """Where the step runs: the document is the version the operator's plan read, it names the
    same database, and (OWNED steps) its tenant provably owns that database and its roles."""
    expected, version = step.args.get("database"), step.args.get("version")
    if expected is None or version is None:
        raise UsageError(
            f"a {step.name} step must name the database and document version it expects",
            "run it through `redmica tenant ...`, which plans it",
        )
    if stored.tenant.db.name != expected or stored.etag != version:
        raise Conflict(
            f"tenant {step.tenant!r} changed since the plan was confirmed (it names database "
            f"{stored.tenant.db.name!r}, expected {expected!r}, or is another version of its "
            "document); nothing was done",
            "look at the tenant again and run the command again",
        )
    if step.name in OWNED:
        check_owns(store, stored)


def check_database(site: Site, stored: StoredTenant) -> None:
    """Before logging in as the tenant: its database is owned by one of its logins, none of
    them marked for another tenant (the administrator looks, in `postgres`)."""
    tenant = stored.tenant
    names = sorted(database.login_pair(tenant.db.user))
    state = database.inspect(site.admin_sql(tenant), tenant.db.name, names)
    database.check_owner(state, tenant.db.user, None, stored.tenant_id)


def execute(step: Step, site: Site, store: TenantStore) -> StepResult:
    """Run one step against the database (this is what the admin task runs, too)."""
    args = step.args
    if step.name == "inspect" and "database" in args:
        # Before the document is written (`tenant add --provision`): names from the request,
        # its host and port held to the same allow-list as a document's.
        return _inspect(site.admin_sql_at(args.get("host"), args.get("port")), args, step.tenant)
    stored = store.get(step.tenant)
    tenant = stored.tenant
    site.access.endpoint_of(tenant, step.tenant)  # exit 2 before any connection
    owner = args.get("owner")
    sql = site.admin_sql(tenant)
    if step.name == "inspect":
        return _inspect(
            sql,
            {"database": tenant.db.name, "user": tenant.db.user, "owner": tenant.db.user},
            step.tenant,
        )
    verify(step, stored, store)
    if step.name in AS_TENANT:
        check_database(site, stored)
    if step.name == "create-database":
        if args["owner"] != tenant.db.user:
            raise Conflict(
                f"a create-database step for tenant {step.tenant!r} names role "
                f"{args['owner']!r}, not its document's db.user {tenant.db.user!r}; nothing "
                "was done",
                "run it through `redmica tenant provision`",
            )
        done = database.create_database(
            sql,
            tenant.db.name,
            args["owner"],
            args["verifier"],
            site.connection_limit,
            step.tenant,
        )
        return {"done": done}
    if step.name == "set-login":
        action = database.set_login(
            sql,
            tenant.db.name,
            args["login"],
            args["verifier"],
            site.connection_limit,
            step.tenant,
            tenant.db.user,
            owner,
        )
        return {"done": [action]}
    if step.name == "set-admin":
        # As the tenant's own login: its triggers and search_path never run as the master.
        action = database.set_admin(
            site.login_sql(tenant), tenant.db.name, args["login"], args["hashed"], args["salt"]
        )
        return {"done": [action]}
    if step.name == "drop":
        expect_absent = args.get("expect") == "absent"
        dropped = database.drop(
            sql, tenant.db.name, tenant.db.user, step.tenant, expect_absent, owner
        )
        return {"done": dropped}
    if step.name == "backup":
        incarnation = incarnation_of(store, step.tenant)
        backup = dumps.dump(site, step.tenant, tenant, args.get("reason", "manual"), incarnation)
        return {**backup.summary(), "table_rows": backup.tables}
    if step.name == "restore":
        source = args["source"]
        backup = dumps.find_backup(
            site.s3,
            site.bucket,
            site.backups_prefix,
            source,
            args["backup"],
            incarnation_of(store, source),
        )
        counts = dumps.restore(site, backup, tenant)
        return {
            "backup": backup.backup_id,
            "source": args["source"],
            "tables": len(counts),
            "rows": sum(counts.values()),
        }
    if step.name == "replace":
        backup = dumps.find_backup(
            site.s3,
            site.bucket,
            site.backups_prefix,
            step.tenant,
            args["backup"],
            incarnation_of(store, step.tenant),
        )
        return {**dumps.replace_live(site, backup, tenant, args["stamp"], step.tenant, owner)}
    raise UsageError(f"unknown lifecycle step {step.name!r}")


def _inspect(sql: Sql, args: Mapping[str, str], tenant_id: str) -> StepResult:
    name, user = args["database"], args["user"]
    state = database.inspect(sql, name, sorted(database.login_pair(user)))
    result: StepResult = {
        "database": name,
        "owner": state.owner,
        "roles": sorted(state.roles),
        "side_databases": database.side_databases(state),
    }
    try:
        database.check_can_provision(state, args.get("owner", user), tenant_id)
    except Conflict as conflict:
        result["conflict"] = conflict.message
    try:  # what a purge could not drop: its plan refuses before the final backup
        database.check_marks(state, tenant_id)
        database.check_droppable(state)
    except Conflict as conflict:
        result["undroppable"] = conflict.message
    return result


class Runner(Protocol):
    where: str
    # The endpoints this runner's database connections may use (None: only checked where the
    # step runs); the verbs refuse a document naming another one before writing anything.
    access: DatabaseAccess | None

    def run(self, step: Step) -> StepResult: ...


class LocalRunner:
    where = "local"

    def __init__(self, site: Site, store: TenantStore) -> None:
        self.site = site
        self.store = store
        self.access: DatabaseAccess | None = site.access
        self.steps: list[Step] = []

    def run(self, step: Step) -> StepResult:
        self.steps.append(step)
        return execute(step, self.site, self.store)


def new_request_id(step: Step) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{step.tenant}-{step.name}-{secrets.token_hex(4)}"


def request_key(prefix: str, request_id: str) -> str:
    return f"{prefix}requests/{request_id}.json"


def result_key(prefix: str, request_id: str) -> str:
    return f"{prefix}results/{request_id}.json"


class AdminLauncher(Protocol):
    """Starts the admin task for a request already in the bucket; returns the task's ARN."""

    def launch(self, request_id: str) -> str: ...


class EcsRunner:
    """A step as an ECS admin task (`entrypoint admin-sql REQUEST_ID`), started by the broker.

    `target` names the cluster and container to watch; what runs, with which role, is the
    admin task definition's, chosen by the broker and never by this process.
    """

    where = "ecs"

    def __init__(
        self,
        ecs: ECSClient,
        s3: S3Client,
        launcher: AdminLauncher,
        target: EcsTarget,
        bucket: str,
        prefix: str,
        clock: Clock,
        kms_key_id: str | None = None,
        timeout: float = 3600.0,
        poll_interval: float = 5.0,
        access: DatabaseAccess | None = None,
    ) -> None:
        self.ecs = ecs
        self.s3 = s3
        self.launcher = launcher
        self.target = target
        self.bucket = bucket
        self.prefix = prefix
        self.clock = clock
        self.kms_key_id = kms_key_id
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.access = access
        self.launched: list[str] = []  # request ids, for inspection

    def run(self, step: Step) -> StepResult:
        request_id = new_request_id(step)
        key = request_key(self.prefix, request_id)
        params: dict[str, object] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": step.to_json().encode(),
            "ContentType": "application/json",
            "IfNoneMatch": "*",
            "ServerSideEncryption": "aws:kms",
        }
        if self.kms_key_id:
            params["SSEKMSKeyId"] = self.kms_key_id
        with translate_errors(f"writing s3://{self.bucket}/{key}", self.bucket):
            self.s3.put_object(**params)  # type: ignore[arg-type]
        self.launched.append(request_id)
        arn = self.launcher.launch(request_id)
        deadline = self.clock.now() + self.timeout
        while True:
            state = poll_tasks(self.ecs, self.target, [arn]).get(arn)
            if state is not None and state.stopped:
                break
            if self.clock.now() > deadline:
                stop_task(self.ecs, self.target, arn, "redmica: admin task timed out")
                raise OperationFailed(f"admin task {arn} timed out after {self.timeout:g}s")
            self.clock.sleep(self.poll_interval)
        return self._result(request_id, step, state.exit_code, state.stopped_reason, arn)

    def _result(
        self,
        request_id: str,
        step: Step,
        exit_code: int | None,
        reason: str | None,
        arn: str = "",
    ) -> StepResult:
        key = result_key(self.prefix, request_id)
        try:
            with translate_errors(f"reading s3://{self.bucket}/{key}", self.bucket):
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except NotFound:
            raise self._no_result(step, exit_code, reason, arn, key) from None
        data = json.loads(body)
        if data.get("ok"):
            return cast(StepResult, data.get("result", {}))
        raise error_from_dict(data, f"the admin task for {step.tenant} ({step.name}) failed")

    def _no_result(
        self, step: Step, exit_code: int | None, reason: str | None, arn: str, key: str
    ) -> OperationFailed:
        """What a task that left no result means, and where to look (issue #28: "exit 0, no
        reason, without writing its result" said neither)."""
        where = f"s3://{self.bucket}/{key}"
        what = f"the admin task for {step.tenant} ({step.name}) stopped (exit {exit_code}, " + (
            f"{reason or 'no reason'}) without writing its result to {where}"
        )
        if exit_code == 0:
            what += (
                ": it ran without redmica's lifecycle entrypoint (`entrypoint admin-sql`: the "
                "admin task definition's image or command is not redmica's), or it could not "
                "write to the bucket"
            )
        log = admin_task_log(self.ecs, self.target, arn)
        look = f"the task's log ({log})" if log else f"the task's log (task {arn or '?'})"
        return OperationFailed(
            what,
            f"check {look}, and that the admin task role may s3:PutObject on "
            f"s3://{self.bucket}/{self.prefix}results/* (and use the bucket's KMS key); every "
            "step is safe to run again",
        )


def admin_task_log(ecs: ECSClient, target: EcsTarget, arn: str) -> str | None:
    """Where a stopped task's container logged: "CloudWatch Logs group G, stream S"; None when
    it cannot be told (best effort: this only improves an error message)."""
    try:
        tasks = ecs.describe_tasks(cluster=target.cluster, tasks=[arn]).get("tasks", [])
        definition = ecs.describe_task_definition(taskDefinition=tasks[0]["taskDefinitionArn"])
    except Exception:
        return None
    containers = definition["taskDefinition"].get("containerDefinitions", [])
    for container in containers:
        if container.get("name") != target.container and len(containers) > 1:
            continue
        log = container.get("logConfiguration")
        if log is None:
            continue
        options = log.get("options") or {}
        group, prefix = options.get("awslogs-group"), options.get("awslogs-stream-prefix")
        if log.get("logDriver") == "awslogs" and group and prefix:
            stream = f"{prefix}/{container.get('name')}/{arn.rsplit('/', 1)[-1]}"
            return (
                f"CloudWatch Logs group {group}, stream {stream}: "
                f"aws logs tail {group} --log-stream-names {stream}"
            )
    return None


def write_result(
    s3: S3Client,
    bucket: str,
    prefix: str,
    request_id: str,
    result: StepResult | None,
    error: RedmicaError | None,
    kms_key_id: str | None = None,
) -> None:
    """What the admin task leaves for the CLI that started it (never a secret)."""
    document: dict[str, object] = {"request": request_id, "ok": error is None}
    if error is None:
        document["result"] = result or {}
    else:
        document.update(error.as_dict())
    params: dict[str, object] = {
        "Bucket": bucket,
        "Key": result_key(prefix, request_id),
        "Body": json.dumps(document, sort_keys=True).encode(),
        "ContentType": "application/json",
        "IfNoneMatch": "*",
        "ServerSideEncryption": "aws:kms",
    }
    if kms_key_id:
        params["SSEKMSKeyId"] = kms_key_id
    with translate_errors(f"writing the result of {request_id}", bucket):
        s3.put_object(**params)  # type: ignore[arg-type]


def names(steps: Sequence[Step]) -> list[str]:
    return [f"{s.name}:{s.tenant}" for s in steps]

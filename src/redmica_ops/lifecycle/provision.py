"""Provision: a tenant's role, database, schema, default data and first administrator.

Order, each step checking what exists so a re-run finishes the job (docs/tenant-lifecycle.md):
  1. checks before any SQL: the document is valid (names are not reserved words), its role
     and the role's rotation twin are not another tenant's;
  2. status -> provisioning (the host answers 503; no app is spawned);
  3. role + database (`create-database` step; exit 4 if the database has another owner);
  4. the migrations, then `redmine:load_default_data` (a second run: see
     default_data_command) in the language of --language, else property.language, else the
     default_language setting;
  5. the first administrator (`set-admin` step: login and Redmine's salted hash only), once
     the default data is found in the database (the rake task exits 0 when it fails);
  6. status -> active.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import SecretStr

from redmica_ops.errors import Conflict, OperationFailed, UsageError
from redmica_ops.lifecycle.common import (
    check_roles_unused,
    new_password,
    require_endpoint,
    require_status,
    set_status,
    verifier_of,
)
from redmica_ops.lifecycle.database import LOGIN_RULE, redmine_password_hash
from redmica_ops.lifecycle.steps import Runner, Step, guard_args
from redmica_ops.report import Part, Report, info, success, text
from redmica_ops.runs.migrations import MigrationRequest
from redmica_ops.runs.migrations import run as run_migrations
from redmica_ops.runs.options import parse_command
from redmica_ops.runs.record import Status
from redmica_ops.tenants import rules
from redmica_ops.tenants.model import Tenant
from redmica_ops.tenants.registry import TenantRegistry
from redmica_ops.tenants.store import Listing

if TYPE_CHECKING:
    from redmica_ops.errors import JSONValue
    from redmica_ops.tenants.passwords import SecretReader
    from redmica_ops.workspace import Workspace

RELOAD_HINT = "it takes effect when the vhosts are rendered again (`redmica reload`)"


@dataclass(frozen=True)
class ProvisionRequest:
    tenant_id: str
    migrate_command: list[str]
    language: str | None = None  # --language; else the document's property.language
    default_language: str = "en"  # the setting, when neither says
    admin_login: str = "admin"
    admin_password: SecretStr | None = None  # None: generated, handed back once


@dataclass
class ProvisionOutcome:
    tenant_id: str
    done: list[str] = field(default_factory=list)
    admin_login: str = "admin"
    generated_password: SecretStr | None = None  # shown once by the caller, never logged
    migration_run: str | None = None
    default_data_run: str | None = None
    language: str = "en"

    def report(self) -> Report:
        """What was done; the generated administrator password, asked for, shown once."""
        generated = self.generated_password
        body: list[Part] = [info(f"  {line}") for line in self.done]
        body.append(
            success(f"provisioned tenant {self.tenant_id}; administrator: {self.admin_login}")
        )
        if generated is not None:
            body.append(info("administrator password (shown once, store it now):"))
            body.append(text(generated.get_secret_value()))
        body.append(info(f"the site is served once the vhosts are rendered again: {RELOAD_HINT}"))
        document: dict[str, JSONValue] = {
            "tenant": self.tenant_id,
            "provisioned": True,
            "done": list(self.done),
            "admin_login": self.admin_login,
            "migration_run": self.migration_run,
            "default_data_run": self.default_data_run,
            "language": self.language,
        }
        if generated is not None:
            document["admin_password"] = generated.get_secret_value()  # asked for: shown once
        return Report(document, body)


@dataclass(frozen=True)
class ProvisionOptions:
    """What the operator chose for a provisioning (`tenant provision`, `tenant add
    --provision`): where the steps run, the first administrator, the default data's language."""

    executor: str = "ecs"
    admin_login: str = "admin"
    admin_password: SecretStr | None = None  # None: generated, handed back once
    language: str | None = None


def language_of(request: ProvisionRequest, tenant: Tenant) -> str:
    """--language, else the document's property.language, else the setting; checked by the
    one language rule before anything is written (an unknown code would make the rake task
    wait for an answer on stdin)."""
    language = request.language or tenant.properties.language or request.default_language
    if problem := rules.check_redmine_language(language):
        where = (
            "--language"
            if request.language
            else "property.language"
            if tenant.properties.language
            else "default_language"
        )
        raise UsageError(f"{where}: {problem}", "nothing was changed")
    return language


# (tenant id, command) -> run id; raises when the migration failed.
Migrate = Callable[[str, list[str]], str]


def default_data_command(request: ProvisionRequest, language: str) -> list[str]:
    """`<the rake of migrate_command> redmine:load_default_data REDMINE_LANG=<language>`.

    A run of its own: in the process that ran db:migrate, Rails still knows the tables as they
    were before the migrations, and the task fails ("unknown attribute ... for Role") while
    exiting 0. Rake reads NAME=value arguments as environment: no override needs them."""
    command = request.migrate_command
    runner = [i for i, token in enumerate(command) if token.rsplit("/", 1)[-1] in RAKE_PROGRAMS]
    if not runner:
        raise UsageError(
            f"cannot tell how to run rake from migrate_command {' '.join(command)!r}",
            "make migrate_command a rake (or rails) command, e.g. `bundle exec rake db:migrate`",
        )
    return [*command[: runner[-1] + 1], "redmine:load_default_data", f"REDMINE_LANG={language}"]


RAKE_PROGRAMS = ("rake", "rails")


def precheck(runner: Runner, tenant_id: str, tenant: Tenant) -> None:
    """Read-only: refuse (exit 4) a database with another owner or a privileged/foreign role,
    before anything is written anywhere."""
    args = {"database": tenant.db.name, "user": tenant.db.user, "owner": tenant.db.user}
    if tenant.db.host:
        args["host"] = tenant.db.host
    if tenant.db.port:
        args["port"] = str(tenant.db.port)
    state = runner.run(Step("inspect", tenant_id, args))
    if state.get("conflict"):
        raise Conflict(
            f"tenant {tenant_id!r}: {state['conflict']}",
            "pick another db.name / db.user; nothing was written",
        )


def provision(
    registry: TenantRegistry,
    runner: Runner,
    migrate: Migrate,
    request: ProvisionRequest,
    passwords: SecretReader | None = None,
    listing: Listing | None = None,
) -> ProvisionOutcome:
    """`listing`: the tenants as the caller read them (`tenant add --provision`), so the
    listing is read once per command; the claims still guard every write."""
    if not LOGIN_RULE.fullmatch(request.admin_login):
        raise UsageError(
            f"--admin-login {request.admin_login!r} is not a Redmine login",
            "letters, digits and _-@. (at most 60)",
        )
    listing = listing or registry.store.load_all()
    stored = next((s for s in listing.tenants if s.tenant_id == request.tenant_id), None)
    if stored is None:
        stored = registry.store.get(request.tenant_id)  # raises NotFound / ValidationFailed
    require_status(stored, ("provisioning", "active"), "provision")
    require_endpoint(runner.access, stored)
    language = language_of(request, stored.tenant)
    default_data = default_data_command(request, language)
    check_roles_unused(request.tenant_id, stored.tenant, listing)
    precheck(runner, request.tenant_id, stored.tenant)
    # Before anything is written: a password in a secret that cannot be read stops here.
    verifier = verifier_of(stored.tenant, passwords)
    outcome = ProvisionOutcome(
        request.tenant_id, admin_login=request.admin_login, language=language
    )

    stored = set_status(registry, stored, "provisioning", listing=listing)
    outcome.done.append("status: provisioning (not served)")
    tenant = stored.tenant
    result = runner.run(
        Step(
            "create-database",
            request.tenant_id,
            # The document version written above: a document switched since is refused.
            {**guard_args(stored, None), "owner": tenant.db.user, "verifier": verifier},
        )
    )
    outcome.done.extend(str(d) for d in _list(result.get("done")))

    outcome.migration_run = migrate(request.tenant_id, list(request.migrate_command))
    outcome.done.append("migrations: done")
    outcome.default_data_run = migrate(request.tenant_id, default_data)
    outcome.done.append(f"default data ({language}): loaded")

    password = request.admin_password
    if password is None:
        password = outcome.generated_password = new_password()
    hashed, salt = redmine_password_hash(password.get_secret_value())
    result = runner.run(
        Step(
            "set-admin",
            request.tenant_id,
            # Minutes of migrations later: still the document (and database) checked above.
            {
                **guard_args(stored, None),
                "login": request.admin_login,
                "hashed": hashed,
                "salt": salt,
            },
        )
    )
    outcome.done.extend(str(d) for d in _list(result.get("done")))

    set_status(registry, stored, "active", listing=listing)
    outcome.done.append("status: active (served at the next render)")
    return outcome


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def run(
    tenant_id: str, options: ProvisionOptions, ws: Workspace, listing: Listing | None = None
) -> ProvisionOutcome:
    """Provision with what the workspace builds: the registry, the runner of
    `options.executor`, the migrations as `redmica migrate` runs them, the password resolver."""
    request = ProvisionRequest(
        tenant_id,
        migrate_command=parse_command(ws.settings.migrate_command),
        language=options.language,
        default_language=ws.settings.default_language,
        admin_login=options.admin_login,
        admin_password=options.admin_password,
    )
    return provision(
        ws.registry(),
        ws.runner(options.executor),
        migrate_with(ws, options.executor),
        request,
        # db.password_secret: read with the operator's credentials, for the role's verifier.
        passwords=ws.passwords(),
        listing=listing,
    )


def migrate_with(ws: Workspace, kind: str) -> Migrate:
    """Provisioning migrates through `runs.migrations.run`, like `redmica migrate`."""

    def migrate(tenant_id: str, command_line: list[str]) -> str:
        request = MigrationRequest(
            tenants=(tenant_id,),
            command=shlex.join(command_line),
            executor=kind,
            provisioning=True,
        )
        ws.message(f"provision {tenant_id}: running the migrations ({kind} executor)")
        record = run_migrations(request, ws).record
        tenant_run = record.tenants.get(tenant_id) if record else None
        if record is None or tenant_run is None or tenant_run.status != Status.SUCCEEDED:
            status = tenant_run.status.value if tenant_run else "not run"
            why = (tenant_run.reason if tenant_run else None) or "see its log"
            raise OperationFailed(
                f"the migrations of {tenant_id} {status}: {why}"
                + (f" ({tenant_run.log_stream})" if tenant_run and tenant_run.log_stream else ""),
                f"fix the cause and run `redmica tenant provision {tenant_id}` again "
                "(every step checks what is already done)",
            )
        return record.run_id

    return migrate

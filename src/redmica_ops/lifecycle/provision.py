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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import SecretStr

from redmica_ops.errors import Conflict, UsageError
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
from redmica_ops.tenants import rules
from redmica_ops.tenants.model import Tenant
from redmica_ops.tenants.registry import TenantRegistry

if TYPE_CHECKING:
    from redmica_ops.tenants.passwords import SecretReader


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
) -> ProvisionOutcome:
    if not LOGIN_RULE.fullmatch(request.admin_login):
        raise UsageError(
            f"--admin-login {request.admin_login!r} is not a Redmine login",
            "letters, digits and _-@. (at most 60)",
        )
    listing = registry.store.load_all()
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

    stored = set_status(registry, stored, "provisioning")
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

    set_status(registry, stored, "active")
    outcome.done.append("status: active (served at the next render)")
    return outcome


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []

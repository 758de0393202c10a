"""The tenant lifecycle without a database server: SQL text, refusals, runners, ECS overrides.

PostgreSQL here is a small fake catalog that answers the inspection query and records every
other statement, so a test can prove that a refused request ran no SQL that changes anything.
The real thing (PostgreSQL, Redmine, Apache) is exercised by scripts/e2e_lifecycle.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
import yaml
from mypy_boto3_s3 import S3Client

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
from pydantic import SecretStr

from redmica_ops.container.vhosts import VhostSettings, render_vhosts
from redmica_ops.errors import (
    Conflict,
    NotFound,
    OperationFailed,
    RedmicaError,
    UsageError,
    ValidationFailed,
)
from redmica_ops.lifecycle import steps as steps_module
from redmica_ops.lifecycle.admin_task import run_admin_request
from redmica_ops.lifecycle.backup import BackupRequest, backup
from redmica_ops.lifecycle.database import TWIN_SUFFIX, mark_of, redmine_password_hash
from redmica_ops.lifecycle.provision import ProvisionRequest, default_data_command, provision
from redmica_ops.lifecycle.purge import Attachments, PurgeRequest, RecordStore, plan, purge
from redmica_ops.lifecycle.replace import ReplaceRequest, plan_replace, replace
from redmica_ops.lifecycle.rotate import RotateRequest, rotate
from redmica_ops.lifecycle.site import DatabaseAccess, Site
from redmica_ops.lifecycle.sql import Connection, ident, literal, scram_verifier
from redmica_ops.lifecycle.steps import EcsRunner, LocalRunner, Step
from redmica_ops.lifecycle.suspend import ResumeRequest, SuspendRequest, resume, suspend
from redmica_ops.runs.pacing import FakeClock
from redmica_ops.runs.selection import select_tenants
from redmica_ops.settings.loading import load_settings
from redmica_ops.tenants.incarnations import Incarnations
from redmica_ops.tenants.model import Entry, parse_tenant
from redmica_ops.tenants.registry import TenantRegistry
from redmica_ops.tenants.store import TenantStore
from redmica_ops.workspace import AwsWorkspace
from tests.conftest import BUCKET, CANARY_PASSWORD, Invoke, objects_in, tenant_document, tenant_yaml
from tests.test_deploy import moto_service

MASTER_PASSWORD = "Master-Secret-never-leaves-the-task"
# Where the lifecycle's connections may go (the tests' documents name no db.host).
DB_ENV = {"REDMICA_DB_HOST": "db.internal", "REDMICA_DB_SSL_ROOT_CERT": "/etc/ssl/rds-bundle.pem"}


@pytest.fixture(autouse=True)
def _database_settings(_isolated_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DB_ENV.items():
        monkeypatch.setenv(name, value)


# -- a fake PostgreSQL catalog --------------------------------------------------------------------
@dataclass
class Catalog:
    databases: dict[str, str] = field(default_factory=dict)  # name -> owner
    roles: dict[str, str] = field(default_factory=dict)  # name -> "super" | "login"
    # role -> COMMENT ON ROLE; a role given above without one was made by redmica-ops for the
    # tenant of its name (acme, acme_2: tenant acme); None: a role without a mark.
    marks: dict[str, str | None] = field(default_factory=dict)
    statements: list[str] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    closed: set[str] = field(default_factory=set)  # ALLOW_CONNECTIONS false
    trackers: int = 3  # Redmine's default data, as loaded by the rake task
    table_rows: dict[str, int] = field(default_factory=dict)  # what count(*) finds
    fail_swap: bool = False

    def __post_init__(self) -> None:
        for role in self.roles:
            tenant = role.removesuffix(TWIN_SUFFIX).replace("_", "-")
            self.marks.setdefault(role, mark_of(tenant))

    def changes(self) -> list[str]:
        return [s for s in self.statements if not s.startswith("SELECT 'db'")]


class FakeSql:
    def __init__(self, catalog: Catalog, connection: Connection) -> None:
        self.catalog = catalog
        catalog.connections.append(connection)

    def query(self, sql: str, database: str = "postgres") -> list[list[str]]:
        self.catalog.statements.append(sql)
        if sql.startswith("SELECT 'db'"):
            rows: list[list[str]] = []
            for name, owner in self.catalog.databases.items():
                if f"datname = {literal(name)}" in sql:
                    rows.append(["db", owner, "", "", "", ""])
            asked = sql.split("pg_roles", 1)[1].split(";", 1)[0]
            for role, kind in self.catalog.roles.items():
                if literal(role) in asked:
                    superuser = "true" if kind == "super" else "false"
                    mark = (self.catalog.marks.get(role) or "").encode().hex()
                    rows.append(["role", role, superuser, "true", "false", "false", "false", mark])
            database = sql.split("datname = ", 1)[1].split(";", 1)[0]
            for name, owner in self.catalog.databases.items():
                if literal(owner) in asked and literal(name) != database:
                    rows.append(["owns", owner, name, "", "", ""])
            return rows
        if "RETURNING id" in sql:
            return [["1"]]
        if sql.startswith("SELECT count(*) FROM trackers"):
            return [[str(self.catalog.trackers)]]
        if sql.startswith("SELECT '") and "count(*) FROM" in sql:  # row counts after a restore
            names = [part.split("'")[1] for part in sql.split("UNION ALL")]
            return [[n, str(self.catalog.table_rows.get(n, 0))] for n in names]
        return []

    def run(self, sql: str, database: str = "postgres") -> None:
        if sql.startswith("BEGIN;\nCREATE ROLE"):  # a role and its mark, one transaction
            for statement in sql.splitlines()[1:-1]:
                self.run(statement + "\n", database)
            return
        self.catalog.statements.append(sql)
        if sql.startswith("COMMENT ON ROLE"):
            self.catalog.marks[sql.split('"')[1]] = sql.split("IS '", 1)[1].rsplit("'", 1)[0]
        if sql.startswith("CREATE ROLE"):
            self.catalog.roles[sql.split('"')[1]] = "login"
        if sql.startswith("CREATE DATABASE"):
            parts = sql.split('"')
            self.catalog.databases[parts[1]] = parts[3]
        if sql.startswith("DROP DATABASE"):
            self.catalog.databases.pop(sql.split('"')[1], None)
        if sql.startswith("DROP ROLE"):
            self.catalog.roles.pop(sql.split('"')[1], None)
        if sql.startswith("ALTER DATABASE") and "ALLOW_CONNECTIONS" in sql:
            name = sql.split('"')[1]
            if "false" in sql:
                self.catalog.closed.add(name)
            else:
                self.catalog.closed.discard(name)
        if sql.startswith("BEGIN;") and "RENAME TO" in sql:
            if self.catalog.fail_swap:
                raise OperationFailed('PostgreSQL refused: database "x" is being accessed')
            renames = [line.split('"')[1::2] for line in sql.splitlines() if "RENAME" in line]
            for old, new in renames:
                self.catalog.databases[new] = self.catalog.databases.pop(old)
                if old in self.catalog.closed:
                    self.catalog.closed.discard(old)
                    self.catalog.closed.add(new)


@dataclass(frozen=True)
class FakeSite(Site):
    catalog: Catalog = field(default_factory=Catalog)

    def admin_sql(self, tenant: Any) -> FakeSql:  # type: ignore[override]
        return FakeSql(self.catalog, self.admin(tenant))

    def admin_sql_at(self, host: str | None, port: str | None) -> FakeSql:  # type: ignore[override]
        return FakeSql(self.catalog, Connection(host, None, self.admin_user, self.admin_password))

    def psql(self, connection: Connection) -> FakeSql:
        return FakeSql(self.catalog, connection)


def make_site(s3: S3Client, catalog: Catalog) -> FakeSite:
    return FakeSite(
        s3=s3,
        bucket=BUCKET,
        backups_prefix="backups/",
        kms_key_id=None,
        access=DatabaseAccess("db.internal", root_cert="/etc/ssl/rds-bundle.pem"),
        connection_limit=20,
        admin_user="postgres",
        catalog=catalog,
    )


def seed(s3: S3Client, name: str, **overrides: Any) -> None:
    """A document as `tenant add` leaves it: with its uniqueness claims (the first seeded of
    two clashing documents holds them)."""
    from redmica_ops.tenants.claims import ClaimStore

    doc = tenant_document(name)
    for key, value in overrides.items():
        doc[key] = value
    body = yaml.safe_dump(doc).encode()
    s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=body)
    with contextlib.suppress(RedmicaError, ValidationFailed):
        claims = ClaimStore(s3, BUCKET)
        claims.take(name, claims.claims_of(parse_tenant(name, body, f"{name}.yaml")))


@pytest.fixture
def registry(s3: S3Client) -> TenantRegistry:
    return TenantRegistry(TenantStore(s3, BUCKET))


# -- SQL text -------------------------------------------------------------------------------------
def test_identifiers_are_checked_then_quoted() -> None:
    assert ident("acme_1") == '"acme_1"'
    for bad in ("select", "user", "public", "pg_acme", "Acme", 'a"b', "a b", "x" * 64):
        with pytest.raises(UsageError):
            ident(bad)
    assert literal("it's") == "'it''s'"
    assert literal("back\\slash") == "E'back\\\\slash'"


def test_role_passwords_reach_the_server_only_as_scram_verifiers() -> None:
    verifier = scram_verifier(CANARY_PASSWORD, salt=b"0123456789abcdef")
    assert verifier.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert CANARY_PASSWORD not in verifier
    assert scram_verifier(CANARY_PASSWORD) != scram_verifier(CANARY_PASSWORD)  # salted
    assert repr(Connection("h", 5432, "u", CANARY_PASSWORD)).count(CANARY_PASSWORD) == 0


def test_redmine_password_hash_is_redmines_scheme() -> None:
    import hashlib

    hashed, salt = redmine_password_hash("secret", salt="a" * 32)
    # Redmine: SHA1(salt + SHA1(password)), both hex.
    assert salt == "a" * 32 and len(hashed) == 40
    inner = hashlib.sha1(b"secret").hexdigest()  # noqa: S324
    assert hashed == hashlib.sha1(f"{'a' * 32}{inner}".encode()).hexdigest()  # noqa: S324


# -- the document's status ------------------------------------------------------------------------
def test_status_round_trips_and_is_validated() -> None:
    doc = tenant_document("acme")
    doc["status"] = "suspended"
    doc["status_message"] = "Back at 14:00 UTC"
    tenant = parse_tenant("acme", yaml.safe_dump(doc).encode(), "acme.yaml")
    assert tenant.status == "suspended" and not tenant.served
    assert yaml.safe_load(tenant.to_yaml())["status_message"] == "Back at 14:00 UTC"
    assert "status" not in yaml.safe_load(tenant.with_status("active").to_yaml())
    for field_name, value, rule in (
        ("status", "paused", "must be one of: active, provisioning, suspended"),
        ("status_message", "%{REMOTE_ADDR}", "may only hold"),
        ("status_message", "<script>", "may only hold"),
    ):
        bad = {**tenant_document("acme"), field_name: value}
        with pytest.raises(UsageError) as caught:
            parse_tenant("acme", yaml.safe_dump(bad).encode(), "acme.yaml")
        assert rule in str(caught.value.problems[0])


def test_reserved_names_are_refused_by_the_document_rules() -> None:
    bad = tenant_document("acme")
    bad["db"]["user"] = "select"
    with pytest.raises(UsageError) as caught:
        parse_tenant("acme", yaml.safe_dump(bad).encode(), "acme.yaml")
    assert "db.user" in str(caught.value.problems[0])
    assert "reserves" in str(caught.value.problems[0])


def test_a_suspended_tenant_is_rendered_like_the_catch_all() -> None:
    def entry(name: str, **extra: Any) -> Entry:
        doc = {**tenant_document(name), **extra}
        return Entry(name, name, parse_tenant(name, yaml.safe_dump(doc).encode(), name))

    text = render_vhosts(
        [
            entry("acme"),
            entry("sleepy", status="suspended", status_message="Back soon"),
            entry("newco", status="provisioning"),
        ],
        VhostSettings(domain="example.com", app_root="/srv/redmine", retry_after=120),
    )
    blocks = {b.split("\n", 1)[0]: b for b in text.split("# tenant ")[1:]}
    sleepy = next(b for k, b in blocks.items() if k.startswith("sleepy"))
    newco = next(b for k, b in blocks.items() if k.startswith("newco"))
    acme = next(b for k, b in blocks.items() if k.startswith("acme"))
    for block, message in ((sleepy, '"Back soon"'), (newco, '"This site is being set up."')):
        body = block.split("</VirtualHost>")[0]
        assert "PassengerEnabled off" in body
        assert 'Header always set Retry-After "120"' in body
        assert f"ErrorDocument 503 {message}" in body
        assert "Redirect 503 /" in body
        assert "SetEnv" not in body and "PassengerAppRoot" not in body
        assert CANARY_PASSWORD not in body
    assert "PassengerAppRoot" in acme
    # Only the served tenant counts for the pool: the same as rendering it alone.
    alone = render_vhosts(
        [entry("acme")],
        VhostSettings(domain="example.com", app_root="/srv/redmine", retry_after=120),
    )

    def pool(rendered: str) -> list[str]:
        return [line for line in rendered.splitlines() if line.startswith("PassengerM")]

    assert pool(text) == pool(alone)


def test_migrate_all_skips_suspended_and_provisioning(s3: S3Client) -> None:
    seed(s3, "acme")
    seed(s3, "sleepy", status="suspended")
    seed(s3, "newco", status="provisioning")
    listing = TenantStore(s3, BUCKET).load_all()
    selection = select_tenants(listing, [], True, [], db_host="db")
    assert selection.order == ["acme"]
    assert selection.skipped == ["newco", "sleepy"]
    selection = select_tenants(listing, [], True, [], include_suspended=True, db_host="db")
    assert selection.order == ["acme", "sleepy"]
    assert select_tenants(listing, ["sleepy"], False, [], db_host="db").order == ["sleepy"]


def test_suspend_and_resume_change_only_the_status(s3: S3Client, registry: TenantRegistry) -> None:
    seed(s3, "acme")
    change = suspend(registry, SuspendRequest("acme", "Moving racks"))
    assert (change.before, change.after, change.changed) == ("active", "suspended", True)
    stored = registry.store.get("acme")
    assert stored.tenant.status_message == "Moving racks"
    assert stored.tenant.db.password_value() == CANARY_PASSWORD
    assert not suspend(registry, SuspendRequest("acme", "Moving racks")).changed
    assert resume(registry, ResumeRequest("acme")).after == "active"
    assert registry.store.get("acme").tenant.status_message is None


def test_suspend_and_resume_commands(s3: S3Client, run: Invoke) -> None:
    seed(s3, "acme")
    result = run("tenant", "suspend", "acme", "--message", "Back soon", "-O", "json")
    assert result.exit_code == 0, result.output
    assert result.json() == {
        "tenant": "acme",
        "before": "active",
        "status": "suspended",
        "changed": True,
    }
    listed = run("tenant", "list", "-O", "json").json()
    assert listed[0]["lifecycle"] == "suspended" and listed[0]["status"] == "ok"
    before = objects_in(s3)
    bad = run("tenant", "suspend", "acme", "--message", "50% off ${HOME}")
    assert bad.exit_code == 2 and "status_message" in bad.stderr
    assert objects_in(s3) == before
    assert run("tenant", "resume", "acme").exit_code == 0


# -- provisioning ---------------------------------------------------------------------------------
def provisioned(
    s3: S3Client, registry: TenantRegistry, catalog: Catalog, tenant: str = "acme"
) -> tuple[Any, list[tuple[str, list[str]]]]:
    migrations: list[tuple[str, list[str]]] = []

    def migrate(tenant_id: str, command: list[str]) -> str:
        assert registry.store.get(tenant_id).tenant.status == "provisioning"
        migrations.append((tenant_id, command))
        return "run-1"

    runner = LocalRunner(make_site(s3, catalog), registry.store)
    request = ProvisionRequest(tenant, ["rake", "db:migrate"], language="de", admin_login="alice")
    return provision(registry, runner, migrate, request), migrations


def test_provision_creates_role_and_database_without_sending_the_password(
    s3: S3Client, registry: TenantRegistry
) -> None:
    seed(s3, "acme")
    catalog = Catalog()
    outcome, migrations = provisioned(s3, registry, catalog)
    sql = "\n".join(catalog.statements)
    assert CANARY_PASSWORD not in sql
    assert outcome.generated_password is not None
    assert outcome.generated_password.get_secret_value() not in sql
    create_role = next(s for s in catalog.statements if s.startswith("CREATE ROLE"))
    assert create_role.startswith('CREATE ROLE "acme" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
    assert "CONNECTION LIMIT 20 PASSWORD 'SCRAM-SHA-256$4096:" in create_role
    assert (
        'CREATE DATABASE "acme" OWNER "acme" ENCODING \'UTF8\' TEMPLATE template0;\n'
        in catalog.statements
    )
    assert any(
        'REVOKE CONNECT, TEMPORARY ON DATABASE "acme" FROM PUBLIC' in s for s in catalog.statements
    )
    request = ProvisionRequest("acme", ["rake", "db:migrate"], language="de")
    # Two runs: in the process that migrated, Rails still has the old columns.
    assert migrations == [
        ("acme", ["rake", "db:migrate"]),
        ("acme", default_data_command(request, "de")),
    ]
    assert migrations[1][1] == ["rake", "redmine:load_default_data", "REDMINE_LANG=de"]
    assert registry.store.get("acme").tenant.status == "active"
    # Again: every step finds its work done (ALTER instead of CREATE), and it still finishes.
    catalog.statements.clear()
    provisioned(s3, registry, catalog)
    assert not any(s.startswith(("CREATE ROLE", "CREATE DATABASE")) for s in catalog.statements)
    assert any(s.startswith('ALTER ROLE "acme"') for s in catalog.statements)


def provision_language(
    s3: S3Client, registry: TenantRegistry, flag: str | None, default: str = "en"
) -> tuple[Any, list[list[str]]]:
    commands: list[list[str]] = []

    def migrate(tenant_id: str, command: list[str]) -> str:
        commands.append(command)
        return "run-1"

    runner = LocalRunner(make_site(s3, Catalog()), registry.store)
    request = ProvisionRequest(
        "acme", ["rake", "db:migrate"], language=flag, default_language=default
    )
    return provision(registry, runner, migrate, request), commands


@pytest.mark.parametrize(
    ("document", "flag", "default", "expected"),
    [
        (None, None, "en", "en"),  # the setting's default
        (None, None, "fr", "fr"),  # the setting
        ("ja", None, "fr", "ja"),  # the document beats the setting
        ("ja", "pt-BR", "fr", "pt-BR"),  # the flag beats both
    ],
)
def test_the_language_of_the_default_data(
    s3: S3Client,
    registry: TenantRegistry,
    document: str | None,
    flag: str | None,
    default: str,
    expected: str,
) -> None:
    seed(
        s3, "acme", property={"sub_domain": "acme", **({"language": document} if document else {})}
    )
    outcome, commands = provision_language(s3, registry, flag, default)
    assert outcome.language == expected
    assert commands == [
        ["rake", "db:migrate"],
        ["rake", "redmine:load_default_data", f"REDMINE_LANG={expected}"],
    ]


@pytest.mark.parametrize(
    ("migrate", "expected"),
    [
        ("rake db:migrate redmine:plugins:migrate", ["rake"]),
        ("bundle exec rake db:migrate", ["bundle", "exec", "rake"]),
        ("bin/rails db:migrate", ["bin/rails"]),
        ("/usr/bin/env RAILS_ENV=production bundle exec rake db:migrate", None),
    ],
)
def test_the_default_data_runs_with_the_rake_of_the_migrate_command(
    migrate: str, expected: list[str] | None
) -> None:
    import shlex

    request = ProvisionRequest("acme", shlex.split(migrate))
    command = default_data_command(request, "fr")
    assert command[-2:] == ["redmine:load_default_data", "REDMINE_LANG=fr"]
    if expected is not None:
        assert command[:-2] == expected
    else:
        assert command[:-2] == shlex.split(migrate)[:-1]


def test_a_migrate_command_without_rake_is_refused_before_anything_changes(
    s3: S3Client, registry: TenantRegistry
) -> None:
    seed(s3, "acme")
    before = objects_in(s3)
    runner = LocalRunner(make_site(s3, Catalog()), registry.store)
    request = ProvisionRequest("acme", ["./migrate.sh"])
    with pytest.raises(UsageError, match="cannot tell how to run rake"):
        provision(registry, runner, lambda t, c: "run", request)
    assert objects_in(s3) == before


def test_default_data_that_did_not_load_fails_the_provisioning_before_the_admin(
    s3: S3Client, registry: TenantRegistry
) -> None:
    seed(s3, "acme")
    catalog = Catalog(trackers=0)  # the rake task printed "Error: ..." and exited 0
    with pytest.raises(OperationFailed, match="default data is not in 'acme'"):
        provisioned(s3, registry, catalog)
    assert not any("UPDATE users" in s for s in catalog.statements)
    assert registry.store.get("acme").tenant.status == "provisioning"  # not served


def test_an_unknown_language_is_refused_before_anything_changes(
    s3: S3Client, registry: TenantRegistry
) -> None:
    seed(s3, "acme")
    before = objects_in(s3)
    with pytest.raises(UsageError, match="--language: 'klingon' is not a language"):
        provision_language(s3, registry, "klingon")
    assert objects_in(s3) == before  # not even the status changed
    # In a document: refused when it is written, naming the field.
    bad = tenant_document("acme")
    bad["property"]["language"] = "de-XX"
    with pytest.raises(ValidationFailed) as caught:
        parse_tenant("acme", yaml.safe_dump(bad).encode(), "acme.yaml")
    assert "property.language" in str(caught.value.problems[0])


def test_add_with_language_flag_stores_it_and_a_bad_one_writes_nothing(
    s3: S3Client, run: Invoke
) -> None:
    flags = [
        "--db-name", "acme", "--db-user", "acme", "--s3-bucket", "redmica-attachments",
        "--s3-folder", "acme", "--sub-domain", "acme", "--generate-password",
    ]  # fmt: skip
    before = objects_in(s3)
    bad = run("tenant", "add", "acme", *flags, "--language", "xx")
    assert bad.exit_code == 2 and "property.language (--language)" in bad.stderr
    assert objects_in(s3) == before
    assert run("tenant", "add", "acme", *flags, "--language", "de").exit_code == 0
    shown = run("tenant", "show", "acme", "-O", "json").json()
    assert shown["property"]["language"] == "de"


def test_provision_refuses_a_database_with_another_owner_and_changes_nothing(
    s3: S3Client, registry: TenantRegistry
) -> None:
    seed(s3, "acme")
    catalog = Catalog(databases={"acme": "someone"}, roles={"someone": "login"})
    before = objects_in(s3)
    with pytest.raises(Conflict) as caught:
        provisioned(s3, registry, catalog)
    assert caught.value.exit_code == 4
    assert "owned by 'someone'" in caught.value.message
    assert catalog.changes() == []
    assert objects_in(s3) == before


def test_provision_refuses_a_superuser_role(s3: S3Client, registry: TenantRegistry) -> None:
    seed(s3, "acme")
    catalog = Catalog(roles={"acme": "super"})
    with pytest.raises(Conflict):
        provisioned(s3, registry, catalog)
    assert catalog.changes() == []


def test_provision_refuses_a_role_of_another_tenant_before_any_sql(
    s3: S3Client, registry: TenantRegistry
) -> None:
    seed(s3, "acme")
    doc = tenant_document("other")
    doc["db"]["user"] = "acme_2"  # acme's rotation twin
    s3.put_object(Bucket=BUCKET, Key="tenants/other.yaml", Body=yaml.safe_dump(doc).encode())
    catalog = Catalog()
    with pytest.raises(Conflict) as caught:
        provisioned(s3, registry, catalog, "other")
    assert "already used by tenant 'acme'" in caught.value.message
    assert catalog.statements == []


def test_add_provision_with_a_reserved_word_exits_2_and_writes_nothing(
    s3: S3Client, run: Invoke
) -> None:
    before = objects_in(s3)
    result = run(
        "tenant",
        "add",
        "acme",
        "-f",
        "-",
        "--provision",
        "--executor",
        "local",
        input=tenant_yaml("acme", db__user="user"),
    )
    assert result.exit_code == 2
    assert "db.user" in result.stderr and "reserves" in result.stderr
    assert objects_in(s3) == before


# -- rotation -------------------------------------------------------------------------------------
def test_rotation_alternates_between_owner_and_twin(s3: S3Client, registry: TenantRegistry) -> None:
    seed(s3, "acme")
    catalog = Catalog(databases={"acme": "acme"}, roles={"acme": "login"})
    runner = LocalRunner(make_site(s3, catalog), registry.store)
    first = rotate(registry, runner, RotateRequest("acme"))
    assert (first.previous_login, first.login) == ("acme", "acme_2")
    stored = registry.store.get("acme").tenant
    assert stored.db.user == "acme_2"
    assert stored.db.password_value() != CANARY_PASSWORD
    twin_sql = "\n".join(catalog.statements)
    assert 'GRANT "acme" TO "acme_2"' in twin_sql
    assert "ALTER ROLE \"acme_2\" SET role = 'acme'" in twin_sql
    assert stored.db.password_value() not in twin_sql
    assert CANARY_PASSWORD not in twin_sql
    second = rotate(registry, runner, RotateRequest("acme"))
    assert (second.previous_login, second.login) == ("acme_2", "acme")
    assert catalog.statements[-1].startswith('ALTER ROLE "acme" LOGIN')


# -- backup and purge -----------------------------------------------------------------------------
class FailingBackup(LocalRunner):
    def run(self, step: Step) -> steps_module.StepResult:
        if step.name == "backup":
            raise OperationFailed("pg_dump failed: password authentication failed")
        return super().run(step)


def test_purge_without_a_successful_backup_drops_nothing(
    s3: S3Client, registry: TenantRegistry
) -> None:
    seed(s3, "acme")
    catalog = Catalog(databases={"acme": "acme"}, roles={"acme": "login"})
    runner = FailingBackup(make_site(s3, catalog), registry.store)
    request = PurgeRequest("acme")
    the_plan = plan(registry, runner, s3, request)
    assert the_plan.attachment_count is None and "not counted" in (the_plan.note or "")
    records = RecordStore(s3, BUCKET, "lifecycle/", None)
    with pytest.raises(OperationFailed):
        purge(registry, runner, s3, records, request, the_plan)
    assert not any("DROP" in s for s in catalog.statements)
    assert registry.store.get("acme")  # the document is still there
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="lifecycle/")["Contents"]]
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert record["state"] == "failed"
    assert record["steps"] == [
        {
            "step": "final backup",
            "at": record["steps"][0]["at"],
            "ok": False,
            "error": "pg_dump failed: password authentication failed",
        }
    ]


def claim_keys(s3: S3Client) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="tenants/_claims/").get("Contents", [])
    return sorted(o["Key"] for o in listed)


def add_tenant(registry: TenantRegistry, name: str) -> None:
    """Through the registry, so the tenant holds its uniqueness claims as in production."""
    source = f"{name}.yaml"
    registry.add(name, parse_tenant(name, tenant_yaml(name).encode(), source), source)


def test_purge_drops_after_the_backup_and_records_every_step(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_tenant(registry, "acme")
    add_tenant(registry, "beta")
    beta_claims = [k for k in claim_keys(s3) if "beta" in k]
    assert len(beta_claims) == 5 and len(claim_keys(s3)) == 10
    s3.create_bucket(Bucket="redmica-attachments")
    for n in range(3):
        s3.put_object(Bucket="redmica-attachments", Key=f"acme/file{n}", Body=b"x")
    s3.put_object(Bucket="redmica-attachments", Key="acme-other/keep", Body=b"x")
    catalog = Catalog(databases={"acme": "acme"}, roles={"acme": "login", "acme_2": "login"})
    runner = LocalRunner(make_site(s3, catalog), registry.store)
    fake_backup = {"key": "backups/acme/x.dump", "backup": "x"}
    monkeypatch.setattr("redmica_ops.lifecycle.dumps.dump", lambda *a: _FakeBackup(fake_backup))
    request = PurgeRequest("acme", delete_attachments=True)
    the_plan = plan(registry, runner, s3, request)
    assert the_plan.attachment_count == 3 and the_plan.roles == ["acme", "acme_2"]
    record = purge(
        registry, runner, s3, RecordStore(s3, BUCKET, "lifecycle/", None), request, the_plan
    )
    assert record.state == "done"
    assert [s["step"] for s in record.steps] == [
        "final backup",
        "suspend (maintenance page)",
        "drop database and roles",
        "delete attachments",
        "remove document",
    ]
    drops = [s for s in catalog.statements if s.startswith("DROP")]
    assert drops == [
        'DROP DATABASE IF EXISTS "acme" WITH (FORCE);\n',
        'DROP ROLE IF EXISTS "acme_2";\n',
        'DROP ROLE IF EXISTS "acme";\n',
    ]
    left = s3.list_objects_v2(Bucket="redmica-attachments")["Contents"]
    assert [o["Key"] for o in left] == ["acme-other/keep"]
    assert registry.store.exists("acme") is None
    # The document went with its claims (sub_domain, db.name, folder); beta's are untouched.
    assert claim_keys(s3) == beta_claims
    assert record.steps[-1]["result"]["claims_released"] is True  # type: ignore[index]


def test_purge_of_a_document_changed_since_the_plan_drops_nothing(
    s3: S3Client, registry: TenantRegistry
) -> None:
    add_tenant(registry, "acme")
    catalog = Catalog(databases={"acme": "acme"}, roles={"acme": "login"})
    runner = LocalRunner(make_site(s3, catalog), registry.store)
    request = PurgeRequest("acme")
    the_plan = plan(registry, runner, s3, request)
    changed = registry.store.get("acme").tenant.model_copy(
        update={"db": registry.store.get("acme").tenant.db.model_copy(update={"name": "acme2"})}
    )
    registry.update("acme", changed, "(edit)")
    before = objects_in(s3)
    with pytest.raises(Conflict, match="nothing was dropped"):
        purge(registry, runner, s3, RecordStore(s3, BUCKET, "lifecycle/", None), request, the_plan)
    assert not any(s.startswith(("DROP", "CREATE")) for s in catalog.statements)
    assert objects_in(s3) == before  # not even a deprovision record


def test_purge_whose_document_changes_after_the_drop_keeps_it_and_a_rerun_finishes(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_tenant(registry, "acme")
    catalog = Catalog(databases={"acme": "acme"}, roles={"acme": "login"})
    site = make_site(s3, catalog)
    monkeypatch.setattr(
        "redmica_ops.lifecycle.dumps.dump", lambda *a: _FakeBackup({"key": "k", "backup": "b"})
    )

    class EditedDuringDrop(LocalRunner):
        def run(self, step: Step) -> steps_module.StepResult:
            result = super().run(step)
            if step.name == "drop":  # someone edits the document meanwhile
                stored = registry.store.get("acme")
                edited = stored.tenant.with_status("suspended", "Edited meanwhile")
                registry.update("acme", edited, "(edit)", stored)
            return result

    records = RecordStore(s3, BUCKET, "lifecycle/", None)
    request = PurgeRequest("acme")
    runner = EditedDuringDrop(site, registry.store)
    with pytest.raises(Conflict, match="changed since it was read"):
        purge(registry, runner, s3, records, request, plan(registry, runner, s3, request))
    assert registry.store.get("acme").tenant.status == "suspended"  # kept, with its claims
    assert len(claim_keys(s3)) == 5
    # Run again: the database is gone, so no backup is possible or needed; the rest finishes.
    again = LocalRunner(site, registry.store)
    the_plan = plan(registry, again, s3, request)
    assert not the_plan.database_exists and "no final backup" in the_plan.steps[0]
    record = purge(registry, again, s3, records, request, the_plan)
    assert record.state == "done" and record.steps[0]["result"] == {
        "skipped": "the database does not exist"
    }
    assert registry.store.exists("acme") is None and claim_keys(s3) == []


def test_a_database_that_appears_after_a_plan_without_it_is_not_dropped(
    s3: S3Client, registry: TenantRegistry
) -> None:
    add_tenant(registry, "acme")
    catalog = Catalog(roles={"acme": "login"})
    runner = LocalRunner(make_site(s3, catalog), registry.store)
    request = PurgeRequest("acme")
    the_plan = plan(registry, runner, s3, request)
    catalog.databases["acme"] = "acme"  # created after the plan: never backed up
    with pytest.raises(Conflict, match="not backed up"):
        purge(registry, runner, s3, RecordStore(s3, BUCKET, "lifecycle/", None), request, the_plan)
    assert not any(s.startswith("DROP") for s in catalog.statements)
    assert registry.store.get("acme")


def attachments_world(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> tuple[Catalog, LocalRunner]:
    add_tenant(registry, "acme")
    s3.create_bucket(Bucket="redmica-attachments")
    for key in ("acme/a", "acme/b", "acme/sub/c", "acme-other/keep"):
        s3.put_object(Bucket="redmica-attachments", Key=key, Body=key.encode())
    catalog = Catalog(databases={"acme": "acme"}, roles={"acme": "login"})
    monkeypatch.setattr(
        "redmica_ops.lifecycle.dumps.dump", lambda *a: _FakeBackup({"key": "k", "backup": "b"})
    )
    return catalog, LocalRunner(make_site(s3, catalog), registry.store)


def attachment_keys(s3: S3Client) -> list[str]:
    listed = s3.list_objects_v2(Bucket="redmica-attachments").get("Contents", [])
    return sorted(o["Key"] for o in listed)


def test_purge_archives_attachments_verified_before_the_drop_then_deletes_them(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, runner = attachments_world(s3, registry, monkeypatch)
    request = PurgeRequest("acme", archive_attachments=True)
    the_plan = plan(registry, runner, s3, request)
    assert the_plan.attachment_count == 3
    assert the_plan.archive_to and the_plan.archive_to.startswith(
        "s3://redmica-attachments/archive/acme/"
    )
    assert "verify the copy" in the_plan.steps[1] and "drop database" in the_plan.steps[2]
    record = purge(
        registry, runner, s3, RecordStore(s3, BUCKET, "lifecycle/", None), request, the_plan
    )
    assert [s["step"] for s in record.steps] == [
        "final backup",
        "archive attachments (copy, verified)",
        "suspend (maintenance page)",
        "drop database and roles",
        "delete archived attachments",
        "remove document",
    ]
    archive = the_plan.archive_to.removeprefix("s3://redmica-attachments/")
    assert attachment_keys(s3) == sorted(
        ["acme-other/keep", f"{archive}a", f"{archive}b", f"{archive}sub/c"]
    )
    body = s3.get_object(Bucket="redmica-attachments", Key=f"{archive}sub/c")["Body"].read()
    assert body == b"acme/sub/c"
    assert record.steps[1]["result"] == {
        "archive": the_plan.archive_to,
        "objects": 3,
        "bytes": len(b"acme/a") + len(b"acme/b") + len(b"acme/sub/c"),
    }
    assert record.steps[4]["result"] == {"deleted": 3, "left": 0}


def test_a_failed_archive_copy_drops_and_deletes_nothing(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog, runner = attachments_world(s3, registry, monkeypatch)
    request = PurgeRequest("acme", archive_attachments=True)
    the_plan = plan(registry, runner, s3, request)
    real_copy = s3.copy_object
    calls: list[str] = []

    def copy_object(**params: Any) -> Any:
        calls.append(params["Key"])
        if len(calls) == 2:
            raise boto3.client("s3", region_name="us-east-1").exceptions.ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "denied"}}, "CopyObject"
            )
        return real_copy(**params)

    monkeypatch.setattr(s3, "copy_object", copy_object)
    records = RecordStore(s3, BUCKET, "lifecycle/", None)
    with pytest.raises(RedmicaError):
        purge(registry, runner, s3, records, request, the_plan)
    assert not any(s.startswith("DROP") for s in catalog.statements)
    originals = ["acme-other/keep", "acme/a", "acme/b", "acme/sub/c"]
    assert [k for k in attachment_keys(s3) if not k.startswith("archive/")] == originals
    assert registry.store.get("acme")
    (key,) = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="lifecycle/deprovisions/")["Contents"]
    ]
    saved = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert saved["state"] == "failed"
    assert [(s["step"], s["ok"]) for s in saved["steps"]] == [
        ("final backup", True),
        ("archive attachments (copy, verified)", False),
    ]


def test_an_archive_that_does_not_match_drops_and_deletes_nothing(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog, runner = attachments_world(s3, registry, monkeypatch)
    request = PurgeRequest("acme", archive_attachments=True)
    the_plan = plan(registry, runner, s3, request)
    real_sizes = Attachments.sizes

    def lossy(self: Attachments, prefix: str) -> dict[str, int]:
        found = real_sizes(self, prefix)
        if prefix.startswith("archive/"):  # one copy went missing
            found.pop(min(found))
        return found

    monkeypatch.setattr(Attachments, "sizes", lossy)
    with pytest.raises(OperationFailed, match=r"does not match: 3 object.*2 found, 1 missing"):
        purge(registry, runner, s3, RecordStore(s3, BUCKET, "lifecycle/", None), request, the_plan)
    assert not any(s.startswith("DROP") for s in catalog.statements)
    assert {"acme/a", "acme/b", "acme/sub/c"} <= set(attachment_keys(s3))
    assert registry.store.get("acme")


def test_an_archive_prefix_inside_a_tenant_folder_is_refused_before_anything(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog, runner = attachments_world(s3, registry, monkeypatch)
    add_tenant(registry, "acme-other")
    before = objects_in(s3)
    for prefix, owner in (("acme-other/", "acme-other"), ("acme/old/", "acme")):
        request = PurgeRequest("acme", archive_attachments=True, archive_prefix=prefix)
        with pytest.raises(UsageError, match=f"folder of tenant '{owner}'"):
            plan(registry, runner, s3, request)
    assert catalog.statements == []  # not even the inspection ran
    assert objects_in(s3) == before
    assert len(attachment_keys(s3)) == 4


def test_remove_attachment_flags_are_checked_first(s3: S3Client, run: Invoke) -> None:
    seed(s3, "acme")
    before = objects_in(s3)
    both = run(
        "tenant", "remove", "acme", "--purge", "--delete-attachments", "--archive-attachments"
    )
    assert both.exit_code == 2 and "choose one of" in both.stderr
    alone = run("tenant", "remove", "acme", "--archive-attachments", "--yes")
    assert alone.exit_code == 2 and "go with --purge" in alone.stderr
    assert objects_in(s3) == before


@dataclass
class _FakeBackup:
    data: dict[str, str]

    def summary(self) -> dict[str, str]:
        return self.data

    @property
    def tables(self) -> dict[str, int]:
        return {}


def test_backup_of_a_provisioning_tenant_is_refused(s3: S3Client, registry: TenantRegistry) -> None:
    seed(s3, "acme", status="provisioning")
    runner = LocalRunner(make_site(s3, Catalog()), registry.store)
    with pytest.raises(UsageError):
        backup(registry, runner, BackupRequest("acme"))


# -- the ECS path ---------------------------------------------------------------------------------
class TaskSimulator:
    """An ECS client whose RunTask also runs the admin task's code, as Fargate would, with
    the task definition's environment (the master secret's ARN), never the override's."""

    def __init__(self, ecs: Any, s3: S3Client, secret_arn: str, catalog: Catalog) -> None:
        self.ecs = ecs
        self.s3 = s3
        self.secret_arn = secret_arn
        self.catalog = catalog
        self.overrides: list[dict[str, Any]] = []
        self.definitions: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ecs, name)

    def run_task(self, **params: Any) -> Any:
        self.overrides.append(params["overrides"])
        self.definitions.append(params["taskDefinition"])
        response = self.ecs.run_task(**params)
        (override,) = params["overrides"]["containerOverrides"]
        request_id = override["command"][1]
        environment = {"REDMICA_DB_MASTER_SECRET": self.secret_arn, "REDMICA_BUCKET": BUCKET}
        settings = load_settings({}, {**environment, **DB_ENV}, None)
        # A failed step raises in the task; its result object carries the error to the CLI.
        with contextlib.suppress(Exception):
            run_admin_request(request_id, AwsWorkspace(settings))
        return response


@pytest.fixture
def ecs_world(
    s3: S3Client, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TaskSimulator, Catalog]]:
    moto_service()
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(
        Name="rds!cluster-abc",
        SecretString=json.dumps({"username": "master", "password": MASTER_PASSWORD}),
    )["ARN"]
    catalog = Catalog()
    monkeypatch.setattr(
        "redmica_ops.lifecycle.site.Psql",
        lambda connection, psql="psql": FakeSql(catalog, connection),
    )
    simulator = TaskSimulator(boto3.client("ecs", region_name="us-east-1"), s3, arn, catalog)
    yield simulator, catalog


def ecs_runner(s3: S3Client, simulator: TaskSimulator) -> EcsRunner:
    """The operator's runner; the admin task is started by the broker (run in this process)."""
    from tests.test_admin_broker import (
        InProcessBroker,
        admin_target,
        register_admin_task_definition,
    )

    register_admin_task_definition()
    ecs = cast("ECSClient", simulator)  # a stand-in that delegates to moto's client
    broker = InProcessBroker(s3, ecs)
    target = admin_target()
    return EcsRunner(ecs, s3, broker, target, BUCKET, "lifecycle/", FakeClock(), poll_interval=1)


def test_ecs_admin_tasks_carry_no_secret_and_read_the_master_secret_in_the_task(
    s3: S3Client, registry: TenantRegistry, ecs_world: tuple[TaskSimulator, Catalog]
) -> None:
    simulator, catalog = ecs_world
    seed(s3, "acme")
    runner = ecs_runner(s3, simulator)
    outcome, _ = provisioned_with(registry, runner)
    assert registry.store.get("acme").tenant.status == "active"
    overrides = json.dumps(simulator.overrides)
    for secret in (CANARY_PASSWORD, MASTER_PASSWORD, "SCRAM-SHA-256", "rds!cluster"):
        assert secret not in overrides
    assert outcome.generated_password.get_secret_value() not in overrides
    commands = [o["containerOverrides"][0]["command"][0] for o in simulator.overrides]
    assert commands == ["admin-sql", "admin-sql", "admin-sql"]  # inspect, create, set-admin
    # The broker's RunTask: the admin task definition, the command and nothing else (no
    # environment, no role: the task definition's own).
    for override in simulator.overrides:
        assert set(override) == {"containerOverrides"}
        assert [set(c) for c in override["containerOverrides"]] == [{"name", "command"}]
    assert set(simulator.definitions) == {"redmica-admin"}
    # The task connected as the master from the secret; nothing else ever saw that password
    # (the first administrator is set as the tenant's own login, inside its database).
    assert {(c.user, c.password) for c in catalog.connections} == {
        ("master", MASTER_PASSWORD),
        ("acme", CANARY_PASSWORD),
    }
    stored = [
        s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read().decode()
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="lifecycle/")["Contents"]
    ]
    assert len(stored) == 3  # a result per step; each request was taken by its task
    for body in stored:
        assert MASTER_PASSWORD not in body and CANARY_PASSWORD not in body


def provisioned_with(registry: TenantRegistry, runner: Any) -> tuple[Any, list[str]]:
    migrated: list[str] = []
    request = ProvisionRequest("acme", ["rake", "db:migrate"], admin_password=SecretStr("s3cret!"))

    def migrate(tenant_id: str, command: list[str]) -> str:
        migrated.append(tenant_id)
        return "run"

    outcome = provision(registry, runner, migrate, request)
    outcome.generated_password = SecretStr("s3cret!")
    return outcome, migrated


def test_ecs_admin_task_errors_come_back_with_their_exit_code(
    s3: S3Client, registry: TenantRegistry, ecs_world: tuple[TaskSimulator, Catalog]
) -> None:
    simulator, catalog = ecs_world
    catalog.databases["acme"] = "someone"
    seed(s3, "acme")
    with pytest.raises(Conflict) as caught:
        provisioned_with(registry, ecs_runner(s3, simulator))
    assert "owned by 'someone'" in caught.value.message
    assert catalog.changes() == []


def test_a_step_never_carries_a_password() -> None:
    with pytest.raises(UsageError):
        Step("set-login", "acme", {"login": "acme_2", "password": "x"})


# -- db.password_secret: a password kept in Secrets Manager or SSM --------------------------------
SECRET_PASSWORD = "kept-in-the-secret-store"
SECRET_REFERENCE = "/redmica/tenants/acme/db-password"


class DictSecrets:
    """A stand-in for tenants.passwords.PasswordResolver."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def resolve(self, reference: str) -> str:
        self.read.append(reference)
        return {SECRET_REFERENCE: SECRET_PASSWORD}[reference]


def seed_secret(s3: S3Client, name: str = "acme", **overrides: Any) -> None:
    db = {"name": name, "user": name, "password_secret": SECRET_REFERENCE}
    seed(s3, name, db=db, **overrides)


def test_provision_with_a_password_secret_sends_the_secrets_verifier_only(
    s3: S3Client, registry: TenantRegistry
) -> None:
    seed_secret(s3)
    catalog = Catalog()
    secrets = DictSecrets()
    # Where the steps run, the password is read with that place's reader (set-admin logs in
    # as the tenant); the verb's own reader computes the verifier.
    site = dataclasses.replace(make_site(s3, catalog), passwords=DictSecrets())
    runner = LocalRunner(site, registry.store)
    request = ProvisionRequest("acme", ["rake", "db:migrate"], admin_login="alice")
    provision(registry, runner, lambda tenant, command: "run-1", request, passwords=secrets)
    assert secrets.read == [SECRET_REFERENCE]
    create_role = next(s for s in catalog.statements if s.startswith("CREATE ROLE"))
    verifier = create_role.split("PASSWORD '", 1)[1].split("'", 1)[0]
    # The verifier is the secret's password (a salted SCRAM verifier checks against it).
    salt_part = verifier.split("$")[1]
    assert scram_verifier(SECRET_PASSWORD, salt=base64_salt(salt_part)) == verifier
    assert SECRET_PASSWORD not in "\n".join(catalog.statements)
    stored = registry.store.get("acme").tenant
    assert stored.db.password_secret == SECRET_REFERENCE and stored.db.password is None
    # Without a reader nothing can compute it: a plain error, before any SQL.
    seed_secret(s3, "beta")
    catalog.statements.clear()
    with pytest.raises(UsageError, match=r"db\.password_secret"):
        provision(
            registry,
            runner,
            lambda tenant, command: "run-1",
            ProvisionRequest("beta", ["rake", "db:migrate"], admin_login="alice"),
        )
    assert not any(s.startswith("CREATE") for s in catalog.statements)
    assert registry.store.get("beta").tenant.status == "active"  # nothing written


def base64_salt(part: str) -> bytes:
    import base64

    return base64.b64decode(part.split(":", 1)[1])


def test_a_dump_logs_in_with_the_password_from_the_secret(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_secret(s3)
    logins: list[Connection] = []

    def no_pg_dump(argv: list[str], connection: Connection, database: str) -> None:
        logins.append(connection)
        raise OperationFailed("pg_dump is not run here")

    monkeypatch.setattr("redmica_ops.lifecycle.dumps.run_tool", no_pg_dump)
    catalog = Catalog(databases={"acme": "acme"}, roles={"acme": "login"})
    site = dataclasses.replace(make_site(s3, catalog), passwords=DictSecrets())
    with pytest.raises(OperationFailed):
        backup(registry, LocalRunner(site, registry.store), BackupRequest("acme"))
    assert [(c.user, c.password) for c in logins] == [("acme", SECRET_PASSWORD)]


def test_rotate_refuses_a_password_kept_in_a_secret_and_changes_nothing(
    s3: S3Client, registry: TenantRegistry
) -> None:
    seed_secret(s3)
    catalog = Catalog(databases={"acme": "acme"}, roles={"acme": "login"})
    before = objects_in(s3)
    runner = LocalRunner(make_site(s3, catalog), registry.store)
    with pytest.raises(UsageError) as caught:
        rotate(registry, runner, RotateRequest("acme"))
    assert "db.password_secret" in caught.value.message and "nothing was changed" in (
        caught.value.message
    )
    assert catalog.statements == [] and objects_in(s3) == before


def test_a_restored_copy_of_a_secret_tenant_gets_its_own_password() -> None:
    from redmica_ops.lifecycle.backup import copy_for

    document = {
        "db": {"name": "acme", "user": "acme", "password_secret": SECRET_REFERENCE},
        "s3": {"bucket": "files", "folder": "acme"},
        "property": {"sub_domain": "acme"},
    }
    source = parse_tenant("acme", yaml.safe_dump(document).encode(), "acme.yaml")
    copy = copy_for("acme-restored", source).to_document(redact=False)
    assert "password_secret" not in copy["db"]
    assert copy["db"]["password"] and copy["db"]["user"] == "acme_restored"


# -- restore-db --replace -------------------------------------------------------------------------
BACKUP_ID = "20261128T041500Z-1a2b3c"
STAMP = "20261128050000"


def put_manifest(s3: S3Client, tenant: str = "acme", backup_id: str = BACKUP_ID) -> None:
    manifest = {
        "tenant": tenant,
        "backup_id": backup_id,
        "key": f"backups/{tenant}/{backup_id}.dump",
        "size": 10,
        "sha256": "0" * 64,
        "database": tenant,
        "created_at": "2026-11-28T04:15:00+00:00",
        "reason": "manual",
        "tables": {"public.users": 2, "public.issues": 5},
        # As the backup step writes it: the tenant's incarnation when it was taken.
        "incarnation": Incarnations(s3, BUCKET).of(tenant),
    }
    s3.put_object(
        Bucket=BUCKET,
        Key=f"backups/{tenant}/{backup_id}.json",
        Body=json.dumps(manifest).encode(),
    )


@dataclass
class ReplaceWorld:
    catalog: Catalog
    runner: LocalRunner
    restored_into: list[str]
    safety: list[str]


@pytest.fixture
def replace_world(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> ReplaceWorld:
    add_tenant(registry, "acme")
    put_manifest(s3)
    catalog = Catalog(databases={"acme": "acme"}, roles={"acme": "login"})
    world = ReplaceWorld(catalog, LocalRunner(make_site(s3, catalog), registry.store), [], [])

    def dump(
        site: Site, tenant_id: str, tenant: Any, reason: str, incarnation: str | None
    ) -> _FakeBackup:
        world.safety.append(reason)
        return _FakeBackup({"key": "backups/acme/safety.dump", "backup": "safety-1"})

    def restore(site: Site, backup: Any, target: Any) -> dict[str, int]:
        world.restored_into.append(target.db.name)
        return dict(backup.tables)

    monkeypatch.setattr("redmica_ops.lifecycle.dumps.dump", dump)
    monkeypatch.setattr("redmica_ops.lifecycle.dumps.restore", restore)
    return world


def replace_plan(registry: TenantRegistry, s3: S3Client, world: ReplaceWorld) -> Any:
    request = ReplaceRequest("acme", BACKUP_ID)
    return request, plan_replace(registry, world.runner, s3, BUCKET, "backups/", request, STAMP)


def test_replace_restores_beside_the_live_database_then_swaps_and_parks_it(
    s3: S3Client, registry: TenantRegistry, replace_world: ReplaceWorld
) -> None:
    world = replace_world
    request, the_plan = replace_plan(registry, s3, world)
    assert the_plan.parked_as == f"acme_replaced_{STAMP}" and the_plan.rows == 7
    assert the_plan.warning and "suspend it first" in the_plan.warning
    outcome = replace(registry, world.runner, request, the_plan)
    assert world.safety == [f"before replace by {BACKUP_ID}"]
    assert outcome.safety_backup == "safety-1"
    assert world.restored_into == [f"acme_restore_{STAMP}"]  # never the live database
    assert world.catalog.databases == {"acme": "acme", f"acme_replaced_{STAMP}": "acme"}
    assert world.catalog.closed == {f"acme_replaced_{STAMP}"}  # parked: no one connects
    changes = world.catalog.changes()
    assert not any(s.startswith("DROP") for s in changes)
    created = _index(changes, f'CREATE DATABASE "acme_restore_{STAMP}" OWNER "acme" ENCODING')
    closed = _index(changes, 'ALTER DATABASE "acme" ALLOW_CONNECTIONS false;')
    assert created < closed  # the live one is touched only after the verified restore
    assert outcome.result["parked"] == f"acme_replaced_{STAMP}"
    assert registry.store.get("acme").tenant.db.name == "acme"  # the document is unchanged


def _index(statements: list[str], start: str) -> int:
    return next(i for i, s in enumerate(statements) if s.startswith(start))


def test_replace_whose_restore_does_not_verify_leaves_the_live_database_alone(
    s3: S3Client,
    registry: TenantRegistry,
    replace_world: ReplaceWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = replace_world

    def bad_restore(site: Site, backup: Any, target: Any) -> dict[str, int]:
        raise OperationFailed("restored row counts differ from the backup: public.issues: 5 != 4")

    monkeypatch.setattr("redmica_ops.lifecycle.dumps.restore", bad_restore)
    request, the_plan = replace_plan(registry, s3, world)
    with pytest.raises(OperationFailed, match="row counts differ"):
        replace(registry, world.runner, request, the_plan)
    changes = world.catalog.changes()
    assert not any('ALTER DATABASE "acme"' in s for s in changes)
    assert [s for s in changes if s.startswith("DROP")] == [
        f'DROP DATABASE IF EXISTS "acme_restore_{STAMP}" WITH (FORCE);\n'
    ]
    assert world.catalog.databases == {"acme": "acme"} and not world.catalog.closed


def test_replace_whose_swap_fails_reopens_the_live_database(
    s3: S3Client, registry: TenantRegistry, replace_world: ReplaceWorld
) -> None:
    world = replace_world
    world.catalog.fail_swap = True
    request, the_plan = replace_plan(registry, s3, world)
    with pytest.raises(OperationFailed, match="being accessed"):
        replace(registry, world.runner, request, the_plan)
    assert world.catalog.databases == {"acme": "acme"}
    assert not world.catalog.closed  # ALLOW_CONNECTIONS true again
    assert 'ALTER DATABASE "acme" ALLOW_CONNECTIONS true;\n' in world.catalog.statements


def test_replace_without_a_safety_backup_changes_nothing(
    s3: S3Client,
    registry: TenantRegistry,
    replace_world: ReplaceWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = replace_world

    def failing_dump(*args: Any) -> Any:
        raise OperationFailed("pg_dump failed: disk full")

    monkeypatch.setattr("redmica_ops.lifecycle.dumps.dump", failing_dump)
    request, the_plan = replace_plan(registry, s3, world)
    with pytest.raises(OperationFailed, match="disk full"):
        replace(registry, world.runner, request, the_plan)
    assert world.catalog.changes() == [] and world.restored_into == []


def test_a_rerun_drops_only_the_leftover_of_a_failed_replace(
    s3: S3Client, registry: TenantRegistry, replace_world: ReplaceWorld
) -> None:
    world = replace_world
    world.catalog.databases["acme_restore_20261127000000"] = "acme"  # a crash's leftover
    world.catalog.databases["acme_replaced_20261126000000"] = "acme"  # an earlier replace
    world.catalog.databases["acme_restore_20261127000000x"] = "acme"  # not our pattern
    request, the_plan = replace_plan(registry, s3, world)
    replace(registry, world.runner, request, the_plan)
    drops = [s for s in world.catalog.changes() if s.startswith("DROP")]
    assert drops == ['DROP DATABASE IF EXISTS "acme_restore_20261127000000" WITH (FORCE);\n']
    assert "acme_replaced_20261126000000" in world.catalog.databases


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ("provisioning", UsageError, "is provisioning"),
        ("no-backup", NotFound, "no backup"),
        ("no-database", NotFound, "does not exist"),
    ],
)
def test_replace_plan_refusals_write_nothing(
    s3: S3Client,
    registry: TenantRegistry,
    replace_world: ReplaceWorld,
    change: str,
    error: type[Exception],
    match: str,
) -> None:
    world = replace_world
    if change == "provisioning":
        stored = registry.store.get("acme")
        registry.update("acme", stored.tenant.with_status("provisioning"), "(t)", stored)
    elif change == "no-backup":
        s3.delete_object(Bucket=BUCKET, Key=f"backups/acme/{BACKUP_ID}.json")
    else:
        world.catalog.databases.clear()
    before = objects_in(s3)
    with pytest.raises(error, match=match):
        replace_plan(registry, s3, world)
    assert objects_in(s3) == before and world.catalog.changes() == []


def test_purge_drops_the_parked_databases_of_earlier_replaces(
    s3: S3Client, registry: TenantRegistry, replace_world: ReplaceWorld
) -> None:
    world = replace_world
    world.catalog.databases[f"acme_replaced_{STAMP}"] = "acme"
    world.catalog.databases["other_db"] = "someone"
    request = PurgeRequest("acme")
    the_plan = plan(registry, world.runner, s3, request)
    assert the_plan.side_databases == [f"acme_replaced_{STAMP}"]
    assert f"with the parked database(s) acme_replaced_{STAMP}" in the_plan.steps[1]
    purge(
        registry, world.runner, s3, RecordStore(s3, BUCKET, "lifecycle/", None), request, the_plan
    )
    assert world.catalog.databases == {"other_db": "someone"}


def test_restore_db_replace_command_asks_and_plans(
    s3: S3Client,
    run: Invoke,
    registry: TenantRegistry,
    replace_world: ReplaceWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = replace_world.catalog
    monkeypatch.setattr(
        "redmica_ops.lifecycle.site.Psql",
        lambda connection, psql="psql": FakeSql(catalog, connection),
    )
    before = objects_in(s3)
    local = ("--executor", "local")
    both = run("tenant", "restore-db", "acme", BACKUP_ID, "--replace", "--into", "x", *local)
    assert both.exit_code == 2 and "choose one of" in both.stderr
    unasked = run("tenant", "restore-db", "acme", BACKUP_ID, "--replace", *local)
    assert unasked.exit_code == 2 and "without confirmation" in unasked.stderr
    dry = run(
        "tenant", "restore-db", "acme", "latest", "--replace", "--dry-run", *local, "-O", "json"
    )
    assert dry.exit_code == 0, dry.output
    assert dry.json()["plan"]["backup"] == BACKUP_ID
    assert objects_in(s3) == before and catalog.changes() == []
    done = run(
        "tenant", "restore-db", "acme", BACKUP_ID, "--replace", "--yes", *local, "-O", "json"
    )
    assert done.exit_code == 0, done.output
    assert done.json()["safety_backup"] == "safety-1"
    assert done.json()["parked"].startswith("acme_replaced_")


# -- the other lifecycle commands with db.password_secret ---------------------------------------
def test_replace_of_a_secret_tenant_restores_with_the_password_read_where_it_runs(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    seed_secret(s3)
    body = b"PGDMP fake dump"
    put_manifest(s3)
    manifest_key = f"backups/acme/{BACKUP_ID}.json"
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    manifest["sha256"] = hashlib.sha256(body).hexdigest()
    s3.put_object(Bucket=BUCKET, Key=manifest_key, Body=json.dumps(manifest).encode())
    s3.put_object(Bucket=BUCKET, Key=manifest["key"], Body=body, Metadata={"tenant": "acme"})
    catalog = Catalog(
        databases={"acme": "acme"},
        roles={"acme": "login"},
        table_rows={"public.users": 2, "public.issues": 5},
    )
    restores: list[tuple[str, str | None, str]] = []

    def pg_restore(argv: list[str], connection: Connection, database: str) -> None:
        restores.append((connection.user, connection.password, database))

    monkeypatch.setattr("redmica_ops.lifecycle.dumps.run_tool", pg_restore)
    secrets = DictSecrets()
    site = dataclasses.replace(make_site(s3, catalog), passwords=secrets)
    result = LocalRunner(site, registry.store).run(
        Step(
            "replace",
            "acme",
            {
                "backup": BACKUP_ID,
                "stamp": STAMP,
                **steps_module.guard_args(registry.store.get("acme"), "acme"),
            },
        )
    )
    assert restores == [("acme", SECRET_PASSWORD, f"acme_restore_{STAMP}")]
    assert secrets.read == [SECRET_REFERENCE]
    assert result["parked"] == f"acme_replaced_{STAMP}" and result["rows"] == 7
    assert catalog.databases == {"acme": "acme", f"acme_replaced_{STAMP}": "acme"}
    stored = registry.store.get("acme").tenant
    assert stored.db.password_secret == SECRET_REFERENCE and stored.db.password is None


def test_suspend_resume_and_purge_keep_a_secret_reference_as_it_is(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_secret(s3)
    suspend(registry, SuspendRequest("acme", "Back soon"))
    raw = s3.get_object(Bucket=BUCKET, Key="tenants/acme.yaml")["Body"].read().decode()
    assert f"password_secret: {SECRET_REFERENCE}" in raw and "password:" not in raw
    resume(registry, ResumeRequest("acme"))
    assert registry.store.get("acme").tenant.db.password_secret == SECRET_REFERENCE
    monkeypatch.setattr(
        "redmica_ops.lifecycle.dumps.dump", lambda *a: _FakeBackup({"key": "k", "backup": "b"})
    )
    catalog = Catalog(databases={"acme": "acme"}, roles={"acme": "login"})
    runner = LocalRunner(
        dataclasses.replace(make_site(s3, catalog), passwords=DictSecrets()), registry.store
    )
    request = PurgeRequest("acme")
    record = purge(
        registry,
        runner,
        s3,
        RecordStore(s3, BUCKET, "lifecycle/", None),
        request,
        plan(registry, runner, s3, request),
    )
    assert record.state == "done" and registry.store.exists("acme") is None
    assert catalog.databases == {}


# -- found by a new user's trial (issue 16 follow-up) ---------------------------------------------
@pytest.mark.parametrize("backup_id", ["nosuch", "latest", "20261128T041500Z-ffffff"])
def test_restore_db_of_a_missing_backup_exits_3_and_writes_nothing(
    s3: S3Client, run: Invoke, backup_id: str
) -> None:
    seed(s3, "acme")  # no backups at all
    before = objects_in(s3)
    result = run("tenant", "restore-db", "acme", backup_id, "--into", "x1", "--executor", "local")
    assert result.exit_code == 3, result.output
    assert f"no backup '{backup_id}' of tenant 'acme'" in result.stderr
    assert "tenant backups acme" in result.stderr
    assert objects_in(s3) == before  # no tenants/x1.yaml, no claims


def test_restore_db_into_a_new_tenant_uses_the_backup_it_found(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redmica_ops.lifecycle.backup import RestoreRequest, restore

    seed(s3, "acme")
    put_manifest(s3)
    catalog = Catalog()
    runner = LocalRunner(make_site(s3, catalog), registry.store)
    restored: list[str] = []

    def fake_restore(site: Site, backup: Any, target: Any) -> dict[str, int]:
        restored.append(backup.backup_id)
        return dict(backup.tables)

    monkeypatch.setattr("redmica_ops.lifecycle.dumps.restore", fake_restore)
    outcome = restore(registry, runner, RestoreRequest("acme", "latest", "x1"), s3, "backups/")
    assert restored == [BACKUP_ID] and outcome.result["backup"] == BACKUP_ID
    assert registry.store.get("x1").tenant.status == "active"


@pytest.mark.parametrize("flag", ["delete_attachments", "archive_attachments"])
def test_a_purge_that_cannot_count_the_attachments_it_would_remove_refuses_first(
    s3: S3Client, registry: TenantRegistry, flag: str
) -> None:
    from redmica_ops.errors import AwsError

    add_tenant(registry, "acme")  # its s3.bucket redmica-attachments does not exist
    catalog = Catalog(databases={"acme": "acme"}, roles={"acme": "login"})
    runner = LocalRunner(make_site(s3, catalog), registry.store)
    before = objects_in(s3)
    with pytest.raises(AwsError) as raised:
        plan(registry, runner, s3, PurgeRequest("acme", **{flag: True}))  # type: ignore[arg-type]
    assert raised.value.exit_code == 5
    assert "s3.bucket s3://redmica-attachments/acme/" in raised.value.message
    assert "redmica-attachments" in (raised.value.hint or "")
    assert "REDMICA_BUCKET" not in (raised.value.hint or "")
    assert catalog.statements == [] and objects_in(s3) == before
    # Keeping them needs no count: the plan goes on and says it is unknown.
    kept = plan(registry, runner, s3, PurgeRequest("acme"))
    assert kept.attachment_count is None and "not counted" in (kept.note or "")


def test_a_purge_stopped_after_the_drop_leaves_the_tenant_suspended_not_served(
    s3: S3Client, registry: TenantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redmica_ops.errors import AwsError
    from redmica_ops.tenants.selection import Use, select

    catalog, runner = attachments_world(s3, registry, monkeypatch)
    request = PurgeRequest("acme", delete_attachments=True)
    the_plan = plan(registry, runner, s3, request)

    def denied(self: Attachments, keys: list[str]) -> int:
        raise AwsError("deleting from s3://redmica-attachments/acme/: AccessDenied")

    monkeypatch.setattr(Attachments, "delete", denied)
    records = RecordStore(s3, BUCKET, "lifecycle/", None)
    with pytest.raises(AwsError):
        purge(registry, runner, s3, records, request, the_plan)
    assert "acme" not in catalog.databases  # dropped
    stored = registry.store.get("acme")
    assert stored.tenant.status == "suspended"  # rendered as the maintenance page
    assert "acme" not in [
        e.tenant_id for e in select(registry.store.load_all(), Use.MIGRATE, db_host="db").eligible
    ]
    text = render_vhosts(
        [Entry("acme", stored.key, stored.tenant)],
        VhostSettings(domain="example.com", app_root="/srv/redmine", retry_after=120),
    )
    assert "PassengerEnabled off" in text and "PassengerAppRoot" not in text
    # Once the cause is fixed, the same purge finishes: no backup needed, the rest done.
    monkeypatch.undo()
    monkeypatch.setattr(
        "redmica_ops.lifecycle.dumps.dump", lambda *a: _FakeBackup({"key": "k", "backup": "b"})
    )
    again = plan(registry, runner, s3, request)
    record = purge(registry, runner, s3, records, request, again)
    assert record.state == "done" and registry.store.exists("acme") is None
    assert [k for k in attachment_keys(s3) if k.startswith("acme/")] == []


def test_purge_output_says_a_skipped_step_was_skipped_and_why() -> None:
    from redmica_ops.lifecycle.flows import step_outcome

    skipped: dict[str, object] = {
        "step": "final backup",
        "result": {"skipped": "the database does not exist"},
    }
    assert step_outcome(skipped) == "skipped (the database does not exist)"
    assert step_outcome({"step": "drop database and roles", "result": {"done": []}}) == "ok"


def test_backups_of_an_unknown_tenant_exit_3_but_a_purged_ones_are_listed(
    s3: S3Client, run: Invoke
) -> None:
    nope = run("tenant", "backups", "nope")
    assert nope.exit_code == 3, nope.output
    put_manifest(s3, tenant="gone")  # a purged tenant: no document, its final backup stays
    listed = run("tenant", "backups", "gone", "-O", "json")
    assert listed.exit_code == 0 and listed.json()["backups"][0]["backup"] == BACKUP_ID
    seed(s3, "acme")
    assert run("tenant", "backups", "acme").exit_code == 0  # a tenant without backups yet


def test_suspending_again_keeps_the_message_unless_told(s3: S3Client, run: Invoke) -> None:
    seed(s3, "acme", status="suspended", status_message="Back at noon")
    before = objects_in(s3)
    again = run("tenant", "suspend", "acme", "-O", "json")
    assert again.exit_code == 0 and again.json()["changed"] is False
    assert objects_in(s3) == before
    text = run("tenant", "suspend", "acme")
    assert "already suspended; nothing written" in text.output
    cleared = run("tenant", "suspend", "acme", "--clear-message", "-O", "json")
    assert cleared.json()["changed"] is True
    registry = TenantRegistry(TenantStore(s3, BUCKET))
    assert registry.store.get("acme").tenant.status_message is None
    both = run("tenant", "suspend", "acme", "--message", "x", "--clear-message")
    assert both.exit_code == 2 and "choose one of" in both.stderr


def test_lifecycle_errors_are_one_line_with_a_hint(
    s3: S3Client, run: Invoke, tmp_path: Any
) -> None:
    from redmica_ops.lifecycle.sql import Psql

    seed(s3, "acme")
    before = objects_in(s3)
    bad = run("tenant", "suspend", "acme", "--message", "50% off ${HOME}")
    assert bad.exit_code == 2
    assert "--message (status_message):" in bad.stderr and "hint:" in bad.stderr
    assert "validation failed" not in bad.stderr
    alone = run("tenant", "remove", "acme", "--dry-run")
    assert alone.exit_code == 2 and "hint:" in alone.stderr and "--purge" in alone.stderr
    assert objects_in(s3) == before
    # psql exits 2 when it cannot connect: no statement ran, and the hint says what to check.
    fake = tmp_path / "psql"
    fake.write_text(
        '#!/bin/sh\necho \'psql: error: connection to server at "db" (10.0.0.1), port 5432 '
        "failed: Connection refused' >&2\nexit 2\n"
    )
    fake.chmod(0o755)
    with pytest.raises(OperationFailed) as raised:
        Psql(Connection("db", 5432, "postgres", root_cert="/ca.pem", admin=True), str(fake)).query(
            "SELECT 1;"
        )
    assert raised.value.message.startswith("could not connect to PostgreSQL as 'postgres'")
    assert "no statement ran" in raised.value.message
    assert "nothing after the failing statement" not in (raised.value.hint or "")
    assert "db_admin_user" in (raised.value.hint or "")
    assert "PGPASSFILE" in (raised.value.hint or "")
    # Inside the ECS admin task the administrator is the master secret's: the hint says so,
    # not the local executor's password file (and never the password).
    master = Connection("db", 5432, "master", "s3cret-pw", "/ca.pem", admin=True)
    with pytest.raises(OperationFailed) as on_ecs:
        Psql(master, str(fake)).query("SELECT 1;")
    hint = on_ecs.value.hint or ""
    assert "db_master_secret" in hint and "PGPASSFILE" not in hint and "db_admin_user" not in hint
    assert "s3cret-pw" not in on_ecs.value.message + hint
    # A tenant's own login: its document's password, not an administrator's settings.
    login = Connection("db", 5432, "acme", "pw", "/ca.pem")
    with pytest.raises(OperationFailed) as as_tenant:
        Psql(login, str(fake)).query("SELECT 1;")
    assert "db.password" in (as_tenant.value.hint or "")
    assert "db_admin_user" not in (as_tenant.value.hint or "")


def test_add_provision_takes_the_provisioning_options_of_tenant_provision(
    s3: S3Client, run: Invoke, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redmica_ops.lifecycle import provision as provision_module
    from redmica_ops.lifecycle.provision import ProvisionOptions

    document = tmp_path / "acme.yaml"
    document.write_text(tenant_yaml("acme"))
    before = objects_in(s3)
    args = ("tenant", "add", "acme", "-f", str(document))
    alone = run(*args, "--admin-password-stdin", input="pw\n")
    assert alone.exit_code == 2 and "goes with --provision" in alone.stderr
    both = run(
        "tenant", "add", "acme", "-f", "-", "--provision", "--admin-password-stdin",
        input=tenant_yaml("acme"),
    )  # fmt: skip
    assert both.exit_code == 2 and "stdin cannot carry both" in both.stderr
    empty = run(*args, "--provision", "--executor", "local", "--admin-password-stdin", input="")
    assert empty.exit_code == 2 and "no administrator password on stdin" in empty.stderr
    assert objects_in(s3) == before
    seen: list[Any] = []
    monkeypatch.setattr("redmica_ops.lifecycle.provision.precheck", lambda *a: None)

    def provision_run(
        tenant_id: str, options: ProvisionOptions, *_: Any
    ) -> provision_module.ProvisionOutcome:
        seen.append((tenant_id, options.executor, options.admin_login, options.admin_password))
        return provision_module.ProvisionOutcome(tenant_id)

    monkeypatch.setattr("redmica_ops.lifecycle.provision.run", provision_run)
    result = run(
        *args, "--provision", "--executor", "local", "--admin-login", "alice",
        "--admin-password-stdin", input="Admin-Pass-1\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((tenant_id, kind, login, password),) = seen
    assert (tenant_id, kind, login) == ("acme", "local", "alice")
    assert password.get_secret_value() == "Admin-Pass-1"


def test_a_dry_run_purge_with_the_ecs_executor_writes_and_launches_nothing(
    s3: S3Client, registry: TenantRegistry
) -> None:
    class NoTasks:
        where = "ecs"
        access: DatabaseAccess | None = None

        def run(self, step: Step) -> steps_module.StepResult:
            raise AssertionError(f"a dry run launched a task: {step.name}")

    add_tenant(registry, "acme")
    s3.create_bucket(Bucket="redmica-attachments")
    s3.put_object(Bucket="redmica-attachments", Key="acme/a", Body=b"a")
    before = objects_in(s3)
    the_plan = plan(registry, NoTasks(), s3, PurgeRequest("acme", True, dry_run=True))
    assert objects_in(s3) == before  # no lifecycle/requests/*.json
    assert the_plan.attachment_count == 1 and "launches no admin task" in the_plan.steps[0]
    assert "delete 1 attachment object(s)" in the_plan.steps[-2]
    assert "unknown" in (the_plan.note or "")

"""Issue #23's findings against real PostgreSQL with an administrator as on RDS (not superuser).

Each test sets up what an attacker controls (a document written straight to the bucket, SQL as a
tenant's own role, a manifest under a tenant's backups) and runs the lifecycle's own code paths
(the verbs with the local runner, as `--executor local` does and as the admin task does), then
checks the outcome in the catalog as the OS superuser. The cluster is private (its own port and
data directory, run as the postgres OS user, TLS from a CA made here); these tests need root.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mypy_boto3_s3 import S3Client

from redmica_ops.errors import RedmicaError
from redmica_ops.lifecycle import database
from redmica_ops.lifecycle.backup import BackupRequest, RestoreRequest, backup, restore
from redmica_ops.lifecycle.database import redmine_password_hash
from redmica_ops.lifecycle.provision import ProvisionRequest, provision
from redmica_ops.lifecycle.purge import PurgeRequest, RecordStore, plan, purge
from redmica_ops.lifecycle.replace import ReplaceRequest, plan_replace, replace
from redmica_ops.lifecycle.rotate import RotateRequest, rotate
from redmica_ops.lifecycle.site import DatabaseAccess, Site
from redmica_ops.lifecycle.sql import Connection, scram_verifier
from redmica_ops.lifecycle.steps import LocalRunner, Step, guard_args
from redmica_ops.tenants.model import parse_tenant
from redmica_ops.tenants.registry import TenantRegistry
from redmica_ops.tenants.store import TenantStore
from tests.conftest import BUCKET, Invoke, tenant_document
from tests.live.pgtls import ADMIN, TlsCluster, impostor, start_cluster, stop_cluster

MASTER_KEY = "m" * 64  # the master SECRET_KEY_BASE of the reused-id test


@pytest.fixture(scope="module")
def cluster() -> Iterator[TlsCluster]:
    if os.geteuid() != 0:
        pytest.skip("needs root: runs a private PostgreSQL cluster as the postgres OS user")
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or not shutil.which("openssl"):
        pytest.skip(
            "PostgreSQL's server or openssl is not installed "
            "(`make test` installs them: scripts/install-live-deps.sh)"
        )
    started = start_cluster()
    try:
        yield started
    finally:
        stop_cluster(started)


@pytest.fixture
def registry(s3: S3Client) -> TenantRegistry:
    return TenantRegistry(TenantStore(s3, BUCKET))


@pytest.fixture
def site(s3: S3Client, cluster: TlsCluster) -> Site:
    return Site(
        s3=s3,
        bucket=BUCKET,
        backups_prefix="backups/",
        kms_key_id=None,
        # The cluster, and nothing else: its port is not 5432, so it is listed.
        access=DatabaseAccess(
            "127.0.0.1", frozenset({("127.0.0.1", cluster.port)}), str(cluster.ca)
        ),
        connection_limit=20,
        admin_user=ADMIN,
        admin_password=cluster.admin_password,
        pg_bin=str(cluster.pg.bin),
    )


@pytest.fixture
def runner(site: Site, registry: TenantRegistry) -> LocalRunner:
    return LocalRunner(site, registry.store)


def document(tenant_id: str, cluster: TlsCluster, **db: Any) -> dict[str, Any]:
    doc = tenant_document(tenant_id, password=f"pw-{tenant_id}-{os.urandom(6).hex()}")
    doc["db"].update({"host": "127.0.0.1", "port": cluster.port, **db})
    return doc


def add(registry: TenantRegistry, tenant_id: str, doc: dict[str, Any]) -> None:
    tenant = parse_tenant(tenant_id, yaml.safe_dump(doc).encode(), f"{tenant_id}.yaml")
    registry.add(tenant_id, tenant, "(test)")


def write_straight(s3: S3Client, tenant_id: str, doc: dict[str, Any]) -> None:
    """What someone with s3:PutObject on one document does: no registry, no claims."""
    s3.put_object(Bucket=BUCKET, Key=f"tenants/{tenant_id}.yaml", Body=yaml.safe_dump(doc).encode())


def create_database(site: Site, registry: TenantRegistry, tenant_id: str) -> None:
    tenant = registry.store.get(tenant_id).tenant
    database.create_database(
        site.admin_sql(tenant),
        tenant.db.name,
        tenant.db.user,
        scram_verifier(tenant.db.password_value()),
        20,
        tenant_id,
    )


def provisioned(site: Site, registry: TenantRegistry, cluster: TlsCluster, tenant_id: str) -> None:
    add(registry, tenant_id, document(tenant_id, cluster))
    create_database(site, registry, tenant_id)


def as_tenant(
    cluster: TlsCluster, registry: TenantRegistry, tenant_id: str, statements: str
) -> str:
    tenant = registry.store.get(tenant_id).tenant
    return cluster.as_login(tenant.db.user, tenant.db.password_value(), statements, tenant.db.name)


def tenant_with_redmine_tables(
    site: Site, registry: TenantRegistry, cluster: TlsCluster, tenant_id: str
) -> None:
    """A provisioned tenant with the two tables the set-admin step touches."""
    provisioned(site, registry, cluster, tenant_id)
    as_tenant(cluster, registry, tenant_id, REDMINE_TABLES)


# What the migrations and the default data leave that the set-admin step needs.
REDMINE_TABLES = (
    "CREATE TABLE IF NOT EXISTS trackers (id serial PRIMARY KEY, name text);\n"
    "INSERT INTO trackers (name) VALUES ('Bug');\n"
    "CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, login text, type text,"
    " hashed_password text, salt text, admin boolean, status int,"
    " must_change_passwd boolean, passwd_changed_on timestamp, updated_on timestamp);\n"
    "INSERT INTO users (login, type, admin, status) VALUES ('admin', 'User', true, 1);\n"
)


def set_admin_step(registry: TenantRegistry, tenant_id: str) -> Step:
    hashed, salt = redmine_password_hash("new-admin-password")
    args = {"login": "admin", "hashed": hashed, "salt": salt}
    return Step("set-admin", tenant_id, {**guard_args(registry.store.get(tenant_id), None), **args})


# The attacker's SQL, run as its own role: a function that grants it another tenant's role when
# it happens to run as the master (and does nothing, silently, otherwise).
def grab(role: str, of: str) -> str:
    return f"BEGIN EXECUTE 'GRANT {of} TO {role}'; EXCEPTION WHEN OTHERS THEN NULL; END;"


def evil_count(role: str, of: str) -> str:
    return (
        "CREATE SCHEMA evil;\n"
        "CREATE FUNCTION evil.step(bigint) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN "
        f"{grab(role, of)} RETURN $1 + 1; END $$;\n"
        "CREATE AGGREGATE evil.count(*) (sfunc = evil.step, stype = bigint, initcond = '0');\n"
    )


# -- finding 1: the master password goes only to the configured database --------------------------
def test_a_document_naming_another_host_never_receives_the_master_password(
    s3: S3Client, cluster: TlsCluster, registry: TenantRegistry, runner: LocalRunner
) -> None:
    with impostor() as fake:
        write_straight(s3, "lure", document("lure", cluster, port=fake.port))
        with pytest.raises(RedmicaError) as caught:
            provision(registry, runner, lambda *_: "run", ProvisionRequest("lure", ["rake"]))
        assert not fake.saw(cluster.admin_password)
        assert fake.connections == 0
        assert caught.value.exit_code == 2
        assert registry.store.get("lure").tenant.status == "active"  # nothing written


@pytest.mark.parametrize("verb", ["rotate", "backup", "purge"])
def test_every_verb_refuses_a_document_naming_another_host(
    s3: S3Client, cluster: TlsCluster, registry: TenantRegistry, runner: LocalRunner, verb: str
) -> None:
    with impostor() as fake:
        add(registry, "lure2", document("lure2", cluster, port=fake.port))
        before = registry.store.get("lure2").etag
        with pytest.raises(RedmicaError) as caught:
            if verb == "rotate":
                rotate(registry, runner, RotateRequest("lure2"))
            elif verb == "backup":
                backup(registry, runner, BackupRequest("lure2"))
            else:
                plan(registry, runner, s3, PurgeRequest("lure2"))
        assert caught.value.exit_code == 2
        assert fake.connections == 0
        assert registry.store.get("lure2").etag == before


@pytest.mark.parametrize("tls", [False, True])
def test_an_impostor_at_an_allowed_endpoint_never_gets_the_master_password(
    s3: S3Client, site: Site, cluster: TlsCluster, tls: bool
) -> None:
    """Even where the settings send it (a hijacked address): without TLS from our CA libpq
    stops at verify-full; with a certificate of that CA, channel binding (SCRAM-SHA-256-PLUS)
    refuses the cleartext request before anything is sent (libpq 13+)."""
    keys = (cluster.work / "server.crt", cluster.work / "server.key") if tls else None
    with impostor(keys) as fake:
        sql = site.psql(
            Connection(
                "127.0.0.1",
                fake.port,
                ADMIN,
                cluster.admin_password,
                str(cluster.ca),
                admin=True,
            )
        )
        with pytest.raises(RedmicaError) as caught:
            sql.query("SELECT 1;")
        assert fake.connections >= 1
        assert not fake.saw(cluster.admin_password)
        # With TLS, libpq refuses the cleartext request itself: libpq >= 16 (Debian 13's 17) by
        # require_auth=scram-sha-256, before channel binding is even considered; libpq 15 by
        # channel_binding=require. Either way before the password is sent (asserted above).
        reasons = ("authentication method requirement", "channel binding") if tls else ("SSL",)
        assert any(reason in caught.value.message for reason in reasons), caught.value.message


def test_the_masters_search_path_outranks_the_databases_and_roles_settings(
    site: Site, cluster: TlsCluster, registry: TenantRegistry
) -> None:
    provisioned(site, registry, cluster, "pa-beta")
    as_tenant(
        cluster,
        registry,
        "pa-beta",
        "CREATE SCHEMA evil; ALTER DATABASE pa_beta SET search_path = evil, public;",
    )
    cluster.sql(f"ALTER ROLE {ADMIN} IN DATABASE pa_beta SET search_path = evil, public;")
    tenant = registry.store.get("pa-beta").tenant
    shown = site.admin_sql(tenant).query("SHOW search_path;", database="pa_beta")
    assert shown == [["pg_catalog,pg_temp"]]


# -- finding 2: no master SQL inside a tenant's database ------------------------------------------
def test_an_aggregate_on_the_tenants_search_path_never_runs_as_the_master(
    site: Site, cluster: TlsCluster, registry: TenantRegistry, runner: LocalRunner
) -> None:
    provisioned(site, registry, cluster, "sp-alpha")
    tenant_with_redmine_tables(site, registry, cluster, "sp-beta")
    as_tenant(
        cluster,
        registry,
        "sp-beta",
        evil_count("sp_beta", "sp_alpha")
        + "ALTER DATABASE sp_beta SET search_path = evil, pg_catalog, public;\n",
    )
    runner.run(set_admin_step(registry, "sp-beta"))
    assert not cluster.is_member("sp_beta", "sp_alpha")


def test_a_trigger_resetting_the_role_never_runs_as_the_master(
    site: Site, cluster: TlsCluster, registry: TenantRegistry, runner: LocalRunner
) -> None:
    provisioned(site, registry, cluster, "tr-alpha")
    tenant_with_redmine_tables(site, registry, cluster, "tr-beta")
    as_tenant(
        cluster,
        registry,
        "tr-beta",
        "CREATE FUNCTION public.grab() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"RESET ROLE; {grab('tr_beta', 'tr_alpha')} RETURN NEW; END $$;\n"
        "CREATE TRIGGER grab BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION grab();\n",
    )
    runner.run(set_admin_step(registry, "tr-beta"))
    assert not cluster.is_member("tr_beta", "tr_alpha")
    hashed = as_tenant(cluster, registry, "tr-beta", "SELECT hashed_password FROM users;")
    assert len(hashed.strip()) == 40  # the step itself did its work


def test_a_check_constraint_in_a_dump_never_runs_as_the_master(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    runner: LocalRunner,
) -> None:
    provisioned(site, registry, cluster, "ck-alpha")
    provisioned(site, registry, cluster, "ck-beta")
    # Restoring this runs arm() (as whoever restores): it points the restored database's
    # search_path at evil, whose count(*) grants ck_alpha to ck_beta when the master counts.
    as_tenant(
        cluster,
        registry,
        "ck-beta",
        evil_count("ck_beta", "ck_alpha")  # noqa: S608  (the tests' own names)
        + "CREATE FUNCTION public.arm(integer) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN "
        "BEGIN EXECUTE format('ALTER DATABASE %I SET search_path = evil, pg_catalog, public',"
        " current_database()); EXCEPTION WHEN OTHERS THEN NULL; END; RETURN true; END $$;\n"
        "CREATE TABLE public.armed (x integer CHECK (public.arm(x)));\n"
        "INSERT INTO public.armed VALUES (1), (2);\n"
        "ALTER DATABASE ck_beta RESET search_path;\n",
    )
    found = backup(registry, runner, BackupRequest("ck-beta"))
    request = RestoreRequest("ck-beta", str(found["backup"]), "ck-gamma")
    outcome = restore(registry, runner, request, s3, "backups/")
    assert outcome.result["rows"] == 2
    assert not cluster.is_member("ck_beta", "ck_alpha")


# -- finding 3: purge acts only on what the tenant provably owns ----------------------------------
def test_a_clashing_suspended_document_cannot_purge_another_tenants_database(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    runner: LocalRunner,
) -> None:
    alpha = document("cl-alpha", cluster)
    add(registry, "cl-alpha", alpha)
    create_database(site, registry, "cl-alpha")
    lure = {
        **alpha,
        "s3": {"bucket": "redmica-attachments", "folder": "cl-alpha2"},
        "property": {"sub_domain": "cl-alpha2"},
        "status": "suspended",
    }
    write_straight(s3, "cl-alpha2", lure)
    request = PurgeRequest("cl-alpha2")
    with pytest.raises(RedmicaError) as caught:
        the_plan = plan(registry, runner, s3, request)
        purge(registry, runner, s3, RecordStore(s3, BUCKET, "lifecycle/", None), request, the_plan)
    assert caught.value.exit_code == 4
    assert "cl_alpha" in cluster.databases()
    assert "cl_alpha" in cluster.roles()
    assert registry.store.get("cl-alpha").tenant.status == "active"


# -- finding 4: restore trusts nothing but its own derivation -------------------------------------
def marker(cluster: TlsCluster, registry: TenantRegistry, tenant_id: str, text: str) -> None:
    as_tenant(
        cluster,
        registry,
        tenant_id,
        f"CREATE TABLE IF NOT EXISTS marker (v text); INSERT INTO marker VALUES ('{text}');",  # noqa: S608
    )


def markers(cluster: TlsCluster, database_name: str) -> list[str]:
    return cluster.sql("SELECT v FROM marker ORDER BY v;", database_name).split()


def test_a_forged_manifest_cannot_restore_another_tenants_dump(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    runner: LocalRunner,
) -> None:
    for name in ("fm-alpha", "fm-beta"):
        provisioned(site, registry, cluster, name)
        marker(cluster, registry, name, f"{name}-data")
    backup(registry, runner, BackupRequest("fm-alpha"))
    theirs = backup(registry, runner, BackupRequest("fm-beta"))
    forged = json.loads(
        s3.get_object(Bucket=BUCKET, Key=str(theirs["key"]).removesuffix(".dump") + ".json")[
            "Body"
        ].read()
    )
    forged.update({"tenant": "fm-alpha", "backup_id": "29991231T235959Z-ffffff"})
    s3.put_object(
        Bucket=BUCKET,
        Key="backups/fm-alpha/29991231T235959Z-ffffff.json",
        Body=json.dumps(forged).encode(),
    )
    request = ReplaceRequest("fm-alpha", "latest")
    with pytest.raises(RedmicaError):
        the_plan = plan_replace(registry, runner, s3, BUCKET, "backups/", request)
        replace(registry, runner, request, the_plan)
    assert markers(cluster, "fm_alpha") == ["fm-alpha-data"]


def served_key(run: Invoke, tmp_path: Path, tenant_id: str) -> str:
    """The SECRET_KEY_BASE `render vhosts` gives the tenant's processes."""
    out = tmp_path / f"vhosts-{os.urandom(4).hex()}.conf"
    result = run("--domain", "example.test", "render", "vhosts", "-o", str(out))
    assert result.exit_code == 0, result.output
    for block in out.read_text().split("# tenant ")[1:]:
        if block.startswith(f"{tenant_id} ") or block.startswith(f"{tenant_id}\n"):
            for line in block.splitlines():
                if "SECRET_KEY_BASE" in line:
                    return line.split('"')[1]
    raise AssertionError(f"no key for {tenant_id} in {out.read_text()[:2000]}")


def test_a_reused_tenant_id_gets_neither_the_old_backups_nor_the_old_key(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    runner: LocalRunner,
    run: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_KEY_BASE", MASTER_KEY)
    provisioned(site, registry, cluster, "ru-alpha")
    marker(cluster, registry, "ru-alpha", "first-customer")
    first_key = served_key(run, tmp_path, "ru-alpha")
    backup(registry, runner, BackupRequest("ru-alpha"))
    request = PurgeRequest("ru-alpha")
    records = RecordStore(s3, BUCKET, "lifecycle/", None)
    purge(registry, runner, s3, records, request, plan(registry, runner, s3, request))
    # A new customer is given the same id.
    provisioned(site, registry, cluster, "ru-alpha")
    marker(cluster, registry, "ru-alpha", "second-customer")
    assert served_key(run, tmp_path, "ru-alpha") != first_key
    assert served_key(run, tmp_path, "ru-alpha") == served_key(run, tmp_path, "ru-alpha")
    replace_request = ReplaceRequest("ru-alpha", "latest")
    with pytest.raises(RedmicaError) as caught:
        the_plan = plan_replace(registry, runner, s3, BUCKET, "backups/", replace_request)
        replace(registry, runner, replace_request, the_plan)
    assert caught.value.exit_code == 3
    assert markers(cluster, "ru_alpha") == ["second-customer"]


# -- low: a second rotation as a non-superuser administrator --------------------------------------
def test_rotation_works_twice_for_an_administrator_that_is_not_superuser(
    site: Site, cluster: TlsCluster, registry: TenantRegistry, runner: LocalRunner
) -> None:
    provisioned(site, registry, cluster, "ro-alpha")
    first = rotate(registry, runner, RotateRequest("ro-alpha"))
    second = rotate(registry, runner, RotateRequest("ro-alpha"))
    assert {first.login, second.login} == {"ro_alpha", "ro_alpha_2"}
    assert as_tenant(cluster, registry, "ro-alpha", "SELECT current_user;").strip() == "ro_alpha"


def test_a_tenant_from_before_incarnations_keeps_its_key(
    s3: S3Client, cluster: TlsCluster, run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redmica_ops.container.keys import tenant_secret_key_base

    monkeypatch.setenv("SECRET_KEY_BASE", MASTER_KEY)
    write_straight(s3, "legacy", document("legacy", cluster))  # no incarnation object
    assert served_key(run, tmp_path, "legacy") == tenant_secret_key_base(MASTER_KEY, "legacy")

"""Attacks on issue #23's fixes, as a hostile tenant and a hostile operator would try them.

The attacker controls one tenant's document (written straight to the bucket, or through the
registry where its values are free) and SQL as that tenant's own role; separately, an operator
may write any lifecycle request. Each test runs the lifecycle's own code paths against the
private TLS cluster of `tests/live/pgtls.py` (administrator with CREATEDB and CREATEROLE, not
superuser, as on RDS) and checks, as the OS superuser or as the attacker's own login, that the
attack got nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.errors import RedmicaError
from redmica_ops.lifecycle import database
from redmica_ops.lifecycle.backup import BackupRequest, backup
from redmica_ops.lifecycle.provision import ProvisionRequest, provision
from redmica_ops.lifecycle.purge import PurgeRequest, RecordStore, plan, purge
from redmica_ops.lifecycle.rotate import RotateRequest, rotate
from redmica_ops.lifecycle.site import Site
from redmica_ops.lifecycle.sql import literal, scram_verifier
from redmica_ops.lifecycle.steps import LocalRunner, Step, guard_args
from redmica_ops.tenants.registry import TenantRegistry
from tests.conftest import BUCKET
from tests.live.pgtls import ADMIN, TlsCluster
from tests.live.test_lifecycle_security import (
    REDMINE_TABLES,
    add,
    as_tenant,
    create_database,
    document,
    marker,
    write_straight,
)

# The fixtures of issue #23's own tests: one private cluster per module.
from tests.live.test_lifecycle_security import cluster as cluster
from tests.live.test_lifecycle_security import registry as registry
from tests.live.test_lifecycle_security import runner as runner
from tests.live.test_lifecycle_security import site as site


def redmine_tables(cluster: TlsCluster, registry: TenantRegistry, tenant_id: str) -> None:
    """What the migrations and the default data leave that the set-admin step needs."""
    as_tenant(cluster, registry, tenant_id, REDMINE_TABLES)


def migrations(cluster: TlsCluster, registry: TenantRegistry) -> Any:
    def migrate(tenant_id: str, command: list[str]) -> str:
        if "redmine:load_default_data" not in command:
            redmine_tables(cluster, registry, tenant_id)
        return "run"

    return migrate


def can_read(cluster: TlsCluster, user: str, password: str, database: str) -> bool:
    """Whether `user` with `password` reads the marker rows of `database` (its session role
    reset first, as an attacker would)."""
    try:
        cluster.as_login(user, password, "SET ROLE NONE; SELECT * FROM marker;", database)
    except RuntimeError:
        return False
    return True


def role_state(cluster: TlsCluster, name: str) -> str:
    """Everything of a role a step could change: login, attributes, password, comment, and
    the roles it is a member of (as the OS superuser, from pg_authid)."""
    return cluster.scalar(
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolconnlimit,"  # noqa: S608
        " coalesce(rolpassword, '-'), coalesce(shobj_description(a.oid, 'pg_authid'), '-'),"
        " (SELECT string_agg(m.roleid::regrole::text, ',' ORDER BY 1) FROM pg_auth_members m"
        "  WHERE m.member = a.oid)"
        f" FROM pg_authid a WHERE rolname = {literal(name)};"
    )


def data_of(cluster: TlsCluster, database: str) -> str:
    return cluster.sql("SELECT * FROM marker ORDER BY 1;", database)


@pytest.fixture
def victim(site: Site, cluster: TlsCluster, registry: TenantRegistry) -> Iterator[str]:
    add(registry, "at-victim", document("at-victim", cluster))
    create_database(site, registry, "at-victim")
    marker(cluster, registry, "at-victim", "victim-data")
    yield "at_victim"


# -- a role that is not the tenant's ------------------------------------------------------------
def test_provision_never_takes_over_an_existing_role_that_is_not_the_tenants(
    s3: S3Client,
    cluster: TlsCluster,
    registry: TenantRegistry,
    runner: LocalRunner,
    victim: str,
) -> None:
    """A role nobody's document names (here a DBA group holding the administrator) has no
    privileged attribute, but what it was granted: provision must not give it the attacker's
    password (with it: SET ROLE to the administrator, every tenant's database)."""
    cluster.sql(f"CREATE ROLE at_ops NOLOGIN; GRANT {ADMIN} TO at_ops;")
    before, victim_data = role_state(cluster, "at_ops"), data_of(cluster, victim)
    doc = document("at-mallory", cluster, name="at_mallory", user="at_ops")
    doc["status"] = "provisioning"
    write_straight(s3, "at-mallory", doc)
    with pytest.raises(RedmicaError) as caught:
        provision(
            registry,
            runner,
            migrations(cluster, registry),
            ProvisionRequest("at-mallory", ["rake", "db:migrate"]),
        )
    assert caught.value.exit_code == 4
    assert "at_ops" in caught.value.message and "not made for" in caught.value.message
    assert not can_read(cluster, "at_ops", doc["db"]["password"], victim)
    assert role_state(cluster, "at_ops") == before
    assert data_of(cluster, victim) == victim_data
    assert "at_mallory" not in cluster.databases()


@pytest.mark.parametrize("made", ["before", "after"])
def test_rotation_never_takes_over_an_existing_role_named_like_the_twin(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    runner: LocalRunner,
    victim: str,
    made: str,
) -> None:
    """The attacker picks a db.user whose `_2` is someone else's role (made before its
    provisioning, or after): the rotation's new password, written into the attacker's
    document, must not open that role."""
    user = f"at_app{made}"
    foreign = f"CREATE ROLE {user}_2 NOLOGIN; GRANT {ADMIN} TO {user}_2;"
    tenant_id = f"at-twin-{made}"
    add(registry, tenant_id, document(tenant_id, cluster, user=user))
    document_before = registry.store.get(tenant_id).tenant.db
    with pytest.raises(RedmicaError) as caught:
        if made == "before":
            cluster.sql(foreign)
            before = role_state(cluster, f"{user}_2")
        create_database(site, registry, tenant_id)
        if made == "after":
            cluster.sql(foreign)
            before = role_state(cluster, f"{user}_2")
        rotate(registry, runner, RotateRequest(tenant_id))
    assert caught.value.exit_code == 4
    assert f"{user}_2" in caught.value.message
    stolen = registry.store.get(tenant_id).tenant.db
    assert stolen == document_before  # no new login written into the attacker's document
    assert not can_read(cluster, stolen.user, stolen.password_value(), victim)
    assert not can_read(cluster, f"{user}_2", stolen.password_value(), victim)
    assert role_state(cluster, f"{user}_2") == before


# -- a removed tenant's kept database ---------------------------------------------------------
@pytest.mark.parametrize("verb", ["rotate", "provision"])
def test_a_removed_tenants_kept_database_is_not_the_next_documents(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    runner: LocalRunner,
    verb: str,
) -> None:
    """`tenant remove` without --purge keeps the database (re-adding the id continues that
    customer's life) but releases the document's claims: another document may then take the
    names through the registry. Its steps must still not touch the old customer's role."""
    old = f"at-old-{verb}"
    add(registry, old, document(old, cluster))
    create_database(site, registry, old)
    marker(cluster, registry, old, "old-customer")
    registry.remove(old)
    names = old.replace("-", "_")
    before, old_data = role_state(cluster, names), data_of(cluster, names)
    doc = document(f"at-taker-{verb}", cluster, name=names, user=names)
    add(registry, f"at-taker-{verb}", doc)
    with pytest.raises(RedmicaError) as caught:
        if verb == "rotate":
            rotate(registry, runner, RotateRequest(f"at-taker-{verb}"))
        else:
            provision(
                registry,
                runner,
                migrations(cluster, registry),
                ProvisionRequest(f"at-taker-{verb}", ["rake", "db:migrate"]),
            )
    assert caught.value.exit_code == 4
    assert f"tenant {old}" in caught.value.message  # the role's mark names whose it is
    db = registry.store.get(f"at-taker-{verb}").tenant.db
    assert not can_read(cluster, db.user, db.password_value(), names)
    assert role_state(cluster, names) == before
    assert f"{names}_2" not in cluster.roles()
    assert data_of(cluster, names) == old_data


def test_an_operators_request_cannot_give_another_role_a_password(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    runner: LocalRunner,
    victim: str,
) -> None:
    """An operator may write any request, but a create-database step makes the tenant's own
    db.user, not a role the request names."""
    cluster.sql(f"CREATE ROLE at_dba NOLOGIN; GRANT {ADMIN} TO at_dba;")
    before = role_state(cluster, "at_dba")
    doc = document("at-opreq", cluster)
    doc["status"] = "provisioning"
    add(registry, "at-opreq", doc)
    guard = guard_args(registry.store.get("at-opreq"), None)
    bare = {"owner": "at_dba", "verifier": scram_verifier("x1")}
    for args in (bare, {**guard, **bare}):  # without the document's version, and with it
        with pytest.raises(RedmicaError) as caught:
            runner.run(Step("create-database", "at-opreq", args))
        assert caught.value.exit_code in (2, 4)
    assert "at_dba" in caught.value.message
    assert not can_read(cluster, "at_dba", "x1", victim)
    assert role_state(cluster, "at_dba") == before
    assert "at_opreq" not in cluster.databases()


# -- documents that name what is not theirs, or change under a step ----------------------------
SECRET_PASSWORD = "victim-secret-password-1234"


def secret_of(name: str) -> str:
    return f"/redmica/tenants/{name}/db-password"


class Secrets:
    """The admin task's reader of db.password_secret (it may read every tenant's)."""

    def resolve(self, reference: str) -> str:
        assert reference.startswith("/redmica/tenants/at_sv")
        return SECRET_PASSWORD


@pytest.fixture
def secret_victim(site: Site, cluster: TlsCluster, registry: TenantRegistry) -> str:
    """A tenant whose password is in a secret, with Redmine's tables and a marker row."""
    name = f"at_sv{len(cluster.databases())}"
    tenant_id = name.replace("_", "-")
    doc = document(tenant_id, cluster)
    del doc["db"]["password"]
    doc["db"]["password_secret"] = secret_of(name)
    add(registry, tenant_id, doc)
    tenant = registry.store.get(tenant_id).tenant
    database.create_database(
        site.admin_sql(tenant), name, name, scram_verifier(SECRET_PASSWORD), 20, tenant_id
    )
    cluster.as_login(
        name,
        SECRET_PASSWORD,
        "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('victim-data');\n",
        name,
    )
    cluster.as_login(name, SECRET_PASSWORD, REDMINE_TABLES, name)
    return name


def with_secrets(site: Site, registry: TenantRegistry) -> LocalRunner:
    return LocalRunner(dataclasses.replace(site, passwords=Secrets()), registry.store)


def impersonation(cluster: TlsCluster, tenant_id: str, victim: str) -> dict[str, Any]:
    """The attacker's document naming the victim's database, login and secret."""
    doc = document(tenant_id, cluster, name=victim, user=victim)
    del doc["db"]["password"]
    doc["db"]["password_secret"] = secret_of(victim)
    return doc


def test_a_backup_never_takes_another_tenants_database_into_the_attackers_backups(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    secret_victim: str,
) -> None:
    """The document names the victim's database, login and password secret: the backup (run
    where the secrets are readable) would dump the victim into the attacker's backups, which a
    later `restore-db ATTACKER latest --replace` puts into the attacker's database."""
    write_straight(s3, "at-bk", impersonation(cluster, "at-bk", secret_victim))
    with pytest.raises(RedmicaError) as caught:
        backup(registry, with_secrets(site, registry), BackupRequest("at-bk"))
    assert caught.value.exit_code == 4
    assert "does not hold the claim" in caught.value.message
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="backups/at-bk/")


def test_a_document_switched_during_provisioning_never_sets_another_sites_administrator(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    secret_victim: str,
) -> None:
    """The migrations take minutes; meanwhile the attacker points its document at the victim.
    The set-admin step would then give the victim's Redmine `admin` the password handed to the
    attacker at the end of its provisioning."""
    add(registry, "at-sw", document("at-sw", cluster))
    runner = with_secrets(site, registry)

    def migrate(tenant_id: str, command: list[str]) -> str:
        if "redmine:load_default_data" not in command:
            redmine_tables(cluster, registry, tenant_id)
        else:
            write_straight(s3, "at-sw", impersonation(cluster, "at-sw", secret_victim))
        return "run"

    with pytest.raises(RedmicaError) as caught:
        provision(registry, runner, migrate, ProvisionRequest("at-sw", ["rake", "db:migrate"]))
    assert caught.value.exit_code == 4
    hashed = cluster.sql("SELECT coalesce(hashed_password, 'none') FROM users;", secret_victim)
    assert hashed.split() == ["none"]


# -- attachments --------------------------------------------------------------------------------
def test_a_purge_never_deletes_attachments_outside_the_tenants_own_folder(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    runner: LocalRunner,
) -> None:
    """Uniqueness compares folders as equal strings: a folder that holds another tenant's
    (`shared` above `shared/at-inner`), or the archive prefix, is still unique."""
    s3.create_bucket(Bucket="redmica-attachments")
    inner = document("at-inner", cluster)
    inner["s3"]["folder"] = "shared/at-inner"
    add(registry, "at-inner", inner)
    outer = document("at-outer", cluster)
    outer["s3"]["folder"] = "shared"
    add(registry, "at-outer", outer)
    create_database(site, registry, "at-outer")
    for key in ("shared/at-inner/2024/01/file", "shared/mine"):
        s3.put_object(Bucket="redmica-attachments", Key=key, Body=b"x")
    request = PurgeRequest("at-outer", delete_attachments=True)
    with pytest.raises(RedmicaError) as caught:
        the_plan = plan(registry, runner, s3, request)
        purge(registry, runner, s3, RecordStore(s3, BUCKET, "lifecycle/", None), request, the_plan)
    assert caught.value.exit_code in (2, 4)
    assert "at-inner" in caught.value.message
    left = [o["Key"] for o in s3.list_objects_v2(Bucket="redmica-attachments")["Contents"]]
    assert sorted(left) == ["shared/at-inner/2024/01/file", "shared/mine"]
    assert "at_outer" in cluster.databases()
    assert registry.store.get("at-outer").tenant.status == "active"


def test_a_folder_changed_after_the_plan_is_not_the_one_deleted(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    runner: LocalRunner,
) -> None:
    """The operator confirmed the plan's folder; the purge re-reads the document and deletes
    the folder it names then."""
    s3.create_bucket(Bucket="redmica-attachments")
    theirs = document("at-fv", cluster)
    theirs["s3"]["folder"] = "team/at-fv"
    add(registry, "at-fv", theirs)
    mine = document("at-fm", cluster)
    add(registry, "at-fm", mine)
    create_database(site, registry, "at-fm")
    s3.put_object(Bucket="redmica-attachments", Key="team/at-fv/precious", Body=b"x")
    request = PurgeRequest("at-fm", delete_attachments=True)
    the_plan = plan(registry, runner, s3, request)
    moved = {**mine, "s3": {**mine["s3"], "folder": "team"}}  # above the victim's
    write_straight(s3, "at-fm", moved)
    with pytest.raises(RedmicaError) as caught:
        purge(registry, runner, s3, RecordStore(s3, BUCKET, "lifecycle/", None), request, the_plan)
    assert caught.value.exit_code == 4
    assert "not" in caught.value.message and "as in the plan" in caught.value.message
    left = [o["Key"] for o in s3.list_objects_v2(Bucket="redmica-attachments")["Contents"]]
    assert left == ["team/at-fv/precious"]
    assert "at_fm" in cluster.databases()


# -- SQL as the tenant's own role ---------------------------------------------------------------
def test_grants_to_another_tenants_role_never_leave_its_purge_half_done(
    s3: S3Client,
    site: Site,
    cluster: TlsCluster,
    registry: TenantRegistry,
    runner: LocalRunner,
) -> None:
    """The attacker grants the victim's role privileges in its own database (and CONNECT on
    it): the victim's role then cannot be dropped. Every check must come before the first
    DROP, so the purge refuses with the victim's database intact, instead of dropping it and
    stopping at DROP ROLE."""
    for name in ("at-pv", "at-pm"):
        add(registry, name, document(name, cluster))
        create_database(site, registry, name)
    marker(cluster, registry, "at-pv", "victim-data")
    as_tenant(
        cluster,
        registry,
        "at-pm",
        "CREATE TABLE bait (x int); GRANT SELECT ON bait TO at_pv;\n"
        "GRANT CONNECT ON DATABASE at_pm TO at_pv;\n",
    )
    request = PurgeRequest("at-pv")
    with pytest.raises(RedmicaError) as caught:
        the_plan = plan(registry, runner, s3, request)
        purge(registry, runner, s3, RecordStore(s3, BUCKET, "lifecycle/", None), request, the_plan)
    assert caught.value.exit_code == 4
    assert "at_pm" in caught.value.message
    assert "at_pv" in cluster.databases()
    assert registry.store.get("at-pv").tenant.status == "active"

"""What the lifecycle does inside PostgreSQL, step by step, each step checking what exists first.

These functions run wherever the database is reachable: in this process (local executor) or in
an ECS one-off task (`redmica entrypoint admin-sql`). They take an `Sql` and never see a
password. The administrator's `Sql` only ever works in the `postgres` database (the catalog,
roles, CREATE/DROP/RENAME DATABASE); what happens inside a tenant's database (the first
administrator, a restore's checks) gets the tenant's own login, so nothing the tenant planted
there can run with the administrator's rights. Re-running any of them after a failure
finishes the job instead of failing on what the first attempt already did.

The administrator may be a non-superuser with CREATEDB and CREATEROLE (RDS): ALTER ROLE never
names SUPERUSER or REPLICATION (only a superuser may), and a role that has either is refused
instead.

A role's attributes do not say whose it is: an unprivileged role may hold the administrator's
membership (a DBA group) or be a removed tenant's, whose database a plain `tenant remove` kept
while releasing its claims. So every login role made here is marked with its tenant
(`COMMENT ON ROLE ... IS 'redmica-ops tenant <id>'`, which only a role with CREATEROLE may set,
never the tenant itself), and a step changes or drops an existing role only when it carries
this tenant's mark: provision never adopts an unmarked role; rotation, purge and replace refuse
a role marked for another tenant (an unmarked one is a tenant's from before the marks, which
they still accept, with the claims checked). A purge also checks, before the first DROP, that
the roles hold nothing in other databases (ownership or privileges another tenant granted
them), which would otherwise stop it half way at DROP ROLE.

Login roles alternate (docs/tenant-lifecycle.md, "Password rotation"): the database is owned by
the tenant's first role (`acme`); its twin `acme_2` is a member of it whose sessions start with
`SET ROLE acme`, so whichever of the two the document names, every object stays owned by
`acme` and the other one's password stays valid until the next rotation.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

from redmica_ops.errors import Conflict, NotFound, OperationFailed
from redmica_ops.lifecycle.sql import Sql, ident, literal
from redmica_ops.tenants import rules

# The alternating-login rule is the registry's too (two tenants never share a role).
TWIN_SUFFIX, twin_of, login_pair = rules.TWIN_SUFFIX, rules.twin_of, rules.login_pair


MARK = "redmica-ops tenant "  # COMMENT ON ROLE: the tenant a login role was made for


def mark_of(tenant_id: str) -> str:
    return f"{MARK}{tenant_id}"


@dataclass(frozen=True)
class Role:
    name: str
    superuser: bool
    can_login: bool
    create_db: bool
    create_role: bool
    replication: bool = False  # REPLICATION or BYPASSRLS: only a superuser can take them away
    comment: str | None = None  # COMMENT ON ROLE (our mark, someone else's text, or none)

    @property
    def privileged(self) -> bool:
        return self.superuser or self.create_db or self.create_role or self.replication

    def made_for(self, tenant_id: str) -> bool:
        return self.comment == mark_of(tenant_id)

    def foreign_to(self, tenant_id: str) -> bool:
        """Marked for another tenant, or commented as someone else's role: never ours."""
        return self.comment is not None and not self.made_for(tenant_id)


@dataclass
class DatabaseState:
    """What exists for one tenant: its roles and its database (owner included)."""

    database: str
    owner: str | None  # owner of the database, None when it does not exist
    roles: dict[str, Role] = field(default_factory=dict)
    owned_elsewhere: dict[str, list[str]] = field(default_factory=dict)  # role -> other dbs
    # role -> (database or '' for a shared object, catalog, object) of what it owns or was
    # granted (pg_shdepend), anywhere: what DROP ROLE would refuse to drop it for.
    holdings: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.owner is not None


def inspect(sql: Sql, database: str, roles: list[str]) -> DatabaseState:
    names = ", ".join(literal(r) for r in sorted(set(roles))) or "NULL"
    rows = sql.query(
        "SELECT 'db', pg_get_userbyid(datdba), '', '', '', '' FROM pg_database"
        f" WHERE datname = {literal(database)};\n"
        # The comment as hex: whatever text someone gave a role stays one field of one line.
        "SELECT 'role', rolname, rolsuper::text, rolcanlogin::text, rolcreatedb::text,"
        " rolcreaterole::text, (rolreplication OR rolbypassrls)::text,"
        " encode(convert_to(shobj_description(oid, 'pg_authid'), 'UTF8'), 'hex')"
        f" FROM pg_roles WHERE rolname IN ({names});\n"
        "SELECT 'owns', pg_get_userbyid(datdba), datname, '', '', '' FROM pg_database"
        f" WHERE pg_get_userbyid(datdba) IN ({names}) AND datname <> {literal(database)};\n"
        # Role memberships (pg_auth_members) are no obstacle to DROP ROLE; the rest is.
        "SELECT 'holds', r.rolname, coalesce(d.datname, ''), s.classid::regclass::text,"
        " CASE WHEN s.classid = 'pg_database'::regclass"
        " THEN (SELECT datname FROM pg_database WHERE oid = s.objid) ELSE s.objid::text END"
        " FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid"
        " LEFT JOIN pg_database d ON d.oid = s.dbid"
        f" WHERE r.rolname IN ({names}) AND s.classid <> 'pg_auth_members'::regclass;\n"
    )
    state = DatabaseState(database, None)
    for kind, a, b, c, d, e, f, g in (row + [""] * (8 - len(row)) for row in rows):
        if kind == "db":
            state.owner = a
        elif kind == "role":
            comment = bytes.fromhex(g).decode("utf-8", errors="replace") if g else None
            state.roles[a] = Role(
                a, b == "true", c == "true", d == "true", e == "true", f == "true", comment
            )
        elif kind == "owns":
            state.owned_elsewhere.setdefault(a, []).append(b)
        elif kind == "holds":
            state.holdings.setdefault(a, []).append((b, c, d))
    return state


def check_can_provision(state: DatabaseState, owner: str, tenant_id: str) -> None:
    """Refuse (exit 4, nothing changed) what provisioning must never take over: a database of
    another owner, a privileged role, a role owning another database, and any existing role
    that was not made for this tenant (an unprivileged role may still hold the administrator's
    or another application's membership, or be a removed tenant's)."""
    if state.exists and state.owner != owner:
        raise Conflict(
            f"database {state.database!r} already exists and is owned by {state.owner!r}, "
            f"not {owner!r}; nothing was changed",
            "pick another db.name, or drop that database yourself if it is really unused",
        )
    for name in (owner, twin_of(owner)):
        role = state.roles.get(name)
        if role is None:
            continue
        if not role.made_for(tenant_id):
            seen = f"its comment: {role.comment[:80]!r}" if role.comment else "no mark"
            raise Conflict(
                f"role {name!r} already exists and was not made for tenant {tenant_id!r} by "
                f"redmica-ops ({seen}); nothing was changed",
                "pick another db.user; only if that role really is this tenant's (made before "
                "redmica-ops marked its roles) and holds nothing else, mark it: "
                f"COMMENT ON ROLE {name} IS '{mark_of(tenant_id)}'",
            )
        if role.privileged:
            raise Conflict(
                f"role {name!r} already exists with SUPERUSER, CREATEDB, CREATEROLE, REPLICATION "
                "or BYPASSRLS; nothing was changed",
                "a tenant's role must be an unprivileged login: pick another db.user",
            )
        if state.owned_elsewhere.get(name):
            others = ", ".join(sorted(state.owned_elsewhere[name]))
            raise Conflict(
                f"role {name!r} already owns other database(s) ({others}); nothing was changed",
                "pick another db.user: one role per tenant",
            )


def create_database(
    sql: Sql, database: str, owner: str, verifier: str, connection_limit: int, tenant_id: str
) -> list[str]:
    """Role (LOGIN, unprivileged, CONNECTION LIMIT, marked for the tenant) and database (UTF8,
    template0, owner), CONNECT revoked from PUBLIC. Returns what it did."""
    state = inspect(sql, database, [owner, twin_of(owner)])
    check_can_provision(state, owner, tenant_id)
    done: list[str] = []
    role, db = ident(owner), ident(database)
    done.append(
        _login_role(sql, owner, state.roles.get(owner), verifier, connection_limit, tenant_id)
    )
    # A non-superuser administrator (RDS) must be a member to create a database it owns.
    sql.run(
        "DO $$ BEGIN IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN"
        f" EXECUTE 'GRANT ' || quote_ident({literal(owner)}) || ' TO '"
        " || quote_ident(current_user);"
        " END IF; END $$;\n"
    )
    if not state.exists:
        sql.run(f"CREATE DATABASE {db} OWNER {role} ENCODING 'UTF8' TEMPLATE template0;\n")
        done.append(f"database {database}: created (UTF8, template0)")
    else:
        done.append(f"database {database}: exists, owned by {owner}")
    sql.run(
        f"REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC;\n"
        f"GRANT CONNECT ON DATABASE {db} TO {role};\n"
    )
    done.append(f"database {database}: CONNECT revoked from PUBLIC")
    return done


def _login_role(
    sql: Sql,
    name: str,
    existing: Role | None,
    verifier: str,
    connection_limit: int,
    tenant_id: str,
) -> str:
    """CREATE an unprivileged login role marked for the tenant, or give the existing
    (unprivileged, checked by the caller to be the tenant's) one the password and limits.
    ALTER never names SUPERUSER or REPLICATION: a non-superuser administrator may not, so a
    role that has either is refused before anything runs."""
    limits = f"INHERIT CONNECTION LIMIT {int(connection_limit)} PASSWORD {_verifier(verifier)}"
    if existing is None:
        # One transaction: a role never exists without its mark (a re-run would refuse it).
        sql.run(
            "BEGIN;\n"
            f"CREATE ROLE {ident(name)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            f"{limits};\n"
            f"COMMENT ON ROLE {ident(name)} IS {literal(mark_of(tenant_id))};\n"
            "COMMIT;\n"
        )
        return f"role {name}: created"
    if existing.privileged:
        raise Conflict(
            f"role {name!r} has SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS; "
            "nothing was changed",
            "a tenant's role must be an unprivileged login: look at that role",
        )
    sql.run(f"ALTER ROLE {ident(name)} LOGIN NOCREATEDB NOCREATEROLE {limits};\n")
    return f"role {name}: password and limits set (it existed)"


def check_owner(state: DatabaseState, user: str, expected: str | None, tenant_id: str) -> str:
    """The database's owner, when it is one of the tenant's two logins (and the one the
    confirmed plan saw) and not a role marked for another tenant; otherwise nothing is done
    (exit 4). `state` must hold the roles of login_pair(user)."""
    if state.owner is None:
        raise NotFound(f"database {state.database!r} does not exist", "provision the tenant first")
    mine = login_pair(user)
    if state.owner not in mine or (expected is not None and state.owner != expected):
        raise Conflict(
            f"database {state.database!r} is owned by {state.owner!r}, not by the tenant's "
            f"role{'s' if len(mine) > 1 else ''} {', '.join(sorted(mine))}"
            + (f" as planned ({expected})" if expected else "")
            + "; nothing was changed",
            "that database is not provably this tenant's: check the documents (`redmica tenant "
            "list` marks clashes) and the database",
        )
    check_marks(state, tenant_id)
    return state.owner


def check_marks(state: DatabaseState, tenant_id: str) -> None:
    """No role of `state` is marked for another tenant (or commented as someone else's)."""
    for role in state.roles.values():
        if role.foreign_to(tenant_id):
            raise Conflict(
                f"role {role.name!r} is not tenant {tenant_id!r}'s (its comment: "
                f"{(role.comment or '')[:80]!r}); nothing was changed",
                "another tenant's role, e.g. one whose database a plain `tenant remove` kept: "
                "give this tenant its own db.name and db.user",
            )


def set_login(
    sql: Sql,
    database: str,
    login: str,
    verifier: str,
    connection_limit: int,
    tenant_id: str,
    user: str | None = None,
    expected_owner: str | None = None,
) -> str:
    """Give `login` (the owner or its twin) a new password; create the twin when missing.
    `user`: the document's db.user, whose login pair must own the database.

    An existing twin is changed only when it is as much the tenant's as the owner: marked for
    it when the owner is (any other role of that name is someone else's, which the rotation
    would hand to the document's reader), or unmarked beside an unmarked owner (a tenant from
    before the marks)."""
    state = inspect(sql, database, sorted({login} | login_pair(user or login)))
    owner = check_owner(state, user or login, expected_owner, tenant_id)
    if login not in (owner, twin_of(owner)):
        raise Conflict(
            f"role {login!r} is neither the owner of {database!r} ({owner}) nor its twin",
            "rotation alternates between the owner and <owner>_2",
        )
    existing = state.roles.get(login)
    if (
        existing is not None
        and login != owner
        and state.roles[owner].made_for(tenant_id)
        and not existing.made_for(tenant_id)
    ):
        raise Conflict(
            f"role {login!r} exists but was not made for tenant {tenant_id!r}: the rotation "
            "would give someone else's role a password in this tenant's document; nothing "
            "was changed",
            f"look at role {login}; the tenant's twin login must be its own",
        )
    existed = existing is not None
    _login_role(sql, login, existing, verifier, connection_limit, tenant_id)
    action = f"role {login}: " + ("new password" if existed else "created with a new password")
    if login != owner:
        # Membership gives the owner's rights; the session role keeps new objects the owner's.
        sql.run(
            f"GRANT {ident(owner)} TO {ident(login)};\n"
            f"ALTER ROLE {ident(login)} SET role = {literal(owner)};\n"
        )
    return action


_VERIFIER = re.compile(r"SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+")


def _verifier(value: str) -> str:
    # Only a SCRAM verifier is accepted: a clear password must never reach the server.
    if not _VERIFIER.fullmatch(value):
        raise OperationFailed("refusing a role password that is not a SCRAM-SHA-256 verifier")
    return literal(value)


def owner_of(sql: Sql, database: str) -> str | None:
    return inspect(sql, database, []).owner if database else None


# -- Redmine's first administrator ----------------------------------------------------------------
def redmine_password_hash(password: str, salt: str | None = None) -> tuple[str, str]:
    """(hashed_password, salt) as Redmine's User#salt_password stores them."""
    salt = salt or secrets.token_hex(16)
    inner = hashlib.sha1(password.encode("utf-8")).hexdigest()  # noqa: S324  (Redmine's scheme)
    return hashlib.sha1(f"{salt}{inner}".encode()).hexdigest(), salt  # noqa: S324


LOGIN_RULE = re.compile(r"[a-zA-Z0-9_\-@.]{1,60}")


def set_admin(sql: Sql, database: str, login: str, hashed: str, salt: str) -> str:
    """Make `login` an active administrator with the given password hash. `sql` is the
    tenant's own login (site.login_sql): its triggers and search_path run as the tenant.

    Redmine's first migration creates `admin`; it is renamed to `login` unless a user with that
    login exists already (a re-run), which then gets the password and admin rights.
    """
    if not LOGIN_RULE.fullmatch(login):
        raise OperationFailed(f"{login!r} is not a Redmine login")
    if not re.fullmatch(r"[0-9a-f]{40}", hashed) or not re.fullmatch(r"[0-9a-f]{32}", salt):
        raise OperationFailed("the administrator's password hash is malformed")
    loaded = sql.query("SELECT count(*) FROM trackers;\n", database=database)
    if not loaded or loaded[0][0] in ("", "0"):
        raise OperationFailed(
            f"Redmine's default data is not in {database!r} (no trackers): "
            "redmine:load_default_data failed, though it exits 0",
            "see the default data run's log (its first 'Error:' line), fix the cause and run "
            "`redmica tenant provision` again",
        )
    rows = sql.query(
        "UPDATE users SET login = "
        f"{literal(login)} WHERE login = 'admin' AND type = 'User' AND NOT EXISTS"
        f" (SELECT 1 FROM users WHERE login = {literal(login)});\n"
        f"UPDATE users SET hashed_password = {literal(hashed)}, salt = {literal(salt)},"
        " admin = true, status = 1, must_change_passwd = false, passwd_changed_on = now(),"
        f" updated_on = now() WHERE login = {literal(login)} AND type = 'User'"
        " RETURNING id;\n",
        database=database,
    )
    if not rows:
        raise OperationFailed(
            f"no user {login!r} and no default 'admin' user in {database!r}",
            "run the migrations first (`redmica tenant provision` does)",
        )
    return f"administrator {login}: password set"


# -- replacing the live database (restore-db --replace) -------------------------------------------
# A replace restores into `<name>_restore_<stamp>`, then renames the live database to
# `<name>_replaced_<stamp>` (parked, never dropped by the replace) and the restored one to the
# live name. Both stay owned by the tenant's owner role, so purge finds and drops them.
FRESH = "_restore_"
PARKED = "_replaced_"
_SIDE_BASE = 36  # 36 + len("_replaced_") + 14 digits <= 63, PostgreSQL's identifier limit
STAMP = re.compile(r"\d{14}")


def side_name(database: str, kind: str, stamp: str) -> str:
    if kind not in (FRESH, PARKED) or not STAMP.fullmatch(stamp):
        raise OperationFailed(f"bad side database name parts: {kind!r}, {stamp!r}")
    return f"{database[:_SIDE_BASE]}{kind}{stamp}"


def is_side_of(database: str, name: str) -> bool:
    base = database[:_SIDE_BASE]
    return any(
        name.startswith(base + kind) and STAMP.fullmatch(name[len(base + kind) :])
        for kind in (FRESH, PARKED)
    )


def side_databases(state: DatabaseState) -> list[str]:
    """The tenant's restore leftovers and parked databases (owned by its roles)."""
    return sorted(
        name
        for owned in state.owned_elsewhere.values()
        for name in owned
        if is_side_of(state.database, name)
    )


def create_owned_database(sql: Sql, name: str, owner: str) -> None:
    """A fresh database for a restore, like the tenant's own (owner, UTF8, no PUBLIC)."""
    db, role = ident(name), ident(owner)
    sql.run(f"CREATE DATABASE {db} OWNER {role} ENCODING 'UTF8' TEMPLATE template0;\n")
    sql.run(
        f"REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC;\n"
        f"GRANT CONNECT ON DATABASE {db} TO {role};\n"
    )


def drop_fresh(sql: Sql, database: str, names: list[str]) -> list[str]:
    """Drop restore targets that never went live (only `<name>_restore_<stamp>` names)."""
    dropped = []
    for name in names:
        if not (is_side_of(database, name) and FRESH in name[len(database[:_SIDE_BASE]) :]):
            raise OperationFailed(f"refusing to drop {name!r}: not a restore target of {database}")
        sql.run(f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE);\n")
        dropped.append(name)
    return dropped


def swap(sql: Sql, live: str, fresh: str, parked: str) -> None:
    """Park the live database and give its name to the restored one, atomically.

    New connections to the live database are refused first (ALLOW_CONNECTIONS false), its
    sessions closed, then both renames commit together: either both happened or neither. On
    failure the live database accepts connections again, unchanged."""
    sql.run(f"ALTER DATABASE {ident(live)} ALLOW_CONNECTIONS false;\n")
    try:
        sql.run(
            "BEGIN;\n"
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            f" WHERE datname = {literal(live)} AND pid <> pg_backend_pid();\n"
            f"ALTER DATABASE {ident(live)} RENAME TO {ident(parked)};\n"
            f"ALTER DATABASE {ident(fresh)} RENAME TO {ident(live)};\n"
            "COMMIT;\n"
        )
    except OperationFailed:
        sql.run(f"ALTER DATABASE {ident(live)} ALLOW_CONNECTIONS true;\n")
        raise


# -- dropping -------------------------------------------------------------------------------------
def drop(
    sql: Sql,
    database: str,
    user: str,
    tenant_id: str,
    expect_absent: bool = False,
    expected_owner: str | None = None,
) -> list[str]:
    """Drop the database (closing its sessions) and both login roles; absent is fine.

    Every check comes before the first DROP: the database is owned by one of the tenant's two
    logins (`expected_owner`: the one the confirmed plan saw), no role is marked for another
    tenant, those roles own no database but it and its parked copies and hold nothing in any
    other database (check_droppable). `expect_absent`: the confirmed plan found no database (an
    earlier purge dropped it, so there was no final backup to take); one that exists now was
    not backed up: refuse."""
    names = sorted(login_pair(user))
    state = inspect(sql, database, names)
    if expect_absent and state.exists:
        raise Conflict(
            f"database {database!r} exists now but did not when the purge was planned; it was "
            "not backed up, so nothing was dropped",
            "run the purge again: its plan takes a final backup of it first",
        )
    if state.exists:
        check_owner(state, user, expected_owner, tenant_id)
    check_marks(state, tenant_id)
    check_droppable(state)
    sides = side_databases(state)
    done: list[str] = []
    if state.exists:
        sql.run(f"DROP DATABASE IF EXISTS {ident(database)} WITH (FORCE);\n")
        done.append(f"database {database}: dropped")
    # Parked and leftover databases of earlier replaces (restore-db --replace) go with it.
    for side in sides:
        sql.run(f"DROP DATABASE IF EXISTS {ident(side)} WITH (FORCE);\n")
        done.append(f"database {side}: dropped")
    owner = state.owner or user
    for name in sorted(state.roles, key=lambda n: n == owner):  # the twin first
        sql.run(f"DROP ROLE IF EXISTS {ident(name)};\n")
        done.append(f"role {name}: dropped")
    return done


def check_droppable(state: DatabaseState) -> None:
    """The roles own no database but the tenant's and its parked copies, and own or were
    granted nothing anywhere else (exit 4 otherwise, before anything is dropped).

    A tenant can GRANT another tenant's role privileges in its own database, or create large
    objects in `postgres`: DROP ROLE then refuses, and a purge that had already dropped the
    database would stop half way. The administrator never works inside another database to
    revoke them; the message names where they are."""
    sides = side_databases(state)
    own = {state.database, *sides}
    for name in state.roles:
        foreign = [d for d in state.owned_elsewhere.get(name, []) if d not in sides]
        if foreign:
            raise Conflict(
                f"role {name!r} also owns {', '.join(foreign)}; nothing was dropped",
                "that is another tenant's database: check the documents",
            )
        held = sorted(
            {
                where or f"{catalog} {obj}"
                for where, catalog, obj in state.holdings.get(name, [])
                if not (where in own or (not where and catalog == "pg_database" and obj in own))
            }
        )
        if held:
            raise Conflict(
                f"role {name!r} owns or was granted objects in {', '.join(held)[:300]}, which "
                "DROP ROLE would refuse to leave behind; nothing was dropped",
                "whoever granted them (e.g. that database's owner) revokes them, or they are "
                "dropped there (`REVOKE ... FROM` / `DROP OWNED BY` in that database); then "
                "run the purge again",
            )


def row_counts(sql: Sql, database: str, tables: list[str]) -> dict[str, int]:
    """Rows per table; `tables` are names exactly as pg_dump wrote them (already quoted)."""
    if not tables:
        return {}
    parts = [f"SELECT {literal(t)}, count(*) FROM {_qualified(t)}" for t in tables]
    rows = sql.query(" UNION ALL\n".join(parts) + ";\n", database=database)
    return {name: int(count) for name, count in rows}


_QUALIFIED = re.compile(
    r'(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")(?:\.(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+"))?'
)


def _qualified(name: str) -> str:
    if not _QUALIFIED.fullmatch(name):
        raise OperationFailed(f"unexpected table name in the dump: {name[:80]!r}")
    return name

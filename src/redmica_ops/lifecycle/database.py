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


@dataclass(frozen=True)
class Role:
    name: str
    superuser: bool
    can_login: bool
    create_db: bool
    create_role: bool
    replication: bool = False  # REPLICATION or BYPASSRLS: only a superuser can take them away

    @property
    def privileged(self) -> bool:
        return self.superuser or self.create_db or self.create_role or self.replication


@dataclass
class DatabaseState:
    """What exists for one tenant: its roles and its database (owner included)."""

    database: str
    owner: str | None  # owner of the database, None when it does not exist
    roles: dict[str, Role] = field(default_factory=dict)
    owned_elsewhere: dict[str, list[str]] = field(default_factory=dict)  # role -> other dbs

    @property
    def exists(self) -> bool:
        return self.owner is not None


def inspect(sql: Sql, database: str, roles: list[str]) -> DatabaseState:
    names = ", ".join(literal(r) for r in sorted(set(roles))) or "NULL"
    rows = sql.query(
        "SELECT 'db', pg_get_userbyid(datdba), '', '', '', '' FROM pg_database"
        f" WHERE datname = {literal(database)};\n"
        "SELECT 'role', rolname, rolsuper::text, rolcanlogin::text, rolcreatedb::text,"
        " rolcreaterole::text, (rolreplication OR rolbypassrls)::text"
        f" FROM pg_roles WHERE rolname IN ({names});\n"
        "SELECT 'owns', pg_get_userbyid(datdba), datname, '', '', '' FROM pg_database"
        f" WHERE pg_get_userbyid(datdba) IN ({names}) AND datname <> {literal(database)};\n"
    )
    state = DatabaseState(database, None)
    for kind, a, b, c, d, e, f in (row + [""] * (7 - len(row)) for row in rows):
        if kind == "db":
            state.owner = a
        elif kind == "role":
            state.roles[a] = Role(
                a, b == "true", c == "true", d == "true", e == "true", f == "true"
            )
        elif kind == "owns":
            state.owned_elsewhere.setdefault(a, []).append(b)
    return state


def check_can_provision(state: DatabaseState, owner: str) -> None:
    """Refuse (exit 4, nothing changed) what provisioning must never take over."""
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
    sql: Sql, database: str, owner: str, verifier: str, connection_limit: int
) -> list[str]:
    """Role (LOGIN, unprivileged, CONNECTION LIMIT) and database (UTF8, template0, owner),
    CONNECT revoked from PUBLIC. Returns what it did."""
    state = inspect(sql, database, [owner, twin_of(owner)])
    check_can_provision(state, owner)
    done: list[str] = []
    role, db = ident(owner), ident(database)
    done.append(_login_role(sql, owner, state.roles.get(owner), verifier, connection_limit))
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
    sql: Sql, name: str, existing: Role | None, verifier: str, connection_limit: int
) -> str:
    """CREATE an unprivileged login role, or give the existing (unprivileged) one the password
    and limits. ALTER never names SUPERUSER or REPLICATION: a non-superuser administrator may
    not, so a role that has either is refused before anything runs."""
    limits = f"INHERIT CONNECTION LIMIT {int(connection_limit)} PASSWORD {_verifier(verifier)}"
    if existing is None:
        sql.run(
            f"CREATE ROLE {ident(name)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            f"{limits};\n"
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


def check_owner(state: DatabaseState, user: str, expected: str | None) -> str:
    """The database's owner, when it is one of the tenant's two logins (and the one the
    confirmed plan saw); otherwise nothing is done (exit 4)."""
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
    return state.owner


def set_login(
    sql: Sql,
    database: str,
    login: str,
    verifier: str,
    connection_limit: int,
    user: str | None = None,
    expected_owner: str | None = None,
) -> str:
    """Give `login` (the owner or its twin) a new password; create the twin when missing.
    `user`: the document's db.user, whose login pair must own the database."""
    state = inspect(sql, database, [login])
    owner = check_owner(state, user or login, expected_owner)
    if login not in (owner, twin_of(owner)):
        raise Conflict(
            f"role {login!r} is neither the owner of {database!r} ({owner}) nor its twin",
            "rotation alternates between the owner and <owner>_2",
        )
    existed = login in state.roles
    _login_role(sql, login, state.roles.get(login), verifier, connection_limit)
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
    expect_absent: bool = False,
    expected_owner: str | None = None,
) -> list[str]:
    """Drop the database (closing its sessions) and both login roles; absent is fine.

    Every check comes before the first DROP: the database is owned by one of the tenant's two
    logins (`expected_owner`: the one the confirmed plan saw), and those roles own no database
    but it and its parked copies. `expect_absent`: the confirmed plan found no database (an
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
        check_owner(state, user, expected_owner)
    sides = side_databases(state)
    for name in state.roles:
        foreign = [d for d in state.owned_elsewhere.get(name, []) if d not in sides]
        if foreign:
            raise Conflict(
                f"role {name!r} also owns {', '.join(foreign)}; nothing was dropped",
                "that is another tenant's database: check the documents",
            )
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

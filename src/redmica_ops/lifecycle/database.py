"""What the lifecycle does inside PostgreSQL, step by step, each step checking what exists first.

These functions run wherever the database is reachable: in this process (local executor) or in
an ECS one-off task (`redmica entrypoint admin-sql`). They take an administrator's `Sql` and
never see the administrator's password. Re-running any of them after a failure finishes the
job instead of failing on what the first attempt already did.

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
        f" rolcreaterole::text FROM pg_roles WHERE rolname IN ({names});\n"
        "SELECT 'owns', pg_get_userbyid(datdba), datname, '', '', '' FROM pg_database"
        f" WHERE pg_get_userbyid(datdba) IN ({names}) AND datname <> {literal(database)};\n"
    )
    state = DatabaseState(database, None)
    for kind, a, b, c, d, e in (row + [""] * (6 - len(row)) for row in rows):
        if kind == "db":
            state.owner = a
        elif kind == "role":
            state.roles[a] = Role(a, b == "true", c == "true", d == "true", e == "true")
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
        if role.superuser or role.create_db or role.create_role:
            raise Conflict(
                f"role {name!r} already exists with SUPERUSER, CREATEDB or CREATEROLE; "
                "nothing was changed",
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
    attributes = (
        f"LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT "
        f"CONNECTION LIMIT {int(connection_limit)} PASSWORD {_verifier(verifier)}"
    )
    if owner in state.roles:
        sql.run(f"ALTER ROLE {role} {attributes};\n")
        done.append(f"role {owner}: password and limits set (it existed)")
    else:
        sql.run(f"CREATE ROLE {role} {attributes};\n")
        done.append(f"role {owner}: created")
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


def set_login(sql: Sql, database: str, login: str, verifier: str, connection_limit: int) -> str:
    """Give `login` (the owner or its twin) a new password; create the twin when missing."""
    state = inspect(sql, database, [login])
    if not state.exists or state.owner is None:
        raise NotFound(f"database {database!r} does not exist", "provision the tenant first")
    owner = state.owner
    if login not in (owner, twin_of(owner)):
        raise Conflict(
            f"role {login!r} is neither the owner of {database!r} ({owner}) nor its twin",
            "rotation alternates between the owner and <owner>_2",
        )
    attributes = (
        f"LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT "
        f"CONNECTION LIMIT {int(connection_limit)} PASSWORD {_verifier(verifier)}"
    )
    if login in state.roles:
        sql.run(f"ALTER ROLE {ident(login)} {attributes};\n")
        action = f"role {login}: new password"
    else:
        sql.run(f"CREATE ROLE {ident(login)} {attributes};\n")
        action = f"role {login}: created with a new password"
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


def set_admin(sql: Sql, database: str, owner: str, login: str, hashed: str, salt: str) -> str:
    """Make `login` an active administrator with the given password hash.

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
        f"SET ROLE {ident(owner)};\n"
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
def drop(sql: Sql, database: str, user: str, expect_absent: bool = False) -> list[str]:
    """Drop the database (closing its sessions) and both login roles; absent is fine.

    `expect_absent`: the confirmed plan found no database (an earlier purge dropped it, so
    there was no final backup to take); one that exists now was not backed up: refuse."""
    names = sorted(login_pair(user))
    state = inspect(sql, database, names)
    if expect_absent and state.exists:
        raise Conflict(
            f"database {database!r} exists now but did not when the purge was planned; it was "
            "not backed up, so nothing was dropped",
            "run the purge again: its plan takes a final backup of it first",
        )
    done: list[str] = []
    if state.exists:
        sql.run(f"DROP DATABASE IF EXISTS {ident(database)} WITH (FORCE);\n")
        done.append(f"database {database}: dropped")
    # Parked and leftover databases of earlier replaces (restore-db --replace) go with it.
    for side in side_databases(state):
        sql.run(f"DROP DATABASE IF EXISTS {ident(side)} WITH (FORCE);\n")
        done.append(f"database {side}: dropped")
        for owned in state.owned_elsewhere.values():
            if side in owned:
                owned.remove(side)
    owner = state.owner or user
    for name in sorted(state.roles, key=lambda n: n == owner):  # the twin first
        if state.owned_elsewhere.get(name):
            raise Conflict(
                f"role {name!r} also owns {', '.join(state.owned_elsewhere[name])}; not dropped",
                "that is another tenant's database: check the documents",
            )
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

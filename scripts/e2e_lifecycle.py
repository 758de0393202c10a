#!/usr/bin/env python3
"""A tenant's whole life against real PostgreSQL, Redmine and Apache + Passenger, no psql by hand.

With the local executor: `tenant add --provision` from nothing and a login as its administrator
over HTTP; bad input refused before any SQL (reserved word, role of another tenant, database
with another owner); suspend (503 + Retry-After, no Ruby process spawned) and resume; backup,
a marker, restore into a new id (marker absent there, present in the live one), then over the
live one with --replace (marker gone from the live one, kept in the parked one); two password
rotations while a request loop runs (zero failed requests); purge refused without a backup,
then done (database, parked database and roles gone, attachments archived then deleted, backups
kept). `make test` runs it after e2e_redmine.py.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live.pgtls import make_certificates  # noqa: E402
from tests.live.redmine import (  # noqa: E402
    FILES_ROOT,
    REDMINE,
    Postgres,
    free_port,
    get,
    install_packages,
    login_form,
    post_login,
    redmine_config_installed,
    wait_for,
)
from tests.live.server import LiveApache  # noqa: E402

from redmica_ops.container.apache import find_apache  # noqa: E402
from redmica_ops.lifecycle.sql import scram_verifier  # noqa: E402
from scripts.e2e_common import (  # noqa: E402
    local_executor_env,
    start_sandbox,
    stop_sandbox,
    tenant_pids,
)
from scripts.e2e_redmine import REDMICA, Run, StepFailed, redmica, tenant_flags  # noqa: E402

DOMAIN = "life.test"
TENANT = "lc"
HOST = f"{TENANT}.{DOMAIN}"


def expect_exit(result: Any, code: int, what: str) -> None:
    if result.returncode != code:
        raise RuntimeError(
            f"{what}: exit {result.returncode}, expected {code}: {result.stderr.strip()[-400:]}"
        )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    print(f"   {what}: exit {code}: {(errors or ['(no error line)'])[0][:150]}")


def scalar(pg: Postgres, sql: str, database: str = "postgres") -> str:
    return pg.sql(sql, database=database).strip()


def render_vhosts(run: Run, port: int, site: Path) -> None:
    redmica(
        run,
        "render",
        "vhosts",
        "--app-root",
        str(REDMINE),
        "--listen-port",
        str(port),
        "-o",
        str(site),
        "--check",
    )


def render_and_reload(run: Run, apache: LiveApache, port: int, site: Path) -> None:
    render_vhosts(run, port, site)
    apache.graceful()


def login(port: int, user: str, password: str) -> str:
    """Log in to Redmine through its form; return where it sent us (not back to /login)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        cookie, token = login_form(connection, HOST)
        response = post_login(connection, HOST, (cookie, token), user, password)
        location = response.getheader("Location") or ""
        session = (response.getheader("Set-Cookie") or cookie).split(";", 1)[0]
        if response.status != 302 or "/login" in location:
            raise RuntimeError(f"login as {user}: status {response.status}, to {location!r}")
        connection.request("GET", "/my/account", headers={"Host": HOST, "Cookie": session})
        response = connection.getresponse()
        body = response.read().decode("utf-8", errors="replace")
        if response.status != 200 or user not in body:
            raise RuntimeError(f"/my/account as {user}: status {response.status}")
        return location
    finally:
        connection.close()


class RequestLoop:
    """GET / on the tenant, back to back from two threads, counting every non-200."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.ok = 0
        self.failed: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop) for _ in range(2)]

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                status, _ = get(self.port, HOST, "/", timeout=60)
                failure = None if status == 200 else f"status {status}"
            except OSError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            with self.lock:
                if failure:
                    self.failed.append(failure)
                else:
                    self.ok += 1

    def __enter__(self) -> RequestLoop:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


def sessions_of(pg: Postgres, database: str) -> set[str]:
    out = pg.sql(f"SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = '{database}';")
    return {line for line in out.splitlines() if line}


def rotate_under_load(
    run: Run, pg: Postgres, apache: LiveApache, port: int, site: Path
) -> tuple[str, int]:
    with RequestLoop(port) as loop:
        wait_for(lambda: loop.ok >= 5, "the request loop to get going", timeout=120)
        result = redmica(
            run, "tenant", "rotate-password", TENANT, "--executor", "local", "--output", "json"
        )
        rotated = json.loads(result.stdout)
        render_and_reload(run, apache, port, site)
        wait_for(
            lambda: rotated["login"] in sessions_of(pg, TENANT),
            f"a process logged in as {rotated['login']}",
            timeout=120,
        )
        before = loop.ok
        wait_for(lambda: loop.ok >= before + 10, "requests served after the switch", timeout=60)
    if loop.failed:
        raise RuntimeError(f"{len(loop.failed)} failed request(s): {loop.failed[:5]}")
    print(f"   {rotated['previous_login']} -> {rotated['login']}: {loop.ok} requests, 0 failed")
    return str(rotated["login"]), loop.ok


def sandbox_s3(run: Run) -> Any:
    """A boto3 S3 client on the sandbox (moto's fixed fake credentials, not secrets)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=run.env["AWS_ENDPOINT_URL"],
        region_name=run.env["AWS_REGION"],
        aws_access_key_id=run.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=run.env["AWS_SECRET_ACCESS_KEY"],
    )


def private_postgres(run: Run, pg: Postgres, work: Path) -> None:
    with run.step("a private PostgreSQL cluster with TLS; a non-superuser administrator as on RDS"):
        ca, crt, crt_key = make_certificates(work)

        def tls(data: Path) -> None:
            for source, name in ((crt, "server.crt"), (crt_key, "server.key")):
                shutil.copy(source, data / name)
                shutil.chown(data / name, "postgres", "postgres")
                (data / name).chmod(0o600)

        pg.start(run.logs["postgres"], tls, ("ssl=on",))
        admin_password = f"adm-{os.urandom(12).hex()}"
        pg.sql(
            "CREATE ROLE master LOGIN CREATEDB CREATEROLE NOSUPERUSER"
            f" PASSWORD '{scram_verifier(admin_password)}';"
        )
        pgpass = work / "pgpass"
        pgpass.touch(mode=0o600)
        pgpass.write_text(f"127.0.0.1:{pg.port}:*:master:{admin_password}\n")
        run.env.update(
            {
                "PGPASSFILE": str(pgpass),
                "REDMICA_DB_ADMIN_USER": "master",
                # Where the lifecycle may connect: this cluster only, its certificate
                # verified against the CA made here (channel binding for the master).
                "REDMICA_DB_HOST": "127.0.0.1",
                "REDMICA_DB_ADMIN_HOSTS": f"127.0.0.1:{pg.port}",
                "REDMICA_DB_SSL_ROOT_CERT": str(ca),
            }
        )


def bad_input_writes_nothing(run: Run, pg: Postgres) -> None:
    with run.step("bad input: refused before any SQL, nothing written"):
        before = scalar(pg, "SELECT count(*) FROM pg_roles;")
        result = redmica(
            run,
            "tenant",
            "add",
            "kw",
            *tenant_flags("kw", pg, user="select"),
            "--generate-password",
            "--provision",
            "--executor",
            "local",
            check=False,
        )
        expect_exit(result, 2, "db.user 'select' (a reserved word)")
        pg.sql("CREATE ROLE someone LOGIN; CREATE DATABASE taken OWNER someone;")
        result = redmica(
            run,
            "tenant",
            "add",
            "taken",
            *tenant_flags("taken", pg),
            "--generate-password",
            "--provision",
            "--executor",
            "local",
            check=False,
        )
        expect_exit(result, 4, "database 'taken' owned by another role")
        owner = scalar(
            pg, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'taken';"
        )
        listed = redmica(run, "tenant", "list", "--output", "json").stdout
        if owner != "someone" or '"taken"' in listed or '"kw"' in listed:
            raise RuntimeError(f"something changed: owner {owner!r}, documents {listed}")
        if scalar(pg, "SELECT count(*) FROM pg_roles;") != str(int(before) + 1):
            raise RuntimeError("a role was created by a refused provisioning")


def provision_from_nothing(run: Run, pg: Postgres) -> str:
    with run.step("provision from nothing: tenant add --provision (local executor)"):
        started = time.monotonic()
        result = redmica(
            run,
            "tenant",
            "add",
            TENANT,
            *tenant_flags(TENANT, pg),
            "--generate-password",
            "--provision",
            "--executor",
            "local",
            "--admin-login",
            "boss",
            "--language",
            "de",
            "--output",
            "json",
        )
        provisioned = json.loads(result.stdout)
        admin_password = provisioned["admin_password"]
        for line in provisioned["done"]:
            print(f"   {line}")
        print(f"   provisioned in {time.monotonic() - started:.1f}s")
        flags = scalar(
            pg,
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolconnlimit"
            f" FROM pg_roles WHERE rolname = '{TENANT}';",
        )
        if flags != "f|f|f|t|20":
            raise RuntimeError(f"role attributes: {flags}")
        # property.language (from `tenant add --language de`) chose the default data's.
        tracker = scalar(pg, "SELECT name FROM trackers ORDER BY position LIMIT 1;", TENANT)
        if provisioned["language"] != "de" or tracker != "Fehler":
            raise RuntimeError(f"default data: {provisioned['language']}, {tracker!r}")
        print(f"   default data in German (property.language): first tracker {tracker!r}")
        acl = scalar(pg, f"SELECT datacl FROM pg_database WHERE datname = '{TENANT}';")
        if "=Tc/" in acl or "=c/" in acl.replace(f"{TENANT}=", ""):
            raise RuntimeError(f"PUBLIC can still connect: {acl}")
        # Second run: every step finds its work done and the job still finishes.
        again = redmica(
            run,
            "tenant",
            "provision",
            TENANT,
            "--executor",
            "local",
            "--admin-login",
            "boss",
            "--output",
            "json",
        )
        admin_password = json.loads(again.stdout)["admin_password"]
        print("   re-run of `tenant provision`: finished again (idempotent)")
        listed = json.loads(redmica(run, "tenant", "list", "--output", "json").stdout)
        status = next(t["lifecycle"] for t in listed if t["tenant"] == TENANT)
        if status != "active":
            raise RuntimeError(f"status after provisioning: {status}")
    return str(admin_password)


def suspend_serves_the_maintenance_page(
    run: Run, apache: LiveApache, port: int, site: Path
) -> None:
    with run.step("suspend: 503 + Retry-After from the catch-all side, no Ruby", "apache"):
        redmica(run, "tenant", "suspend", TENANT, "--message", "Back soon: moving racks")
        render_and_reload(run, apache, port, site)
        wait_for(lambda: get(port, HOST)[0] == 503, "the maintenance page", timeout=60)
        wait_for(lambda: not tenant_pids(TENANT), "the tenant's processes to go", 60)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/projects", headers={"Host": HOST})
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
        retry = response.getheader("Retry-After")
        for _ in range(10):
            get(port, HOST, "/issues")
        spawned = tenant_pids(TENANT)
        if response.status != 503 or not retry or "moving racks" not in body or spawned:
            raise RuntimeError(
                f"status {response.status}, Retry-After {retry!r}, processes {spawned}"
            )
        print(f"   503, Retry-After: {retry}, 11 requests, 0 tenant processes")
        skipped = redmica(
            run, "migrate", "--all", "--executor", "local", "--dry-run", "--output", "json"
        )
        if TENANT not in json.loads(skipped.stdout)["skipped"]:
            raise RuntimeError("migrate --all did not skip the suspended tenant")
        print("   migrate --all: suspended tenant skipped")


def backup_and_restore(run: Run, pg: Postgres, port: int) -> None:
    with run.step("backup, marker, restore into a new id and over the live one", "apache"):
        result = redmica(run, "tenant", "backup", TENANT, "--executor", "local", "--output", "json")
        backup = json.loads(result.stdout)
        print(
            f"   backup {backup['backup']}: {backup['size']} bytes, {backup['tables']}"
            f" tables, {backup['rows']} rows"
        )
        pg.sql(
            "INSERT INTO settings (name, value, updated_on)"
            " VALUES ('e2e_marker', 'after-backup', now());",
            database=TENANT,
        )
        result = redmica(
            run,
            "tenant",
            "restore-db",
            TENANT,
            backup["backup"],
            "--into",
            "lc-copy",
            "--executor",
            "local",
            "--output",
            "json",
        )
        restored = json.loads(result.stdout)
        marker = "SELECT count(*) FROM settings WHERE name = 'e2e_marker';"
        live, copy = scalar(pg, marker, TENANT), scalar(pg, marker, "lc_copy")
        if (live, copy) != ("1", "0"):
            raise RuntimeError(f"marker live={live} copy={copy}")
        print(
            f"   restored {restored['tables']} tables / {restored['rows']} rows into"
            " lc-copy; marker: live 1, copy 0"
        )
        # Over the live database: refused without --yes, then done with a safety backup,
        # the live one parked (marker there), the restored one live (no marker).
        replace_args = [
            "tenant", "restore-db", TENANT, backup["backup"], "--replace",
            "--executor", "local",
        ]  # fmt: skip
        result = redmica(run, *replace_args, check=False)
        expect_exit(result, 2, "restore-db --replace without --yes")
        if scalar(pg, marker, TENANT) != "1":
            raise RuntimeError("the live database changed without a confirmation")
        result = redmica(run, *replace_args, "--yes", "--output", "json")
        replaced = json.loads(result.stdout)
        parked = replaced["parked"]
        allowed = scalar(pg, f"SELECT datallowconn FROM pg_database WHERE datname = '{parked}';")
        pg.sql(f"ALTER DATABASE {parked} ALLOW_CONNECTIONS true;")  # to look inside
        live, kept = scalar(pg, marker, TENANT), scalar(pg, marker, parked)
        if (live, kept, allowed) != ("0", "1", "f"):
            raise RuntimeError(f"after replace: marker live={live} parked={kept} {allowed}")
        wait_for(lambda: get(port, HOST)[0] == 200, "the site on the restored database", 120)
        print(
            f"   replaced: safety backup {replaced['safety_backup']}, {replaced['tables']}"
            f" tables verified; marker: live 0, parked {parked} 1; site 200"
        )


def purge(run: Run, pg: Postgres) -> None:
    with run.step("purge: refused without a backup, then done"):
        pg.sql("CREATE ROLE broken LOGIN PASSWORD 'right'; CREATE DATABASE broken OWNER broken;")
        redmica(
            run,
            "tenant",
            "add",
            "broken",
            *tenant_flags("broken", pg),
            "--db-password-stdin",
            input="wrong-password\n",
        )
        result = redmica(
            run,
            "tenant",
            "remove",
            "broken",
            "--purge",
            "--executor",
            "local",
            "--yes",
            check=False,
        )
        expect_exit(result, 1, "purge whose final backup fails")
        if scalar(pg, "SELECT count(*) FROM pg_database WHERE datname = 'broken';") != "1":
            raise RuntimeError("the database was dropped without a backup")
        plan = redmica(
            run,
            "tenant",
            "remove",
            TENANT,
            "--purge",
            "--dry-run",
            "--executor",
            "local",
            "--output",
            "json",
        )
        print(f"   dry run: {len(json.loads(plan.stdout)['plan']['steps'])} steps planned")
        files = sandbox_s3(run)
        files.create_bucket(Bucket="redmica-e2e-files")
        for key in (f"{TENANT}/a.txt", f"{TENANT}/sub/b.txt", "lc-copy/keep.txt"):
            files.put_object(Bucket="redmica-e2e-files", Key=key, Body=key.encode())
        result = redmica(
            run,
            "tenant",
            "remove",
            TENANT,
            "--purge",
            "--archive-attachments",
            "--executor",
            "local",
            "--yes",
            "--output",
            "json",
        )
        record = json.loads(result.stdout)["record"]
        gone = scalar(
            pg,
            f"SELECT (SELECT count(*) FROM pg_database WHERE datname LIKE '{TENANT}%'"
            f" AND datname NOT LIKE '{TENANT}_copy%')"
            f" + (SELECT count(*) FROM pg_roles WHERE rolname IN ('{TENANT}', '{TENANT}_2'));",
        )
        keys = sorted(
            o["Key"] for o in files.list_objects_v2(Bucket="redmica-e2e-files").get("Contents", [])
        )
        archived = [k for k in keys if k.startswith(f"archive/{TENANT}/")]
        if len(archived) != 2 or any(k.startswith(f"{TENANT}/") for k in keys):
            raise RuntimeError(f"attachments after the purge: {keys}")
        print(f"   attachments archived ({len(archived)} under archive/{TENANT}/), then deleted")
        backups = json.loads(redmica(run, "tenant", "backups", TENANT, "--output", "json").stdout)[
            "backups"
        ]
        reasons = [b["reason"] for b in backups]
        if gone != "0" or "final before purge" not in reasons:
            raise RuntimeError(f"left: {gone} database/roles; backups: {reasons}")
        print(f"   database and roles gone; {len(backups)} backups kept; record {record}")


def main() -> int:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("e2e lifecycle: skipped (needs root on Debian); 0 passed, 0 failed, 1 skipped")
        return 0
    work = Path(tempfile.mkdtemp(prefix="redmica-e2e-life-"))
    work.chmod(0o755)
    run = Run(work)
    pg = Postgres(work / "pg", work / "pgsock", free_port())
    sandbox = None
    apache: LiveApache | None = None
    backup_dir = work / "redmine-config-backup"
    restore = contextlib.ExitStack()  # puts Debian's Redmine config back, whatever happens
    try:
        with run.step("packages present (installed by e2e_redmine.py's step)"):
            install_packages()
            install = find_apache()

        run.logs["postgres"] = work / "postgres.log"
        private_postgres(run, pg, work)

        with run.step("the embedded sandbox (config bucket) and Redmine's config", "sandbox"):
            sandbox = start_sandbox(run, REDMICA, "redmica-e2e-life")
            local_executor_env(run, DOMAIN, work / "migrations")
            run.env["REDMICA_MIGRATE_COMMAND"] = "rake db:migrate redmine:plugins:migrate"
            rendered = work / "redmine-config"
            redmica(run, "render", "redmine-config", "-o", str(rendered), "--mkdir")
            restore.enter_context(redmine_config_installed(rendered, backup_dir))

        bad_input_writes_nothing(run, pg)

        admin_password = provision_from_nothing(run, pg)

        site = work / "site.conf"
        port = free_port()
        run.logs["apache"] = work / "apache" / "error.log"
        with run.step("serve it; log in as its administrator over HTTP", "apache"):
            render_vhosts(run, port, site)
            (work / "apache").mkdir()
            (work / "apache").chmod(0o755)
            apache = LiveApache(
                install,
                work / "apache",
                site,
                port,
                extra=(f"SetEnv REDMICA_ATTACHMENTS_ROOT {FILES_ROOT}",),
            )
            apache.start()
            status, _ = get(port, HOST)
            if status != 200:
                raise RuntimeError(f"GET / -> {status}")
            print(f"   logged in as boss, sent to {login(port, 'boss', admin_password)}")

        suspend_serves_the_maintenance_page(run, apache, port, site)

        with run.step("resume: 200 again", "apache"):
            redmica(run, "tenant", "resume", TENANT)
            render_and_reload(run, apache, port, site)
            wait_for(lambda: get(port, HOST)[0] == 200, "the site to come back", timeout=120)

        backup_and_restore(run, pg, port)

        with run.step("rotate the password twice under a request loop: 0 failures", "apache"):
            first, _ = rotate_under_load(run, pg, apache, port, site)
            second, _ = rotate_under_load(run, pg, apache, port, site)
            if {first, second} != {TENANT, f"{TENANT}_2"}:
                raise RuntimeError(f"logins did not alternate: {first}, {second}")

        purge(run, pg)

        print("\n== timings")
        for name, seconds in run.timings.items():
            print(f"   {seconds:7.1f}s  {name}")
        print("\ne2e lifecycle: 1 passed, 0 failed")
        return 0
    except StepFailed:
        print("\ne2e lifecycle: 0 passed, 1 failed")
        return 1
    finally:
        if apache is not None:
            apache.stop()
        pg.stop()
        stop_sandbox(sandbox)
        restore.close()
        if os.environ.get("E2E_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

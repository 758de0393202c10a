"""Real Redmine on this machine, shared by `scripts/e2e_redmine.py` and `bench/density.py`.

Debian's packages (redmine, redmine-pgsql, apache2, libapache2-mod-passenger, postgresql): in
the Debian 13 root of `scripts/debian13-root.sh` (Redmine 6.0), where `make e2e` and `make
bench` run them, or on whatever Debian runs this module. A private PostgreSQL cluster, HTTP
requests with a chosen Host header, a per-tenant marker in each database, and the memory of
each tenant's processes: PSS and RSS from /proc/PID/smaps_rollup, the processes found by the
tenant's RAILS_DB in /proc/PID/environ (what the vhost's SetEnv gave the process at spawn).
Needs root on Debian: it installs packages and runs servers as www-data and postgres.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ["redmine", "redmine-pgsql", "apache2", "libapache2-mod-passenger", "postgresql"]
REDMINE = Path("/usr/share/redmine")
INSTANCE_CONFIG = Path("/etc/redmine/default")
FILES_ROOT = Path("/var/lib/redmine/default/files")
# Where each file of `redmica render redmine-config` goes in Debian's Redmine: database.yml and
# configuration.yml are per instance (Debian's /usr/share/redmine/config/database.yml is a
# link to the instance's, and Redmine.root/config is read for configuration.yml); the rest is
# read from the code's own config/ (application.rb instance_evals additional_environment.rb
# from there, Rails loads config/initializers, redmica_s3 reads Rails.root/config/s3.yml).
REDMINE_CONFIG_PLACES = {
    "redmica_boot.rb": REDMINE / "config",
    "database.yml": INSTANCE_CONFIG,
    "configuration.yml": INSTANCE_CONFIG,
    "s3.yml": REDMINE / "config",
    "additional_environment.rb": REDMINE / "config",
    "initializers/redmica_ops.rb": REDMINE / "config",
}


def sh(
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args),
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:4])}... exited {result.returncode}: "
            f"{(result.stderr or result.stdout)[-2000:]}"
        )
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll until `predicate` holds. A refused or reset connection counts as "not yet": Apache's
    graceful restart can refuse a request for a moment (seen in the lifecycle run)."""
    deadline = time.monotonic() + timeout
    last_error: OSError | None = None
    while True:
        try:
            if predicate():
                return
        except OSError as error:
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise RuntimeError(f"timed out waiting for {what}{detail}")
        time.sleep(0.1)


# -- packages -----------------------------------------------------------------------------------
def install_packages() -> None:
    missing = [
        p
        for p in PACKAGES
        if "install ok installed"
        not in sh("dpkg-query", "-W", "-f=${Status}", p, check=False).stdout
    ]
    if not missing:
        print("   all packages present")
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"need root to install {missing}")
    sh(
        "debconf-set-selections",
        input="redmine redmine/instances/default/dbconfig-install boolean false\n",
    )
    sh("apt-get", "update", "-qq")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sh("apt-get", "install", "-y", "-qq", *missing, env=env, timeout=900)


# -- PostgreSQL ---------------------------------------------------------------------------------
@dataclass
class Postgres:
    data: Path
    socket_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def bin(self) -> Path:
        return max(Path("/usr/lib/postgresql").glob("*/bin"))

    def start(
        self,
        log: Path,
        configure: Callable[[Path], None] | None = None,
        options: Sequence[str] = (),
    ) -> None:
        """initdb, then `configure(data_dir)` (pg_hba.conf, certificates), then the server with
        `-c NAME=VALUE` for each of `options`."""
        for path in (self.data, self.socket_dir):
            path.mkdir(parents=True)
            shutil.chown(path, "postgres", "postgres")
        sh(
            "runuser",
            "-u",
            "postgres",
            "--",
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
        )
        if configure is not None:
            configure(self.data)
        log_handle = log.open("wb")
        self.process = subprocess.Popen(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.socket_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                *(arg for option in options for arg in ("-c", option)),
            ],
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: (
                sh(
                    str(self.bin / "pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    check=False,
                ).returncode
                == 0
            ),
            "PostgreSQL",
        )

    def sql(self, statements: str, database: str = "postgres") -> str:
        return sh(
            "runuser",
            "-u",
            "postgres",
            "--",
            str(self.bin / "psql"),
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-f",
            "-",
            input=statements,
        ).stdout

    def create_tenant_database(self, name: str, password: str) -> None:
        # Through stdin, so the password is never in a process's argv.
        self.sql(
            f"CREATE ROLE {name} LOGIN PASSWORD '{password}';\n"
            f"CREATE DATABASE {name} OWNER {name} ENCODING 'UTF8';\n"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # smart shutdown
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)


# -- HTTP ---------------------------------------------------------------------------------------
def get(port: int, host: str, path: str = "/", timeout: float = 180) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")
    finally:
        connection.close()


def login_form(connection: http.client.HTTPConnection, host: str) -> tuple[str, str]:
    """GET /login: (the session cookie, the form's CSRF token)."""
    connection.request("GET", "/login", headers={"Host": host})
    response = connection.getresponse()
    page = response.read().decode("utf-8", errors="replace")
    cookie = (response.getheader("Set-Cookie") or "").split(";", 1)[0]
    token = re.search(r'name="authenticity_token" value="([^"]+)"', page)
    if response.status != 200 or not token or not cookie:
        raise RuntimeError(f"{host}: /login status {response.status}, no form or cookie")
    return cookie, token.group(1)


def post_login(
    connection: http.client.HTTPConnection,
    host: str,
    session: tuple[str, str],
    user: str,
    password: str,
) -> http.client.HTTPResponse:
    """POST /login with a (cookie, token) from login_form; the response, body read."""
    cookie, token = session
    form = urllib.parse.urlencode(
        {"authenticity_token": token, "username": user, "password": password}
    )
    connection.request(
        "POST",
        "/login",
        body=form,
        headers={
            "Host": host,
            "Cookie": cookie,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    response = connection.getresponse()
    response.read()
    return response


def title_of(body: str) -> str | None:
    match = re.search(r"Title of ([a-z0-9-]+)", body)
    return match.group(1) if match else None


def mark_tenant(pg: Postgres, name: str) -> None:
    # A title and a public project only this tenant's database has. `name` is one of this
    # script's own tenant ids (DNS labels), so building the SQL from it is safe.
    pg.sql(
        "DELETE FROM settings WHERE name = 'app_title';\n"
        "INSERT INTO settings (name, value, updated_on)"
        f" VALUES ('app_title', 'Title of {name}', now());\n"
        "INSERT INTO projects (name, identifier, description, homepage, is_public, status,"
        " lft, rgt, inherit_members, created_on, updated_on)"
        f" VALUES ('Project of {name}', 'project-{name}', '', '', true, 1, 1, 2, false,"
        " now(), now());\n",
        database=name,
    )


# -- memory of each tenant's processes ------------------------------------------------------------
@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    tenant: str
    pss_kib: int
    rss_kib: int


@dataclass
class TenantMemory:
    processes: list[ProcessMemory] = field(default_factory=list)

    @property
    def pss_kib(self) -> int:
        return sum(p.pss_kib for p in self.processes)

    @property
    def rss_kib(self) -> int:
        return sum(p.rss_kib for p in self.processes)


def smaps_rollup(pid: int) -> tuple[int, int] | None:
    """(PSS, RSS) in KiB of one process, or None when it is gone or unreadable."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    pss = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    rss = re.search(r"^Rss:\s+(\d+) kB", text, re.M)
    if not pss or not rss:
        return None
    return int(pss.group(1)), int(rss.group(1))


def environ_value(pid: int, name: str) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None


def pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def tenant_processes(tenants: set[str] | None = None) -> dict[int, str]:
    """pid -> tenant for every process whose RAILS_DB names a tenant (or any, if None).

    The environment a process was started with is what the tenant's SetEnv gave it; a shell
    or a migration that ran with the same RAILS_DB would count too, so measure when none runs.
    """
    found = {}
    for pid in pids():
        if pid == os.getpid():
            continue
        db = environ_value(pid, "RAILS_DB")
        if db and (tenants is None or db in tenants):
            found[pid] = db
    return found


def memory_per_tenant(tenants: set[str] | None = None) -> dict[str, TenantMemory]:
    """PSS and RSS of each tenant's own processes (found by RAILS_DB), summed per tenant."""
    usage: dict[str, TenantMemory] = {}
    for pid, tenant in tenant_processes(tenants).items():
        sizes = smaps_rollup(pid)
        if sizes is not None:
            usage.setdefault(tenant, TenantMemory()).processes.append(
                ProcessMemory(pid, tenant, *sizes)
            )
    return usage


def descendants(root: int) -> set[int]:
    """`root` and every process below it (Apache's children, Passenger's core and apps)."""
    parents: dict[int, int] = {}
    for pid in pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[pid] = int(fields[1])
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def total_pss_kib(root: int) -> int:
    """PSS of the whole server: Apache, Passenger's watchdog and core, every app process."""
    return sum(sizes[0] for pid in descendants(root) if (sizes := smaps_rollup(pid)))


@contextlib.contextmanager
def redmine_config_installed(
    rendered: Path, backup: Path, extra: dict[str, str] | None = None
) -> Iterator[None]:
    """Install every file of `redmica render redmine-config` (in `rendered`) where Debian's
    Redmine reads it, and `extra` (a path under config/ -> its text) into Redmine's config/;
    put back what was there afterwards."""
    places = {name: folder / name for name, folder in REDMINE_CONFIG_PLACES.items()}
    places.update({name: REDMINE / "config" / name for name in extra or {}})
    saved = {name: backup / name.replace("/", "__") for name in places}
    backup.mkdir(parents=True, exist_ok=True)
    for name, target in places.items():
        if target.exists():
            shutil.copy2(target, saved[name])
    # The image's app root has a tmp/cache its user may write (additional_environment.rb keeps
    # each tenant's cache under it); Debian's code directory has no tmp/ (its instances do).
    scratch = REDMINE / "tmp"
    made_scratch = not scratch.exists()
    (scratch / "cache").mkdir(parents=True, exist_ok=True)
    for path in (scratch, scratch / "cache"):
        shutil.chown(path, "www-data", "www-data")
    try:
        for name, target in places.items():
            if extra and name in extra:
                target.write_text(extra[name], encoding="utf-8")
            else:
                shutil.copy(rendered / name, target)
            target.chmod(0o644)
        yield
    finally:
        for name, target in places.items():
            if saved[name].exists():
                shutil.copy2(saved[name], target)
            else:
                target.unlink(missing_ok=True)
        if made_scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def redmine_version() -> str:
    """Redmine's own version (lib/redmine/version.rb), e.g. 6.0.5; '?' when unreadable."""
    try:
        text = (REDMINE / "lib" / "redmine" / "version.rb").read_text()
    except OSError:
        return "?"
    parts = [re.search(rf"{name}\s*=\s*(\d+)", text) for name in ("MAJOR", "MINOR", "TINY")]
    return ".".join(m.group(1) for m in parts if m) or "?"

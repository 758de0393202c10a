#!/usr/bin/env python3
"""Multi-tenant Redmine end to end, on this machine, the way an operator runs it.

Debian's Redmine (6.0 in the Debian 13 root where `make test` runs it), a private PostgreSQL
cluster, the embedded sandbox as the config bucket, `redmica tenant add`, `redmica render
redmine-config` (every file installed where Redmine reads it), `redmica migrate --executor
local`, `redmica render vhosts`, one Apache + Passenger; then HTTP checks that each tenant sees
only its own database, a control that proves the check can fail, Redmine's side of the
contract seen from inside each tenant's process (its own secret_key_base, the Rack env
scrubbed, its own cache, logs to stdout, s3.yml read as redmica_s3 reads it) and from outside
(another tenant's session cookie is refused), and a tenant added and one removed while
everything runs. `make test` runs it (see docs/try-it-on-one-machine.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live.redmine import (  # noqa: E402
    FILES_ROOT,
    REDMINE,
    Postgres,
    TenantMemory,
    free_port,
    get,
    install_packages,
    login_form,
    mark_tenant,
    memory_per_tenant,
    post_login,
    redmine_config_installed,
    sh,
    title_of,
    wait_for,
)
from tests.live.server import LiveApache  # noqa: E402

from redmica_ops.container.apache import ApacheInstall, find_apache  # noqa: E402
from redmica_ops.container.keys import tenant_secret_key_base  # noqa: E402
from redmica_ops.probe.model import Failure, ProbeOutcome, ProbeRequest  # noqa: E402
from redmica_ops.probe.run import run as run_probe  # noqa: E402
from redmica_ops.probe.wiring import aws_site  # noqa: E402
from redmica_ops.settings.loading import load_settings  # noqa: E402
from redmica_ops.tenants.incarnations import Incarnations  # noqa: E402
from redmica_ops.workspace import AwsWorkspace  # noqa: E402

DOMAIN = "e2e.test"
REDMICA = str(Path(sys.executable).parent / "redmica")
MIGRATE_COMMAND = "rake db:migrate redmine:plugins:migrate redmine:load_default_data"
PROBE_PATH = "/e2e-probe"
# Installed for the run only, after the shipped initializer (initializers load in name order):
# what a tenant's real Redmine process and one of its requests see. `Outer` is the outermost
# middleware (before the shipped scrubber: what Passenger put in the request, the control),
# `Inner` the innermost (what is left for Redmine's code).
PROBE = """\
require 'json'
require 'digest'
require 'erb'
require 'yaml'

module E2eProbe
  SECRETS = %w[RAILS_DB RAILS_DB_USERNAME RAILS_DB_PASSWORD RAILS_DB_HOST RAILS_DB_PORT
               SECRET_KEY_BASE].freeze
  PATH = 'PROBE_PATH'

  class Outer
    def initialize(app) = @app = app

    def call(env)
      env['e2e.raw'] = SECRETS.select { |k| env.key?(k) } if env['PATH_INFO'] == PATH
      @app.call(env)
    end
  end

  class Inner
    def initialize(app) = @app = app

    def call(env)
      return @app.call(env) unless env['PATH_INFO'] == PATH

      # As redmica_s3 reads it (lib/redmica_s3/connection.rb): ERB, then YAML, then Rails.env.
      text = ERB.new(File.read(File.join(Rails.root, 'config', 's3.yml'))).result
      s3 = (YAML.respond_to?(:unsafe_load) ? YAML.unsafe_load(text) : YAML.load(text))[Rails.env]
      loggers = Rails.logger.respond_to?(:broadcasts) ? Rails.logger.broadcasts : [Rails.logger]
      logs = loggers.map { |l| l.instance_variable_get(:@logdev)&.dev }.map do |d|
        d.equal?($stdout) ? 'stdout' : (d.respond_to?(:path) ? d.path : d.class.to_s)
      end
      cache = Rails.cache.respond_to?(:cache_path) ? Rails.cache.cache_path : Rails.cache.class
      # A write and a read back: the tenant's cache directory exists and its user may write it.
      cached = Rails.cache.write('e2e', ENV['REDMICA_TENANT']) && Rails.cache.read('e2e')
      body = {
        'tenant' => ENV['REDMICA_TENANT'],
        'versions' => { 'redmine' => Redmine::VERSION.to_s, 'rails' => Rails.version,
                        'ruby' => RUBY_VERSION },
        'request_before_scrub' => env['e2e.raw'],
        'request' => SECRETS.select { |k| env.key?(k) },
        'process' => SECRETS.select { |k| ENV.key?(k) },
        'key_sha256' => Digest::SHA256.hexdigest(Rails.application.secret_key_base),
        'cache' => cache.to_s,
        'cached' => cached,
        'logs' => logs,
        'database' => ActiveRecord::Base.connection_db_config.database,
        's3' => s3,
      }
      [200, { 'content-type' => 'application/json' }, [JSON.generate(body)]]
    end
  end
end

Rails.application.config.middleware.insert_before 0, E2eProbe::Outer
Rails.application.config.middleware.use E2eProbe::Inner
""".replace("PROBE_PATH", PROBE_PATH)


class StepFailed(Exception):
    pass


@dataclass
class Run:
    work: Path
    timings: dict[str, float] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)  # what to show when a step fails
    env: dict[str, str] = field(default_factory=dict)
    cleanups: list[tuple[str, object]] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str, *logs: str) -> Iterator[None]:
        print(f"\n== {name}", flush=True)
        started = time.monotonic()
        try:
            yield
        except Exception as exc:
            print(f"\nFAILED at step: {name}: {exc}", file=sys.stderr)
            for key in logs:
                path = self.logs.get(key)
                if path and path.exists():
                    tail = path.read_text(errors="replace").splitlines()[-40:]
                    print(f"--- last lines of {key} ({path}):", file=sys.stderr)
                    print("\n".join(tail), file=sys.stderr)
            raise StepFailed(name) from exc
        finally:
            self.timings[name] = time.monotonic() - started
            print(f"   ({self.timings[name]:.1f}s)", flush=True)


# -- the operator's commands ------------------------------------------------------------------
def redmica(
    run: Run, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return sh(REDMICA, *args, input=input, env={**os.environ, **run.env}, check=check)


def tenant_flags(
    name: str, pg: Postgres, db: str | None = None, user: str | None = None
) -> list[str]:
    """`tenant add NAME`'s flags for a tenant of the private cluster `pg`."""
    return [
        "--db-name",
        db or name.replace("-", "_"),
        "--db-user",
        user or name.replace("-", "_"),
        "--db-host",
        "127.0.0.1",
        "--db-port",
        str(pg.port),
        "--s3-bucket",
        "redmica-e2e-files",
        "--s3-folder",
        name,
        "--sub-domain",
        name,
    ]


def add_tenant(run: Run, pg: Postgres, name: str, limit: str | None = None) -> None:
    password = f"pw-{name}-{secrets.token_urlsafe(12)}"
    pg.create_tenant_database(name, password)
    args = ["tenant", "add", name, *tenant_flags(name, pg), "--db-password-stdin"]
    if limit:
        args += ["--limit-ip", limit]
    redmica(run, *args, input=password + "\n")


class _NoCreate:
    """A Postgres whose create_tenant_database does nothing (the database already exists)."""

    def __init__(self, pg: Postgres) -> None:
        self.port = pg.port

    def create_tenant_database(self, name: str, password: str) -> None:
        pass


def pg_without_create(pg: Postgres) -> Postgres:
    return _NoCreate(pg)  # type: ignore[return-value]


def migrate(run: Run, *ids: str, expect_failure: bool = False) -> dict[str, Any]:
    selection = list(ids) or ["--all"]
    result = redmica(
        run,
        "migrate",
        *selection,
        "--executor",
        "local",
        # Two tenants per process in turn, each with its own environment and result object.
        "--tenants-per-task",
        "2",
        "--command",
        MIGRATE_COMMAND,
        "--output",
        "json",
        check=False,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    failed = [t for t in data["tenants"] if t["status"] != "succeeded"]
    if expect_failure:
        return data
    if result.returncode != 0 or failed:
        for tenant in failed:
            log = Path(str(tenant["log_stream"]))
            if log.exists():
                print(f"--- {tenant['tenant']} ({log}):", file=sys.stderr)
                print(
                    "\n".join(log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr
                )
        raise RuntimeError(f"migrations failed: {data['summary']}")
    return data


def render_vhosts(run: Run, port: int, out: Path) -> None:
    redmica(
        run,
        "render",
        "vhosts",
        "--app-root",
        str(REDMINE),
        "--listen-port",
        str(port),
        "-o",
        str(out),
        "--check",
    )


def check_isolation(
    port: int, tenants: list[str], all_names: list[str], concurrency: int = 12
) -> dict[str, float]:
    """Every tenant's pages show its own title and project, none of the others'."""
    first: dict[str, float] = {}

    def visit(name: str) -> tuple[str, int, str, float]:
        started = time.monotonic()
        status, body = get(port, f"{name}.{DOMAIN}")
        return name, status, body, time.monotonic() - started

    plan = [tenants[i % len(tenants)] for i in range(concurrency)]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for name, status, body, took in pool.map(visit, plan):
            if status != 200 or title_of(body) != name:
                raise RuntimeError(f"{name}: status {status}, title {title_of(body)!r}")
            first[name] = max(first.get(name, 0.0), took)
    for name in tenants:
        status, body = get(port, f"{name}.{DOMAIN}", "/projects")
        if status != 200 or f"Project of {name}" not in body:
            raise RuntimeError(f"{name}: /projects status {status} without its project")
        others = [o for o in all_names if o != name and f"Project of {o}" in body]
        if others:
            raise RuntimeError(f"{name}: /projects shows other tenants' projects: {others}")
    return first


def leak_seen(port: int, tenants: list[str], requests: int = 30) -> tuple[int, list[int]]:
    def visit(name: str) -> tuple[bool, int]:
        status, body = get(port, f"{name}.{DOMAIN}")
        return status == 200 and title_of(body) not in (None, name), status

    with ThreadPoolExecutor(max_workers=requests) as pool:
        results = list(pool.map(visit, [tenants[i % len(tenants)] for i in range(requests)]))
    return sum(leak for leak, _ in results), sorted({status for _, status in results})


def probe(port: int, name: str) -> dict[str, Any]:
    status, body = get(port, f"{name}.{DOMAIN}", PROBE_PATH)
    if status != 200:
        raise RuntimeError(f"{name}: {PROBE_PATH} answered {status}")
    seen: dict[str, Any] = json.loads(body)
    return seen


def probe_sites(run: Run, port: int, *tenants: str) -> ProbeOutcome:
    """The site probe (src/redmica_ops/probe) against this Apache, its record in the sandbox's
    bucket; each answer must carry the tenant's own title (mark_tenant gave it one)."""
    sandbox = {k: v for k, v in run.env.items() if k.startswith("AWS_")}
    saved = {k: os.environ.get(k) for k in sandbox}
    os.environ.update(sandbox)  # the sandbox's fake credentials, for boto3's chain
    try:
        ws = AwsWorkspace(load_settings({}, run.env), message=lambda text: print(f"   {text}"))
        request = ProbeRequest(
            base_url=f"http://127.0.0.1:{port}",
            tenants=tenants,
            timeout=120,
            expect_title="Title of {tenant}",
        )
        outcome = run_probe(request, ws, aws_site(ws))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    for site in outcome.sites:
        print(f"   probe {site.tenant}: {site.verdict} {site.reason}")
    return outcome


def verdicts(outcome: ProbeOutcome) -> dict[str, str]:
    return {site.tenant: str(site.verdict) for site in outcome.sites}


def bucket_incarnations(run: Run) -> dict[str, str]:
    """Every tenant's incarnation in the sandbox bucket, read as serve reads it: it is part of
    each tenant's derived key (docs/tenant-lifecycle.md, "Incarnations")."""
    import boto3  # heavy, and only this step needs it

    s3 = boto3.client(
        "s3",
        endpoint_url=run.env["AWS_ENDPOINT_URL"],
        region_name=run.env["AWS_DEFAULT_REGION"],
        aws_access_key_id=run.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=run.env["AWS_SECRET_ACCESS_KEY"],
    )
    return Incarnations(s3, run.env["REDMICA_BUCKET"]).all()


def check_contract(
    port: int, tenants: list[str], master: str, incarnations: dict[str, str]
) -> dict[str, str]:
    """Redmine's side of the contract, seen from inside each tenant's process; returns the
    versions Redmine reports (Redmine, Rails, Ruby)."""
    secret = {"RAILS_DB_PASSWORD", "SECRET_KEY_BASE"}
    if missing := sorted(set(tenants) - set(incarnations)):
        raise RuntimeError(f"no incarnation in the bucket for {missing}: tenant add makes one")
    keys: dict[str, str] = {}
    seen: dict[str, Any] = {}
    for name in tenants:
        seen = probe(port, name)
        derived = tenant_secret_key_base(master, name, incarnations[name]).encode()
        s3 = {k: seen["s3"].get(k) for k in ("bucket", "folder", "thumb_folder", "import_folder")}
        wrong = {
            # The control: Passenger does copy SetEnv values into each request.
            "secrets in the request before the scrubber": not secret
            <= set(seen["request_before_scrub"] or ()),
            "secrets left in the request's Rack env": bool(seen["request"]),
            "secrets missing from the process ENV": not secret <= set(seen["process"]),
            "secret_key_base is not the tenant's derived key": seen["key_sha256"]
            != hashlib.sha256(derived).hexdigest(),
            "cache outside the tenant's directory, or not writable": not str(
                seen["cache"]
            ).endswith(f"/tenants/{name}")
            or seen["cached"] != name,
            "logs not (only) on stdout": seen["logs"] != ["stdout"],
            "another database": seen["database"] != name or seen["tenant"] != name,
            "s3.yml not the tenant's folder": s3
            != {
                "bucket": "redmica-e2e-files",
                "folder": name,
                "thumb_folder": f"{name}/tmp/thumbnails",  # noqa: S108 (S3 keys)
                "import_folder": f"{name}/tmp/imports",  # noqa: S108
            },
        }
        if any(wrong.values()):
            problems = [what for what, bad in wrong.items() if bad]
            raise RuntimeError(f"{name}: {'; '.join(problems)} (saw {seen})")
        keys[name] = seen["key_sha256"]
    if len(set(keys.values())) != len(keys):
        raise RuntimeError(f"tenants share a secret_key_base: {keys}")
    versions: dict[str, str] = seen["versions"]
    return versions


def check_session_keys(port: int, owner: str, other: str) -> tuple[int, int]:
    """`owner`'s session cookie and CSRF token work on `owner` (the control: a wrong password,
    200) and are refused by `other` (422), whose key cannot read the cookie."""
    statuses = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        session = login_form(connection, f"{owner}.{DOMAIN}")
        for name in (owner, other):
            response = post_login(connection, f"{name}.{DOMAIN}", session, "nobody", "wrong")
            statuses.append(response.status)
    finally:
        connection.close()
    own, foreign = statuses
    if own != 200 or foreign != 422:
        raise RuntimeError(
            f"{owner}'s session: {own} at {owner} (expected 200, a wrong password), "
            f"{foreign} at {other} (expected 422, the token not verified)"
        )
    return own, foreign


def print_memory(memory: dict[str, TenantMemory]) -> None:
    for name, usage in sorted(memory.items()):
        pids = ", ".join(str(p.pid) for p in usage.processes)
        print(
            f"   {name}: {len(usage.processes)} process(es) [{pids}], "
            f"PSS {usage.pss_kib / 1024:.0f} MiB, RSS {usage.rss_kib / 1024:.0f} MiB"
        )


def control_without_app_groups(
    run: Run, apache: LiveApache, install: ApacheInstall, site: Path, port: int, tenants: list[str]
) -> None:
    """Without app groups the vhosts leak: proof that the isolation check can see a leak."""
    with run.step("control: the same vhosts without PassengerAppGroupName leak", "control"):
        apache.stop()
        shared = run.work / "shared-group.conf"
        shared.write_text(
            "".join(
                line
                for line in site.read_text().splitlines(True)
                if "PassengerAppGroupName" not in line
            )
        )
        control = LiveApache(
            install,
            run.work / "apache-control",
            shared,
            port,  # the rendered vhosts name this port: <VirtualHost *:PORT>
            extra=(f"SetEnv REDMICA_ATTACHMENTS_ROOT {FILES_ROOT}",),
        )
        (run.work / "apache-control").mkdir()
        (run.work / "apache-control").chmod(0o755)
        control.start()
        run.logs["control"] = control.workdir / "error.log"
        try:
            leaks, statuses = leak_seen(control.port, tenants)
            # The probe sees the same fault: another tenant's title for a host.
            mixed = probe_sites(run, control.port, *tenants)
        finally:
            control.stop()
        kinds = {site.failure for site in mixed.sites}
        if Failure.WRONG_TENANT not in kinds or kinds - {Failure.WRONG_TENANT, None}:
            raise RuntimeError(f"the probe did not report wrong tenants: {verdicts(mixed)}")
        if not leaks:
            raise RuntimeError(
                f"no cross-tenant leak without app groups (statuses {statuses}): the check is blind"
            )
        print(f"   {leaks} of 30 requests showed another tenant's title (as expected)")
        apache.start()


def failing_tenant_output_tail(run: Run, pg: Postgres) -> None:
    """A migration that fails shows its output's tail in `runs show`, no password in it."""
    with run.step("a failing tenant's output tail in `runs show` (wrong password)"):
        # Its database exists, but the document carries another password: the migration
        # fails, and the operator reads why without opening any log file.
        pg.create_tenant_database("zeta", "the-real-password-1")
        add_tenant(run, pg_without_create(pg), "zeta")
        report = migrate(run, "alpha", "zeta", expect_failure=True)
        outcome = {t["tenant"]: t["status"] for t in report["tenants"]}
        if outcome != {"alpha": "succeeded", "zeta": "failed"}:
            raise RuntimeError(f"expected zeta alone to fail: {outcome}")
        shown = redmica(run, "runs", "show", report["run_id"], "zeta")
        if "password authentication failed" not in shown.stdout:
            raise RuntimeError(f"runs show has no tail for zeta:\n{shown.stdout}")
        if "the-real-password-1" in shown.stdout:
            raise RuntimeError("a password reached runs show")
        print("   " + "\n   ".join(shown.stdout.splitlines()[-4:]))


def probe_every_site(run: Run, port: int) -> None:
    """The site probe once every tenant is warm: all up, the limit_ips tenant restricted."""
    with run.step("the site probe: every site up, the limit_ips tenant restricted", "apache"):
        before = memory_per_tenant()
        probed = probe_sites(run, port)
        after = memory_per_tenant()
        expected = {"alpha": "up", "beta": "up", "gamma": "up", "delta": "restricted"}
        if verdicts(probed) != expected or probed.exit_code != 0:
            raise RuntimeError(f"probe: {verdicts(probed)} (exit {probed.exit_code})")
        probe_stayed_within_the_pool(before, after)


def probe_stayed_within_the_pool(
    before: dict[str, TenantMemory], after: dict[str, TenantMemory]
) -> None:
    """The probe of warm sites spawns no process: one paced GET per site must not cost the pool
    what a burst of customers would. Memory is printed, not bounded: the first /login a process
    renders compiles its views (measured +10 % PSS), which any customer's first visit costs too."""
    spawned = {
        tenant: (len(before.get(tenant, TenantMemory()).processes), len(usage.processes))
        for tenant, usage in after.items()
        if len(usage.processes) > len(before.get(tenant, TenantMemory()).processes)
    }
    pss = (sum(u.pss_kib for u in before.values()), sum(u.pss_kib for u in after.values()))
    processes = (
        sum(len(u.processes) for u in before.values()),
        sum(len(u.processes) for u in after.values()),
    )
    print(
        f"   during the probe: {processes[0]} -> {processes[1]} tenant processes,"
        f" PSS {pss[0] / 1024:.0f} -> {pss[1] / 1024:.0f} MiB"
    )
    if spawned:
        raise RuntimeError(f"the probe spawned processes (before, after): {spawned}")


def probe_failed_and_suspended(run: Run, apache: LiveApache, site: Path, port: int) -> None:
    """zeta's wrong password fails zeta alone; a suspended tenant is suspended, not failed."""
    with run.step("the site probe: zeta's wrong password fails zeta alone", "apache"):
        render_vhosts(run, port, site)
        apache.graceful()
        probed = probe_sites(run, port, "alpha", "epsilon", "zeta")
        zeta = next(s for s in probed.sites if s.tenant == "zeta")
        failed = [s.tenant for s in probed.failed]
        if failed != ["zeta"] or zeta.failure is not Failure.STATUS or probed.exit_code != 1:
            raise RuntimeError(f"expected zeta alone to fail: {verdicts(probed)}")
        redmica(run, "tenant", "remove", "zeta", "--yes")

    with run.step("the site probe: a suspended tenant is suspended, not failed", "apache"):
        redmica(run, "tenant", "suspend", "epsilon")
        render_vhosts(run, port, site)
        apache.graceful()
        wait_for(lambda: get(port, f"epsilon.{DOMAIN}")[0] == 503, "epsilon's 503")
        probed = probe_sites(run, port, "alpha", "epsilon")
        if verdicts(probed) != {"alpha": "up", "epsilon": "suspended"}:
            raise RuntimeError(f"probe: {verdicts(probed)}")
        redmica(run, "tenant", "resume", "epsilon")
        render_vhosts(run, port, site)
        apache.graceful()
        wait_for(
            lambda: title_of(get(port, f"epsilon.{DOMAIN}")[1]) == "epsilon",
            "epsilon to be served again",
            timeout=120,
        )


def use_sandbox(run: Run, env_file: Path, master: str) -> None:
    """Once the sandbox wrote its env file: its endpoint and credentials, and this run's
    settings, in the environment every `redmica` call gets."""
    wait_for(env_file.exists, "the sandbox")
    for line in env_file.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        run.env[key] = value
    run.env.update(
        {
            "REDMICA_DOMAIN": DOMAIN,
            "REDMICA_LOCAL_WORKDIR": str(REDMINE),
            "REDMICA_LOCAL_USER": "www-data",
            "REDMICA_LOCAL_ENV": (
                "RAILS_ENV=production,REDMINE_LANG=en,SCHEMA=/dev/null,"
                f"REDMICA_ATTACHMENTS_ROOT={FILES_ROOT}"
            ),
            "REDMICA_LOCAL_LOG_DIR": str(run.work / "migrations"),
            "REDMICA_POLL_INTERVAL": "1",
            # Each tenant's processes and migrations get a key derived from it.
            "SECRET_KEY_BASE": master,
        }
    )


def warm_unknown_host_and_limit_ips(
    run: Run, port: int, open_tenants: list[str]
) -> dict[str, TenantMemory]:
    """Warm requests stay isolated; an unknown host is 404; limit_ips refuses 127.0.0.1."""
    with run.step("HTTP, warm; unknown host; limit_ips", "apache"):
        check_isolation(port, open_tenants, [*open_tenants, "delta"], concurrency=6)
        status, body = get(port, f"nobody.{DOMAIN}")
        if status != 404 or title_of(body):
            raise RuntimeError(f"unknown host: status {status}, title {title_of(body)!r}")
        status, body = get(port, f"delta.{DOMAIN}")
        if status != 403 or title_of(body):
            raise RuntimeError(f"delta (10.0.0.0/8 only): status {status}")
        print("   unknown host: 404; delta from 127.0.0.1: 403")
        memory = memory_per_tenant(set(open_tenants))
        if sorted(memory) != open_tenants:
            raise RuntimeError(f"processes found for {sorted(memory)}, not {open_tenants}")
    return memory


def redmine_side(run: Run, port: int, open_tenants: list[str], master: str) -> None:
    """What Redmine itself sees: its own key, a scrubbed Rack env, its own cache and logs."""
    with run.step(
        "Redmine's side: own secret_key_base, Rack env scrubbed, own cache, logs, s3.yml",
        "apache",
    ):
        versions = check_contract(port, open_tenants, master, bucket_incarnations(run))
        print(
            f"   Redmine {versions['redmine']}, Rails {versions['rails']}, Ruby"
            f" {versions['ruby']}: the shipped initializer and additional_environment.rb hold"
        )
        own, foreign = check_session_keys(port, "alpha", "beta")
        print(f"   alpha's session cookie: {own} at alpha, {foreign} at beta (key differs)")


def add_while_running(
    run: Run, pg: Postgres, apache: LiveApache, site: Path, port: int, open_tenants: list[str]
) -> None:
    """A tenant added to a running Apache comes up after a graceful restart."""
    with run.step("add a tenant while running: tenant add, migrate, re-render, graceful", "apache"):
        add_tenant(run, pg, "epsilon")
        migrate(run, "epsilon")
        mark_tenant(pg, "epsilon")
        render_vhosts(run, port, site)
        apache.graceful()
        wait_for(
            lambda: title_of(get(port, f"epsilon.{DOMAIN}")[1]) == "epsilon",
            "epsilon to come up",
            timeout=120,
        )
        check_isolation(
            port, [*open_tenants, "epsilon"], [*open_tenants, "delta", "epsilon"], concurrency=4
        )


def remove_while_running(run: Run, apache: LiveApache, site: Path, port: int) -> None:
    """A removed tenant is gone after a graceful restart; the others still isolated."""
    with run.step("remove a tenant: tenant remove, re-render, graceful", "apache"):
        redmica(run, "tenant", "remove", "beta", "--yes")
        render_vhosts(run, port, site)
        apache.graceful()
        wait_for(lambda: get(port, f"beta.{DOMAIN}")[0] == 404, "beta to be gone")
        check_isolation(
            port,
            ["alpha", "gamma", "epsilon"],
            ["alpha", "gamma", "epsilon", "delta", "beta"],
            concurrency=3,
        )


def tenants_added_and_migrated(
    run: Run, pg: Postgres, restore: contextlib.ExitStack, backup: Path, open_tenants: list[str]
) -> dict[str, tuple[str, str]]:
    """Four tenants added, Redmine's config installed (put back by `restore`), every tenant
    migrated and marked; when each migration ran."""
    with run.step("add tenants with `redmica tenant add` (one limited to 10.0.0.0/8)"):
        for name in open_tenants:
            add_tenant(run, pg, name)
        add_tenant(run, pg, "delta", limit="10.0.0.0/8")

    with run.step("install the Redmine config from `redmica render redmine-config`"):
        rendered = run.work / "redmine-config"
        redmica(run, "render", "redmine-config", "-o", str(rendered), "--mkdir")
        probe = {"initializers/zz_e2e_probe.rb": PROBE}
        restore.enter_context(redmine_config_installed(rendered, backup, extra=probe))

    with run.step("migrate every tenant with `redmica migrate --all --executor local`"):
        report = migrate(run)
        per_tenant = {t["tenant"]: (t["started_at"], t["stopped_at"]) for t in report["tenants"]}
        print(f"   {report['summary']}")

    with run.step("give each tenant a title and a public project in its own database"):
        for name in [*open_tenants, "delta"]:
            mark_tenant(pg, name)
    return per_tenant


def print_summary(
    run: Run, per_tenant: dict[str, tuple[str, str]], memory: dict[str, TenantMemory]
) -> None:
    """Each step's time, each migration's, and each warm tenant's memory."""
    print("\n== timings")
    for name, seconds in run.timings.items():
        print(f"   {seconds:7.1f}s  {name}")
    for name, (start, stop) in sorted(per_tenant.items()):
        print(f"   migration {name}: {start} -> {stop}")
    print(
        "== memory per warm tenant (its own processes, found by RAILS_DB in /proc/PID/environ;"
        " PSS and RSS from /proc/PID/smaps_rollup)"
    )
    print_memory(memory)


# -- the run --------------------------------------------------------------------------------------
def main() -> int:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        # It installs Debian packages, runs servers as www-data/postgres and writes
        # /etc/redmine: only as root on Debian. CI is both.
        print("e2e: skipped (needs root on Debian); 0 passed, 0 failed, 1 skipped")
        return 0
    work = Path(tempfile.mkdtemp(prefix="redmica-e2e-"))
    work.chmod(0o755)
    run = Run(work)
    pg = Postgres(work / "pg", work / "pgsock", free_port())
    sandbox: subprocess.Popen[bytes] | None = None
    apache: LiveApache | None = None
    backup = work / "redmine-config-backup"
    restore = contextlib.ExitStack()
    open_tenants = ["alpha", "beta", "gamma"]
    master = secrets.token_hex(64)  # the image's master SECRET_KEY_BASE, for this run only
    try:
        with run.step(
            "install Debian packages (redmine, redmine-pgsql, apache2, passenger, postgresql)"
        ):
            install_packages()
            install = find_apache()

        run.logs["postgres"] = work / "postgres.log"
        with run.step("start a private PostgreSQL cluster", "postgres"):
            pg.start(run.logs["postgres"])

        run.logs["sandbox"] = work / "sandbox.log"
        with run.step("start the embedded sandbox (the config bucket)", "sandbox"):
            env_file = work / "sandbox.env"
            sandbox = subprocess.Popen(
                [REDMICA, "sandbox", "--bucket", "redmica-e2e-config", "--env-file", str(env_file)],
                stdout=subprocess.DEVNULL,
                stderr=run.logs["sandbox"].open("wb"),
                start_new_session=True,
            )
            use_sandbox(run, env_file, master)

        per_tenant = tenants_added_and_migrated(run, pg, restore, backup, open_tenants)

        site = work / "site.conf"
        port = free_port()
        run.logs["apache"] = work / "apache" / "error.log"
        with run.step("render vhosts and start Apache + Passenger", "apache"):
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

        with run.step("HTTP, cold: each tenant sees only its own database", "apache"):
            first = check_isolation(port, open_tenants, [*open_tenants, "delta"])
            for name, took in sorted(first.items()):
                print(f"   first request {name}: {took:.1f}s")

        memory = warm_unknown_host_and_limit_ips(run, port, open_tenants)

        probe_every_site(run, port)

        redmine_side(run, port, open_tenants, master)

        control_without_app_groups(run, apache, install, site, port, open_tenants)

        add_while_running(run, pg, apache, site, port, open_tenants)

        failing_tenant_output_tail(run, pg)

        probe_failed_and_suspended(run, apache, site, port)

        remove_while_running(run, apache, site, port)

        print_summary(run, per_tenant, memory)
        print("\ne2e: 1 passed, 0 failed")
        return 0
    except StepFailed:
        print("\ne2e: 0 passed, 1 failed")
        return 1
    finally:
        if apache is not None:
            apache.stop()
        pg.stop()
        if sandbox is not None and sandbox.poll() is None:
            sandbox.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sandbox.wait(timeout=30)
        restore.close()
        if os.environ.get("E2E_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Density benchmark: 30 real Redmine tenants on one Apache + Passenger within a 2 GiB budget,
today's settings and the image's new ones side by side in one run.

Debian's Redmine (6.0 in the Debian 13 root where `make bench` runs it:
scripts/debian13-root.sh) and a private PostgreSQL (shared machinery: tests/live/redmine.py),
with every file of `redmica render redmine-config` installed, as the image has them. One
database is migrated with Redmine's own rake and copied per tenant (CREATE DATABASE ... TEMPLATE,
then owned by the tenant's role), each marked with its own title. The Bootsnap cache is built
once, by the image's own step (docker/build-boot-cache.sh), read-only to the tenants.

Then, for each variant of the settings (default: `baseline`, today's settings, and `new`, the
image's: container/boot.py), on the same databases and machine, one after the other:
`redmica render vhosts` renders the tenants with the pool derived from the budget
(`serve_memory_mib`), Apache's config test accepts it, a fresh Apache starts, and while a
sampler reads the PSS of every process of the server (/proc/PID/smaps_rollup), which tenant
each app process serves (RAILS_DB in /proc/PID/environ) and the CPU time each new process
had used when it first answered (/proc/PID/stat):

1. the busy tenants (5, seeded) are made warm;
2. the hostname scan: one request to each of the 30 hostnames at once, while one client keeps
   asking the busy tenants, one request after another (are they still warm, how fast);
3. a seeded random sequence: bursts of 1-4 concurrent requests, 60% to the busy tenants, the
   rest spread over all of them, so tenants go cold, are evicted and come back.

Each request is warm when its tenant had a booted process (one that had already answered it)
just before the request was sent, cold otherwise; a response showing another tenant's title is
a wrong-tenant response. The section it writes into docs/benchmarks.md names the machine, the
versions (Redmine's in its heading), the load average, and where a target is missed. Needs
root on Debian; outside the root, run it under `flock /work/e2e.lock` on shared machines (it
installs Redmine's config for the duration and restores it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live.redmine import (  # noqa: E402
    FILES_ROOT,
    REDMINE,
    Postgres,
    descendants,
    free_port,
    get,
    install_packages,
    mark_tenant,
    memory_per_tenant,
    redmine_config_installed,
    redmine_version,
    sh,
    smaps_rollup,
    tenant_processes,
    title_of,
)
from tests.live.server import LiveApache  # noqa: E402

from redmica_ops.container.apache import find_apache  # noqa: E402

REDMICA = str(Path(sys.executable).parent / "redmica")
DOMAIN = "density.test"
TEMPLATE_DB = "template_tenant"
MIGRATE = ["rake", "db:migrate", "redmine:load_default_data"]
START_MARK = "<!-- density:start -->"
END_MARK = "<!-- density:end -->"
BUSY = 5
# The acceptance figures (#27).
TARGETS = {
    "cold_ratio": 0.5,  # new cold p95 of the random sequence <= half the baseline's
    "pss_per_tenant_mib": 120.0,
    "scan_p95_s": 20.0,
    "busy_p95_ms": 200.0,
}
# Where the image keeps the Bootsnap cache (Dockerfile.redmine), built by the image's own step.
BOOT_CACHE = "/var/cache/redmica-boot"
BUILD_BOOT_CACHE = ROOT / "docker" / "build-boot-cache.sh"
# The image's master SECRET_KEY_BASE for this run: the shipped initializer makes every Redmine
# process need a key, and `render vhosts` derives one per tenant from it.
MASTER = os.urandom(48).hex()
# An experiment only (variant `lazy`): Rails' production eager loading turned off by an extra
# initializer, for the figures; not a setting (docs/container.md says why).
LAZY_INITIALIZER = {
    "initializers/zz_bench_eager_load.rb": (
        "Rails.application.config.eager_load = false if ENV['BENCH_EAGER_LOAD'] == '0'\n"
    )
}


@dataclass(frozen=True)
class Variant:
    """One column: the settings `render vhosts` gets (REDMICA_*), what they mean."""

    about: str
    settings: dict[str, str]
    apache_env: dict[str, str] = field(default_factory=dict)  # experiments only


# `new` is what the image sets (Dockerfile.redmine's ENV; tests/test_dockerfile.py checks).
SHIPPED = {
    "REDMICA_BOOT_CACHE_DIR": BOOT_CACHE,
    "REDMICA_MAX_BOOTING": "2",
    # A process waiting for a boot place is spawning for Passenger: its start timeout must
    # cover the wait (docs/container.md, "Cold starts").
    "REDMICA_START_TIMEOUT": "180",
    "REDMICA_RUBY_ALLOCATOR": "jemalloc",
}
VARIANTS = {
    "baseline": Variant("today's settings: no Bootsnap, glibc malloc", {}),
    "new": Variant(
        "the image's: Bootsnap cache read-only, 2 booting at once (start timeout 180 s), jemalloc",
        SHIPPED,
    ),
    "glibc": Variant(
        "the image's with glibc malloc", {**SHIPPED, "REDMICA_RUBY_ALLOCATOR": "glibc"}
    ),
    "bootsnap": Variant(
        "Bootsnap cache read-only, glibc malloc", {"REDMICA_BOOT_CACHE_DIR": BOOT_CACHE}
    ),
    "arena2": Variant(
        "Bootsnap, glibc with MALLOC_ARENA_MAX=2",
        {"REDMICA_BOOT_CACHE_DIR": BOOT_CACHE, "REDMICA_RUBY_ALLOCATOR": "arena2"},
    ),
    "jemalloc": Variant(
        "Bootsnap, jemalloc",
        {"REDMICA_BOOT_CACHE_DIR": BOOT_CACHE, "REDMICA_RUBY_ALLOCATOR": "jemalloc"},
    ),
    "lazy": Variant(
        "experiment: the image's settings and no eager loading (not shipped)",
        SHIPPED,
        {"BENCH_EAGER_LOAD": "0"},
    ),
}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    at: float
    total_pss_kib: int
    app_processes: int


@dataclass
class Sampler:
    """Reads the server's memory every `interval` seconds in a thread; counts evictions."""

    root_pid: int
    tenants: set[str]
    interval: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    gone: int = 0  # tenant processes that disappeared (evicted, or idle beyond pool_idle_time)
    seen: dict[int, str] = field(default_factory=dict)
    ready: dict[str, set[int]] = field(default_factory=dict)
    # CPU seconds each process had used when it first answered: its boot and first request.
    boot_cpu: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def once(self) -> None:
        tree = descendants(self.root_pid)
        total = sum(sizes[0] for pid in tree if (sizes := smaps_rollup(pid)))
        current = {pid: t for pid, t in tenant_processes(self.tenants).items() if pid in tree}
        with self.lock:
            self.gone += len(set(self.seen) - set(current))
            self.seen = current
            self.samples.append(Sample(time.monotonic(), total, len(current)))

    def _alive(self, tenant: str) -> set[int]:
        return set(tenant_processes({tenant}))

    def warm(self, tenant: str) -> bool:
        """Does the tenant have a process now that has already served it? A process that is
        still booting (spawned for an earlier request) would make the request wait like a
        cold one, so it does not count."""
        with self.lock:
            ready = set(self.ready.get(tenant, ()))
        return bool(self._alive(tenant) & ready)

    def ready_pids(self, tenant: str) -> set[int]:
        with self.lock:
            return self._alive(tenant) & set(self.ready.get(tenant, ()))

    def served(self, tenant: str) -> None:
        """After an answer from the tenant: its live processes are booted."""
        alive = self._alive(tenant)
        with self.lock:
            for pid in alive - set(self.boot_cpu):
                if (cpu := cpu_seconds(pid)) is not None:
                    self.boot_cpu[pid] = cpu
            self.ready[tenant] = (self.ready.get(tenant, set()) & alive) | alive

    def run(self) -> None:
        while not self.stop.is_set():
            self.once()
            self.stop.wait(self.interval)

    @property
    def peak_pss_mib(self) -> float:
        return max((s.total_pss_kib for s in self.samples), default=0) / 1024

    @property
    def peak_processes(self) -> int:
        return max((s.app_processes for s in self.samples), default=0)


@dataclass
class Outcome:
    tenant: str
    phase: str
    cold: bool
    status: int
    seconds: float
    wrong_tenant: bool
    error: str | None = None


def request(port: int, tenant: str, phase: str, sampler: Sampler) -> Outcome:
    cold = not sampler.warm(tenant)
    started = time.monotonic()
    try:
        status, body = get(port, f"{tenant}.{DOMAIN}", timeout=300)
    except OSError as exc:
        return Outcome(tenant, phase, cold, 0, time.monotonic() - started, False, repr(exc))
    took = time.monotonic() - started
    if status == 200:
        sampler.served(tenant)
    shown = title_of(body)
    return Outcome(tenant, phase, cold, status, took, shown not in (None, tenant))


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


def busy_tenants(tenants: list[str], seed: int) -> list[str]:
    return random.Random(seed).sample(tenants, min(BUSY, len(tenants)))


def plan_sequence(tenants: list[str], requests: int, seed: int) -> list[list[str]]:
    """Bursts of 1-4 concurrent requests; 60% go to the busy tenants, 40% to anyone."""
    busy = busy_tenants(tenants, seed)
    rng = random.Random(seed + 1)
    bursts: list[list[str]] = []
    total = 0
    while total < requests:
        size = min(rng.choice([1, 1, 1, 2, 2, 3, 4]), requests - total)
        bursts.append(
            [rng.choice(busy) if rng.random() < 0.6 else rng.choice(tenants) for _ in range(size)]
        )
        total += size
    return bursts


# -- setup ----------------------------------------------------------------------------------------
def as_www_data() -> dict[str, Any]:
    entry = pwd.getpwnam("www-data")
    return {
        "user": entry.pw_uid,
        "group": entry.pw_gid,
        "extra_groups": os.getgrouplist("www-data", entry.pw_gid),
    }


def migrate_template(pg: Postgres, work: Path) -> float:
    password = "tpl-" + os.urandom(9).hex()
    pg.create_tenant_database(TEMPLATE_DB, password)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "RAILS_ENV": "production",
        "REDMINE_LANG": "en",
        "SCHEMA": "/dev/null",
        "REDMICA_ATTACHMENTS_ROOT": str(FILES_ROOT),
        "RAILS_DB": TEMPLATE_DB,
        "RAILS_DB_USERNAME": TEMPLATE_DB,
        "RAILS_DB_PASSWORD": password,  # in the environment, never in argv
        "RAILS_DB_HOST": "127.0.0.1",
        "RAILS_DB_PORT": str(pg.port),
        "REDMICA_TENANT": TEMPLATE_DB,
        "SECRET_KEY_BASE": os.urandom(48).hex(),
    }
    started = time.monotonic()
    log = work / "migrate.log"
    with log.open("wb") as handle:
        result = subprocess.run(
            MIGRATE,
            cwd=REDMINE,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
            **as_www_data(),
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"migrating the template database failed:\n{tail}")
    return time.monotonic() - started


def create_tenants(pg: Postgres, names: list[str], tenants_dir: Path) -> None:
    tenants_dir.mkdir()
    for name in names:
        password = f"pw-{name}-" + os.urandom(9).hex()
        pg.sql(
            f"CREATE ROLE {name} LOGIN PASSWORD '{password}';\n"
            f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB} OWNER {name};\n"
        )
        # The copied tables still belong to the template's role: hand them to the tenant.
        pg.sql(f"REASSIGN OWNED BY {TEMPLATE_DB} TO {name};\n", database=name)
        mark_tenant(pg, name)
        document = {
            "db": {
                "name": name,
                "user": name,
                "password": password,
                "host": "127.0.0.1",
                "port": pg.port,
            },
            "s3": {"bucket": "redmica-density-files", "folder": name},
            "property": {"sub_domain": name},
        }
        path = tenants_dir / f"{name}.yaml"
        path.write_text(json.dumps(document))  # JSON is YAML
        path.chmod(0o600)


def render(
    tenants_dir: Path, site: Path, port: int, budget_mib: int, spawn: str, variant: Variant
) -> str:
    # The variant's settings and nothing else of ours: a REDMICA_* of the caller's environment
    # must not leak into one column.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDMICA_")}
    env.update(
        {
            "REDMICA_SERVE_MEMORY_MIB": str(budget_mib),
            "REDMICA_SPAWN_METHOD": spawn,
            "SECRET_KEY_BASE": MASTER,
            **variant.settings,
        }
    )
    env.pop("ECS_CONTAINER_METADATA_URI_V4", None)
    sh(
        REDMICA,
        "--domain",
        DOMAIN,
        "render",
        "vhosts",
        "--from-dir",
        str(tenants_dir),
        "--app-root",
        str(REDMINE),
        "--listen-port",
        str(port),
        "-o",
        str(site),
        "--check",
        env=env,
    )
    return site.read_text()


def build_boot_cache() -> float:
    """The image's step, on this Redmine: seconds it took."""
    started = time.monotonic()
    out = sh("sh", str(BUILD_BOOT_CACHE), str(REDMINE), BOOT_CACHE, timeout=900).stdout
    print(f"   {out.strip().splitlines()[-1]}", flush=True)
    return time.monotonic() - started


def server_directives(text: str) -> dict[str, str]:
    wanted = (
        "PassengerMaxPoolSize",
        "PassengerMaxInstancesPerApp",
        "PassengerMinInstances",
        "PassengerPoolIdleTime",
        "PassengerSpawnMethod",
        "PassengerMaxRequestQueueSize",
        "PassengerStartTimeout",
    )
    found = {}
    for name in wanted:
        if match := re.search(rf"^{name} (\S+)$", text, re.M):
            found[name] = match.group(1)
    return found


def boot_environment(text: str) -> dict[str, str]:
    """The server-wide SetEnv lines (container/boot.py) of a rendered file."""
    return dict(re.findall(r'^SetEnv (\w+) "([^"]*)"$', text, re.M))


# -- the run --------------------------------------------------------------------------------------
def run_phase(
    port: int, bursts: list[list[str]], phase: str, sampler: Sampler, log: bool = False
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(len(b) for b in bursts)) as pool:
        for number, burst in enumerate(bursts, 1):
            outcomes += list(pool.map(lambda t: request(port, t, phase, sampler), burst))
            if log and number % 25 == 0:
                print(f"   {phase}: {number}/{len(bursts)} bursts", flush=True)
    return outcomes


def make_warm(port: int, busy: list[str], sampler: Sampler) -> None:
    """Each busy tenant answers until a request finds it warm (at most 5 tries)."""
    for tenant in busy:
        for _ in range(5):
            if not request(port, tenant, "warm-up", sampler).cold:
                break


def scan_with_busy_client(
    port: int, names: list[str], busy: list[str], sampler: Sampler
) -> tuple[list[Outcome], list[Outcome], float]:
    """The hostname scan, and one client asking the busy tenants in turn until it ends."""
    done = threading.Event()
    busy_outcomes: list[Outcome] = []

    def keep_asking() -> None:
        while not done.is_set():
            for tenant in busy:
                if done.is_set():
                    return
                busy_outcomes.append(request(port, tenant, "busy", sampler))

    client = threading.Thread(target=keep_asking, daemon=True)
    started = time.monotonic()
    client.start()
    try:
        scan = run_phase(port, [names], "scan", sampler)
    finally:
        wall = time.monotonic() - started
        done.set()
        client.join(timeout=300)
    return scan, busy_outcomes, wall


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    warm = [o.seconds for o in outcomes if not o.cold and o.status == 200]
    cold = [o.seconds for o in outcomes if o.cold and o.status == 200]
    every = [o.seconds for o in outcomes if o.status == 200]
    failed = [o for o in outcomes if o.status != 200]
    return {
        "requests": len(outcomes),
        "served": len(outcomes) - len(failed),
        "failed": len(failed),
        "failures": sorted({f"{o.status} {o.error or ''}".strip() for o in failed}),
        "wrong_tenant": sum(o.wrong_tenant for o in outcomes),
        "sent_warm": sum(not o.cold for o in outcomes),
        "sent_cold": sum(o.cold for o in outcomes),
        "warm": len(warm),
        "cold": len(cold),
        "warm_ms": {
            f"p{q}": (v * 1000 if (v := percentile(warm, q / 100)) is not None else None)
            for q in (50, 95, 99)
        },
        "cold_s": {f"p{q}": percentile(cold, q / 100) for q in (50, 95, 99)},
        "all_s": {
            "p50": percentile(every, 0.5),
            "p95": percentile(every, 0.95),
            "max": max(every, default=None),
        },
    }


def run_variant(
    name: str,
    variant: Variant,
    args: argparse.Namespace,
    work: Path,
    install: Any,
    names: list[str],
) -> dict[str, Any]:
    """One column: render, a fresh Apache, the three phases, the memory at the end."""
    print(f"== variant {name}: {variant.about}", flush=True)
    result: dict[str, Any] = {"about": variant.about, "load_before": os.getloadavg()}
    port = free_port()
    site = work / f"site-{name}.conf"
    text = render(work / "tenants", site, port, args.budget_mib, args.spawn_method, variant)
    result["directives"] = server_directives(text)
    result["boot_env"] = boot_environment(text)
    print(f"   rendered (apache2 -t passed): {result['directives']} {result['boot_env']}")
    folder = work / f"apache-{name}"
    folder.mkdir()
    folder.chmod(0o755)
    apache = LiveApache(
        install,
        folder,
        site,
        port,
        extra=(f"SetEnv REDMICA_ATTACHMENTS_ROOT {FILES_ROOT}",),
        env={**os.environ, **variant.apache_env} if variant.apache_env else None,
    )
    apache.start()
    busy = busy_tenants(names, args.seed)
    try:
        # -DFOREGROUND: the process we started is Apache's parent.
        assert apache.process is not None
        sampler = Sampler(apache.process.pid, set(names))
        sampler.once()
        result["idle_pss_mib"] = sampler.samples[-1].total_pss_kib / 1024
        thread = threading.Thread(target=sampler.run, daemon=True)
        thread.start()
        try:
            print(f"== {name}: the busy tenants {', '.join(busy)} made warm", flush=True)
            make_warm(port, busy, sampler)
            before = {t: sampler.ready_pids(t) for t in busy}
            result["busy_warm_before_scan"] = sum(bool(p) for p in before.values())
            print(f"== {name}: hostname scan of {len(names)} hostnames at once", flush=True)
            scan, busy_during, wall = scan_with_busy_client(port, names, busy, sampler)
            result["busy_kept"] = sum(bool(before[t] & sampler.ready_pids(t)) for t in busy)
            result["scan"] = summarise(scan)
            result["scan"]["wall_s"] = wall
            result["scan"]["peak_pss_mib"] = sampler.peak_pss_mib
            result["busy_during_scan"] = summarise(busy_during)
            print(
                f"   {json.dumps(result['scan']['all_s'])} kept {result['busy_kept']}/{len(busy)}"
            )
            print(f"== {name}: random sequence of {args.requests} requests", flush=True)
            started = time.monotonic()
            bursts = plan_sequence(names, args.requests, args.seed)
            sequence = run_phase(port, bursts, "sequence", sampler, log=True)
            result["sequence"] = summarise(sequence)
            result["sequence"]["wall_s"] = time.monotonic() - started
            result["all"] = summarise(scan + busy_during + sequence)
            memory = memory_per_tenant(set(names))
        finally:
            sampler.stop.set()
            thread.join(timeout=5)
    finally:
        apache.stop()
    result["peak_pss_mib"] = sampler.peak_pss_mib
    result["peak_processes"] = sampler.peak_processes
    result["evictions"] = sampler.gone
    cpu = sorted(sampler.boot_cpu.values())
    result["boot_cpu_s"] = {
        "processes": len(cpu),
        "p50": statistics.median(cpu) if cpu else None,
        "p95": percentile(cpu, 0.95),
    }
    per_tenant = sorted(m.pss_kib / 1024 for m in memory.values())
    result["warm_tenants_at_end"] = len(memory)
    result["per_tenant_pss_mib"] = statistics.median(per_tenant) if per_tenant else None
    per_process = sorted(p.pss_kib / 1024 for m in memory.values() for p in m.processes)
    result["per_process_pss_mib"] = statistics.median(per_process) if per_process else None
    rss = sorted(m.rss_kib / 1024 for m in memory.values())
    result["per_tenant_rss_mib"] = statistics.median(rss) if rss else None
    result["processes_per_tenant"] = (
        statistics.median(len(m.processes) for m in memory.values()) if memory else None
    )
    result["load_after"] = os.getloadavg()
    return result


def bench(args: argparse.Namespace) -> dict[str, Any]:
    names = [f"t{i:02d}" for i in range(1, args.tenants + 1)]
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"density: unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    work = Path(tempfile.mkdtemp(prefix="redmica-density-"))
    work.chmod(0o755)
    pg = Postgres(work / "pg", work / "pgsock", free_port())
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "tenants": args.tenants,
        "budget_mib": args.budget_mib,
        "seed": args.seed,
        "requests": args.requests,
        "busy": busy_tenants(names, args.seed),
        "load_before": os.getloadavg(),
        "uptime_before": uptime(),
        "variants": {},
    }
    extra = LAZY_INITIALIZER if "lazy" in variants else None
    try:
        print("== packages", flush=True)
        install_packages()
        install = find_apache()
        results["versions"] = versions()
        print(f"   Redmine {results['versions']['redmine_version']}", flush=True)
        print("== PostgreSQL", flush=True)
        pg.start(work / "postgres.log")
        rendered = work / "redmine-config"
        sh(REDMICA, "render", "redmine-config", "-o", str(rendered), "--mkdir")
        with redmine_config_installed(rendered, work / "redmine-config-backup", extra):
            print("== migrate the template database with Redmine's rake", flush=True)
            results["migrate_s"] = migrate_template(pg, work)
            print(f"   {results['migrate_s']:.0f} s", flush=True)
            print(f"== {args.tenants} tenant databases copied from it, each marked", flush=True)
            create_tenants(pg, names, work / "tenants")
            print(f"== the Bootsnap cache in {BOOT_CACHE} (docker/build-boot-cache.sh)")
            results["boot_cache_s"] = build_boot_cache()
            for name in variants:
                results["variants"][name] = run_variant(
                    name, VARIANTS[name], args, work, install, names
                )
                if args.json:  # a long run keeps what it has measured so far
                    Path(args.json).write_text(json.dumps(results, default=str, indent=1))
    finally:
        pg.stop()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    results["uptime_after"] = uptime()
    return results


def uptime() -> str:
    return sh("uptime", check=False).stdout.strip()


def versions() -> dict[str, str]:
    def pkg(name: str) -> str:
        out = sh("dpkg-query", "-W", "-f=${Version}", name, check=False).stdout.strip()
        return out or "?"

    return {
        "redmine_version": redmine_version(),
        "redmine": pkg("redmine"),
        "apache2": pkg("apache2"),
        "passenger": pkg("libapache2-mod-passenger"),
        "postgresql": pkg("postgresql"),
        "ruby": sh("ruby", "-e", "print RUBY_VERSION", check=False).stdout.strip(),
    }


def machine() -> str:
    cpu = "?"
    with Path("/proc/cpuinfo").open() as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    return (
        f"Linux {platform.release()}, {os.cpu_count()} cores ({cpu}), "
        f"{int(mem) / 1024 / 1024:.0f} GiB RAM, Python {platform.python_version()}"
    )


# -- report ---------------------------------------------------------------------------------------
def verdict(ok: bool, miss: str = "") -> str:
    return "met" if ok else f"**missed** {miss}".rstrip()


def fmt(value: float | None, unit: str, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}"


def triple(values: dict[str, float | None], unit: str, digits: int, keys: tuple[str, ...]) -> str:
    return " / ".join(fmt(values[k], unit, digits) for k in keys)


ROWS: list[tuple[str, Any]] = [
    ("PassengerMaxPoolSize", lambda v: v["directives"].get("PassengerMaxPoolSize")),
    (
        "boot environment",
        lambda v: ", ".join(f"`{k}={val}`" for k, val in v["boot_env"].items()) or "none",
    ),
    (
        "CPU to a process's first answer, p50 / p95",
        lambda v: (
            triple(v["boot_cpu_s"], "s", 2, ("p50", "p95"))
            + f" ({v['boot_cpu_s']['processes']} processes)"
        ),
    ),
    (
        "**random sequence: cold p50 / p95 / p99**",
        lambda v: triple(v["sequence"]["cold_s"], "s", 1, ("p50", "p95", "p99")),
    ),
    (
        "random sequence: warm p50 / p95 / p99",
        lambda v: triple(v["sequence"]["warm_ms"], "ms", 0, ("p50", "p95", "p99")),
    ),
    (
        "random sequence: served (warm, cold) / failed",
        lambda v: (
            f"{v['sequence']['served']} ({v['sequence']['warm']}, "
            f"{v['sequence']['cold']}) / {v['sequence']['failed']}"
        ),
    ),
    (
        "**hostname scan: p50 / p95 / max**",
        lambda v: triple(v["scan"]["all_s"], "s", 1, ("p50", "p95", "max")),
    ),
    (
        "hostname scan: served / failed",
        lambda v: (
            f"{v['scan']['served']} / {v['scan']['failed']}"
            + (f" ({', '.join(v['scan']['failures'])})" if v["scan"]["failures"] else "")
        ),
    ),
    (
        "**busy tenants during the scan: warm p50 / p95**",
        lambda v: triple(v["busy_during_scan"]["warm_ms"], "ms", 0, ("p50", "p95")),
    ),
    (
        "busy tenants during the scan: requests (cold) / all p95",
        lambda v: (
            f"{v['busy_during_scan']['requests']} ({v['busy_during_scan']['sent_cold']})"
            f" / {fmt(v['busy_during_scan']['all_s']['p95'], 's', 1)}"
        ),
    ),
    (
        "busy tenants whose warm process outlived the scan",
        lambda v: f"{v['busy_kept']} of {v['busy_warm_before_scan']}",
    ),
    (
        "**PSS per warm tenant at the end, median**",
        lambda v: (
            f"{fmt(v['per_tenant_pss_mib'], 'MiB')} ({v['warm_tenants_at_end']} tenants, "
            f"{v['processes_per_tenant']} process(es) each)"
        ),
    ),
    ("PSS per app process, median", lambda v: fmt(v["per_process_pss_mib"], "MiB")),
    ("RSS per warm tenant, median", lambda v: fmt(v["per_tenant_rss_mib"], "MiB")),
    (
        "peak PSS of the server / app processes",
        lambda v: f"{fmt(v['peak_pss_mib'], 'MiB')} / {v['peak_processes']}",
    ),
    ("processes stopped (evictions, idle)", lambda v: str(v["evictions"])),
    ("wrong-tenant responses", lambda v: str(v["all"]["wrong_tenant"])),
    (
        "load average before / after",
        lambda v: f"{v['load_before'][0]:.1f} / {v['load_after'][0]:.1f}",
    ),
]


def targets(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The issue's acceptance figures, judged on the `new` column against `baseline`."""
    variants = r["variants"]
    if "new" not in variants:
        return []
    new = variants["new"]
    rows = []
    wrong = sum(v["all"]["wrong_tenant"] for v in variants.values())
    rows.append(("0 wrong-tenant responses (every column)", str(wrong), verdict(wrong == 0)))
    peak = max(v["peak_pss_mib"] for v in variants.values())
    rows.append(
        (
            f"{r['tenants']} tenants in {r['budget_mib']} MiB: peak PSS <= budget",
            fmt(peak, "MiB"),
            verdict(peak <= r["budget_mib"]),
        )
    )
    if "baseline" in variants:
        base = variants["baseline"]["sequence"]["cold_s"]["p95"]
        cold = new["sequence"]["cold_s"]["p95"]
        if base and cold:
            ratio = cold / base
            rows.append(
                (
                    "cold p95 of the random sequence <= half the baseline's",
                    f"{cold:.1f} s vs {base:.1f} s = {ratio:.2f} x",
                    verdict(ratio <= TARGETS["cold_ratio"], f"({ratio:.2f} x)"),
                )
            )
    pss = new["per_tenant_pss_mib"]
    rows.append(
        (
            "PSS per warm tenant <= 120 MiB",
            fmt(pss, "MiB"),
            verdict(
                pss is not None and pss <= TARGETS["pss_per_tenant_mib"],
                f"by {pss - TARGETS['pss_per_tenant_mib']:.0f} MiB" if pss else "",
            ),
        )
    )
    scan95 = new["scan"]["all_s"]["p95"]
    failed = new["scan"]["failed"]
    rows.append(
        (
            "hostname scan p95 <= 20 s, no request failed",
            f"{fmt(scan95, 's', 1)}, {failed} failed",
            verdict(
                scan95 is not None and scan95 <= TARGETS["scan_p95_s"] and failed == 0,
                f"by {scan95 - TARGETS['scan_p95_s']:.1f} s"
                if scan95 and scan95 > TARGETS["scan_p95_s"]
                else "",
            ),
        )
    )
    busy95 = new["busy_during_scan"]["all_s"]["p95"]
    busy95_ms = busy95 * 1000 if busy95 is not None else None
    rows.append(
        (
            "busy tenants during the scan: p95 <= 200 ms (every request, warm or not)",
            fmt(busy95_ms, "ms"),
            verdict(
                busy95_ms is not None and busy95_ms <= TARGETS["busy_p95_ms"],
                f"by {busy95_ms - TARGETS['busy_p95_ms']:.0f} ms" if busy95_ms else "",
            ),
        )
    )
    return rows


def report(r: dict[str, Any]) -> str:
    v = r["versions"]
    names = list(r["variants"])
    lines = [
        START_MARK,
        f"## Density: {r['tenants']} real Redmine {v.get('redmine_version', '?')} tenants on one"
        " Apache + Passenger, today's settings and the new ones (`bench/density.py`)",
        "",
        f"Measured on {r['date']}: {r['machine']}; Debian 13's redmine {v['redmine']} (Ruby "
        f"{v['ruby']}), apache2 {v['apache2']}, libapache2-mod-passenger {v['passenger']}, "
        f"postgresql {v['postgresql']}. `uptime` before: {r['uptime_before']}; after: "
        f"{r['uptime_after']} (2 cores shared with other engineers' work: compare the columns, "
        "measured in one run, rather than the absolute times; CPU seconds and PSS do not depend "
        "on the load).",
        "",
        f"{r['tenants']} tenants (one database each, private PostgreSQL), rendered by "
        f"`redmica render vhosts` with `serve_memory_mib` {r['budget_mib']}; each column starts "
        "a fresh Apache on the same databases. Per column: the busy tenants "
        f"({', '.join(r['busy'])}) made warm; the hostname scan, one request to each of the "
        f"{r['tenants']} hostnames at once (the {len(r['busy'])} busy ones warm, the rest cold) "
        "while one client asks the busy tenants in turn until the scan ends; then "
        f"{r['requests']} requests in seeded random bursts of 1-4 (seed {r['seed']}; 60% to the "
        "busy tenants). Cold = the tenant had no booted process (one that had answered before) "
        "when the request was sent. PSS: the sum over Apache, Passenger's watchdog and core and "
        "every app process, sampled every 0.25 s; per tenant: its processes at the end. The "
        f"Bootsnap cache was built once by `docker/build-boot-cache.sh` ({r['boot_cache_s']:.0f} "
        f"s), as the image builds it. Template migration: {r['migrate_s']:.0f} s.",
        "",
        "| | " + " | ".join(f"{n}: {r['variants'][n]['about']}" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, value in ROWS:
        lines.append(f"| {label} | " + " | ".join(value(r["variants"][n]) for n in names) + " |")
    rows = targets(r)
    if rows:
        lines += ["", "| target (#27), the `new` column | measured | |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    for note in r.get("notes", ()):
        lines += ["", note]
    lines.append(END_MARK)
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace the density section of docs/benchmarks.md (or append it), keep the rest."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if START_MARK in text and END_MARK in text:
        before = text[: text.index(START_MARK)]
        after = text[text.index(END_MARK) + len(END_MARK) :]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=30)
    parser.add_argument("--budget-mib", type=int, default=2048)
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--spawn-method", choices=["direct", "smart"], default="direct")
    parser.add_argument(
        "--variants",
        default="baseline,new",
        help=f"columns, in this order (known: {', '.join(VARIANTS)})",
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--report-from", help="only write the section from saved raw results")
    parser.add_argument("--note", action="append", default=[], help="a paragraph after the table")
    args = parser.parse_args()
    if args.report_from:
        results = json.loads(Path(args.report_from).read_text())
        results["notes"] = [*results.get("notes", ()), *args.note]
        section = report(results)
        write_section(Path(args.out), section)
        print(section)
        return 0
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("density: skipped (needs root on Debian: it installs and runs Redmine)")
        return 0
    results = bench(args)
    results["notes"] = args.note
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=str, indent=1))
    section = report(results)
    write_section(Path(args.out), section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

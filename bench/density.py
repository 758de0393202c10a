#!/usr/bin/env python3
"""Density benchmark: 30 real Redmine tenants on one Apache + Passenger within a 2 GiB budget.

Debian's Redmine (6.0 in the Debian 13 root where `make bench` runs it:
scripts/debian13-root.sh) and a private PostgreSQL (shared machinery: tests/live/redmine.py),
with every file of `redmica render redmine-config` installed, as the image has them. One
database is migrated with Redmine's own rake and copied per tenant (CREATE DATABASE ... TEMPLATE,
then owned by the tenant's role), each marked with its own title. `redmica render vhosts` renders
the tenants with the pool derived from the budget (`serve_memory_mib`), and Apache's config test
accepts it. Then, while a sampler reads the PSS of every process of the server
(/proc/PID/smaps_rollup) and which tenant each app process serves (RAILS_DB in
/proc/PID/environ):

1. the hostname scan: one request to every tenant at once;
2. a seeded random sequence: bursts of 1-4 concurrent requests, mostly to a few busy tenants,
   the rest spread over all of them, so tenants go cold, are evicted and come back.

Each request is warm when its tenant had a booted process (one that had already answered it)
just before the request was sent, cold otherwise; a response showing another tenant's title is
a wrong-tenant response. The section it writes into
docs/benchmarks.md names the machine, the versions (Redmine's in its heading) and where a
target is missed. Needs root on Debian; outside the root, run it under `flock /work/e2e.lock`
on shared machines (it installs Redmine's config for the duration and restores it).
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
TARGETS = {"warm_p95_ms": 100.0, "cold_p95_s": 4.0}
# The image's master SECRET_KEY_BASE for this run: the shipped initializer makes every Redmine
# process need a key, and `render vhosts` derives one per tenant from it.
MASTER = os.urandom(48).hex()


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

    def served(self, tenant: str) -> None:
        """After an answer from the tenant: its live processes are booted."""
        alive = self._alive(tenant)
        with self.lock:
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


def plan_sequence(tenants: list[str], requests: int, seed: int) -> list[list[str]]:
    """Bursts of 1-4 concurrent requests; 60% go to 5 busy tenants, 40% to anyone."""
    rng = random.Random(seed)
    busy = rng.sample(tenants, min(5, len(tenants)))
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


def render(tenants_dir: Path, site: Path, port: int, budget_mib: int, spawn: str) -> str:
    env = {
        **os.environ,
        "REDMICA_SERVE_MEMORY_MIB": str(budget_mib),
        "REDMICA_SPAWN_METHOD": spawn,
        "SECRET_KEY_BASE": MASTER,
    }
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


def server_directives(text: str) -> dict[str, str]:
    wanted = (
        "PassengerMaxPoolSize",
        "PassengerMaxInstancesPerApp",
        "PassengerMinInstances",
        "PassengerPoolIdleTime",
        "PassengerSpawnMethod",
        "PassengerMaxRequestQueueSize",
    )
    found = {}
    for name in wanted:
        if match := re.search(rf"^{name} (\S+)$", text, re.M):
            found[name] = match.group(1)
    return found


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


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    warm = [o.seconds for o in outcomes if not o.cold and o.status == 200]
    cold = [o.seconds for o in outcomes if o.cold and o.status == 200]
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
    }


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


def bench(args: argparse.Namespace) -> dict[str, Any]:
    names = [f"t{i:02d}" for i in range(1, args.tenants + 1)]
    work = Path(tempfile.mkdtemp(prefix="redmica-density-"))
    work.chmod(0o755)
    pg = Postgres(work / "pg", work / "pgsock", free_port())
    apache: LiveApache | None = None
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "tenants": args.tenants,
        "budget_mib": args.budget_mib,
        "seed": args.seed,
        "requests": args.requests,
        "load_before": os.getloadavg(),
    }
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
        with redmine_config_installed(rendered, work / "redmine-config-backup"):
            print("== migrate the template database with Redmine's rake", flush=True)
            results["migrate_s"] = migrate_template(pg, work)
            print(f"   {results['migrate_s']:.0f} s", flush=True)
            print(f"== {args.tenants} tenant databases copied from it, each marked", flush=True)
            create_tenants(pg, names, work / "tenants")
            port = free_port()
            site = work / "site.conf"
            text = render(work / "tenants", site, port, args.budget_mib, args.spawn_method)
            results["directives"] = server_directives(text)
            print(f"   rendered (apache2 -t passed): {results['directives']}", flush=True)
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
            # -DFOREGROUND: the process we started is Apache's parent.
            assert apache.process is not None
            root = apache.process.pid
            sampler = Sampler(root, set(names))
            sampler.once()
            results["idle_pss_mib"] = sampler.samples[-1].total_pss_kib / 1024
            thread = threading.Thread(target=sampler.run, daemon=True)
            thread.start()
            try:
                print(f"== hostname scan: {len(names)} tenants at once", flush=True)
                started = time.monotonic()
                scan = run_phase(port, [names], "scan", sampler)
                results["scan"] = summarise(scan)
                results["scan"]["wall_s"] = time.monotonic() - started
                results["scan"]["peak_pss_mib"] = sampler.peak_pss_mib
                results["scan"]["peak_processes"] = sampler.peak_processes
                print(f"   {json.dumps(results['scan'], default=str)}", flush=True)
                print(f"== random sequence: {args.requests} requests, seed {args.seed}", flush=True)
                started = time.monotonic()
                bursts = plan_sequence(names, args.requests, args.seed)
                sequence = run_phase(port, bursts, "sequence", sampler, log=True)
                results["sequence"] = summarise(sequence)
                results["sequence"]["wall_s"] = time.monotonic() - started
                results["all"] = summarise(scan + sequence)
                memory = memory_per_tenant(set(names))
            finally:
                sampler.stop.set()
                thread.join(timeout=5)
            results["peak_pss_mib"] = sampler.peak_pss_mib
            results["peak_processes"] = sampler.peak_processes
            results["evictions"] = sampler.gone
            per_tenant = sorted(m.pss_kib / 1024 for m in memory.values())
            results["warm_tenants_at_end"] = len(memory)
            results["per_tenant_pss_mib"] = statistics.median(per_tenant) if per_tenant else None
            rss = sorted(m.rss_kib / 1024 for m in memory.values())
            results["per_tenant_rss_mib"] = statistics.median(rss) if rss else None
            results["processes_per_tenant"] = (
                statistics.median(len(m.processes) for m in memory.values()) if memory else None
            )
            results["load_after"] = os.getloadavg()
    finally:
        if apache is not None:
            apache.stop()
        pg.stop()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


# -- report ---------------------------------------------------------------------------------------
def verdict(ok: bool, miss: str = "") -> str:
    return "met" if ok else f"**missed** {miss}".rstrip()


def fmt(value: float | None, unit: str, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}"


def report(r: dict[str, Any]) -> str:
    a, scan, seq = r["all"], r["scan"], r["sequence"]
    d = r["directives"]
    v = r["versions"]
    warm95 = a["warm_ms"]["p95"]
    cold95 = a["cold_s"]["p95"]
    rows = [
        ("0 wrong-tenant responses", f"{a['wrong_tenant']}", verdict(a["wrong_tenant"] == 0)),
        (
            f"peak total PSS <= budget ({r['budget_mib']} MiB)",
            f"{r['peak_pss_mib']:.0f} MiB",
            verdict(r["peak_pss_mib"] <= r["budget_mib"]),
        ),
        (
            "hostname scan: peak PSS <= budget",
            f"{scan['peak_pss_mib']:.0f} MiB",
            verdict(scan["peak_pss_mib"] <= r["budget_mib"]),
        ),
        (
            "warm p95 <= 100 ms",
            fmt(warm95, "ms"),
            verdict(
                warm95 is not None and warm95 <= TARGETS["warm_p95_ms"],
                f"by {warm95 - TARGETS['warm_p95_ms']:.0f} ms" if warm95 is not None else "",
            ),
        ),
        (
            "cold p95 <= 4 s",
            fmt(cold95, "s", 1),
            verdict(
                cold95 is not None and cold95 <= TARGETS["cold_p95_s"],
                f"by {cold95 - TARGETS['cold_p95_s']:.1f} s" if cold95 is not None else "",
            ),
        ),
        (
            "no request fails because of memory",
            f"{a['failed']} failed ({', '.join(a['failures']) or 'none'})",
            verdict(a["failed"] == 0, "(see below why)"),
        ),
    ]
    lines = [
        START_MARK,
        f"## Density: {r['tenants']} real Redmine {v.get('redmine_version', '?')} tenants on one"
        " Apache + Passenger (`bench/density.py`)",
        "",
        f"Measured on {r['date']}: {r['machine']}; Debian's redmine {v['redmine']} (Ruby "
        f"{v['ruby']}), apache2 {v['apache2']}, libapache2-mod-passenger {v['passenger']}, "
        f"postgresql {v['postgresql']}. Load average before/after: "
        f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} (the machine is shared).",
        "",
        f"{r['tenants']} tenants (one database each, private PostgreSQL), rendered by "
        f"`redmica render vhosts` with `serve_memory_mib` {r['budget_mib']} and the defaults: "
        + ", ".join(f"`{k} {val}`" for k, val in d.items())
        + ". Apache's config test accepted the file. Requests: the hostname scan (one request "
        f"to every tenant at once), then {r['requests']} requests in seeded random bursts of "
        f"1-4 (seed {r['seed']}; 60% to 5 busy tenants). Cold = the tenant had no booted "
        "process (one that had answered before) when the request was sent. PSS: the sum over "
        "Apache, Passenger's watchdog and core and every app process, sampled every 0.25 s.",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *[f"| {a_} | {b_} | {c_} |" for a_, b_, c_ in rows],
        "",
        "| phase | requests | served | failed | wrong tenant | warm p50 / p95 / p99 | "
        "cold p50 / p95 / p99 | wall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in (("hostname scan", scan), ("random sequence", seq), ("all", a)):
        warm = " / ".join(fmt(s["warm_ms"][q], "ms") for q in ("p50", "p95", "p99"))
        cold = " / ".join(fmt(s["cold_s"][q], "s", 1) for q in ("p50", "p95", "p99"))
        wall = f"{s['wall_s']:.0f} s" if "wall_s" in s else ""
        lines.append(
            f"| {name} | {s['requests']} | {s['served']} ({s['warm']} warm, {s['cold']} cold) | "
            f"{s['failed']} | {s['wrong_tenant']} | {warm} | {cold} | {wall} |"
        )
    lines += [
        "",
        f"Memory: {r['idle_pss_mib']:.0f} MiB PSS just after start, before any tenant process; "
        f"peak {r['peak_pss_mib']:.0f} MiB with at most {r['peak_processes']} app processes "
        f"(pool {d.get('PassengerMaxPoolSize')}); {r['evictions']} tenant processes stopped to "
        f"make room (evictions). Per warm tenant at the end ({r['warm_tenants_at_end']} "
        f"tenants): median {fmt(r['per_tenant_pss_mib'], 'MiB')} PSS, "
        f"{fmt(r['per_tenant_rss_mib'], 'MiB')} RSS, {r['processes_per_tenant']} process(es). "
        f"Template migration: {r['migrate_s']:.0f} s.",
    ]
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
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--report-from", help="only write the section from saved raw results")
    args = parser.parse_args()
    if args.report_from:
        section = report(json.loads(Path(args.report_from).read_text()))
        write_section(Path(args.out), section)
        print(section)
        return 0
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("density: skipped (needs root on Debian: it installs and runs Redmine)")
        return 0
    results = bench(args)
    section = report(results)
    write_section(Path(args.out), section)
    print(section)
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=str, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Real Apache + Passenger serving vhosts rendered by `redmica render vhosts` from a store.

One Rack app (one app root) reports its process ENV; each tenant's Host must reach only its
own tenant's environment. Needs Debian's apache2 and libapache2-mod-passenger, which
`make test` installs; skipped (with the reason) only where they could not be installed.
"""

from __future__ import annotations

import json
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from click.testing import CliRunner
from moto import mock_aws

from redmica_ops.cli.app import Application
from redmica_ops.cli.main import cli
from redmica_ops.container.apache import ApacheInstall, config_test, find_apache
from redmica_ops.container.vhosts import VhostSettings, render_vhosts
from redmica_ops.errors import RedmicaError
from redmica_ops.settings.loading import load_settings
from redmica_ops.tenants.model import Entry, parse_tenant
from tests.live.server import LiveApache, free_port, make_app

DOMAIN = "tenants.test"
BUCKET = "redmica-live-test"

# Valid but hostile values: each must reach the app's ENV byte for byte.
HOSTILE_PASSWORDS = {
    "alpha": 'q"uo\\te and trailing\\',
    "beta": "${HOME} $${X} # % </VirtualHost> sp ace",
    "gamma": "ünïcödé € \\${PATH}",
}
TENANTS: dict[str, dict[str, Any]] = {
    "alpha": {"password": HOSTILE_PASSWORDS["alpha"], "folder": "alpha"},
    "beta": {"password": HOSTILE_PASSWORDS["beta"], "folder": "b/${PWD}/#x"},
    "gamma": {"password": HOSTILE_PASSWORDS["gamma"], "folder": "gämma %41"},
    "denied": {"password": "pw-denied", "folder": "denied", "limit_ips": ["10.0.0.0/8"]},
    "allowed": {
        "password": "pw-allowed",
        "folder": "allowed",
        "limit_ips": ["10.0.0.0/8", "127.0.0.1"],
        "port": 5433,
    },
    # Suspended (tenant suspend): its host must answer 503 without spawning anything.
    "sleepy": {
        "password": "pw-sleepy",
        "folder": "sleepy",
        "status": "suspended",
        "status_message": "Back at 14:00 UTC (moving racks)",
    },
}
ODD_PATHS = ["/", "/deep/path/to/page", "//x", "/./", "/%2e/"]


def document(name: str, spec: dict[str, Any]) -> str:
    db: dict[str, Any] = {
        "name": name,
        "user": f"{name}_user",
        "password": spec["password"],
        "host": f"db-{name}.internal",
    }
    if "port" in spec:
        db["port"] = spec["port"]
    prop: dict[str, Any] = {"sub_domain": f"{name}-site"}
    if "limit_ips" in spec:
        prop["limit_ips"] = spec["limit_ips"]
    doc: dict[str, Any] = {
        "db": db,
        "s3": {"bucket": "redmica-files", "folder": spec["folder"]},
        "property": prop,
    }
    for key in ("status", "status_message"):
        if key in spec:
            doc[key] = spec[key]
    return yaml.safe_dump(doc, allow_unicode=True)


@pytest.fixture(scope="module")
def install() -> ApacheInstall:
    try:
        return find_apache()
    except RedmicaError as error:
        pytest.skip(
            f"Apache + Passenger are not installed here ({error.message}); "
            "`make test` installs them with apt-get"
        )


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Passenger runs the app as www-data: the tree must be readable by it (pytest's tmp is 0700).
    root = Path(tempfile.mkdtemp(prefix="redmica-live-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def cli_run(*args: str, input: str | None = None) -> Any:
    result = CliRunner().invoke(cli, list(args), input=input, obj=Application())
    return result


@pytest.fixture(scope="module")
def site_file(install: ApacheInstall, workdir: Path) -> Path:
    """The tenants go into a (moto) config bucket with `tenant add`; `render vhosts --check`
    renders them, exactly as an operator would."""
    app_root = make_app(workdir)
    site = workdir / "site.conf"
    port = free_port()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for name, spec in TENANTS.items():
            added = cli_run(
                "--bucket", BUCKET, "tenant", "add", name, "-f", "-", input=document(name, spec)
            )
            assert added.exit_code == 0, added.output
        rendered = cli_run(
            "--bucket",
            BUCKET,
            "--domain",
            DOMAIN,
            "render",
            "vhosts",
            "--app-root",
            str(app_root),
            "--listen-port",
            str(port),
            "-o",
            str(site),
            "--check",
        )
        assert rendered.exit_code == 0, rendered.output
    assert stat.S_IMODE(site.stat().st_mode) == 0o600
    (workdir / "port").write_text(str(port))
    return site


@pytest.fixture
def fresh_server(install: ApacheInstall, site_file: Path, workdir: Path) -> Iterator[LiveApache]:
    """A just-started server: no tenant process exists yet (cold)."""
    server = LiveApache(install, workdir / "run-fresh", site_file, free_port())
    yield from _serve(server, site_file, workdir)


@pytest.fixture(scope="module")
def server(install: ApacheInstall, site_file: Path, workdir: Path) -> Iterator[LiveApache]:
    live = LiveApache(install, workdir / "run-shared", site_file, free_port())
    yield from _serve(live, site_file, workdir)


def _serve(server: LiveApache, site_file: Path, workdir: Path) -> Iterator[LiveApache]:
    server.workdir.mkdir(exist_ok=True)
    server.workdir.chmod(0o755)
    # The rendered file listens on the port chosen at render time; rewrite it for this server.
    rendered_port = (workdir / "port").read_text()
    text = site_file.read_text().replace(f"*:{rendered_port}>", f"*:{server.port}>")
    server.site_file = server.workdir / "site.conf"
    server.site_file.write_text(text)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def host(name: str) -> str:
    return f"{name}-site.{DOMAIN}"


def env_of(body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    return {
        k: (bytes.fromhex(v).decode("utf-8") if isinstance(v, str) else v) for k, v in data.items()
    }


def concurrent_cold_requests(
    server: LiveApache, names: list[str], total: int
) -> list[tuple[str, Any]]:
    plan = [names[i % len(names)] for i in range(total)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        responses = list(pool.map(lambda name: (name, server.get(host(name))), plan))
    assert all(r.status == 200 for _, r in responses), [r.status for _, r in responses]
    return [(name, env_of(r.body)) for name, r in responses]


OPEN_TENANTS = ["alpha", "beta", "gamma"]


def test_each_host_reaches_only_its_tenant_under_concurrent_cold_requests(
    fresh_server: LiveApache,
) -> None:
    results = concurrent_cold_requests(fresh_server, OPEN_TENANTS, 120)
    pids: dict[str, set[int]] = {name: set() for name in OPEN_TENANTS}
    for name, env in results:
        assert env["REDMICA_TENANT"] == name, (name, env)
        assert env["RAILS_DB"] == name
        assert env["RAILS_DB_USERNAME"] == f"{name}_user"
        assert env["RAILS_DB_PASSWORD"] == HOSTILE_PASSWORDS[name]
        pids[name].add(env["pid"])
    # No process ever served two tenants.
    assert not (
        pids["alpha"] & pids["beta"]
        or pids["alpha"] & pids["gamma"]
        or pids["beta"] & pids["gamma"]
    )


def test_without_distinct_app_groups_tenants_leak(
    install: ApacheInstall, site_file: Path, workdir: Path
) -> None:
    """The control: the same vhosts minus PassengerAppGroupName must show the leak, which
    proves the test above can fail."""
    shared = workdir / "shared-group.conf"
    shared.write_text(
        "".join(
            line
            for line in site_file.read_text().splitlines(keepends=True)
            if "PassengerAppGroupName" not in line
        )
    )
    server = LiveApache(install, workdir / "run-leak", shared, free_port())
    leaked = []
    for live in _serve(server, shared, workdir):
        for name, env in concurrent_cold_requests(live, OPEN_TENANTS, 120):
            if env["REDMICA_TENANT"] != name:
                leaked.append((name, env["REDMICA_TENANT"]))
    print(f"leaked {len(leaked)} of 120")
    assert leaked, "tenants sharing an app group did not leak: the isolation test proves nothing"


def app_processes(server: LiveApache) -> set[int]:
    """Passenger application processes (apps and preloaders) under this server."""
    from tests.live.redmine import descendants

    assert server.process is not None
    found = set()
    for pid in descendants(server.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith((b"Passenger RubyApp", b"Passenger AppPreloader")):
            found.add(pid)
    return found


def test_a_suspended_tenant_gets_503_and_retry_after_without_a_process(
    fresh_server: LiveApache,
) -> None:
    assert app_processes(fresh_server) == set()  # a fresh server: nothing spawned yet
    for path in [*ODD_PATHS, "/login", "/issues?x=1"]:
        response = fresh_server.get(host("sleepy"), path)
        assert response.status == 503, (path, fresh_server.log_tail())
        assert response.headers.get("Retry-After") == "300"
        assert b"Back at 14:00 UTC (moving racks)" in response.body
        assert b"RAILS_DB" not in response.body
    assert app_processes(fresh_server) == set(), "a suspended tenant spawned a process"
    # The control: a served tenant on the same server does spawn one.
    assert fresh_server.get(host("alpha")).status == 200
    assert app_processes(fresh_server)


@pytest.mark.parametrize("path", ODD_PATHS)
def test_limit_ips_excluding_localhost_is_403(server: LiveApache, path: str) -> None:
    response = server.get(host("denied"), path)
    assert response.status == 403
    assert b"RAILS_DB" not in response.body


@pytest.mark.parametrize("path", ODD_PATHS)
def test_limit_ips_including_localhost_is_200(server: LiveApache, path: str) -> None:
    response = server.get(host("allowed"), path)
    assert response.status == 200, server.log_tail()
    env = env_of(response.body)
    assert env["REDMICA_TENANT"] == "allowed" and env["RAILS_DB_PORT"] == "5433"


@pytest.mark.parametrize(
    "unknown",
    [
        "unknown.tenants.test",
        "tenants.test",
        "alpha-site",
        "alpha-site.tenants.test.evil.example",
        "127.0.0.1",
    ],
)
def test_unknown_host_gets_no_tenant(server: LiveApache, unknown: str) -> None:
    response = server.get(unknown)
    assert response.status == 404
    assert b"RAILS_DB" not in response.body and b"pid" not in response.body


@pytest.mark.parametrize("name", ["alpha", "beta", "gamma"])
def test_hostile_values_arrive_byte_for_byte(server: LiveApache, name: str) -> None:
    env = env_of(server.get(host(name)).body)
    assert env["RAILS_DB_PASSWORD"] == TENANTS[name]["password"]
    assert env["S3_FOLDER_NAME"] == TENANTS[name]["folder"]
    assert env["RAILS_DB_HOST"] == f"db-{name}.internal"
    assert env["S3_BUCKET_NAME"] == "redmica-files"


@pytest.mark.parametrize("bad", ["new\nline", "carriage\rreturn", "tab\there", "nul\x00"])
def test_control_characters_are_rejected_before_rendering(bad: str) -> None:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        result = cli_run(
            "--bucket",
            BUCKET,
            "tenant",
            "add",
            "evil",
            "-f",
            "-",
            input=document("evil", {"password": bad, "folder": "evil"}),
        )
        assert result.exit_code == 2
        listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
        assert listed.get("KeyCount", 0) == 0


def test_check_passes_on_the_rendered_file(site_file: Path) -> None:
    result = cli_run("render", "check", str(site_file))
    assert result.exit_code == 0, result.output
    assert "Apache config test passed" in result.stderr


def test_check_fails_with_apaches_message_on_a_broken_file(workdir: Path) -> None:
    broken = workdir / "broken.conf"
    broken.write_text('<VirtualHost *:80>\n    ServerName "x.test"\n    NotADirective on\n')
    result = cli_run("render", "check", str(broken))
    assert result.exit_code == 1
    assert "Apache rejected the configuration" in result.stderr
    assert "NotADirective" in result.stderr or "Syntax error" in result.stderr


@pytest.mark.parametrize("spawn_method", ["direct", "smart"])
def test_the_derived_pool_settings_pass_apaches_check(
    install: ApacheInstall, workdir: Path, spawn_method: str
) -> None:
    site = workdir / f"derived-{spawn_method}.conf"
    env = {"REDMICA_SERVE_MEMORY_MIB": "8192", "REDMICA_SPAWN_METHOD": spawn_method}
    settings = load_settings({"domain": DOMAIN, "app_root": str(workdir / "app")}, env)
    entries = [entry_of(name) for name in TENANTS]
    site.write_text(render_vhosts(entries, VhostSettings.from_settings(settings)))
    text = site.read_text()
    process_mib = {"direct": 160, "smart": 200}[spawn_method]
    assert f"PassengerMaxPoolSize {(8192 - 256) // process_mib}\n" in text  # 49 or 39
    assert f"PassengerSpawnMethod {spawn_method}\n" in text
    assert ("PassengerMaxPreloaderIdleTime" in text) == (spawn_method == "smart")
    config_test(site, install)  # raises with Apache's words if apache2 -t refuses it


def test_a_pool_smaller_than_the_tenants_evicts_and_stays_isolated(
    install: ApacheInstall, workdir: Path
) -> None:
    """Pool of 2 (memory 256 + 2 x 160 MiB) for 3 tenants: the third evicts the least recently
    used idle process, and every answer still carries its own tenant's database."""
    if not (workdir / "app").exists():
        make_app(workdir)
    settings = load_settings(
        {"domain": DOMAIN, "app_root": str(workdir / "app")}, {"REDMICA_SERVE_MEMORY_MIB": "576"}
    )
    live = LiveApache(install, workdir / "run-small-pool", workdir / "small.conf", free_port())
    live.workdir.mkdir(exist_ok=True)
    live.workdir.chmod(0o755)
    text = render_vhosts(
        [entry_of(name) for name in OPEN_TENANTS],
        replace(VhostSettings.from_settings(settings), listen_port=live.port),
    )
    assert "PassengerMaxPoolSize 2\n" in text and "PassengerMinInstances 0\n" in text
    live.site_file.write_text(text)
    live.start()
    try:
        pids: dict[str, int] = {}
        for name in OPEN_TENANTS:
            response = live.get(host(name))
            assert response.status == 200
            env = env_of(response.body)
            assert env["RAILS_DB"] == name
            pids[name] = env["pid"]
        # alpha's process was the least recently used when gamma needed a place
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pids['alpha']}").exists():
            assert time.monotonic() < deadline, "alpha's process was never evicted"
            time.sleep(0.05)
        again = env_of(live.get(host("alpha")).body)
        assert again["RAILS_DB"] == "alpha" and again["pid"] != pids["alpha"]  # cold again
    finally:
        live.stop()


def entry_of(name: str) -> Entry:
    raw = document(name, TENANTS[name]).encode()
    return Entry(name, f"{name}.yaml", parse_tenant(name, raw, name))

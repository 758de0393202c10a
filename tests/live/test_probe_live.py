"""The probe against a real Apache + Passenger serving rendered vhosts (Debian's packages; the
Debian 13 root's too, in `make e2e`): healthy sites up, a tenant whose application cannot start
failed with the reason, a suspended tenant suspended, a limit_ips tenant refusing the probe
restricted, and two tenants forced onto one app group reported as a wrong-tenant answer.

The app is a small Rack app that names its tenant from its process environment in the
`X-Redmica-Tenant` header, as the image's initializer does (docs/probe.md), and
fails to boot for the tenant whose "database" is unreachable (as Rails does).
"""

from __future__ import annotations

import http.client
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from redmica_ops.container.apache import ApacheInstall, find_apache
from redmica_ops.container.vhosts import VhostSettings, app_group_name, render_vhosts
from redmica_ops.errors import RedmicaError
from redmica_ops.probe.model import Failure, ProbeRequest, Verdict
from redmica_ops.probe.record import ProbeStore
from redmica_ops.probe.run import run
from redmica_ops.probe.wiring import aws_site
from redmica_ops.runs.pacing import FakeClock
from redmica_ops.settings.loading import load_settings
from redmica_ops.workspace import AwsWorkspace
from tests.live.redmine import wait_for
from tests.live.server import LiveApache, free_port

DOMAIN = "tenants.test"
BUCKET = "redmica-probe-live"

CONFIG_RU = """\
tenant = ENV.fetch('REDMICA_TENANT')
raise "could not connect to database #{ENV['RAILS_DB']}" if ENV['RAILS_DB'] == 'broken'
run lambda { |env|
  return [302, { 'Location' => '/login' }, []] if env['PATH_INFO'] == '/'
  [200, { 'Content-Type' => 'text/html', 'X-Redmica-Tenant' => tenant },
   ["<html><head><title>Sign in - #{tenant}</title></head><body>login</body></html>"]]
}
"""

# name -> (status, limit_ips)
TENANTS: dict[str, tuple[str, list[str] | None]] = {
    "alpha": ("active", None),
    "beta": ("active", None),
    "broken": ("active", None),
    "sleepy": ("suspended", None),
    "fenced": ("active", ["10.0.0.0/8"]),
    "owner": ("active", None),
    "mixed": ("active", None),  # forced onto owner's app group below
}


def document(name: str, status: str, limit_ips: list[str] | None) -> str:
    prop: dict[str, object] = {"sub_domain": f"{name}-site"}
    if limit_ips:
        prop["limit_ips"] = limit_ips
    doc: dict[str, object] = {
        "db": {"name": name, "user": f"{name}_user", "password": f"pw-{name}", "host": "db"},
        "s3": {"bucket": "redmica-files", "folder": name},
        "property": prop,
    }
    if status != "active":
        doc["status"] = status
    return yaml.safe_dump(doc)


@pytest.fixture(scope="module")
def install() -> ApacheInstall:
    try:
        return find_apache()
    except RedmicaError as error:
        pytest.skip(f"Apache + Passenger are not installed here ({error.message})")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="redmica-probe-live-"))
    root.chmod(0o755)  # Passenger runs the app as www-data
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fleet(install: ApacheInstall, workdir: Path) -> Iterator[tuple[AwsWorkspace, LiveApache]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for name, (status, limit) in TENANTS.items():
            s3.put_object(
                Bucket=BUCKET,
                Key=f"tenants/{name}.yaml",
                Body=document(name, status, limit).encode(),
            )
        settings = load_settings(
            {}, {"REDMICA_BUCKET": BUCKET, "REDMICA_DOMAIN": DOMAIN, "AWS_REGION": "us-east-1"}
        )
        ws = AwsWorkspace(settings, make_clock=lambda cancellation: FakeClock())
        app = workdir / "app"
        (app / "public").mkdir(parents=True, exist_ok=True)
        (app / "config.ru").write_text(CONFIG_RU)
        port = free_port()
        vhosts = VhostSettings(
            domain=DOMAIN, app_root=str(app), listen_port=port, probe_port=free_port()
        )
        text = render_vhosts(ws.tenants().entries(), vhosts, master_secret="m" * 64)
        # The fault the wrong-tenant check exists for: two tenants in one app group.
        forced = text.replace(
            f'PassengerAppGroupName "{app_group_name("mixed")}"',
            f'PassengerAppGroupName "{app_group_name("owner")}"',
        )
        assert forced != text
        server = LiveApache(install, workdir / "run", workdir / "site.conf", port)
        server.workdir.mkdir(exist_ok=True)
        server.workdir.chmod(0o755)
        server.site_file.write_text(forced)
        server.site_file.chmod(0o600)
        server.start()
        try:
            yield ws, server
        finally:
            server.stop()


def test_the_probe_judges_every_site_of_a_real_apache(
    fleet: tuple[AwsWorkspace, LiveApache],
) -> None:
    ws, server = fleet
    # owner's process starts first, so mixed's requests reach a process with owner's
    # environment (what Passenger does when two vhosts share a group). A just-started Apache
    # may reset the first connection on a loaded machine (seen in CI): poll, with a deadline.
    wait_for(lambda: server.get(f"owner-site.{DOMAIN}", "/login").status == 200, "owner's site")
    assert server.get(f"owner-site.{DOMAIN}", "/login").headers["X-Redmica-Tenant"] == "owner"
    request = ProbeRequest(base_url=f"http://127.0.0.1:{server.port}", timeout=60, per_cell=2)
    outcome = run(request, ws, aws_site(ws))
    by = {s.tenant: s for s in outcome.sites}
    assert {t: str(s.verdict) for t, s in by.items()} == {
        "alpha": "up",
        "beta": "up",
        "broken": "failed",
        "fenced": "restricted",
        "mixed": "failed",
        "owner": "up",
        "sleepy": "suspended",
    }, {t: s.reason for t, s in by.items()}
    assert (by["broken"].failure, by["broken"].status) == (Failure.STATUS, 500)
    assert by["mixed"].failure is Failure.WRONG_TENANT
    assert "answered by tenant 'owner'" in by["mixed"].reason
    assert by["sleepy"].status == 503 and "Retry-After" in by["sleepy"].reason
    assert by["fenced"].status == 403
    assert outcome.exit_code == 1
    assert sorted(s.tenant for s in outcome.failed) == ["broken", "mixed"]
    s3 = boto3.client("s3", region_name="us-east-1")
    record = ProbeStore(s3, BUCKET).load(outcome.probe_id)
    assert record.state == "finished" and record.sites == outcome.sites


def test_the_limit_ips_tenant_refuses_every_path_to_a_client_outside_its_list(
    fleet: tuple[AwsWorkspace, LiveApache],
) -> None:
    _, server = fleet
    for path in ("/", "/login", "/projects", "/login?back_url=/"):
        assert server.get(f"fenced-site.{DOMAIN}", path).status == 403, path
    # ... while the open tenants answer, and a probe of the healthy ones alone exits 0.
    ws, _ = fleet
    request = ProbeRequest(
        base_url=f"http://127.0.0.1:{server.port}", tenants=("alpha", "beta", "sleepy")
    )
    outcome = run(request, ws, aws_site(ws))
    assert outcome.exit_code == 0
    assert [s.verdict for s in outcome.sites] == [Verdict.UP, Verdict.UP, Verdict.SUSPENDED]


def ask(port: int, method: str, host: str, path: str) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.putrequest(method, path, skip_host=True)
        connection.putheader("Host", host)
        connection.putheader("Content-Length", "0")
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def test_the_probe_port_answers_only_the_probes_path_of_a_limit_ips_tenant(
    fleet: tuple[AwsWorkspace, LiveApache],
) -> None:
    """docs/probe.md: on the probe port the limit_ips tenant answers GET/HEAD /login from its
    own processes; every other path and method is refused, open tenants are not there at all,
    and on the customers' port a client outside the list still gets 403 on every path."""
    ws, server = fleet
    listen = re.search(r"^Listen (\d+)$", server.site_file.read_text(), re.MULTILINE)
    assert listen is not None, "the vhosts were rendered with a probe port"
    probe_port = int(listen[1])
    fenced = f"fenced-site.{DOMAIN}"
    status, headers = ask(probe_port, "GET", fenced, "/login")
    assert status == 200 and headers["X-Redmica-Tenant"] == "fenced"
    assert ask(probe_port, "HEAD", fenced, "/login")[0] == 200
    # Apache merges slashes before matching (MergeSlashes on): the same page, nothing more.
    assert ask(probe_port, "GET", fenced, "//login")[0] == 200
    for method, path in [
        ("POST", "/login"),
        ("PUT", "/login"),
        ("DELETE", "/login"),
        ("GET", "/"),
        ("GET", "/projects"),
        ("GET", "/login/x"),
        ("GET", "/loginx"),
        ("GET", "//projects"),
        ("GET", "/LOGIN"),
    ]:
        assert ask(probe_port, method, fenced, path)[0] == 403, (method, path)
    # An encoded slash is refused before any vhost's rules (AllowEncodedSlashes off: 404).
    assert ask(probe_port, "GET", fenced, "/login%2F..%2Fprojects")[0] == 404
    assert ask(probe_port, "GET", f"alpha-site.{DOMAIN}", "/login")[0] == 404  # no vhost there
    for method in ("GET", "HEAD", "POST"):
        for path in ("/", "/login", "/projects", "/login?back_url=/", "/login/x"):
            assert ask(server.port, method, fenced, path)[0] == 403, (method, path)
    # The probe through the probe port judges the restricted tenant's real site.
    request = ProbeRequest(base_url=f"http://127.0.0.1:{probe_port}", tenants=("fenced",))
    outcome = run(request, ws, aws_site(ws))
    assert [(s.tenant, s.verdict) for s in outcome.sites] == [("fenced", Verdict.UP)]

"""The site probe: judging answers, the verb against moto and a real HTTP server on 127.0.0.1,
pacing with an injected clock, bad input that probes nothing, records in the config bucket."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from mypy_boto3_s3 import S3Client

from redmica_ops.errors import ExitCode, NotFound, RedmicaError, UsageError
from redmica_ops.probe.gate import WaveProbe, judge_gate, wave_prober
from redmica_ops.probe.judge import judge
from redmica_ops.probe.model import (
    Answer,
    Failure,
    ProbeRequest,
    SiteResult,
    SiteTarget,
    Verdict,
    check_max_failures,
)
from redmica_ops.probe.pacing import interleave, probe_all
from redmica_ops.probe.record import ProbeStore
from redmica_ops.probe.run import ProbeSite, run
from redmica_ops.probe.transport import HttpTransport
from redmica_ops.probe.wiring import aws_site
from redmica_ops.runs.pacing import Cancellation, FakeClock
from redmica_ops.settings.loading import load_settings
from redmica_ops.workspace import AwsWorkspace
from tests.conftest import BUCKET, DEFAULT_DB_HOST, tenant_document
from tests.probe_support import Reply, Sites, self_signed, serve

# The tenants name no db.host: the deployment gives the default (else none is served).
HOST = {"REDMICA_DB_HOST": DEFAULT_DB_HOST}

DOMAIN = "example.com"


def target(status: str = "active", restricted: bool = False, tenant: str = "acme") -> SiteTarget:
    return SiteTarget(
        tenant, "default", f"{tenant}.{DOMAIN}", "http://lb/login", status, restricted
    )


# -- judging one answer ---------------------------------------------------------------------------
LOGIN = "Sign in - Redmine"


@pytest.mark.parametrize(
    ("site", "answer", "verdict", "failure"),
    [
        (target(), Answer(200, title=LOGIN), Verdict.UP, None),
        (target(), Answer(302, (("Location", "/my/page"),)), Verdict.UP, None),
        (target(), Answer(302, (("Location", "https://acme.example.com/"),)), Verdict.UP, None),
        (
            target(),
            Answer(302, (("Location", "https://beta.example.com/login"),)),
            Verdict.FAILED,
            Failure.WRONG_TENANT,
        ),
        (target(), Answer(302), Verdict.FAILED, Failure.WRONG_TENANT),
        (
            target(),
            Answer(200, (("X-Redmica-Tenant", "beta"),), LOGIN),
            Verdict.FAILED,
            Failure.WRONG_TENANT,
        ),
        (target(), Answer(200, (("x-redmica-tenant", "acme"),), LOGIN), Verdict.UP, None),
        (target(), Answer(500), Verdict.FAILED, Failure.STATUS),
        (target(), Answer(404), Verdict.FAILED, Failure.STATUS),
        (target(), Answer(503), Verdict.FAILED, Failure.STATUS),
        (target(), Answer(503, (("Retry-After", "300"),)), Verdict.FAILED, Failure.NOT_SERVED),
        (target(), Answer(403), Verdict.FAILED, Failure.STATUS),
        (target(restricted=True), Answer(403), Verdict.RESTRICTED, None),
        (target("suspended"), Answer(503, (("Retry-After", "300"),)), Verdict.SUSPENDED, None),
        (target("provisioning"), Answer(503, (("Retry-After", "9"),)), Verdict.PROVISIONING, None),
        (target("suspended"), Answer(503), Verdict.FAILED, Failure.STATUS),
        (target("suspended"), Answer(200, title=LOGIN), Verdict.FAILED, Failure.NOT_SUSPENDED),
        (
            target("suspended"),
            Answer(302, (("Location", "/"),)),
            Verdict.FAILED,
            Failure.NOT_SUSPENDED,
        ),
    ],
)
def test_judge(site: SiteTarget, answer: Answer, verdict: Verdict, failure: Failure | None) -> None:
    got_verdict, got_failure, reason = judge(site, answer)
    assert (got_verdict, got_failure) == (verdict, failure)
    assert reason


def test_the_expected_title_catches_another_tenants_page() -> None:
    page = Answer(200, title="Beta's tracker")
    verdict, failure, reason = judge(target(), page, expect_title="{tenant}")
    assert (verdict, failure) == (Verdict.FAILED, Failure.WRONG_TENANT)
    assert "'acme'" in reason and "Beta's tracker" in reason
    assert judge(target(), Answer(200, title="acme tracker"), "{tenant}")[0] is Verdict.UP
    assert judge(target(), Answer(200, title="x"), "{sub_domain}")[0] is Verdict.FAILED
    assert judge(target(), Answer(200), "acme")[1] is Failure.WRONG_TENANT  # no title at all


def test_a_wrong_tenant_reason_names_the_other_host() -> None:
    answer = Answer(302, (("Location", "http://beta.example.com/login"),))
    assert "beta.example.com" in judge(target(), answer)[2]


# -- the verb against moto and a real HTTP server ------------------------------------------------
def put_tenant(s3: S3Client, name: str, status: str | None = None, **overrides: Any) -> None:
    document = tenant_document(name, **overrides)
    document["property"].pop("limit_ips")
    if status:
        document["status"] = status
    s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=yaml.safe_dump(document).encode())


def workspace(env: dict[str, str] | None = None) -> AwsWorkspace:
    base = {"REDMICA_BUCKET": BUCKET, "REDMICA_DOMAIN": DOMAIN, "AWS_REGION": "us-east-1", **HOST}
    settings = load_settings({}, {**base, **(env or {})})
    fake = FakeClock()
    return AwsWorkspace(settings, make_clock=lambda cancellation: fake)


def healthy(*names: str) -> dict[str, Reply]:
    return {f"{name}.{DOMAIN}": Reply() for name in names}


def probe_records(s3: S3Client) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/").get("Contents", [])
    return [obj["Key"] for obj in listed]


def test_every_site_up_exits_0_and_is_recorded(s3: S3Client) -> None:
    for name in ("acme", "beta", "gamma"):
        put_tenant(s3, name)
    sites = Sites(healthy("acme", "beta", "gamma"))
    ws = workspace()
    with serve(sites) as base:
        outcome = run(ProbeRequest(base_url=base), ws, aws_site(ws, HttpTransport()))
    assert outcome.exit_code == 0, outcome.as_dict()
    assert [(s.tenant, s.verdict, s.status) for s in outcome.sites] == [
        ("acme", Verdict.UP, 200),
        ("beta", Verdict.UP, 200),
        ("gamma", Verdict.UP, 200),
    ]
    # One GET of the login page per site, with the tenant's host as the Host header.
    assert sorted(sites.seen) == [
        (f"{name}.{DOMAIN}", "/login", "GET") for name in ("acme", "beta", "gamma")
    ]
    assert probe_records(s3) == [f"runs/probes/{outcome.probe_id}.json"]
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=probe_records(s3)[0])["Body"].read())
    assert record["state"] == "finished"
    assert [site["verdict"] for site in record["sites"]] == ["up", "up", "up"]
    assert outcome.location == f"s3://{BUCKET}/runs/probes/{outcome.probe_id}.json"
    assert ProbeStore(s3, BUCKET).load(outcome.probe_id).sites == outcome.sites


def test_failed_suspended_and_wrong_tenant_sites_each_with_its_reason(s3: S3Client) -> None:
    for name in ("acme", "broken", "away", "mixed", "slow"):
        put_tenant(s3, name, status="suspended" if name == "away" else None)
    s3.put_object(Bucket=BUCKET, Key="tenants/bad.yaml", Body=b"db: [")
    sites = Sites(
        {
            **healthy("acme"),
            f"broken.{DOMAIN}": Reply(500, body="Internal Server Error"),
            f"away.{DOMAIN}": Reply(503, {"Retry-After": "300"}, "This site is unavailable."),
            f"mixed.{DOMAIN}": Reply(302, {"Location": f"https://acme.{DOMAIN}/login"}, ""),
            f"slow.{DOMAIN}": Reply(hang=True),
        }
    )
    ws = workspace()
    messages: list[str] = []
    ws._message = messages.append  # the lines a person watching sees
    with serve(sites) as base:
        outcome = run(ProbeRequest(base_url=base, timeout=0.5), ws, aws_site(ws))
    by_tenant = {s.tenant: s for s in outcome.sites}
    assert by_tenant["acme"].verdict is Verdict.UP
    assert by_tenant["away"].verdict is Verdict.SUSPENDED
    assert (by_tenant["broken"].failure, by_tenant["broken"].status) == (Failure.STATUS, 500)
    assert "500" in by_tenant["broken"].reason
    assert by_tenant["mixed"].failure is Failure.WRONG_TENANT
    assert f"acme.{DOMAIN}" in by_tenant["mixed"].reason
    assert by_tenant["slow"].failure is Failure.TIMEOUT
    assert sorted(s.tenant for s in outcome.failed) == ["broken", "mixed", "slow"]
    assert outcome.exit_code == 1
    assert outcome.skipped[0][0] == "bad" and outcome.skipped[0][1].startswith("invalid")
    assert [line for line in messages if line.startswith("[default] broken ")]
    data = outcome.as_dict()
    assert data["failed"] == ["broken", "mixed", "slow"] and data["exit_code"] == 1
    assert data["counts"] == {"failed": 3, "suspended": 1, "up": 1}


def test_limit_ips_tenants_refusing_the_probe_are_restricted_not_failed(s3: S3Client) -> None:
    document = tenant_document("fenced")  # limit_ips: 192.168.0.0/24
    s3.put_object(Bucket=BUCKET, Key="tenants/fenced.yaml", Body=yaml.safe_dump(document).encode())
    sites = Sites({f"fenced.{DOMAIN}": Reply(403, body="Forbidden")})
    ws = workspace()
    with serve(sites) as base:
        outcome = run(ProbeRequest(base_url=base), ws, aws_site(ws))
    assert [(s.verdict, s.status) for s in outcome.sites] == [(Verdict.RESTRICTED, 403)]
    assert outcome.exit_code == 0


def test_a_refused_connection_is_a_failure(s3: S3Client) -> None:
    put_tenant(s3, "acme")
    with serve(Sites()) as base:
        pass  # the server is gone: its port refuses
    ws = workspace()
    outcome = run(ProbeRequest(base_url=base), ws, aws_site(ws))
    assert outcome.sites[0].failure is Failure.CONNECTION
    assert outcome.sites[0].reason == "connection refused"


def test_named_tenants_and_cells(s3: S3Client) -> None:
    put_tenant(s3, "acme", property__cell="a")
    put_tenant(s3, "beta", property__cell="b")
    put_tenant(s3, "gamma", property__cell="c")
    env = {"REDMICA_CELLS": "a=svc-a,b=svc-b,c=svc-c", "REDMICA_MAX_PARALLEL_CELLS": "2"}
    sites = Sites(healthy("acme", "beta", "gamma"))
    with serve(sites) as base:
        ws = workspace(env)
        one = run(ProbeRequest(base_url=base, cells=("b",)), ws, aws_site(ws))
        wave2 = run(ProbeRequest(base_url=base, wave=2), ws, aws_site(ws))
        named = run(ProbeRequest(base_url=base, tenants=("gamma",)), ws, aws_site(ws))
        said: list[str] = []
        told = AwsWorkspace(ws.settings, make_clock=lambda c: FakeClock(), message=said.append)
        run(ProbeRequest(base_url=base, tenants=("gamma",)), told, aws_site(told))
    # One named tenant is one site in one cell, not "in 3 cell(s)".
    assert any(": 1 site(s) in 1 cell(s), GET /login" in line for line in said), said
    assert [s.tenant for s in one.sites] == ["beta"]
    assert [(s.tenant, s.cell) for s in wave2.sites] == [("beta", "b"), ("gamma", "c")]
    assert [s.tenant for s in named.sites] == ["gamma"]
    with pytest.raises(NotFound):
        run(ProbeRequest(base_url="http://127.0.0.1:9", tenants=("nobody",)), ws, aws_site(ws))


BAD_INPUT = [
    ({"path": "login"}, "--path 'login' is not a URL path"),
    ({"path": "http://evil.example/login"}, "is not a URL path"),
    ({"path": "//evil.example/login"}, "is not a URL path"),
    ({"path": "/log in"}, "is not a URL path"),
    ({"path": "/login#top"}, "is not a URL path"),
    ({"path": "/login\n"}, "is not a URL path"),
    ({"base_url": "ftp://lb.example.com"}, "its scheme is not http or https"),
    ({"base_url": "lb.example.com:80"}, "its scheme is not http or https"),
    ({"base_url": "http://lb.example.com/login"}, "it has a path"),
    ({"base_url": "http://user:pw@lb.example.com"}, "credentials"),
    ({"base_url": "http://"}, "no valid host"),
    ({"base_url": "http://lb.example.com:99999"}, "not an http(s) base URL"),
    ({"cells": ("nowhere",)}, "there is no cell 'nowhere'"),
    ({"wave": 3}, "--wave 3: the release plan has 1 wave(s)"),
    ({"wave": 0}, "--wave 0 must be 1 or more"),
    ({"timeout": 0}, "--timeout 0 must be"),
    ({"concurrency": 0}, "must be at least 1"),
    ({"rate": 0}, "--rate 0 must be greater than 0"),
    ({"tenants": ("Not_A_Label",)}, "tenant 'Not_A_Label'"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_exits_2_with_one_line_and_probes_nothing(
    s3: S3Client, fields: dict[str, Any], message: str
) -> None:
    put_tenant(s3, "acme")
    sites = Sites(healthy("acme"))
    ws = workspace()
    with serve(sites) as base:
        request = ProbeRequest(**{"base_url": base, **fields})
        with pytest.raises(UsageError) as raised:
            run(request, ws, aws_site(ws))
    assert raised.value.exit_code == ExitCode.USAGE
    assert message in raised.value.message and "\n" not in raised.value.message
    assert sites.seen == []
    assert probe_records(s3) == []


def test_a_negative_failure_budget_is_refused_before_anything(s3: S3Client) -> None:
    ws = workspace()
    with pytest.raises(UsageError, match="--max-probe-failures -1 must not be negative"):
        wave_prober(ws, aws_site(ws), WaveProbe(-1))
    assert check_max_failures(0) == 0


def test_without_a_domain_nothing_is_probed(s3: S3Client) -> None:
    settings = load_settings({}, {"REDMICA_BUCKET": BUCKET, "AWS_REGION": "us-east-1", **HOST})
    ws = AwsWorkspace(settings, make_clock=lambda cancellation: FakeClock())
    with pytest.raises(RedmicaError) as raised:
        run(ProbeRequest(base_url="http://127.0.0.1:9"), ws, aws_site(ws))
    assert raised.value.exit_code == ExitCode.USAGE and "domain" in raised.value.message


def test_without_a_base_url_each_cells_balancer_is_asked_over_https() -> None:
    from tests.cells_support import moto_cells

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        env = moto_cells(("a", "b"))
        put_tenant(s3, "acme", property__cell="b")
        ws = workspace(env)
        asked: list[SiteTarget] = []

        class Recorder:
            def fetch(self, target: SiteTarget, timeout: float) -> Answer:
                asked.append(target)
                return Answer(200, title=LOGIN)

        outcome = run(ProbeRequest(), ws, aws_site(ws, Recorder()))
        balancer = boto3.client("elbv2", region_name="us-east-1").describe_load_balancers(
            Names=["redmica-b"]
        )["LoadBalancers"][0]["DNSName"]
    assert outcome.exit_code == 0
    assert [(t.url, t.host) for t in asked] == [
        (f"https://{balancer.lower()}/login", f"acme.{DOMAIN}")
    ]


# -- pacing: the rate, the bounds, cold tenants, Ctrl-C ------------------------------------------
def targets_in(cells: dict[str, int]) -> list[SiteTarget]:
    return [
        SiteTarget(f"{cell}{i}", cell, f"{cell}{i}.{DOMAIN}", "http://x/login", "active")
        for cell, count in cells.items()
        for i in range(count)
    ]


def test_cells_are_interleaved() -> None:
    ordered = interleave(targets_in({"a": 3, "b": 1, "c": 2}))
    assert [t.tenant for t in ordered] == ["a0", "b0", "c0", "a1", "c1", "a2"]


def test_requests_start_no_faster_than_the_rate() -> None:
    clock = FakeClock()

    def check(target: SiteTarget) -> SiteResult:
        return SiteResult(target.tenant, target.cell, target.host, Verdict.UP)

    results, interrupted = probe_all(
        targets_in({"a": 10}), check, clock=clock, rate=2.0, concurrency=4, per_cell=2
    )
    assert len(results) == 10 and not interrupted
    # A burst of per_cell (2) at once, then one every 1/rate seconds: 8 more, 4 s.
    assert clock.slept == [0.5] * 8
    assert [r.tenant for r in results] == [f"a{i}" for i in range(10)]


def test_in_flight_requests_stay_within_the_bounds() -> None:
    """Every check blocks until the test has seen how many run at once: per cell and overall."""
    lock = threading.Lock()
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    most_total = [0]
    gate = threading.Semaphore(0)

    def check(target: SiteTarget) -> SiteResult:
        with lock:
            running[target.cell] = running.get(target.cell, 0) + 1
            most[target.cell] = max(most.get(target.cell, 0), running[target.cell])
            most_total[0] = max(most_total[0], sum(running.values()))
        gate.acquire()
        with lock:
            running[target.cell] -= 1
        return SiteResult(target.tenant, target.cell, target.host, Verdict.UP)

    outcome: list[list[SiteResult]] = []
    worker = threading.Thread(
        target=lambda: outcome.append(
            probe_all(
                targets_in({"a": 6, "b": 6, "c": 6}),
                check,
                clock=FakeClock(),
                rate=1000.0,
                concurrency=5,
                per_cell=2,
            )[0]
        )
    )
    worker.start()
    for _ in range(18):
        wait_until(lambda: sum(running.values()) >= min(5, 18 - gate_released[0]))
        gate_released[0] += 1
        gate.release()
    worker.join(timeout=30)
    assert len(outcome[0]) == 18
    assert max(most.values()) == 2 and most_total[0] == 5


gate_released = [0]


@pytest.fixture(autouse=True)
def _reset_released() -> None:
    gate_released[0] = 0


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll with a deadline (threading.Event.wait as the pause), never a bare sleep."""
    import time

    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        pause.wait(0.005)


def test_ctrl_c_stops_new_requests_and_leaves_the_rest_not_probed(s3: S3Client) -> None:
    for name in ("a1", "a2", "a3", "a4"):
        put_tenant(s3, name)
    cancellation = Cancellation()
    seen: list[str] = []

    class FirstThenCtrlC:
        def fetch(self, target: SiteTarget, timeout: float) -> Answer:
            seen.append(target.tenant)
            cancellation.escalate()
            return Answer(200, title=LOGIN)

    settings = load_settings(
        {}, {"REDMICA_BUCKET": BUCKET, "REDMICA_DOMAIN": DOMAIN, "AWS_REGION": "us-east-1", **HOST}
    )
    ws = AwsWorkspace(settings, make_clock=lambda c: FakeClock(), cancellation=cancellation)
    request = ProbeRequest(base_url="http://127.0.0.1:9", concurrency=1, per_cell=1)
    outcome = run(request, ws, aws_site(ws, FirstThenCtrlC()))
    assert seen == ["a1"]
    assert [s.verdict for s in outcome.sites] == [Verdict.UP] + [Verdict.NOT_PROBED] * 3
    assert outcome.interrupted and outcome.exit_code == 130
    record = ProbeStore(s3, BUCKET).load(outcome.probe_id)
    assert record.state == "interrupted"


# -- the wave gate -------------------------------------------------------------------------------
def test_the_gate_counts_failed_sites_against_the_budget(s3: S3Client) -> None:
    for name in ("acme", "beta", "gamma"):
        put_tenant(s3, name)
    sites = Sites({**healthy("acme"), f"beta.{DOMAIN}": Reply(500), f"gamma.{DOMAIN}": Reply(500)})
    ws = workspace()
    with serve(sites) as base:
        template = ProbeRequest(base_url=base)
        strict = wave_prober(ws, aws_site(ws), WaveProbe(1, base_url=base))
        assert strict is not None
        from redmica_ops.cells.config import cell_map

        home = cell_map(ws.settings).home
        gate = strict([home])
    assert not gate.ok and gate.failed == ("beta", "gamma")
    assert gate.by_cell == {home.name: ("beta", "gamma")}
    assert "failed: beta, gamma (at most 1 allowed)" in gate.summary
    outcome = run(replace(template, record=False), ws, ProbeSite(HttpTransport()))
    assert outcome.exit_code == 1  # the server is gone: every site fails
    assert judge_gate(outcome, 3).ok and not judge_gate(outcome, 2).ok


def test_a_gate_that_cannot_probe_fails_and_bad_options_fail_before_anything(
    s3: S3Client,
) -> None:
    put_tenant(s3, "acme")
    ws = workspace()
    gate = wave_prober(ws, ProbeSite(HttpTransport()), WaveProbe(0))  # no balancer lookup
    assert gate is not None
    from redmica_ops.cells.config import cell_map

    failed = gate([cell_map(ws.settings).home])
    assert not failed.ok and "could not run" in failed.summary and failed.by_cell == {}
    for options, message in [
        (WaveProbe(0, path="login"), "--probe-path 'login' is not a URL path"),
        (WaveProbe(0, base_url="ftp://x"), "not an http(s) base URL"),
        (WaveProbe(-2), "--max-probe-failures -2 must not be negative"),
    ]:
        with pytest.raises(UsageError, match=re.escape(message)):
            wave_prober(ws, aws_site(ws), options)
    with pytest.raises(UsageError, match="not both"):
        wave_prober(ws, aws_site(ws), WaveProbe(0, off=True))
    bare = AwsWorkspace(
        load_settings({}, {"REDMICA_BUCKET": BUCKET, "AWS_REGION": "us-east-1", **HOST})
    )
    with pytest.raises(RedmicaError, match="needs the domain setting"):
        wave_prober(bare, aws_site(bare), WaveProbe(0))
    # No budget given or set, or --no-probe: no probe, and nothing is asked of the settings.
    assert wave_prober(bare, aws_site(bare), WaveProbe()) is None
    budgeted = workspace({"REDMICA_MAX_PROBE_FAILURES": "2"})
    assert wave_prober(budgeted, aws_site(budgeted), WaveProbe()) is not None
    assert wave_prober(budgeted, aws_site(budgeted), WaveProbe(off=True)) is None


# -- https: TLS as the tenant's host, not as the address connected to ----------------------------
def test_https_speaks_tls_as_the_tenants_host(s3: S3Client, tmp_path: Path) -> None:
    import ssl

    put_tenant(s3, "acme")
    cert, key = self_signed(tmp_path, f"*.{DOMAIN}")
    trusting = ssl.create_default_context(cafile=str(cert))
    sites = Sites(healthy("acme"))
    ws = workspace()
    with serve(sites, tls=(cert, key)) as base:
        assert base.startswith("https://127.0.0.1:")
        outcome = run(ProbeRequest(base_url=base), ws, aws_site(ws, HttpTransport(trusting)))
        # A certificate for another domain is refused: the check is the tenant's host.
        other = load_settings(
            {},
            {
                "REDMICA_BUCKET": BUCKET,
                "REDMICA_DOMAIN": "other.org",
                "AWS_REGION": "us-east-1",
                **HOST,
            },
        )
        elsewhere = AwsWorkspace(other, make_clock=lambda c: FakeClock())
        refused = run(
            ProbeRequest(base_url=base), elsewhere, aws_site(elsewhere, HttpTransport(trusting))
        )
    assert outcome.sites[0].verdict is Verdict.UP, outcome.sites[0].reason
    assert sites.server_names[0] == f"acme.{DOMAIN}"
    assert refused.sites[0].failure is Failure.CONNECTION
    assert "certificate not valid for acme.other.org" in refused.sites[0].reason


# -- the command ---------------------------------------------------------------------------------
def test_the_command_names_each_failed_site_and_exits_1(s3: S3Client, run: Any) -> None:
    for name in ("acme", "broken", "away"):
        put_tenant(s3, name, status="suspended" if name == "away" else None)
    sites = Sites(healthy("acme"))
    sites.replies[f"broken.{DOMAIN}"] = Reply(500, body="boom")
    sites.replies[f"away.{DOMAIN}"] = Reply(503, {"Retry-After": "300"})
    with serve(sites) as base:
        text = run("--domain", DOMAIN, "probe", "--base-url", base, "--rate", "50")
        as_json = run("--domain", DOMAIN, "probe", "--base-url", base, "--rate", "50", "-O", "json")
    assert text.exit_code == 1, text.output
    assert "broken" in text.stdout and "answered 500" in text.stdout
    assert "failed: broken" in text.stderr and "acme" not in text.stdout
    document = as_json.json()
    assert as_json.exit_code == 1 and document["failed"] == ["broken"]
    assert document["counts"] == {"failed": 1, "suspended": 1, "up": 1}
    assert len(probe_records(s3)) == 2


def test_the_command_exits_0_when_every_site_is_up(s3: S3Client, run: Any) -> None:
    put_tenant(s3, "acme")
    with serve(Sites(healthy("acme"))) as base:
        result = run("--domain", DOMAIN, "probe", "--base-url", base, "--no-record", "-O", "json")
    assert result.exit_code == 0, result.output
    assert result.json()["counts"] == {"up": 1} and probe_records(s3) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--path", "login"), "--path 'login' is not a URL path"),
        (("--base-url", "ftp://lb"), "is not an http(s) base URL"),
        (("--cell", "nowhere"), "nowhere"),
        (("--wave", "0"), "--wave 0 must be 1 or more"),
    ],
)
def test_the_command_refuses_bad_input_with_exit_2_and_probes_nothing(
    s3: S3Client, run: Any, flags: tuple[str, ...], message: str
) -> None:
    put_tenant(s3, "acme")
    sites = Sites(healthy("acme"))
    with serve(sites) as base:
        args = ["--domain", DOMAIN, "probe", *flags]
        if "--base-url" not in flags:
            args += ["--base-url", base]
        result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert sites.seen == [] and probe_records(s3) == []


def test_an_unknown_tenant_exits_3(s3: S3Client, run: Any) -> None:
    put_tenant(s3, "acme")
    result = run("--domain", DOMAIN, "probe", "--base-url", "http://127.0.0.1:9", "--tenant", "x")
    assert result.exit_code == 3 and "no tenant 'x'" in result.stderr
    assert probe_records(s3) == []

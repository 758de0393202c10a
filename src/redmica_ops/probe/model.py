"""The probe's request, its per-site results and its outcome, and the checks of its input.

Everything an operator can get wrong (a path that is not a path, a base URL that is not
http(s), a negative failure budget, an unknown cell or wave) is rejected here, before a tenant
is read or a request is sent: exit 2, one line, nothing probed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from redmica_ops.cells.config import Cell
from redmica_ops.errors import JSONObject, UsageError
from redmica_ops.report import Line, Report, Table, info, success, warn
from redmica_ops.tenants import rules

DEFAULT_PATH = "/login"  # Redmine's sign-in page: served by the app, needs the database
# Measured (docs/capacity.md): a cold tenant's first request takes ~2.5 s alone and up to
# ~50 s when a whole cell's tenants are woken at once on 2 cores; the default waits for a cold
# boot under moderate load without letting one stuck site hold the probe for long.
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONCURRENCY = 4
DEFAULT_PER_CELL = 2
DEFAULT_RATE = 2.0  # requests per second across the fleet

# A path as a client sends it: absolute, no scheme or authority, printable ASCII without
# spaces; a query is allowed, a fragment is not (it is never sent).
_PATH = re.compile(r"/(?!/)[!$&'()*+,;=:@%/?A-Za-z0-9._~-]*")


class Verdict(StrEnum):
    UP = "up"  # 200 or 302 to the tenant's own host, and nothing says it is another's site
    SUSPENDED = "suspended"  # a suspended tenant's maintenance answer: 503 with Retry-After
    PROVISIONING = "provisioning"  # the same page for a tenant being set up
    # A limit_ips tenant refused the probe (403) and no probe port reaches it: its site was
    # not checked. Not a failure of the site; docs/probe.md says how to probe it.
    RESTRICTED = "restricted"
    FAILED = "failed"
    NOT_PROBED = "not_probed"  # interrupted before its turn


class Failure(StrEnum):
    """Why a site failed, for scripts (`--output json`) and the wave gate."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    STATUS = "status"  # an answer other than the ones its state allows
    WRONG_TENANT = "wrong_tenant"  # another tenant's site answered for this host
    NOT_SUSPENDED = "not_suspended"  # suspended, but the application answered
    NOT_SERVED = "not_served"  # active, but the maintenance page answered


NOT_FAILURES = frozenset(
    {Verdict.UP, Verdict.SUSPENDED, Verdict.PROVISIONING, Verdict.RESTRICTED, Verdict.NOT_PROBED}
)


@dataclass(frozen=True)
class ProbeRequest:
    """Which sites to probe, where to send the requests, and how gently.

    `cells` / `wave` / `tenants` narrow the selection (all served tenants when none is given);
    `base_url` sends every request there (else each cell's load balancer); `expect_title`
    (with `{tenant}` and `{sub_domain}` filled in) must appear in a 200 page's <title>.
    """

    path: str = DEFAULT_PATH
    base_url: str | None = None
    cells: tuple[str, ...] = ()
    wave: int | None = None
    tenants: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    per_cell: int = DEFAULT_PER_CELL
    rate: float = DEFAULT_RATE
    expect_title: str | None = None
    record: bool = True  # write the probe record to the config bucket


def check_path(path: str, flag: str = "--path") -> str:
    if not _PATH.fullmatch(path):
        raise UsageError(
            f"{flag} {rules.show(path)} is not a URL path",
            "give an absolute path such as /login (no scheme, host, spaces or #fragment)",
        )
    return path


def _valid_host(host: str | None) -> bool:
    if not host:
        return False
    return rules.is_ip_address(host) or rules.check_hostname(host.rstrip(".")) is None


def check_base_url(url: str, flag: str = "--base-url", path_flag: str = "--path") -> str:
    """`http(s)://HOST[:PORT]`: no path, query, credentials or fragment."""
    problem = None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        parts, port, problem = None, None, str(exc)
    if problem is None and parts is not None:
        if parts.scheme not in ("http", "https"):
            problem = "its scheme is not http or https"
        elif not _valid_host(parts.hostname):
            problem = "it has no valid host"
        elif parts.username or parts.password:
            problem = "it carries credentials"
        elif parts.path not in ("", "/") or parts.query or parts.fragment:
            problem = f"it has a path, query or fragment (give the path with {path_flag})"
        elif port == 0:
            problem = "its port is 0"
    if problem is not None:
        raise UsageError(
            f"{flag} {rules.show(url)} is not an http(s) base URL: {problem}",
            "give http://HOST[:PORT] or https://HOST[:PORT], e.g. the cell's load balancer",
        )
    return url.rstrip("/")


def check_max_failures(value: int, flag: str = "--max-probe-failures") -> int:
    if value < 0:
        raise UsageError(
            f"{flag} {value} must not be negative",
            "0 stops at the first failed site; N tolerates N failed sites",
        )
    return value


def check_request(request: ProbeRequest, flags: str = "--") -> None:
    """Every field, before anything is read or sent. `flags` is how the options are spelt:
    `--` on `probe`, `--probe-` where deploy and release take them."""
    check_path(request.path, f"{flags}path")
    if request.base_url is not None:
        check_base_url(request.base_url, f"{flags}base-url", f"{flags}path")
    if not 0 < request.timeout <= 600:
        raise UsageError(f"--timeout {request.timeout} must be between 0 and 600 seconds")
    if request.concurrency < 1 or request.per_cell < 1:
        raise UsageError("--concurrency and --per-cell must be at least 1")
    if not request.rate > 0:
        raise UsageError(f"--rate {request.rate} must be greater than 0")
    if request.wave is not None and request.wave < 1:
        raise UsageError(f"--wave {request.wave} must be 1 or more")
    if request.wave is not None and request.cells:
        raise UsageError("give --cell or --wave, not both")
    for tenant in request.tenants:
        if problem := rules.check_dns_label(tenant):
            raise UsageError(f"tenant {rules.show(tenant)}: {problem}")


@dataclass(frozen=True)
class SiteTarget:
    """One request to make: where to connect, which Host to ask for, what state to expect."""

    tenant: str
    cell: str
    host: str  # <sub_domain>.<domain>, the Host header (and TLS server name)
    url: str  # base URL + path: where the connection goes
    status: str  # the tenant's document status: active | suspended | provisioning
    restricted: bool = False  # the tenant has limit_ips


@dataclass(frozen=True)
class Answer:
    """What came back, as much as judging needs (the body only up to its <title>)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    title: str | None = None

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


@dataclass
class SiteResult:
    tenant: str
    cell: str
    host: str
    verdict: Verdict = Verdict.NOT_PROBED
    failure: Failure | None = None
    reason: str = ""
    status: int | None = None
    seconds: float | None = None

    @property
    def failed(self) -> bool:
        return self.verdict is Verdict.FAILED

    def as_dict(self) -> JSONObject:
        data = asdict(self)
        data["verdict"] = str(self.verdict)
        data["failure"] = None if self.failure is None else str(self.failure)
        return data

    @classmethod
    def from_dict(cls, data: JSONObject) -> SiteResult:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["verdict"] = Verdict(known.get("verdict", "not_probed"))
        failure = known.get("failure")
        known["failure"] = None if failure is None else Failure(failure)
        return cls(**known)


@dataclass
class ProbeOutcome:
    """Every probed site with its verdict; `exit_code` 1 when any failed, 130 if interrupted."""

    probe_id: str
    path: str
    sites: list[SiteResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (tenant or key, why)
    interrupted: bool = False
    location: str | None = None  # the probe record, when written

    @property
    def failed(self) -> list[SiteResult]:
        return [s for s in self.sites if s.failed]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for site in self.sites:
            counts[str(site.verdict)] = counts.get(str(site.verdict), 0) + 1
        return dict(sorted(counts.items()))

    @property
    def exit_code(self) -> int:
        if self.failed:
            return 1
        return 130 if self.interrupted else 0

    def summary(self) -> str:
        counts = ", ".join(f"{n} {verdict}" for verdict, n in self.counts().items())
        return f"{len(self.sites)} site(s): {counts or 'none'}"

    def as_dict(self) -> JSONObject:
        return {
            "probe_id": self.probe_id,
            "path": self.path,
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "failed": [s.tenant for s in self.failed],
            "interrupted": self.interrupted,
            "record": self.location,
            "sites": [s.as_dict() for s in self.sites],
            "skipped": [{"tenant": name, "why": why} for name, why in self.skipped],
        }

    def report(self) -> Report:
        """The failed sites as a table (every site with --output json), the counts, where the
        record is; exit 1 when any site failed, 130 when interrupted."""
        body: list[Line | Table] = []
        shown = self.failed
        if shown:
            body.append(
                Table(
                    ("TENANT", "CELL", "HOST", "STATUS", "REASON"),
                    [[s.tenant, s.cell, s.host, s.status, s.reason] for s in shown],
                    drop_first=("HOST", "STATUS"),
                )
            )
        body += [warn(f"skipped {name}: {why}") for name, why in self.skipped]
        line = f"probe {self.probe_id}: GET {self.path}: {self.summary()}"
        if self.interrupted:
            body.append(warn(f"{line}; interrupted (the rest were not probed)"))
        elif shown:
            body.append(warn(f"{line}; failed: {', '.join(s.tenant for s in shown)}"))
        else:
            body.append(success(line))
        if self.location:
            body.append(info(f"record: {self.location}"))
        if not self.sites:
            body.append(info("no site to probe"))
        return Report(self.as_dict(), body, exit_code=self.exit_code)


# -- the wave gate (`probe/gate.py` builds it; `cells/waves.py` calls it) ---------------------
@dataclass(frozen=True)
class ProbeGate:
    ok: bool
    probe_id: str | None
    failed: tuple[str, ...]
    summary: str
    record: str | None = None
    # The failed tenants of each cell (the cells a failed gate marks `probe_failed`).
    by_cell: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def as_dict(self) -> JSONObject:
        return {
            "ok": self.ok,
            "probe_id": self.probe_id,
            "failed": list(self.failed),
            "summary": self.summary,
            "record": self.record,
        }


WaveProber = Callable[[Sequence[Cell]], ProbeGate]

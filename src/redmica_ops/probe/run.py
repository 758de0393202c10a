"""The probe verb: `ProbeRequest` -> `ProbeOutcome`.

Selects the tenants the container serves (the one rule, `tenants.selection`, with suspended and
provisioning tenants kept: their maintenance answer is judged too), narrows them to the asked
cells, wave or tenants, sends one request per site (paced, `probe/pacing.py`), judges each
answer (`probe/judge.py`) and records the result in the config bucket (`probe/record.py`).
Everything the operator gives is checked first: bad input probes nothing and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

from redmica_ops.cells.config import Cell, CellMap, cell_map
from redmica_ops.cells.waves import plan_waves
from redmica_ops.errors import NotFound, UsageError
from redmica_ops.probe.judge import judge
from redmica_ops.probe.model import (
    ProbeOutcome,
    ProbeRequest,
    SiteResult,
    SiteTarget,
    Verdict,
    check_base_url,
    check_request,
)
from redmica_ops.probe.pacing import probe_all
from redmica_ops.probe.record import ProbeRecord, ProbeRecords
from redmica_ops.probe.transport import Transport, TransportError
from redmica_ops.runs.record import new_run_id, utcnow
from redmica_ops.settings import require
from redmica_ops.tenants.selection import Reason, Use, select

if TYPE_CHECKING:
    from redmica_ops.runs.pacing import Cancellation, Clock
    from redmica_ops.settings import Settings
    from redmica_ops.tenants.store import Listing, StoredTenant

BalancerLookup = Callable[[Cell], str]
"""The base URL (https://<load balancer DNS name>) that reaches a cell's sites."""


class ProbeWorkspace(Protocol):
    """What the probe needs of a `workspace.Workspace` (which provides all of it)."""

    @property
    def settings(self) -> Settings: ...

    def tenants(self) -> Listing: ...

    def clock(self) -> Clock: ...

    @property
    def cancellation(self) -> Cancellation: ...

    def message(self, text: str) -> None: ...

    def status(self, text: str) -> None: ...


@dataclass(frozen=True)
class ProbeSite:
    """The probe's own dependencies: HTTP, where records go, how a cell's balancer is found."""

    transport: Transport
    records: ProbeRecords | None = None
    balancer: BalancerLookup | None = None


def chosen_cells(request: ProbeRequest, cells: CellMap, settings: Settings) -> list[Cell]:
    """The cells asked for: named ones, one wave of a release's plan, or all."""
    if request.cells:
        return cells.select(request.cells)
    if request.wave is not None:
        waves = plan_waves(list(cells.cells), settings.canary_cell, settings.max_parallel_cells)
        if request.wave > len(waves):
            raise UsageError(
                f"--wave {request.wave}: the release plan has {len(waves)} wave(s)",
                "waves: the canary cell, then max_parallel_cells cells each (docs/cells.md)",
            )
        return waves[request.wave - 1]
    return list(cells.cells)


def _targets(
    request: ProbeRequest,
    listing: Listing,
    cells: CellMap,
    wanted: list[Cell],
    db_host: str | None,
) -> tuple[list[tuple[StoredTenant, Cell]], list[tuple[str, str]]]:
    """The tenants to probe with their cells, and the documents left out with why."""
    selection = select(listing, Use.SERVE, db_host=db_host)
    skipped = [(e.name, f"{e.reason.label}: {e.describe()}") for e in selection.excluded]
    ours = {cell.name: cell for cell in wanted}
    by_id = {stored.tenant_id: stored for stored in selection.eligible}
    if request.tenants:
        known = {s.tenant_id for s in listing.tenants} | {d.tenant_id for d in listing.invalid}
        unknown = [t for t in request.tenants if t not in known]
        if unknown:
            raise NotFound(
                f"no tenant {unknown[0]!r} in the config bucket",
                "list them with `redmica tenant list`",
            )
        named = set(request.tenants)
        skipped = [(name, why) for name, why in skipped if name in named]
        candidates = [by_id[t] for t in sorted(named) if t in by_id]
    else:
        candidates = list(selection.eligible)
    chosen: list[tuple[StoredTenant, Cell]] = []
    for stored in candidates:
        if problem := cells.unknown_cell(stored.tenant):
            skipped.append((stored.tenant_id, f"{Reason.UNKNOWN_CELL.label}: {problem}"))
            continue
        cell = ours.get(cells.cell_of(stored.tenant))
        if cell is not None:
            chosen.append((stored, cell))
    return chosen, skipped


def _base_urls(request: ProbeRequest, wanted: list[Cell], site: ProbeSite) -> dict[str, str]:
    if request.base_url is not None:
        base = check_base_url(request.base_url)
        return {cell.name: base for cell in wanted}
    if site.balancer is None:
        raise UsageError(
            "no --base-url, and the cells' load balancers cannot be looked up here",
            "give --base-url https://<load balancer DNS name>",
        )
    return {cell.name: check_base_url(site.balancer(cell)) for cell in wanted}


def _checker(
    request: ProbeRequest, site: ProbeSite, clock: Clock
) -> Callable[[SiteTarget], SiteResult]:
    def check(target: SiteTarget) -> SiteResult:
        result = SiteResult(target.tenant, target.cell, target.host)
        started = clock.now()
        try:
            answer = site.transport.fetch(target, request.timeout)
        except TransportError as exc:
            result.verdict, result.failure, result.reason = Verdict.FAILED, exc.kind, exc.reason
        else:
            result.status = answer.status
            result.verdict, result.failure, result.reason = judge(
                target, answer, request.expect_title
            )
        result.seconds = round(clock.now() - started, 3)
        return result

    return check


def run(request: ProbeRequest, ws: ProbeWorkspace, site: ProbeSite) -> ProbeOutcome:
    check_request(request)
    settings = ws.settings
    require(
        settings, ["domain"], message="no service domain is set (sites are <sub_domain>.<domain>)"
    )
    assert settings.domain is not None
    cells = cell_map(settings)
    wanted = chosen_cells(request, cells, settings)
    clock = ws.clock()
    probe_id = new_run_id()
    outcome = ProbeOutcome(probe_id, request.path)
    chosen, outcome.skipped = _targets(request, ws.tenants(), cells, wanted, settings.db_host)
    # Only the cells with sites to probe: a balancer lookup is two AWS calls per cell.
    busy = {cell.name for _, cell in chosen}
    bases = _base_urls(request, [c for c in wanted if c.name in busy], site)
    targets = [
        SiteTarget(
            tenant=stored.tenant_id,
            cell=cell.name,
            host=f"{stored.tenant.sub_domain}.{settings.domain}",
            url=f"{bases[cell.name]}{request.path}",
            status=stored.tenant.status,
            restricted=bool(stored.tenant.properties.limit_ips),
        )
        for stored, cell in chosen
    ]
    record = ProbeRecord(
        probe_id,
        created_at=utcnow().isoformat(),
        updated_at=utcnow().isoformat(),
        request={**asdict(request), "targets": len(targets)},
        skipped=[{"tenant": name, "why": why} for name, why in outcome.skipped],
    )
    if site.records is not None and request.record:
        outcome.location = site.records.save(record)
    ws.message(
        f"probe {probe_id}: {len(targets)} site(s) in {len(busy)} cell(s), GET {request.path}"
        f" (at most {request.concurrency} at once, {request.per_cell} per cell, "
        f"{request.rate:g}/s)"
    )
    tally: dict[str, int] = {}

    def done(result: SiteResult) -> None:
        tally[str(result.verdict)] = tally.get(str(result.verdict), 0) + 1
        counts = ", ".join(f"{n} {v}" for v, n in sorted(tally.items()))
        ws.status(f"probe: {sum(tally.values())}/{len(targets)} ({counts})")
        if result.failed:
            ws.message(f"[{result.cell}] {result.tenant} ({result.host}): {result.reason}")

    results, outcome.interrupted = probe_all(
        targets,
        _checker(request, site, clock),
        clock=clock,
        rate=request.rate,
        concurrency=request.concurrency,
        per_cell=request.per_cell,
        cancellation=ws.cancellation,
        done=done,
    )
    probed = {r.tenant for r in results}
    outcome.sites = results + [
        SiteResult(t.tenant, t.cell, t.host, reason="interrupted before its turn")
        for t in targets
        if t.tenant not in probed
    ]
    outcome.sites.sort(key=lambda s: s.tenant)
    record.sites = outcome.sites
    record.state = "interrupted" if outcome.interrupted else "finished"
    record.updated_at = utcnow().isoformat()
    if site.records is not None and request.record:
        outcome.location = site.records.save(record)
    return outcome

"""The probe as a release gate: once a wave's cells are deployed, probe their tenants; more than
`max_failures` failed sites fails the wave (`deploy`/`release --max-probe-failures`).

The waves (`cells/waves.py`) call a `WaveProber` once every cell of a wave succeeded and treat a
failed gate like a failed deployment: later waves are not started, the cells with failed sites
are marked `probe_failed` and, like every cell this rollout changed, go back to the revision
they ran before. The gate's summary names the failed tenants.

Everything the gate needs is checked when it is built, before the first cell is touched: the
path, the base URL, the budget, the `domain` setting (sites are <sub_domain>.<domain>).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from redmica_ops.cells.config import Cell
from redmica_ops.errors import RedmicaError, UsageError
from redmica_ops.probe.model import (
    DEFAULT_PATH,
    ProbeGate,
    ProbeOutcome,
    ProbeRequest,
    WaveProber,
    check_max_failures,
    check_request,
)
from redmica_ops.probe.run import ProbeSite, ProbeWorkspace, run
from redmica_ops.settings import require

if TYPE_CHECKING:
    from redmica_ops.settings import Settings

# How many failed tenants the one-line summary names; the rest are in the record.
NAMED = 10


@dataclass(frozen=True)
class WaveProbe:
    """`deploy`/`release`'s probe options: the failure budget, the path, where to send it.

    The probe runs when a budget is given (`--max-probe-failures`) or set (the setting
    `max_probe_failures`, set where the cells' balancers serve the sites) and `off` is not."""

    max_failures: int | None = None  # default: the setting max_probe_failures
    path: str = DEFAULT_PATH
    base_url: str | None = None  # default: each cell's load balancer
    off: bool = False  # --no-probe


def judge_gate(outcome: ProbeOutcome, max_failures: int) -> ProbeGate:
    failed = tuple(s.tenant for s in outcome.failed)
    ok = len(failed) <= max_failures and not outcome.interrupted
    summary = f"probe {outcome.probe_id}: {outcome.summary()}"
    if failed:
        shown = ", ".join(failed[:NAMED]) + (
            f" and {len(failed) - NAMED} more" if len(failed) > NAMED else ""
        )
        summary += f"; failed: {shown} (at most {max_failures} allowed)"
    if outcome.interrupted:
        summary += "; interrupted"
    by_cell: dict[str, tuple[str, ...]] = {}
    for site in outcome.failed:
        by_cell[site.cell] = (*by_cell.get(site.cell, ()), site.tenant)
    return ProbeGate(ok, outcome.probe_id, failed, summary, outcome.location, by_cell)


def check_wave_probe(options: WaveProbe, settings: Settings) -> tuple[ProbeRequest, int] | None:
    """The probe's request and budget for the waves, or None when no probe runs; bad options
    are usage errors (exit 2)."""
    if options.off:
        if options.max_failures is not None:
            raise UsageError("give --max-probe-failures or --no-probe, not both")
        return None
    budget = options.max_failures
    if budget is None:
        budget = settings.max_probe_failures
    if budget is None:
        return None
    check_max_failures(budget)
    request = ProbeRequest(path=options.path, base_url=options.base_url)
    check_request(request, flags="--probe-")
    require(
        settings,
        ["domain"],
        message="the probe after each wave needs the domain setting (sites are "
        "<sub_domain>.<domain>)",
        alternative="or turn the probe off (--no-probe)",
    )
    return request, budget


def wave_prober(ws: ProbeWorkspace, site: ProbeSite, options: WaveProbe) -> WaveProber | None:
    """Probe one wave's tenants after its deploy (checked now, before anything is deployed);
    None when no probe runs.

    A probe that cannot run (its balancer not found, the record not written) fails the wave:
    the sites were not shown to work, and the waves never go on unjudged."""
    checked = check_wave_probe(options, ws.settings)
    if checked is None:
        return None
    template, budget = checked

    def probe(cells: Sequence[Cell]) -> ProbeGate:
        request = replace(template, cells=tuple(c.name for c in cells))
        try:
            outcome = run(request, ws, site)
        except RedmicaError as exc:
            return ProbeGate(False, None, (), f"the probe could not run: {exc.message}")
        return judge_gate(outcome, budget)

    return probe

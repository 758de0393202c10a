"""The probe as a release gate: after a wave's cells are deployed, probe their tenants; more
than `max_failures` failed sites fails the wave (`deploy`/`release --max-probe-failures`).

The waves (`cells/waves.py`) call a `CellProber` once a cell's rollout succeeded and treat a
failed gate like a failed deployment: later waves are not started and the cells this release
changed go back to their previous revision. The gate's summary names the failed tenants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from redmica_ops.cells.config import Cell
from redmica_ops.probe.model import ProbeOutcome, ProbeRequest, check_max_failures
from redmica_ops.probe.run import ProbeSite, ProbeWorkspace, run

# How many failed tenants the one-line summary names; the rest are in the record.
NAMED = 10


@dataclass(frozen=True)
class ProbeGate:
    ok: bool
    probe_id: str
    failed: tuple[str, ...]
    summary: str
    record: str | None = None


CellProber = Callable[[Cell], ProbeGate]


def judge_gate(outcome: ProbeOutcome, max_failures: int) -> ProbeGate:
    failed = tuple(s.tenant for s in outcome.failed)
    ok = len(failed) <= max_failures and not outcome.interrupted
    summary = outcome.summary()
    if failed:
        shown = ", ".join(failed[:NAMED]) + (
            f" and {len(failed) - NAMED} more" if len(failed) > NAMED else ""
        )
        summary += f"; failed: {shown} (at most {max_failures} allowed)"
    return ProbeGate(ok, outcome.probe_id, failed, summary, outcome.location)


def cell_prober(
    ws: ProbeWorkspace, site: ProbeSite, template: ProbeRequest, max_failures: int
) -> CellProber:
    """Probe one cell's tenants with `template` (path, pacing, base URL) after its deploy."""
    check_max_failures(max_failures)

    def probe(cell: Cell) -> ProbeGate:
        request = replace(template, cells=(cell.name,), wave=None, tenants=())
        return judge_gate(run(request, ws, site), max_failures)

    return probe

"""`tenant move`: take a tenant from one cell to another without a moment it is not served.

The order is what makes it safe: (1) the document names both cells (`cell` = target,
`moving_from` = source), so both render the tenant; (2) the target cell restarts and serves it;
(3) the hostname is routed to the target and Route 53 says INSYNC; (4) we wait out the drain
time so resolvers' cached answers expire while the source still answers; (5) the document names
only the target and (6) the source restarts without the tenant. Both cells read the same
database and S3 folder, and the move refuses to start while they run different images, so
whichever cell answers, the site shows the same data with the same code. A move that stopped
half-way is resumed by running it again: `moving_from` says where it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from redmica_ops.errors import Conflict, OperationFailed, RedmicaError
from redmica_ops.report import Line, Report, info, plain_json, success, text

if TYPE_CHECKING:
    from redmica_ops.cells.config import Cell, CellMap
    from redmica_ops.cells.routing import Router
    from redmica_ops.runs.pacing import Clock
    from redmica_ops.tenants.store import StoredTenant, TenantStore
    from redmica_ops.workspace import Workspace


class CellRestarts(Protocol):
    """What a move needs from deployments: restart one cell, and the image it runs."""

    def reload(self, cell: Cell) -> tuple[bool, str]: ...

    def image(self, cell: Cell) -> str | None: ...


@dataclass
class MoveStep:
    step: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, str | bool]:
        return {"step": self.step, "ok": self.ok, "detail": self.detail}


@dataclass
class MoveReport:
    tenant: str
    source: str
    target: str
    steps: list[MoveStep] = field(default_factory=list)
    ok: bool = True

    def add(self, step: str, ok: bool, detail: str) -> None:
        self.steps.append(MoveStep(step, ok, detail))
        self.ok = self.ok and ok

    def as_dict(self) -> dict[str, str | bool | list[dict[str, str | bool]]]:
        return {
            "tenant": self.tenant,
            "from": self.source,
            "to": self.target,
            "ok": self.ok,
            "moved": self.ok and self.source != self.target,
            "steps": [s.as_dict() for s in self.steps],
        }

    def report(self) -> Report:
        body: list[Line] = [
            text(f"{'ok  ' if step.ok else 'FAIL'} {step.step:<13} {step.detail}")
            for step in self.steps
        ]
        if self.ok and self.source == self.target:
            # Nothing moved: "moved a -> a" would say otherwise.
            body = [info(f"tenant {self.tenant} is already in cell {self.target}: nothing to do")]
        elif self.ok:
            body.append(success(f"moved tenant {self.tenant}: {self.source} -> {self.target}"))
        else:
            body.append(
                info(f"error: moving tenant {self.tenant} to {self.target} failed; see above")
            )
        return Report(plain_json(self.as_dict()), list(body), exit_code=0 if self.ok else 1)


@dataclass
class MoveRequest:
    tenant_id: str
    target: str
    drain_seconds: float
    force: bool = False  # move even while the cells run different images


def move_tenant(
    request: MoveRequest,
    store: TenantStore,
    cells: CellMap,
    restarts: CellRestarts,
    router: Router | None,
    clock: Clock,
    progress: Callable[[str], None] = lambda text: None,
) -> MoveReport:
    stored = store.get(request.tenant_id)
    target = cells.get(request.target)
    props = stored.tenant.properties
    source = _source_of(stored, cells)
    report = MoveReport(request.tenant_id, source.name, target.name)
    if source.name == target.name:
        return _already_there(request)
    if not request.force:
        source_image, target_image = restarts.image(source), restarts.image(target)
        if source_image != target_image:
            raise Conflict(
                f"cells {source.name} and {target.name} run different images "
                f"({source_image} vs {target_image}); a release is probably in progress",
                "move after the release finished, or pass --force if you know the schema matches",
            )

    original_cell = props.cell if props.moving_from is None else source.name

    def write(
        current: StoredTenant, cell: str | None, moving_from: str | None, step: str
    ) -> StoredTenant:
        wanted = current.tenant.in_cell(cell, moving_from)
        if wanted != current.tenant:
            store.replace(request.tenant_id, wanted, current.etag)
        extra = f", moving from {moving_from}" if moving_from else ""
        report.add(step, True, f"document: cell {cell or cells.home.name}{extra}")
        return store.get(request.tenant_id)

    progress(f"move {request.tenant_id}: {source.name} -> {target.name}: both cells serve it")
    stored = write(stored, target.name, source.name, "both-cells")
    progress(f"move {request.tenant_id}: restarting cell {target.name}")
    ok, detail = restarts.reload(target)
    report.add("serve-target", ok, f"cell {target.name}: {detail}")
    if not ok:
        # The source never stopped serving and routing was not touched: undo the document.
        write(stored, original_cell, None, "undo")
        return report
    if router is not None:
        progress(f"move {request.tenant_id}: routing {stored.tenant.sub_domain} to {target.name}")
        try:
            router.route(stored.tenant.sub_domain, target.name, f"move {request.tenant_id}")
        except RedmicaError as exc:
            report.add("route", False, exc.message)
            raise OperationFailed(
                f"routing {request.tenant_id} to cell {target.name} failed: {exc.message}",
                f"both cells serve it; run `redmica tenant move {request.tenant_id} "
                f"--to {target.name}` again to finish",
            ) from exc
        host = router.host(stored.tenant.sub_domain)
        report.add("route", True, f"{host} -> {target.name} (INSYNC)")
    else:
        report.add("route", True, "routing not managed here (hosted_zone_id unset)")
    if request.drain_seconds > 0:
        progress(f"move {request.tenant_id}: draining {request.drain_seconds:g}s on {source.name}")
        clock.sleep(request.drain_seconds)
    report.add("drain", True, f"waited {request.drain_seconds:g}s for cached answers to expire")
    write(stored, target.name, None, "target-only")
    progress(f"move {request.tenant_id}: restarting cell {source.name} without it")
    ok, detail = restarts.reload(source)
    report.add("stop-source", ok, f"cell {source.name}: {detail}")
    return report


def _source_of(stored: StoredTenant, cells: CellMap) -> Cell:
    # An interrupted move resumes from where it came from.
    props = stored.tenant.properties
    return cells.get(props.moving_from or cells.cell_of(stored.tenant))


def _already_there(request: MoveRequest) -> MoveReport:
    report = MoveReport(request.tenant_id, request.target, request.target)
    report.add("check", True, f"tenant {request.tenant_id} is already in cell {request.target}")
    return report


def nothing_to_do(ws: Workspace, request: MoveRequest) -> MoveReport | None:
    """The checks made before anyone is asked to confirm: an unknown cell or tenant is an error,
    and a tenant already in the target cell is a finished report (no question, no restart)."""
    cells = ws.fleet().cells
    target = cells.get(request.target)
    stored = ws.registry().store.get(request.tenant_id)
    return _already_there(request) if _source_of(stored, cells).name == target.name else None


def move(request: MoveRequest, ws: Workspace) -> MoveReport:
    """`tenant move` with the workspace's fleet, store, router and clock."""
    fleet = ws.fleet()
    store = ws.registry().store
    return move_tenant(request, store, fleet.cells, fleet, fleet.router(), fleet.clock, ws.message)

"""Adding a tenant: `redmica tenant add` minus the command line.

One read of the tenants serves every check: the roles a provisioning would create, the cell
with most room, the uniqueness of the new document (then held by its claims, taken before the
conditional write). Routing is checked before anything is written (a cell's load balancer that
cannot be found writes nothing), the host routed after; then the site is activated (its cell
restarts) or provisioned (database, migrations, administrator), if asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.deploy import reload
from redmica_ops.deploy.report import rollout_lines, rollout_report
from redmica_ops.errors import JSONValue, UsageError, ValidationFailed
from redmica_ops.lifecycle import provision
from redmica_ops.lifecycle.common import check_roles_unused
from redmica_ops.report import Part, Report, info, success, text
from redmica_ops.tenants.model import Tenant
from redmica_ops.tenants.selection import NO_DB_HOST_HINT, no_database
from redmica_ops.tenants.store import WriteResult

if TYPE_CHECKING:
    from redmica_ops.cells.fleet import Fleet
    from redmica_ops.deploy.model import RolloutReport
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class AddRequest:
    """A validated new document (its password set) and what to do around writing it."""

    tenant_id: str
    tenant: Tenant
    source: str  # where the document came from, for messages: a path, <stdin>, (flags)
    cell: str | None = None  # --cell; else property.cell, else the cell with most room
    activate: bool = False  # restart the tenant's cell so the site goes live
    provision: provision.ProvisionOptions | None = None  # then provision it
    generated_password: str | None = None  # the database password was generated here
    show_generated: bool = False  # print it once

    def __post_init__(self) -> None:
        if self.activate and self.provision is not None:
            raise UsageError("--provision activates the site itself; drop --activate")


@dataclass
class AddOutcome:
    """What `add` did: written (where), placed (cell), routed, activated or provisioned."""

    request: AddRequest
    written: WriteResult
    location: str  # s3://bucket/key
    warnings: list[str] = field(default_factory=list)
    cell: str | None = None  # None: no cells are configured
    routed: str | None = None  # "routed acme.example.com to cell b (INSYNC)"
    activation: RolloutReport | None = None
    provisioned: provision.ProvisionOutcome | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.activation is not None and not self.activation.ok else 0

    def report(self) -> Report:
        if self.provisioned is not None:
            return self.provisioned.report()
        request, written = self.request, self.written
        document: dict[str, JSONValue] = {
            "tenant": request.tenant_id,
            "created": True,
            "key": written.key,
            "version_id": written.version_id,
            "warnings": list(self.warnings),
        }
        if request.show_generated:
            document["generated_password"] = request.generated_password
        if self.activation is not None:
            document["activation"] = rollout_report(self.activation).document
        return Report(document, self._lines(), exit_code=self.exit_code)

    def _lines(self) -> list[Part]:
        request, written = self.request, self.written
        version = f" (version {written.version_id})" if written.version_id else ""
        lines: list[Part] = [
            success(f"created tenant {request.tenant_id} at {self.location}{version}")
        ]
        if request.show_generated and request.generated_password:
            lines.append(info("generated password (shown once, store it now):"))
            lines.append(text(request.generated_password))
        elif request.generated_password:
            lines.append(
                info(
                    "a random password was generated and stored; it is not shown "
                    "(use --show-generated-password to see it once)"
                )
            )
        if self.activation is None:
            lines.append(
                info(
                    "next: the site goes live when the service restarts its containers "
                    "(`redmica reload`, or add with --activate)"
                )
            )
        else:
            lines.extend(rollout_lines(self.activation))
        return lines


def add(request: AddRequest, ws: Workspace) -> AddOutcome:
    """Create the tenant (exit 4 if it exists or clashes; nothing written), then route,
    activate or provision it as asked. Reads the tenants once."""
    tenant_id, new = request.tenant_id, request.tenant
    if unreachable := no_database(request.source, new, ws.settings.db_host):
        # It would be listed, never served (tenants/selection.py): refused before any read.
        raise ValidationFailed(
            [unreachable],
            hint=f"{NO_DB_HOST_HINT}; `tenant add` takes --db-host",
            message=f"tenant {tenant_id} cannot reach a database; nothing was written",
        )
    listing = ws.tenants()
    if request.provision is not None:
        # Not served until provisioning is done (the host answers 503 meanwhile), and refused
        # before the document is written: exit 4, nothing changed anywhere.
        new = new.with_status("provisioning")
        check_roles_unused(tenant_id, new, listing)
        provision.precheck(ws.runner(request.provision.executor), tenant_id, new)
    fleet = _fleet_for(request, ws)
    if fleet is not None:
        fleet.routing_ready()  # every cell's load balancer now: a routing problem writes nothing
        new = fleet.assign(new, listing.entries(), request.cell)
    registry = ws.registry()
    written = registry.add(tenant_id, new, request.source, listing=listing)
    assert written.result is not None
    outcome = AddOutcome(
        request,
        written.result,
        f"s3://{registry.store.bucket}/{written.result.key}",
        written.warnings,
    )
    if fleet is not None:
        _place(outcome, fleet, new)
    for warning in outcome.warnings:
        ws.message(f"warning: {warning}")
    if request.provision is not None:
        ws.message(f"created tenant {tenant_id} (status: provisioning); provisioning it")
        outcome.provisioned = provision.run(tenant_id, request.provision, ws, listing)
    elif request.activate:
        outcome.activation = _activate(tenant_id, new, fleet, ws)
    return outcome


def _fleet_for(request: AddRequest, ws: Workspace) -> Fleet | None:
    """The fleet when the tenant is placed or routed here (cells, --cell or routing)."""
    settings = ws.settings
    if settings.cells or request.cell is not None or settings.hosted_zone_id:
        return ws.fleet()
    return None


def _place(outcome: AddOutcome, fleet: Fleet, tenant: Tenant) -> None:
    """Say the cell and route the host (messages as they happen: a route waits for INSYNC)."""
    tenant_id = outcome.request.tenant_id
    if fleet.cells.configured:
        outcome.cell = fleet.cells.cell_of(tenant)
        fleet.progress(f"tenant {tenant_id} is in cell {outcome.cell}")
    outcome.routed = fleet.route(tenant, f"tenant add {tenant_id}")
    if outcome.routed:
        fleet.progress(outcome.routed)


def _activate(
    tenant_id: str, tenant: Tenant, fleet: Fleet | None, ws: Workspace
) -> RolloutReport | None:
    """Restart the tenant's cell (with cells only its own cell), else the service."""
    if fleet is not None and fleet.cells.configured:
        home = fleet.cells.get(fleet.cells.cell_of(tenant))
        ws.message(f"created tenant {tenant_id}; activating: restarting cell {home.name}")
        return fleet.roll(home, "reload", None, fleet.revision(home), rollback=False, force=True)
    ws.message(f"created tenant {tenant_id}; activating: restarting the service's tasks")
    return reload.run(reload.ReloadRequest(), ws).cells[0].rollout

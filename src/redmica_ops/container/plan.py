"""Which tenants get a vhost, and the vhosts file: one plan for `entrypoint serve` and `render
vhosts`.

At start the container renders every tenant's vhost. One bad document must not take 799 other
customers down, so (unless strict) a tenant that `tenants.selection` leaves out of serving (an
invalid document, a clash, no database host, a password secret that cannot be read) is left
out and named loudly instead. The container serves its cell's tenants (`--cell`, else the
`cell` setting; without either, every tenant: the one implicit cell); `render vhosts` renders
every tenant, from the config bucket or from a directory of files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from redmica_ops.capacity import PoolSettings
from redmica_ops.cells.config import cell_map
from redmica_ops.container.apache import config_checker
from redmica_ops.container.keys import MASTER_SECRET_ENV, master_secret
from redmica_ops.container.memory import memory_budget
from redmica_ops.container.vhosts import (
    VhostSettings,
    derive_pool_for,
    render_vhosts,
    write_private,
)
from redmica_ops.errors import JSONObject, Problem, UsageError, ValidationFailed
from redmica_ops.report import Report, plain_json, success
from redmica_ops.tenants.files import load_paths
from redmica_ops.tenants.model import Entry
from redmica_ops.tenants.selection import CellScope, Reason, Use, no_database, select

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace


@dataclass(frozen=True)
class VhostsRequest:
    strict: bool = False  # refuse (exit 2, nothing written) when any tenant is left out
    redacted: bool = False  # passwords and keys as ******** (render --redacted)
    from_dir: Path | None = None  # tenant files instead of the config bucket (render)
    cell: str | None = None  # serve only this cell's tenants
    # The container's own start (`entrypoint serve`): the master secret is required, the pool
    # comes from the task's memory, the cell from the `cell` setting when not given.
    serving: bool = False
    environ: Mapping[str, str] = field(default_factory=dict)  # SECRET_KEY_BASE, ECS metadata


@dataclass(frozen=True)
class LeftOut:
    tenant: str
    reason: str  # the selection's label, or "secret"
    problems: tuple[Problem, ...]


@dataclass
class VhostsPlan:
    text: str  # the Apache config (holds passwords unless redacted)
    served: list[str]
    left_out: list[LeftOut]
    pool: PoolSettings
    warnings: list[str] = field(default_factory=list)
    cell: str | None = None
    other_cells: int = 0  # tenants left to the other cells

    def starting(self, path: Path, command: str) -> str:
        """`entrypoint serve`'s last line before it becomes Apache."""
        return (
            f"entrypoint: {len(self.served)} tenant(s) in {path}"
            + (f" (cell {self.cell}; {self.other_cells} in other cells)" if self.cell else "")
            + (f", {len(self.left_out)} skipped" if self.left_out else "")
            + f"; starting: {command}"
        )

    def written(self, path: Path, checked: bool) -> Report:
        """What `render vhosts -o FILE` says once the file is in place."""
        document: JSONObject = {
            "file": str(path),
            "tenants": len(self.served),
            "checked": checked,
            "left_out": [item.tenant for item in self.left_out],
        }
        # The file holds one more virtual host, the catch-all (unknown Host: 404).
        line = f"wrote {len(self.served)} tenant vhost(s) and the catch-all to {path}" + (
            " (Apache config test passed)" if checked else ""
        )
        return Report(document, [success(line)])

    def serving(self, path: Path, command: str) -> JSONObject:
        """What `entrypoint serve` became, as JSON (seen only when the exec returns: tests)."""
        return {
            "vhosts_file": str(path),
            "served": list(self.served),
            "skipped": [item.tenant for item in self.left_out],
            "pool": plain_json(self.pool.as_dict()),
            "cell": self.cell,
            "command": command,
        }


def plan_vhosts(request: VhostsRequest, ws: Workspace) -> VhostsPlan:
    """Read the tenants once, choose the servable ones, resolve their passwords, render."""
    settings = ws.settings
    master = None if request.redacted else master_secret(request.environ)
    if request.serving and master is None:
        raise UsageError(
            f"{MASTER_SECRET_ENV} is not set: tenants would start without a secret_key_base",
            "pass it with the task definition's `secrets` (see docs/container.md)",
        )
    budget = memory_budget(settings, request.environ if request.serving else {})
    if request.serving and budget.note:
        ws.message(f"warning: {budget.note}")
    vhost_settings = VhostSettings.from_settings(settings, budget)
    cell = request.cell or (settings.cell if request.serving else None)
    entries, left_out, others = _servable(request, cell, ws)
    # Tenants whose password is in a secret: read with this process's role, with --redacted
    # too (values unused), so that both leave out the same tenants.
    passwords, failed = ws.passwords().resolve_entries(entries)
    left_out += [
        LeftOut(e.tenant_id, "secret", tuple(failed[e.tenant_id]))
        for e in entries
        if e.tenant_id in failed
    ]
    entries = [e for e in entries if e.tenant_id not in failed]
    left_out.sort(key=lambda item: item.tenant)
    if request.strict and left_out:
        raise ValidationFailed(
            [p for item in left_out for p in item.problems],
            hint="without --strict these tenants are skipped"
            if request.serving
            else "fix them with `redmica tenant update` / `tenant edit` (or the secret); "
            "without --strict they are skipped",
            message=f"{len(left_out)} tenant(s) cannot be served (--strict)",
            before_writing=not request.serving,
        )
    # A suspended or provisioning tenant gets a maintenance page and no process: the pool
    # is sized for the others.
    pool = derive_pool_for(vhost_settings, sum(1 for e in entries if e.tenant.served))
    # Part of each key: the incarnations in the bucket (one listing for every tenant).
    incarnations = None
    if master and request.from_dir is None:
        incarnations = ws.registry().incarnations.all()
    text = render_vhosts(
        entries,
        vhost_settings,
        redact=request.redacted,
        master_secret=master,
        passwords=passwords,
        pool=pool,
        incarnations=incarnations,
    )
    return VhostsPlan(
        text,
        [e.tenant_id for e in entries],
        left_out,
        pool,
        _warnings(entries, vhost_settings),
        cell,
        others,
    )


def _servable(
    request: VhostsRequest, cell: str | None, ws: Workspace
) -> tuple[list[Entry], list[LeftOut], int]:
    """The tenants that may be served, those left out, and how many other cells serve."""
    if request.from_dir is not None:
        files = load_paths([request.from_dir], ws.settings.tenant_secrets_prefix)
        if files.problems:
            raise ValidationFailed(files.problems, before_writing=True)
        fit, hostless = [], []
        for entry in files.entries:
            problem = no_database(entry.source, entry.tenant, ws.settings.db_host)
            if problem is None:
                fit.append(entry)
            else:
                hostless.append(LeftOut(entry.tenant_id, Reason.NO_DATABASE.label, (problem,)))
        return fit, hostless, 0
    registry = ws.registry()
    if request.serving:
        store = registry.store
        ws.message(f"entrypoint: reading tenants from s3://{store.bucket}/{store.prefix}")
    scope = None
    if cell is not None:
        cells = cell_map(ws.settings)  # no AWS client: the settings say which cells exist
        cells.get(cell)  # an unknown cell is a usage error, before anything is written
        scope = CellScope(cells, cell)
    selection = select(
        ws.tenants(), Use.SERVE, registry.claims.owner_of, scope=scope, db_host=ws.settings.db_host
    )
    left_out = [
        LeftOut(e.name, e.reason.label, tuple(e.problems))
        for e in selection.excluded
        if e.reason is not Reason.OTHER_CELL
    ]
    return selection.entries(), left_out, len(selection.excluded_by(Reason.OTHER_CELL))


def _warnings(entries: list[Entry], settings: VhostSettings) -> list[str]:
    limited = [e.tenant_id for e in entries if e.tenant.properties.limit_ips]
    if limited and not settings.trusted_proxies:
        # Fail closed, but say so: behind a load balancer these tenants see only its address.
        return [
            f"{len(limited)} tenant(s) with limit_ips ({', '.join(limited[:5])}) but no "
            "trusted_proxies: behind a load balancer they see its address, not the client's"
        ]
    return []


def left_out_lines(plan: VhostsPlan, verb: str) -> list[str]:
    """Each tenant left out and why: "warning: tenant X is NOT served (reason):" then its
    problems. A warning in both serve and render: the others are served and the exit code is
    0 (--strict makes it an error, exit 2)."""
    lines: list[str] = []
    for item in plan.left_out:
        lines.append(f"warning: tenant {item.tenant} is NOT {verb} ({item.reason}):")
        lines += [f"  {problem}" for problem in item.problems]
    return lines


def serve_lines(plan: VhostsPlan) -> list[str]:
    """What `entrypoint serve` says about its plan before it writes: the pool, then each
    tenant left out, then the warnings."""
    pool = plan.pool
    return [
        f"entrypoint: pool {pool.max_pool_size} processes ({pool.pool_source}) from "
        f"{pool.memory_mib} MiB ({pool.memory_source}), {pool.process_mib} MiB each, "
        f"{pool.reserve_mib} MiB reserve; spawn {pool.spawn_method}, "
        f"min_instances {pool.min_instances}",
        *(f"warning: {warning}" for warning in pool.warnings),
        *left_out_lines(plan, "served"),
        *(f"warning: {warning}" for warning in plan.warnings),
    ]


def install(plan: VhostsPlan, path: Path, check: bool, apache_bin: str | None) -> None:
    """Write the vhosts file atomically, mode 0600; with `check` only if Apache's config test
    (`apache_bin`, else apache2 or httpd) accepts it, else the old file stays."""
    write_private(path, plan.text, check=config_checker(apache_bin) if check else None)

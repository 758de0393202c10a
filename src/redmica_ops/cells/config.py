"""Which cells exist (from the `cells` setting) and which cell a tenant belongs to.

A tenant's cell is `property.cell` in its document; without it, the first configured cell. With
no `cells` setting there is one implicit cell, the `service` setting, so a single-service setup
behaves exactly as before cells existed (docs/cells.md says why the document holds the cell).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redmica_ops.cells.syntax import parse_cell_entry
from redmica_ops.errors import UsageError

if TYPE_CHECKING:
    from redmica_ops.settings import Settings
    from redmica_ops.tenants.model import Tenant

IMPLICIT_CELL = "default"


@dataclass(frozen=True)
class Cell:
    name: str
    service: str | None
    cluster: str | None


@dataclass(frozen=True)
class CellMap:
    """The configured cells in order; the first is the home of tenants without property.cell."""

    cells: tuple[Cell, ...]
    configured: bool

    @property
    def home(self) -> Cell:
        return self.cells[0]

    def names(self) -> list[str]:
        return [c.name for c in self.cells]

    def get(self, name: str) -> Cell:
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise UsageError(
            f"there is no cell {name!r} (cells: {', '.join(self.names())})",
            "cells come from the `cells` setting: see docs/cells.md",
        )

    def select(self, names: Iterable[str]) -> list[Cell]:
        return [self.get(name) for name in names]

    def cell_of(self, tenant: Tenant) -> str:
        return tenant.properties.cell or self.home.name

    def serves(self, cell: str, tenant: Tenant) -> bool:
        """Whether `cell` serves the tenant: its own cell, or the cell it is moving from."""
        return self.cell_of(tenant) == cell or tenant.properties.moving_from == cell

    def unknown_cell(self, tenant: Tenant) -> str | None:
        """A problem text when the document names a cell that is not configured."""
        named = [tenant.properties.cell, tenant.properties.moving_from]
        for name in named:
            if name is not None and name not in self.names():
                return f"cell {name!r} is not configured (cells: {', '.join(self.names())})"
        return None


def cell_map(settings: Settings) -> CellMap:
    if not settings.cells:
        return CellMap((Cell(IMPLICIT_CELL, settings.service, settings.cluster),), False)
    cells = []
    for item in settings.cells:
        entry, problem = parse_cell_entry(item)
        if entry is None:  # load_settings already rejected it; keep mypy honest
            raise UsageError(f"setting cells: {problem}")
        cells.append(Cell(entry.name, entry.service, entry.cluster or settings.cluster))
    return CellMap(tuple(cells), True)

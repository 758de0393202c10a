"""Where a new tenant goes: the cell with the most room left.

Room is what a cell can hold (the capacity model's answer, else the `cell_capacity` setting)
minus the tenants it has. The function takes the capacity as a callable so the capacity model
(issue 14) plugs in without this module knowing how it computes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from redmica_ops.cells.config import Cell, CellMap
from redmica_ops.errors import OperationFailed
from redmica_ops.tenants.model import Entry


@dataclass(frozen=True)
class CellLoad:
    cell: str
    tenants: int
    capacity: int

    @property
    def room(self) -> int:
        return self.capacity - self.tenants


def loads(
    cells: CellMap, entries: Iterable[Entry], capacity: Callable[[Cell], int]
) -> list[CellLoad]:
    counts = Counter(cells.cell_of(e.tenant) for e in entries)
    return [CellLoad(c.name, counts.get(c.name, 0), capacity(c)) for c in cells.cells]


def place(cells: CellMap, entries: Iterable[Entry], capacity: Callable[[Cell], int]) -> Cell:
    """The cell with the most room; the earlier cell wins a tie, so placement is stable."""
    table = loads(cells, entries, capacity)
    best = max(table, key=lambda load: load.room)  # max() keeps the first of equals
    if best.room <= 0:
        summary = ", ".join(f"{t.cell} {t.tenants}/{t.capacity}" for t in table)
        raise OperationFailed(
            f"every cell is full ({summary})",
            "add a cell (docs/cells.md) or raise cell_capacity after checking `redmica capacity`",
        )
    return cells.get(best.cell)

"""The `cells` setting's syntax: NAME=SERVICE or NAME=CLUSTER/SERVICE.

A leaf (only `rules`), so the settings can check the setting without importing the cell map,
which reads tenant documents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redmica_ops.tenants import rules

_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?")
_AWS_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")


@dataclass(frozen=True)
class CellEntry:
    """One item of the `cells` setting: NAME=SERVICE or NAME=CLUSTER/SERVICE."""

    name: str
    service: str
    cluster: str | None = None


def parse_cell_entry(text: str) -> tuple[CellEntry | None, str | None]:
    name, sep, where = text.partition("=")
    if not sep:
        return None, f"{rules.show(text)} is not NAME=SERVICE or NAME=CLUSTER/SERVICE"
    if not _NAME.fullmatch(name):
        return None, f"cell name {rules.show(name)} must be a lowercase DNS label of 1-32 chars"
    cluster, _, service = where.rpartition("/")
    for part in (service, *([cluster] if cluster else [])):
        if not _AWS_NAME.fullmatch(part):
            return None, f"{rules.show(part)} in cell {name!r} is not an ECS cluster/service name"
    return CellEntry(name, service, cluster or None), None

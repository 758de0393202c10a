"""`deploy --diff` / `--dry-run`: what a deploy would change, before anything is registered.

The plan compares the service's current task definition with the one `deploy` would register
(containers' images, environment and secrets by name, sizes) and says whether anything changes,
so CI can gate on it: exit 0 no change, 1 changes (copilot's convention; errors are 2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redmica_ops.cells.waves import WaveOptions, implicit_rollout
from redmica_ops.deploy.model import (
    clone_with_image,
    container_name,
    require_image_reference,
    revision_name,
)
from redmica_ops.errors import ExitCode, JSONObject, RedmicaError

if TYPE_CHECKING:
    from redmica_ops.deploy.rollout import ServiceDeployer
    from redmica_ops.settings import Settings
    from redmica_ops.workspace import Workspace

# Environment values under such names are shown as changed, never printed.
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE|_KEY$|^KEY", re.IGNORECASE)
_TASK_FIELDS = ("cpu", "memory", "taskRoleArn", "executionRoleArn")
_CONTAINER_FIELDS = ("image", "cpu", "memory", "memoryReservation", "essential")


@dataclass(frozen=True)
class DiffRequest:
    image: str
    container: str | None = None  # default: setting container
    cells: tuple[str, ...] = ()  # none: every cell


@dataclass(frozen=True)
class Change:
    path: str
    old: str | None
    new: str | None

    def line(self) -> str:
        if self.old is None:
            return f"+ {self.path}: {self.new}"
        if self.new is None:
            return f"- {self.path}: {self.old}"
        return f"~ {self.path}: {self.old} -> {self.new}"

    def as_dict(self) -> dict[str, str | None]:
        return {"path": self.path, "old": self.old, "new": self.new}


@dataclass
class DeployPlan:
    current: str  # the service's task definition ARN
    container: str
    image: str
    changes: list[Change] = field(default_factory=list)
    cell: str | None = None  # with cells: whose service this is

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def exit_code(self) -> int:
        return 1 if self.changes else 0

    def as_dict(self) -> JSONObject:
        document: JSONObject = {} if self.cell is None else {"cell": self.cell}
        document.update(
            {
                "task_definition": self.current,
                "container": self.container,
                "image": self.image,
                "changed": self.changed,
                "changes": [c.as_dict() for c in self.changes],
            }
        )
        return document

    def lines(self) -> list[str]:
        head = f"task definition {revision_name(self.current)} -> new revision"
        if self.cell is not None:
            head = f"cell {self.cell}: {head}"
        if not self.changes:
            return [f"{head}: no change ({self.container} already runs {self.image})"]
        return [head, *(f"  {c.line()}" for c in self.changes)]


@dataclass
class FleetPlan:
    """One plan per chosen cell; anything changing in any cell makes the whole a change."""

    plans: list[DeployPlan]

    @property
    def exit_code(self) -> int:
        return max((p.exit_code for p in self.plans), default=0)

    def as_dict(self) -> JSONObject:
        return {
            "changed": any(p.changed for p in self.plans),
            "cells": [p.as_dict() for p in self.plans],
        }

    def lines(self) -> list[str]:
        return [line for p in self.plans for line in p.lines()]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _pairs(items: object, key: str) -> dict[str, str]:
    found: dict[str, str] = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, Mapping) and "name" in item:
                found[str(item["name"])] = str(item.get(key, ""))
    return found


def compare(old: Mapping[str, object], new: Mapping[str, object]) -> list[Change]:
    """The differences that matter to an operator, in a stable order."""
    changes: list[Change] = []
    for name in _TASK_FIELDS:
        if old.get(name) != new.get(name):
            changes.append(Change(name, _text(old.get(name)), _text(new.get(name))))
    before = {str(c.get("name")): c for c in _containers(old)}
    after = {str(c.get("name")): c for c in _containers(new)}
    for cname in sorted(before.keys() | after.keys()):
        a, b = before.get(cname), after.get(cname)
        prefix = f"containers[{cname}]"
        if a is None or b is None:
            changes.append(
                Change(prefix, None if a is None else "present", None if b is None else "present")
            )
            continue
        for name in _CONTAINER_FIELDS:
            if a.get(name) != b.get(name):
                changes.append(Change(f"{prefix}.{name}", _text(a.get(name)), _text(b.get(name))))
        for section, key, hide in (("environment", "value", True), ("secrets", "valueFrom", False)):
            old_env, new_env = _pairs(a.get(section), key), _pairs(b.get(section), key)
            for var in sorted(old_env.keys() | new_env.keys()):
                if old_env.get(var) == new_env.get(var):
                    continue
                secret = hide and bool(_SECRET_NAME.search(var))
                shown_old = "(set)" if secret and var in old_env else old_env.get(var)
                shown_new = "(changed)" if secret and var in new_env else new_env.get(var)
                changes.append(Change(f"{prefix}.{section}.{var}", shown_old, shown_new))
    return changes


def _containers(definition: Mapping[str, object]) -> list[Mapping[str, object]]:
    items = definition.get("containerDefinitions")
    return [c for c in items if isinstance(c, Mapping)] if isinstance(items, list) else []


def _check(request: DiffRequest, settings: Settings) -> str:
    """The container that gets the image; a bad image or no container is a usage error."""
    require_image_reference(request.image)
    return container_name(request.container, settings.container)


def plan_for(d: ServiceDeployer, container: str, image: str, cell: str | None = None) -> DeployPlan:
    """What registering `image` for one service would change."""
    current = d.current_revision()
    definition, _ = d.task_definition(current)
    proposed = clone_with_image(definition, container, image)
    return DeployPlan(current, container, image, compare(dict(definition), proposed), cell)


def run(request: DiffRequest, ws: Workspace) -> DeployPlan | FleetPlan:
    """Read each chosen cell's service and task definition (the one service without cells);
    register nothing, update nothing. Any error is exit 2: "could not tell" for a CI gate."""
    try:
        fleet = ws.fleet()
        name = _check(request, ws.settings)
        if implicit_rollout(WaveOptions(request.cells), fleet):
            return plan_for(fleet.service_deployer(), name, request.image)
        return FleetPlan(
            [
                plan_for(fleet.deployer(cell), name, request.image, cell.name)
                for cell in fleet.select(request.cells)
            ]
        )
    except RedmicaError as error:
        # --diff follows copilot's convention for CI gates: 2 means "could not tell".
        error.exit_code = ExitCode.USAGE
        raise

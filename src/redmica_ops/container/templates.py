"""Finds the files in `templates/`: inside the installed package, or in the source tree."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from redmica_ops.errors import RedmicaError


def template_text(name: str) -> str:
    packaged = resources.files("redmica_ops").joinpath("templates", name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    # An editable install or a source checkout: templates/ sits at the top of the tree.
    source = Path(__file__).resolve().parents[3] / "templates" / name
    if source.is_file():
        return source.read_text(encoding="utf-8")
    raise RedmicaError(
        f"template {name!r} is missing from this installation", "reinstall redmica-ops"
    )

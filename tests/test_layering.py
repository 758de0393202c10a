"""The shape of the code: who may import whom (issue 11). Read from the source, not run."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "redmica_ops"
# Shared by every command group: they are not command groups themselves.
CLI_SHARED = {
    "app",
    "main",
    "options",
    "output",
    "progress",
    "reference",
    "reports",
    "result",
    "waves",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_lambda_and_the_benchmarks_never_import_the_cli() -> None:
    paths = [PACKAGE / "aws_lambda.py", *sorted((ROOT / "bench").glob("*.py"))]
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if ".cli" in m)
        for p in paths
    }
    assert {p: m for p, m in offenders.items() if m} == {}


def test_the_library_never_imports_the_cli_or_click() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(PACKAGE / "cli") or path.name == "__main__.py":
            continue  # `python -m redmica_ops` is the command line
        bad = sorted(
            m for m in imported_modules(path) if m.startswith("redmica_ops.cli") or m == "click"
        )
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def command_group(module: str) -> str | None:
    """`redmica_ops.cli.tenant.add` -> "tenant"; shared modules -> None."""
    parts = module.split(".")
    if parts[:2] != ["redmica_ops", "cli"] or len(parts) < 3:
        return None
    return None if parts[2] in CLI_SHARED else parts[2]


def test_no_command_group_imports_another() -> None:
    offenders = {}
    for path in sorted((PACKAGE / "cli").rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        own = command_group(module)
        others = {m for m in imported_modules(path) if command_group(m) not in (None, own)}
        if others:
            offenders[module] = sorted(others)
    assert offenders == {}


def test_migrate_release_and_the_lambda_share_one_migration_function() -> None:
    for path in (
        PACKAGE / "cli" / "migrate.py",
        PACKAGE / "deploy" / "release.py",
        PACKAGE / "aws_lambda.py",
    ):
        source = path.read_text(encoding="utf-8")
        assert "migrations.run(" in source, path
    assert "migrations.run(" in (ROOT / "bench" / "run.py").read_text(encoding="utf-8")

"""The shape of the code: who may import whom (issue 11), how big the command line may grow,
how long a function may be, which imports may wait until a function runs, where things are
built (issue 24). Read from the source, not run."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "redmica_ops"
# Shared by every command group: they are not command groups themselves.
CLI_SHARED = {
    "app",
    "lazy",
    "main",
    "options",
    "output",
    "progress",
    "reference",
    "result",
    "terminal",
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


# -- import cycles (issue 24) ---------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package's modules one import statement names (`from a import b` may name a.b)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    base = node.module or ""
    if node.level:
        package = module.split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    found = set()
    for alias in node.names:
        if f"{base}.{alias.name}" in MODULES:
            found.add(f"{base}.{alias.name}")
        elif base in MODULES:
            found.add(base)
    return found


def import_edges(module: str, path: Path) -> dict[str, set[str]]:
    """What `module` imports, by kind: at module level (runtime), under `if TYPE_CHECKING:`
    (typing), and inside functions (function)."""
    edges: dict[str, set[str]] = {"runtime": set(), "typing": set(), "function": set()}

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, "function")
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.body:
                    visit(ast.Module([statement], []), "typing" if kind == "runtime" else kind)
                for statement in child.orelse:
                    visit(ast.Module([statement], []), kind)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                edges[kind] |= _imported(module, path, child) - {module}
            else:
                visit(child, kind)

    visit(ast.parse(path.read_text(encoding="utf-8")), "runtime")
    return edges


def cycles(kinds: tuple[str, ...]) -> list[list[str]]:
    """The strongly connected components (more than one module) of the import graph made of
    the edges of `kinds` (Tarjan's algorithm)."""
    graph = {m: set().union(*(import_edges(m, p)[k] for k in kinds)) for m, p in MODULES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            strong(module)
    return found


@pytest.mark.parametrize(
    "kinds",
    [("runtime",), ("runtime", "typing"), ("runtime", "typing", "function")],
    ids=["runtime", "with-type-only-imports", "with-function-level-imports"],
)
def test_no_import_cycle_even_through_type_only_imports(kinds: tuple[str, ...]) -> None:
    """A cycle through `if TYPE_CHECKING:` or a function-level import is still a cycle of
    meaning (settings -> cells.config -> tenants.model -> passwords -> aws -> settings was one):
    each module must be understandable without the ones that import it."""
    assert cycles(kinds) == []


# -- Any in library signatures (issue 24) ---------------------------------------------------------
def _has_any(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    return any(
        (isinstance(n, ast.Name) and n.id == "Any")
        or (isinstance(n, ast.Attribute) and n.attr == "Any")
        for n in ast.walk(annotation)
    )


def _public_signatures(tree: ast.AST) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                dunder = child.name.startswith("__") and child.name.endswith("__")
                if dunder or not child.name.startswith("_"):
                    found.append((f"{prefix}{child.name}", child))

    visit(tree, "")
    return found


def test_no_any_in_library_signatures() -> None:
    """Public functions and methods outside cli/ say what they take and return: AWS clients and
    responses with the stubs' types, JSON documents as errors.JSONObject (the one alias that
    may hold Any), never a bare Any nor a hand-written dict[str, Any]."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = str(path.relative_to(PACKAGE))
        if path.is_relative_to(PACKAGE / "cli"):
            continue
        for name, function in _public_signatures(ast.parse(path.read_text(encoding="utf-8"))):
            arguments = function.args
            annotated = [
                *arguments.posonlyargs,
                *arguments.args,
                *arguments.kwonlyargs,
                *([arguments.vararg] if arguments.vararg else []),
                *([arguments.kwarg] if arguments.kwarg else []),
            ]
            bad = [a.arg for a in annotated if _has_any(a.annotation)]
            bad += ["return"] if _has_any(function.returns) else []
            offenders += [f"{relative}:{function.lineno} {name}({what})" for what in bad]
    assert offenders == []


# What is built, and the one module of src/ that builds it (issue 24). The workspace builds
# what verbs use; the fleet is the one view of the services (deployers, gateways, router); the
# registry builds its claim and incarnation stores (lifecycle/common.py reads them where a step
# runs, from the store it is given); the CLI and the Lambda build their workspace; the CLI its
# terminal lines.
BUILT_BY_THE_WORKSPACE = (
    "ClientFactory",
    "PasswordResolver",
    "Fleet",
    "RealClock",
    "EcsExecutor",
    "LocalExecutor",
    "NoExecutor",
    "LocalRunner",
    "EcsRunner",
    "Site",
    "DatabaseAccess",
    "LambdaLauncher",
    "TenantStore",
    "RunStore",
    "ResultStore",
    "RecordStore",
    "ProbeStore",
    "TenantRegistry",
)
BUILT_BY_THE_FLEET = ("ServiceDeployer", "Router", "Route53Gateway", "LoadBalancerGateway")
CONSTRUCTED_IN: dict[str, set[str]] = {
    **{name: {"workspace.py"} for name in BUILT_BY_THE_WORKSPACE},
    **{name: {"cells/fleet.py"} for name in BUILT_BY_THE_FLEET},
    "ServiceGateway": {"deploy/rollout.py"},  # inside ServiceDeployer
    "ClaimStore": {"tenants/registry.py", "lifecycle/common.py"},
    "Incarnations": {"tenants/registry.py", "lifecycle/common.py"},
    "AwsWorkspace": {"cli/app.py", "aws_lambda.py"},
    "StatusLine": {"cli/app.py"},
}


def constructions(path: Path) -> set[str]:
    """Classes of CONSTRUCTED_IN called in `path`: `Name(...)`, `mod.Name(...)` and alternate
    constructors `Name.from_x(...)`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            found.add(func.id)
        elif isinstance(func, ast.Attribute):
            found.add(func.attr)
            if isinstance(func.value, ast.Name):
                found.add(func.value.id)
    return found & set(CONSTRUCTED_IN)


def test_one_construction_place() -> None:
    where: dict[str, set[str]] = {name: set() for name in CONSTRUCTED_IN}
    for path in sorted(PACKAGE.rglob("*.py")):
        for name in constructions(path):
            where[name].add(path.relative_to(PACKAGE).as_posix())
    assert where == CONSTRUCTED_IN


# -- the fleet is always cells (issue 24): no cell branch in the CLI ------------------------------
# Where the command line declares --cell and shows the settings.
CELL_NAMES_ALLOWED = {"options.py", "config.py"}


def cell_branch_names(path: Path) -> list[str]:
    """`wants_cells`, `settings.cells`, `.configured`, `hosted_zone_id` used in code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Name) and node.id in ("wants_cells", "hosted_zone_id"):
            found.append(f"{node.id} (line {node.lineno})")
        elif isinstance(node, ast.Attribute):
            owner = node.value
            settings = (isinstance(owner, ast.Name) and owner.id == "settings") or (
                isinstance(owner, ast.Attribute) and owner.attr == "settings"
            )
            if node.attr in ("wants_cells", "configured", "hosted_zone_id") or (
                node.attr == "cells" and settings
            ):
                found.append(f".{node.attr} (line {node.lineno})")
    return found


def test_cli_has_no_cell_branches() -> None:
    """One cell or ten take the same path: the CLI never asks whether there are cells."""
    cli = PACKAGE / "cli"
    offenders = {}
    for path in sorted(cli.rglob("*.py")):
        name = path.relative_to(cli).as_posix()
        if name in CELL_NAMES_ALLOWED:
            continue
        if found := cell_branch_names(path):
            offenders[name] = found
    assert not offenders, f"cell branches in cli/ (they belong in the library): {offenders}"


def test_serve_and_render_share_one_plan() -> None:
    """`entrypoint serve` and `render vhosts` choose and render the tenants with one function."""
    for command in ("entrypoint.py", "render.py"):
        source = (PACKAGE / "cli" / command).read_text(encoding="utf-8")
        assert "plan_vhosts(" in source, command
        assert "select(" not in source and "render_vhosts(" not in source, command


# -- size: the command line parses and renders; functions do one job (issue 24) -------------------
def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, kinds) and (docstring := _docstring(node)) is not None:
            lines.update(range(docstring.lineno, (docstring.end_lineno or 0) + 1))
    return lines


def _docstring(
    node: ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef,
) -> ast.Expr | None:
    first = node.body[0] if node.body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first
    return None


def line_counts(path: Path) -> tuple[int, int]:
    """(physical lines, code lines: neither blank, nor comment only, nor docstring)."""
    text = path.read_text(encoding="utf-8")
    skipped = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in (*skipped, tokenize.ENDMARKER):
            code.update(range(token.start[0], token.end[0] + 1))
    return text.count("\n"), len(code - _docstring_lines(ast.parse(text)))


def test_cli_is_at_most_15_percent_of_the_code() -> None:
    """The command line parses, calls one library function and renders: a growing cli/ is
    logic in the wrong layer. Counted in code lines (the rule); physical lines for scale."""
    totals = {"cli": [0, 0], "src": [0, 0]}
    for path in PACKAGE.rglob("*.py"):
        physical, code = line_counts(path)
        for part in ("cli", "src") if path.is_relative_to(PACKAGE / "cli") else ("src",):
            totals[part][0] += physical
            totals[part][1] += code
    code_share = totals["cli"][1] / totals["src"][1]
    physical_share = totals["cli"][0] / totals["src"][0]
    assert code_share <= 0.15, (
        f"cli/ is {code_share:.1%} of src/'s code lines ({totals['cli'][1]} of "
        f"{totals['src'][1]}; physical {physical_share:.1%}, {totals['cli'][0]} of "
        f"{totals['src'][0]}): move the logic into a library verb"
    )


CLI_FUNCTION_LINES = 60
FUNCTION_LINES = 100


def function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, first line, lines from `def` to the end without the docstring)."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                if (docstring := _docstring(child)) is not None:
                    length -= (docstring.end_lineno or 0) - docstring.lineno + 1
                found.append((f"{prefix}{child.name}", child.lineno, length))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def test_no_long_functions() -> None:
    """No function in cli/ over 60 lines, none anywhere (src, tests, scripts, bench) over 100,
    its docstring not counted: a longer one does several jobs, and the next change to it
    touches all of them."""
    offenders = []
    paths = [
        p for folder in ("src", "tests", "scripts", "bench") for p in (ROOT / folder).rglob("*.py")
    ]
    for path in sorted(paths):
        limit = CLI_FUNCTION_LINES if path.is_relative_to(PACKAGE / "cli") else FUNCTION_LINES
        offenders += [
            f"{path.relative_to(ROOT)}:{line} {name}: {length} lines (limit {limit})"
            for name, line, length in function_lengths(path)
            if length > limit
        ]
    assert offenders == []


# -- imports at the top, unless heavy (issue 24) --------------------------------------------------
# Imported inside a function anywhere: what makes `redmica --help` or `tenant validate` slow
# when imported at the top (each measured, docs/benchmarks.md), and the test tools.
HEAVY = {
    "boto3",
    "botocore",
    "pydantic",
    "pydantic_core",
    "yaml",
    "rich",
    "jinja2",
    "click",
    "moto",
    "werkzeug",
}
# Anything else imported inside a function, with the reason (instructions counted with
# valgrind; `redmica --help` is ~275 M, `tenant validate FILE` ~970 M): (file, module).
KEPT_INSIDE = {
    ("cli/app.py", "redmica_ops.cli.output"): "`redmica --help` renders no result (13.7 M)",
    ("cli/app.py", "redmica_ops.settings.loading"): "`redmica --help` reads no settings (118 M)",
    ("cli/app.py", "redmica_ops.cli.progress"): "only a command that acts needs it (102 M)",
    ("cli/main.py", "redmica_ops.cli.output"): "`redmica --help` prints no error (13.7 M)",
    ("cli/main.py", "traceback"): "only --debug prints a traceback (6 M)",
    ("cli/options.py", "redmica_ops.cells.waves"): "`redmica --help` loads no library (265 M)",
    ("cli/terminal.py", "getpass"): "on `redmica --help`'s path, which asks no secret (1.3 M)",
    ("cli/tenant/files.py", "redmica_ops.container.templates"): "`tenant validate` (27.6 M)",
    ("runs/results.py", "urllib.request"): "only in a task; every sub-command's --help (60 M)",
    ("settings/loading.py", "tomllib"): "only with a config file; `tenant validate` (12 M)",
    ("tenants/model.py", "difflib"): "only for a misspelt key; `tenant validate` (3 M)",
}


def _third_party_at_top(path: Path) -> set[str]:
    """Top-level names of what `path` imports at module level (outside functions and
    `if TYPE_CHECKING:`) from outside the package."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.orelse:
                    visit(ast.Module([statement], []))
            elif isinstance(child, ast.Import):
                names.update(alias.name.split(".")[0] for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and not child.level and child.module:
                names.add(child.module.split(".")[0])
            else:
                visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return names - {"redmica_ops"}


def heavy_modules() -> set[str]:
    """The package's modules whose import (transitively, at module level) imports a HEAVY one."""
    runtime = {m: import_edges(m, p)["runtime"] for m, p in MODULES.items()}
    direct = {m: bool(_third_party_at_top(p) & HEAVY) for m, p in MODULES.items()}

    def pulls(module: str) -> bool:
        seen, todo = set(), [module]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            if direct[current]:
                return True
            parts = current.split(".")  # importing a.b.c imports a and a.b first
            todo += [".".join(parts[:i]) for i in range(1, len(parts))]
            todo += sorted(runtime[current])
        return False

    return {module for module in MODULES if pulls(module)}


def function_level_imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, module) of each import inside a function: the package's modules by their full
    name, other modules as written."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for child in ast.walk(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                own = _imported(module, path, child)
                if own:
                    found += [(child.lineno, name) for name in sorted(own)]
                elif isinstance(child, ast.Import):
                    found += [(child.lineno, alias.name) for alias in child.names]
                elif child.module:
                    found.append((child.lineno, child.module))
    return sorted(set(found))


def test_function_level_imports_are_the_heavy_ones() -> None:
    """Imports sit at the top, where a reader looks for them and where a cycle shows; only
    what would slow the start-up of `redmica --help` or `tenant validate` waits inside a
    function: HEAVY, the package's modules that import it, and KEPT_INSIDE."""
    heavy_own = heavy_modules()
    offenders = []
    kept = set()
    for module, path in sorted(MODULES.items()):
        relative = path.relative_to(PACKAGE).as_posix()
        for line, name in function_level_imports(module, path):
            if name.split(".")[0] in HEAVY or name in heavy_own:
                continue
            if (relative, name) in KEPT_INSIDE:
                kept.add((relative, name))
                continue
            offenders.append(f"{relative}:{line} {name}")
    assert offenders == [], "import these at the top (or measure and add to KEPT_INSIDE)"
    assert kept == set(KEPT_INSIDE), "KEPT_INSIDE names an import that is no longer inside"

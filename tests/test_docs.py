"""The documentation is tested: the CLI reference, the README's commands, the examples."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from redmica_ops.cli.lazy import LazyGroup
from redmica_ops.cli.main import LAZY_COMMANDS, cli, load_all_commands
from redmica_ops.cli.reference import render_reference
from redmica_ops.tenants.model import parse_tenant_bytes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def test_cli_reference_matches_the_real_help() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render_reference(), "docs/cli.md is stale: run `make docs`"


def _commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, f"{prefix} {name}"))
    return found


load_all_commands()


@pytest.mark.parametrize(("path", "command"), _commands(cli, "redmica"))
def test_every_command_has_an_example(path: str, command: click.Command) -> None:
    assert "Examples:" in (command.help or ""), f"{path} --help has no example"


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.splitlines()] == [
        "make demo",
        "make test",
    ]
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")


def _yaml_blocks(text: str) -> list[tuple[str, str, str]]:
    """(info string, body, the ```text block that follows it, if any)."""
    pattern = re.compile(
        r"```(yaml[^\n]*)\n(.*?)```(?:\s*\n\s*fails with\s*\n\s*```text\n(.*?)```)?", re.S
    )
    return [(m.group(1), m.group(2), m.group(3) or "") for m in pattern.finditer(text)]


def test_tenant_doc_examples_validate_or_fail_as_documented() -> None:
    blocks = _yaml_blocks((ROOT / "docs" / "tenants.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    for info, body, expected in blocks:
        if info.startswith("yaml tenant="):
            tenant_id = info.split("=", 1)[1]
            tenant, problems = parse_tenant_bytes(tenant_id, body.encode(), "doc")
            assert tenant is not None, problems
        else:
            assert info == "yaml invalid"
            tenant, problems = parse_tenant_bytes("acme", body.encode(), "doc")
            assert tenant is None
            got = [f"{p.field}: {p.message}" for p in problems]
            assert got == expected.strip().splitlines()


def test_example_tenants_validate_together() -> None:
    from redmica_ops.tenants.files import load_paths

    result = load_paths([ROOT / "examples" / "tenants"])
    assert result.problems == []
    assert len(result.entries) == 3


def test_wheel_ships_the_templates(tmp_path: Path) -> None:
    """The installed tool must find templates/ without the source tree."""
    import subprocess
    import sys

    hatchling = Path(sys.executable).parent / "hatchling"
    subprocess.run(
        [str(hatchling), "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    prefix = "redmica_ops/templates/"
    shipped = {n.removeprefix(prefix) for n in names if n.startswith(prefix)}
    source = {
        p.relative_to(ROOT / "templates").as_posix()
        for p in (ROOT / "templates").rglob("*")
        if p.is_file()
    }
    assert shipped == source
    assert "vhosts.conf.j2" in shipped and "redmine/database.yml" in shipped
    assert "redmica_ops/cli/main.py" in names


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_lazy_command_help_matches_the_command(name: str) -> None:
    """`redmica --help` lists sub-commands without importing them; keep the text true."""
    command = cli.commands[name]
    assert LAZY_COMMANDS[name][2] == (command.help or "").strip().split("\n")[0]


@pytest.mark.parametrize("path", ["redmica", "redmica tenant"])
def test_every_lazy_command_is_where_its_table_says(path: str) -> None:
    """A lazy group lists its table's names before importing anything: a command missing from
    the table would be invisible until some other command imported its module."""
    group = cli if path == "redmica" else cli.commands[path.split()[1]]
    assert isinstance(group, LazyGroup)
    assert set(group.commands) == set(group.lazy), "a sub-command is missing from the table"
    for name, where in group.lazy.items():
        module = importlib.import_module(where.module)
        assert group.commands[name] is getattr(module, where.attribute), name


def test_architecture_names_every_folder_and_module_of_the_package() -> None:
    """docs/architecture.md is the map: a new folder or top-level module must appear on it."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    package = ROOT / "src" / "redmica_ops"
    names = [
        f"{p.name}/" if p.is_dir() else p.name
        for p in sorted(package.iterdir())
        if not p.name.startswith(("_", ".")) and p.name != "py.typed"
    ]
    names += [
        p.name
        for folder in ("tenants", "runs", "container", "deploy")
        for p in sorted((package / folder).glob("*.py"))
        if not p.name.startswith("_")
    ]
    missing = [name for name in names if name not in text]
    assert missing == [], f"docs/architecture.md does not mention {missing}"


# The worked example's files: what a new command would add (they must not exist yet).
ARCHITECTURE_EXAMPLE = {"tenants/rename.py", "cli/tenant/rename.py"}


def test_every_path_architecture_names_exists() -> None:
    """A path on the map (`cli/tenant/add.py`, `tests/test_layering.py`, `docs/cells.md`, or a
    module named bare in the folder list) is a file of the package or of the repository."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    package = ROOT / "src" / "redmica_ops"
    files = {p.name for folder in (package, ROOT / "bench") for p in folder.rglob("*.py")}
    missing = []
    for path in sorted(set(re.findall(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+\.(?:py|md))\b", text))):
        if path in ARCHITECTURE_EXAMPLE:
            assert not (package / path).exists(), f"{path} exists: pick another example"
        elif "/" in path:
            if not ((package / path).exists() or (ROOT / path).exists()):
                missing.append(path)
        elif path not in files and not (ROOT / "docs" / path).exists():
            missing.append(path)
    assert missing == [], f"docs/architecture.md names paths that do not exist: {missing}"


# -- docs that agree with the code ---------------------------------------------------------------
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


def _command_paths() -> set[str]:
    return {path.removeprefix("redmica ") for path, _ in _commands(cli, "redmica")}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_name_only_commands_that_exist_and_none_as_future(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for phrase in ("a later issue", "in a later release", "not yet implemented", "coming soon"):
        assert phrase not in text, f"{doc.name} says {phrase!r}"
    # architecture.md's worked example of adding a command names one that does not exist yet.
    known = _command_paths() | ({"tenant rename"} if doc.name == "architecture.md" else set())
    for match in re.finditer(r"`redmica ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", text):
        words = match.group(1).split()
        assert words[0] in known or " ".join(words) in known, f"{doc.name}: `redmica {match[1]}`"
        if isinstance(cli.commands.get(words[0]), click.Group) and len(words) > 1:
            assert " ".join(words) in known, f"{doc.name}: no command `redmica {match[1]}`"


def test_a_yml_file_is_a_tenant_file_as_the_docs_say(tmp_path: Path) -> None:
    from redmica_ops.tenants.files import load_paths

    (tmp_path / "acme.yml").write_text((ROOT / "examples" / "tenants" / "acme.yaml").read_text())
    result = load_paths([tmp_path])
    assert result.problems == [] and [e.tenant_id for e in result.entries] == ["acme"]
    assert "`.yml`" in (ROOT / "docs" / "tenants.md").read_text(encoding="utf-8")


# -- the operator's handbook: every command runs, in order, against the sandbox -------------------
HANDBOOK = ROOT / "docs" / "operators-handbook.md"


def doc_commands(path: Path, tag: str) -> list[tuple[str, int]]:
    """(command, expected exit code) for each line of the ```sh TAG blocks of a document."""
    text = path.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(rf"```sh {tag}\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if not line.strip():
                continue
            expected = re.search(r"\s+# exit (\d+)$", line)
            command = line[: expected.start()] if expected else line
            commands.append((command, int(expected.group(1)) if expected else 0))
    return commands


def handbook_commands() -> list[tuple[str, int]]:
    """(command, expected exit code) for each line of the ```sh handbook blocks."""
    return doc_commands(HANDBOOK, "handbook")


def test_the_handbook_walks_every_part_of_the_day() -> None:
    text = HANDBOOK.read_text(encoding="utf-8")
    for part in (
        "Onboard a customer",
        "Change their allowed IPs",
        "Release",
        "A failed release",
        "A customer leaves",
    ):
        assert f"## {part}\n" in text
    assert len(handbook_commands()) >= 15


def run_in_sandbox(
    tmp_path: Path,
    sandbox_args: list[str],
    prelude: list[str],
    commands: list[tuple[str, int]],
    seed: Callable[[dict[str, str]], None] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Start `redmica sandbox ARGS`, call `seed` with its environment, then run `commands` in
    one bash script in tmp_path/work, each checked against its exit code (the first wrong
    one stops the script with exit 99 and says which)."""
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDMICA_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env_file = tmp_path / "sandbox.env"
    sandbox = subprocess.Popen(
        [str(bin_dir / "redmica"), "sandbox", *sandbox_args, "--env-file", str(env_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists():
            assert sandbox.poll() is None, sandbox.stderr.read() if sandbox.stderr else ""
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.05)
        if seed is not None:
            exported = dict(
                line.removeprefix("export ").split("=", 1)
                for line in env_file.read_text(encoding="utf-8").splitlines()
                if line.startswith("export ")
            )
            seed(exported)
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        script = ["set -o pipefail", f". {env_file}", *prelude]
        for number, (command, expected) in enumerate(commands, 1):
            script += [
                f"echo '>>> {number}: {command.replace(chr(39), '')}' >&2",
                command,
                "code=$?",
                f'[ "$code" -eq {expected} ] || {{ echo "FAILED step {number}:'
                f' exit $code, the document says {expected}" >&2; exit 99; }}',
            ]
        return subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.communicate(timeout=30)


@pytest.mark.subprocess
def test_every_handbook_command_runs_with_its_exit_code(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name in ("acme", "globex", "initech"):
        shutil.copy(EXAMPLES / "tenants" / f"{name}.yaml", work / f"{name}.yaml")
    done = run_in_sandbox(
        tmp_path,
        ["--ecs", "--fail-once", "globex", "--fail-image", "redmica:broken"],
        [
            "export REDMICA_DOMAIN=redmine.example.com",
            "export REDMICA_DB_HOST=aurora.cluster.example.internal REDMICA_DEPLOY_TIMEOUT=120",
            # globex and initech are customers already: the handbook starts with acme.
            "redmica tenant add globex -f globex.yaml >/dev/null 2>&1 || exit 90",
            "redmica tenant add initech -f initech.yaml >/dev/null 2>&1 || exit 90",
        ],
        handbook_commands(),
    )
    assert done.returncode == 0, done.stderr[-4000:]

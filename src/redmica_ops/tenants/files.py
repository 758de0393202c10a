"""Tenant documents on disk: a file is `<tenant-id>.yaml`; a directory holds such files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redmica_ops.errors import Problem
from redmica_ops.tenants.model import Entry, find_conflicts, parse_tenant_bytes
from redmica_ops.tenants.references import check_scope
from redmica_ops.tenants.safeyaml import MAX_DOCUMENT_BYTES, bounded

SUFFIXES = (".yaml", ".yml")


@dataclass
class FileSet:
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def read_limited(path: Path) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(MAX_DOCUMENT_BYTES + 1)
        return bounded(data, os.fstat(handle.fileno()).st_size)


def tenant_files(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if str(path) == "-":
            # The tenant id is the file's name, and stdin has none.
            problems.append(
                Problem("-", "", "stdin has no file name to take the tenant id from: give a file")
            )
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
            if not found:
                problems.append(Problem(str(path), "", "directory holds no *.yaml tenant files"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), "", "no such file or directory"))
    return files, problems


def load_paths(paths: list[Path], secrets_prefix: str | None = None) -> FileSet:
    """Validate every file (tenant id = file name without suffix), then cross-file uniqueness.

    `secrets_prefix` (tenant_secrets_prefix): a db.password_secret outside it is a problem."""
    result = FileSet()
    files, result.problems = tenant_files(paths)
    ids: dict[str, str] = {}
    for path in files:
        source = str(path)
        result.files.append(source)
        tenant_id = path.stem
        try:
            raw = read_limited(path)
        except OSError as exc:
            result.problems.append(Problem(source, "", f"cannot read: {exc.strerror}"))
            continue
        tenant, problems = parse_tenant_bytes(tenant_id, raw, source)
        reference = tenant.db.password_secret if tenant is not None else None
        scope = check_scope(reference, secrets_prefix) if reference and secrets_prefix else None
        if scope:
            problems = [*problems, Problem(source, "db.password_secret", scope)]
            tenant = None
        result.problems.extend(problems)
        if tenant_id in ids:
            result.problems.append(
                Problem(source, "(tenant id)", f"{tenant_id!r} is also defined by {ids[tenant_id]}")
            )
            continue
        ids[tenant_id] = source
        if tenant is not None:
            result.entries.append(Entry(tenant_id, source, tenant))
    result.problems.extend(find_conflicts(result.entries))
    return result


def summary(problems: Sequence[Problem], files: Sequence[str], *, written: bool = True) -> str:
    """`N problem(s) in M of K file(s)`: every file counted, not just the first; problems not in
    a file (an empty directory, stdin) are counted without a file count that would not add up."""
    bad = {p.source for p in problems} & set(files)
    where = f" in {len(bad)} of {len(files)} file(s)" if files else ""
    return f"{len(problems)} problem(s){where}" + ("; nothing was written" if written else "")

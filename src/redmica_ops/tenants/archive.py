"""Tenant exports for disaster recovery: every document, passwords included, kept private.

An export is a directory of `<tenant-id>.yaml` files or a tar archive of them. Everything is
created with mode 0600 (directories 0700) from the first byte: the files hold database
passwords, so they are never readable by others, not even for an instant.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from redmica_ops.errors import Problem, UsageError
from redmica_ops.tenants.files import SUFFIXES
from redmica_ops.tenants.model import Entry, find_conflicts, parse_tenant_bytes
from redmica_ops.tenants.safeyaml import MAX_DOCUMENT_BYTES

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
STDOUT = "-"


def write_export(
    documents: Mapping[str, bytes],
    destination: str,
    stdout: BinaryIO,
    *,
    stdout_is_terminal: bool,
) -> str:
    """Write `documents` (tenant id -> stored bytes) to `destination`; return where."""
    if destination == STDOUT:
        if stdout_is_terminal:
            raise UsageError(
                "refusing to write an export (it holds passwords) to a terminal",
                "give a file or directory, or pipe it: `redmica tenant export - | gpg -e ...`",
            )
        _write_tar(documents, stdout, compress=False)
        stdout.flush()
        return "stdout"
    path = Path(destination)
    if destination.endswith(TAR_SUFFIXES):
        if path.exists():
            raise UsageError(f"{path} already exists; refusing to overwrite an export")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            _write_tar(documents, handle, compress=destination.endswith(("gz", "tgz")))
        return str(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(
            f"{path} exists and is not an empty directory",
            "give a new directory, or a file name ending in .tar or .tar.gz",
        )
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    for tenant_id, raw in sorted(documents.items()):
        fd = os.open(path / f"{tenant_id}.yaml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
    return str(path)


def _write_tar(documents: Mapping[str, bytes], handle: BinaryIO, *, compress: bool) -> None:
    with tarfile.open(fileobj=handle, mode="w:gz" if compress else "w") as archive:
        for tenant_id, raw in sorted(documents.items()):
            info = tarfile.TarInfo(f"{tenant_id}.yaml")
            info.size = len(raw)
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(raw))


def read_export(source: Path) -> tuple[list[Entry], list[Problem]]:
    """Every tenant of an export, validated, with cross-tenant uniqueness checked."""
    raw_documents: list[tuple[str, str, bytes]] = []
    problems: list[Problem] = []
    if source.is_dir():
        for path in sorted(source.iterdir()):
            if path.suffix in SUFFIXES and path.is_file():
                with path.open("rb") as handle:
                    raw_documents.append(
                        (path.stem, str(path), handle.read(MAX_DOCUMENT_BYTES + 1))
                    )
    else:
        try:
            with tarfile.open(source, mode="r:*") as archive:
                for member in archive.getmembers():
                    name = Path(member.name)
                    where = f"{source}:{member.name}"
                    if not member.isfile() or name.suffix not in SUFFIXES or len(name.parts) != 1:
                        problems.append(Problem(where, "", "is not a <tenant-id>.yaml file"))
                        continue
                    extracted = archive.extractfile(member)
                    raw = extracted.read(MAX_DOCUMENT_BYTES + 1) if extracted else b""
                    raw_documents.append((name.stem, where, raw))
        except (tarfile.TarError, OSError) as exc:
            return [], [Problem(str(source), "", f"is not a readable tar archive ({exc})")]
    entries: list[Entry] = []
    for tenant_id, where, raw in raw_documents:
        tenant, found = parse_tenant_bytes(tenant_id, raw, where)
        problems.extend(found)
        if tenant is not None:
            entries.append(Entry(tenant_id, where, tenant))
    if not raw_documents and not problems:
        problems.append(Problem(str(source), "", "holds no tenant documents"))
    problems.extend(find_conflicts(entries))
    return entries, problems

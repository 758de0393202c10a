"""Tenant exports for disaster recovery: every document, passwords included, kept private.

An export is a directory of the documents under their names in the bucket (`acme.yaml`, and
`Cust-Upper.yaml` or `old.yml` too: invalid documents are exported as stored) or a tar archive
of them. Everything is created with mode 0600 (directories 0700) from the first byte: the files
hold database passwords, so they are never readable by others, not even for an instant.

`export` and `plan_import` / `apply_import` are `tenant export | import`; an import into a
bucket that already holds the same documents skips them, so an interrupted import is finished
by running it again.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from redmica_ops.errors import JSONValue, Problem, UsageError, ValidationFailed
from redmica_ops.report import Report, counting, success
from redmica_ops.tenants.files import SUFFIXES, summary
from redmica_ops.tenants.model import Entry, find_conflicts, parse_tenant_bytes
from redmica_ops.tenants.registry import ImportPlan
from redmica_ops.tenants.safeyaml import MAX_DOCUMENT_BYTES

if TYPE_CHECKING:
    from redmica_ops.workspace import Workspace

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
# Names that say "an archive" in a format an export is not: refused rather than made into a
# directory called exp.zip.
OTHER_ARCHIVES = (".zip", ".gz", ".bz2", ".xz", ".zst", ".7z", ".tbz", ".tbz2", ".txz", ".rar")
STDOUT = "-"


def check_destination(destination: str) -> None:
    """Refuse (exit 2, before anything is read) a DEST that is not an export's shape."""
    if destination.endswith(TAR_SUFFIXES) or destination == STDOUT:
        return
    if destination.lower().endswith(OTHER_ARCHIVES) and not Path(destination).is_dir():
        raise UsageError(
            f"{destination}: an export is a directory, a .tar or .tar.gz file, or - "
            "(not a zip or other archive); nothing was written",
            f"e.g. `redmica tenant export {Path(destination).stem}.tar.gz`",
        )


def safe_name(name: str) -> str:
    """A document's name as a file name: no path, nothing that walks out of the directory."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UsageError(
            f"a document is named {name!r}, which cannot be a file name: nothing was written",
            "rename the object in the bucket (`redmica tenant rename-key`) and export again",
        )
    return name


# -- tenant export ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportRequest:
    destination: str  # a directory, a .tar/.tar.gz file, or - for stdout
    stdout_is_terminal: bool = False


@dataclass
class ExportOutcome:
    destination: str
    valid: list[str] = field(default_factory=list)  # file names of valid tenant documents
    invalid: list[str] = field(default_factory=list)  # the others, exported as stored

    def report(self) -> Report:
        total = len(self.valid) + len(self.invalid)
        line = f"exported {total} document(s) to {self.destination}: {len(self.valid)} valid"
        if self.invalid:
            line += (
                f", {len(self.invalid)} invalid, as stored ({', '.join(self.invalid[:5])}"
                + (", ..." if len(self.invalid) > 5 else "")
                + "; `tenant import` refuses them until they are repaired)"
            )
        document: dict[str, JSONValue] = {
            "exported": sorted([*self.valid, *self.invalid]),
            "valid": list(self.valid),
            "invalid": list(self.invalid),
            "destination": self.destination,
        }
        # With DEST -, stdout carries the archive: the summary goes to stderr only.
        return Report(document, messages=[line])


def export(request: ExportRequest, ws: Workspace, stdout: BinaryIO) -> ExportOutcome:
    """Every document under the prefix, as stored, to the destination (checked first)."""
    check_destination(request.destination)
    if request.destination == STDOUT and request.stdout_is_terminal:
        raise UsageError(
            "refusing to write an export (it holds passwords) to a terminal",
            "give a file or directory, or pipe it: `redmica tenant export - | gpg -e ...`",
        )
    store = ws.registry().store
    documents = ws.registry().export_documents(counting(ws.status, "export: read"))
    outcome = ExportOutcome("")
    for name, raw in sorted(documents.items()):
        safe_name(name)
        tenant_id = store.tenant_id_for(store.prefix + name)
        valid = tenant_id is not None and store.parse(tenant_id, raw, name)[0] is not None
        (outcome.valid if valid else outcome.invalid).append(name)
    outcome.destination = write_export(
        documents, request.destination, stdout, stdout_is_terminal=request.stdout_is_terminal
    )
    return outcome


# -- tenant import ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportRequest:
    source: Path  # a directory or a .tar/.tar.gz file written by `tenant export`


@dataclass
class ImportOutcome:
    location: str
    imported: list[str]
    present: list[str]

    def report(self) -> Report:
        line = f"imported {len(self.imported)} tenant(s) into {self.location}"
        if self.present:
            line += f" ({len(self.present)} already there with the same content: skipped)"
        document: dict[str, JSONValue] = {
            "imported": list(self.imported),
            "already_present": list(self.present),
        }
        return Report(document, [success(line)])


def plan_import(request: ImportRequest, ws: Workspace) -> ImportPlan:
    """The whole export validated and checked for clashes, then against the bucket (one read):
    what is there already with the same content is skipped, anything else refuses (exit 4)."""
    entries, problems, files = read_export(request.source)
    if problems:
        raise ValidationFailed(problems, message=summary(problems, files))
    return ws.registry().plan_import(entries, ws.tenants())


def apply_import(plan: ImportPlan, ws: Workspace) -> ImportOutcome:
    registry = ws.registry()
    shown = counting(ws.status, "import: created")
    created = 0

    def progress(done: int, total: int) -> None:
        nonlocal created
        created = done
        shown(done, total)

    try:
        done = registry.apply_import(plan, progress)
    except KeyboardInterrupt:
        # Ctrl-C at 235 of 800: what is in the bucket is complete and identical to the export.
        ws.message(
            f"import interrupted after creating {created} of {len(plan.create)} tenant(s): "
            "run the same `redmica tenant import` again to finish it "
            "(tenants already imported are skipped)"
        )
        raise
    location = f"s3://{registry.store.bucket}/{registry.store.prefix}"
    return ImportOutcome(location, done, plan.present)


def write_export(
    documents: Mapping[str, bytes],
    destination: str,
    stdout: BinaryIO,
    *,
    stdout_is_terminal: bool,
) -> str:
    """Write `documents` (file name -> stored bytes) to `destination`; return where."""
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
    for name, raw in sorted(documents.items()):
        fd = os.open(path / safe_name(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
    return str(path)


def _write_tar(documents: Mapping[str, bytes], handle: BinaryIO, *, compress: bool) -> None:
    with tarfile.open(fileobj=handle, mode="w:gz" if compress else "w") as archive:
        for name, raw in sorted(documents.items()):
            info = tarfile.TarInfo(safe_name(name))
            info.size = len(raw)
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(raw))


def read_export(source: Path) -> tuple[list[Entry], list[Problem], list[str]]:
    """Every tenant of an export, validated, with cross-tenant uniqueness checked; and where
    each document was read (for the count of files with problems)."""
    raw_documents: list[tuple[str, str, bytes]] = []
    problems: list[Problem] = []
    members: list[str] = []  # every file of a tar archive, a tenant document or not
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
                    if member.isfile():
                        members.append(where)
                    if not member.isfile() or name.suffix not in SUFFIXES or len(name.parts) != 1:
                        problems.append(Problem(where, "", "is not a <tenant-id>.yaml file"))
                        continue
                    extracted = archive.extractfile(member)
                    raw = extracted.read(MAX_DOCUMENT_BYTES + 1) if extracted else b""
                    raw_documents.append((name.stem, where, raw))
        except (tarfile.TarError, OSError) as exc:
            return [], [Problem(str(source), "", f"is not a readable tar archive ({exc})")], []
    entries: list[Entry] = []
    for tenant_id, where, raw in raw_documents:
        tenant, found = parse_tenant_bytes(tenant_id, raw, where)
        problems.extend(found)
        if tenant is not None:
            entries.append(Entry(tenant_id, where, tenant))
    if not raw_documents and not problems:
        problems.append(Problem(str(source), "", "holds no tenant documents"))
    problems.extend(find_conflicts(entries))
    return entries, problems, members or [where for _, where, _ in raw_documents]

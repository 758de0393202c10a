"""The version a changed document was based on, so `tenant update -f` never loses a change.

`tenant show` writes the version it read into the document, as a YAML comment on its first line
(editors, `sed` and pipes keep it; the strict loader and the model never see it, and nothing
stores it: the registry writes documents from the model). `tenant update -f FILE` then writes
only while the tenant is still at that version (or at the one given with `--if-match`); a change
made since is a `StaleVersion` conflict naming both versions, and nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redmica_ops.errors import Conflict, JSONObject, UsageError
from redmica_ops.tenants.store import StoredDocument

# The first line `tenant show` writes. A version id or an ETag never holds a space or a comma.
_HEADER = re.compile(
    r"#\s*redmica tenant (?P<tenant>[^\s,]+)(?: version (?P<version>[^\s,]+))?"
    r" etag (?P<etag>[^\s,]+)(?:[,\s].*)?"
)
_HEADER_START = re.compile(r"#\s*redmica tenant\b")
OPTION = "--if-match"


def bare(etag: str) -> str:
    """An ETag without the quotes S3 puts around it (people copy it either way)."""
    return etag.strip().strip('"')


@dataclass(frozen=True)
class Basis:
    """What a new document was based on: a version id and/or an ETag, and who said so."""

    version_id: str | None
    etag: str | None
    source: str  # "acme.yaml (line 1)" or "--if-match"
    tenant_id: str | None = None  # the tenant the header names; None for --if-match

    def matches(self, document: StoredDocument) -> bool:
        """Whether `document` is still that version. Equal ETags also count: the content is
        then what the file was based on, so nothing made since would be lost."""
        if self.version_id and self.version_id == document.version_id:
            return True
        return bool(self.etag) and bare(self.etag or "") == bare(document.etag)

    def describe(self) -> str:
        return f"version {self.version_id or bare(self.etag or '')}"

    def as_dict(self) -> JSONObject:
        return {
            "version_id": self.version_id,
            "etag": bare(self.etag) if self.etag else None,
            "from": self.source,
        }


def describe(document: StoredDocument) -> str:
    """A stored version as the operator can find it again (`tenant history` lists the ids)."""
    when = f" (modified {document.last_modified.isoformat()})" if document.last_modified else ""
    return f"version {document.version_id or bare(document.etag)}{when}"


def version_view(document: StoredDocument) -> JSONObject:
    return {
        "version_id": document.version_id,
        "etag": bare(document.etag),
        "last_modified": document.last_modified.isoformat() if document.last_modified else None,
    }


def header(document: StoredDocument, location: str) -> str:
    """The two comment lines `tenant show` puts above a document (the first is read back)."""
    tenant_id = document.tenant_id
    version = f" version {document.version_id}" if document.version_id else ""
    when = f" ({document.last_modified.isoformat()})" if document.last_modified else ""
    return (
        f"# redmica tenant {tenant_id}{version} etag {bare(document.etag)}\n"
        f"# from {location}{when}; `tenant update -f` refuses this file once {tenant_id} has "
        "changed (exit 4)\n"
    )


def from_document(raw: bytes, source: str) -> Basis | None:
    """The version named by the comment lines at the top of a document, if any.

    Only the leading comments count (a stored document's own comments further down are
    text, not a claim about a version). A line that starts like the header but does not read
    as one is a usage error: silently ignoring it would make the update unconditional."""
    text = raw.decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            return None
        if _HEADER_START.match(stripped):
            found = _HEADER.fullmatch(stripped)
            if found is None:
                raise UsageError(
                    f"{source}: line {number}: does not read as the version line "
                    "`tenant show` writes (# redmica tenant ID [version VERSION] etag ETAG, ...)",
                    "restore the line from a fresh `redmica tenant show ID`, or delete it",
                )
            return Basis(
                found["version"],
                found["etag"],
                f"{source} (line {number})",
                found["tenant"],
            )
    return None


def given(token: str) -> Basis:
    """`--if-match TOKEN`: a version id (as `tenant history` lists) or an ETag."""
    token = token.strip()
    if not token:
        raise UsageError(
            "--if-match needs a version id or an ETag",
            "see the versions with `redmica tenant history ID`",
        )
    return Basis(token, token, OPTION)


class StaleVersion(Conflict):
    """The tenant changed (or was removed) since the version a document was based on."""

    def __init__(
        self, tenant_id: str, basis: Basis, current: StoredDocument | None, file: str
    ) -> None:
        self.basis = basis
        self.current = current
        if basis.source == OPTION:
            said = f"tenant {tenant_id!r} is not at the version {OPTION} names ({basis.describe()})"
        else:
            said = (
                f"tenant {tenant_id!r} changed since {file} was read: {file} is based on "
                f"{basis.describe()}"
            )
        if current is None:
            message = f"{said}, and the tenant was removed since; nothing was written"
            hint = (
                f"see `redmica tenant history {tenant_id}`; bring it back with "
                f"`redmica tenant restore {tenant_id} VERSION_ID` or add it again"
            )
        else:
            message = f"{said}, {tenant_id} is now at {describe(current)}; nothing was written"
            shown = file if file != "<stdin>" else "FILE"
            hint = (
                f"see what changed: `redmica tenant show {tenant_id} | diff {shown} -`; redo "
                f"your change on a fresh `redmica tenant show {tenant_id}`, or replace the "
                f"current version with {shown} on purpose: `redmica tenant update {tenant_id} "
                f"-f {shown} --if-match {current.version_id or bare(current.etag)}`"
            )
        super().__init__(message, hint)

    def as_dict(self) -> dict[str, object]:
        return {
            **super().as_dict(),
            "based_on": self.basis.as_dict(),
            "current": version_view(self.current) if self.current else None,
        }


def require_tenant(tenant_id: str, basis: Basis) -> None:
    """A document `tenant show` wrote for another tenant is not this one's (exit 2)."""
    if basis.tenant_id is not None and basis.tenant_id != tenant_id:
        raise UsageError(
            f"{basis.source}: the document was read from tenant {basis.tenant_id!r}, "
            f"not {tenant_id!r}; nothing was written",
            f"update {basis.tenant_id} with it, or delete that line to use it as "
            f"{tenant_id}'s document",
        )


def require(tenant_id: str, basis: Basis, current: StoredDocument | None, file: str) -> None:
    """Refuse a document based on another tenant (exit 2) or on another version (exit 4)."""
    require_tenant(tenant_id, basis)
    if current is None or not basis.matches(current):
        raise StaleVersion(tenant_id, basis, current, file)

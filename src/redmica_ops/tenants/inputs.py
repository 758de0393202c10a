"""Tenant input from files, stdin and flags, without ever taking a password from argv.

The command line reads stdin (and a terminal's prompt); everything after that is here: the
flag form's document, a generated password, the validation that names the flag of a bad field,
and the rules on which of `tenant add`'s flags go together (`check_add_flags`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from redmica_ops.errors import Problem, UsageError, ValidationFailed
from redmica_ops.tenants.files import read_limited
from redmica_ops.tenants.model import Tenant, validate_data
from redmica_ops.tenants.safeyaml import MAX_DOCUMENT_BYTES, YAMLData, load_document

STDIN = "-"

# Field path -> the flag that sets it, so flag-form errors name the flag.
FLAG_FOR_FIELD = {
    "db.name": "--db-name",
    "db.user": "--db-user",
    "db.password": "--db-password-stdin or --generate-password",
    "db.host": "--db-host",
    "db.port": "--db-port",
    "s3.bucket": "--s3-bucket",
    "s3.folder": "--s3-folder",
    "property.sub_domain": "--sub-domain",
    "property.limit_ips": "--limit-ip",
    "property.language": "--language",
}


def read_document(path: str, stdin: BinaryIO) -> tuple[bytes, str]:
    if path == STDIN:
        return stdin.read(MAX_DOCUMENT_BYTES + 1), "<stdin>"
    try:
        return read_limited(Path(path)), path
    except FileNotFoundError:
        raise ValidationFailed([Problem(path, "", "no such file")], before_writing=True) from None
    except OSError as exc:
        raise ValidationFailed(
            [Problem(path, "", f"cannot read: {exc.strerror}")], before_writing=True
        ) from None


def read_password(stdin: BinaryIO) -> str:
    """The first line of stdin, without its line ending (like `docker login --password-stdin`)."""
    raw = stdin.read(4096)
    text = raw.decode("utf-8", errors="strict") if raw else ""
    password = text.split("\n", 1)[0].removesuffix("\r")
    if not password:
        raise UsageError(
            "--db-password-stdin: stdin was empty",
            "pipe the password in, e.g. `pass show db/acme | redmica tenant add ...`",
        )
    return password


def generate_password() -> str:
    # URL-safe alphabet: no quoting trouble in YAML, Apache or a shell; 192 bits.
    return secrets.token_urlsafe(24)


def set_password(data: YAMLData, password: str) -> None:
    if isinstance(data, dict):
        db = data.setdefault("db", {})
        if isinstance(db, dict):
            db["password"] = password


# The field flags of `tenant add`, by their parameter names.
FLAG_FIELDS = (
    "db_name",
    "db_user",
    "db_host",
    "db_port",
    "s3_bucket",
    "s3_folder",
    "sub_domain",
    "language",
    "limit_ip",
)


def fields_given(flags: Mapping[str, object]) -> tuple[str, ...]:
    """The field flags given (a repeated flag given none at all is not given)."""
    return tuple(
        name for name in FLAG_FIELDS if flags.get(name) is not None and flags.get(name) != ()
    )


def flags_document(flags: Mapping[str, object]) -> dict[str, dict[str, object]]:
    db = {
        k: flags[f"db_{k}"]
        for k in ("name", "user", "host", "port")
        if flags.get(f"db_{k}") is not None
    }
    s3 = {k: flags[f"s3_{k}"] for k in ("bucket", "folder") if flags.get(f"s3_{k}") is not None}
    prop: dict[str, object] = {}
    if flags.get("sub_domain") is not None:
        prop["sub_domain"] = flags["sub_domain"]
    limit_ip = flags.get("limit_ip")
    if isinstance(limit_ip, (list, tuple)) and limit_ip:
        prop["limit_ips"] = list(limit_ip)
    if flags.get("language") is not None:
        prop["language"] = flags["language"]
    return {"db": db, "s3": s3, "property": prop}


def validated(tenant_id: str, data: YAMLData, source: str, flag_form: bool) -> Tenant:
    tenant, problems = validate_data(tenant_id, data, source)
    if tenant is None:
        if flag_form:
            problems = [
                Problem(p.source, f"{p.field} ({FLAG_FOR_FIELD[p.field]})", p.message)
                if p.field in FLAG_FOR_FIELD
                else p
                for p in problems
            ]
        raise ValidationFailed(problems, before_writing=True)
    return tenant


def parse_document(raw: bytes, source: str) -> YAMLData:
    data, problems = load_document(raw, source)
    if problems:
        raise ValidationFailed(problems, before_writing=True)
    return data


@dataclass(frozen=True)
class AddFlags:
    """What `tenant add` was given, as far as the rules between its flags need to know."""

    file: str | None = None  # -f FILE ('-': stdin)
    fields: tuple[str, ...] = ()  # the field flags given (db_name, ..., limit_ip)
    password_stdin: bool = False
    generate: bool = False
    show_generated: bool = False
    admin_password_stdin: bool = False
    provision: bool = False
    activate: bool = False


def check_add_flags(flags: AddFlags) -> None:
    """Refuse (exit 2, before anything is read or written) flags that do not go together."""
    if flags.file is not None and flags.fields:
        raise UsageError(
            f"-f/--file cannot be combined with field flags ({', '.join(flags.fields)})",
            "put every field in the file, or use only flags",
        )
    if flags.password_stdin and flags.generate:
        raise UsageError("choose one of --db-password-stdin and --generate-password")
    if flags.password_stdin and flags.file == STDIN:
        raise UsageError(
            "stdin cannot carry both the document (-f -) and the password",
            "put the password in the document, or the document in a file",
        )
    _check_admin_password(flags)
    if flags.show_generated and not flags.generate:
        raise UsageError("--show-generated-password needs --generate-password")
    if flags.file is None and not flags.fields:
        raise UsageError(
            "nothing to add: give -f FILE or the field flags",
            "see `redmica tenant add --help` and `redmica tenant example`",
        )
    if flags.file is None and not (flags.password_stdin or flags.generate):
        raise UsageError("the flag form needs --db-password-stdin or --generate-password")
    if flags.provision and flags.activate:
        raise UsageError("--provision activates the site itself; drop --activate")


def _check_admin_password(flags: AddFlags) -> None:
    if not flags.admin_password_stdin:
        return
    if not flags.provision:
        raise UsageError(
            "--admin-password-stdin goes with --provision",
            "add --provision, or set the password later with `redmica tenant provision`",
        )
    if flags.password_stdin or flags.file == STDIN:
        raise UsageError(
            "stdin cannot carry both the administrator's password and "
            + ("the database password" if flags.password_stdin else "the document (-f -)"),
            "use --generate-password for the database password, or the document in a file",
        )

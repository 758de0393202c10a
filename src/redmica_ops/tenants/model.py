"""The tenant document: a strict model, YAML in and out, uniqueness and field-level diffs.

The format is the one operators already keep in the config bucket (see docs/tenants.md):

    db:       {name, user, password, host?, port?}
    s3:       {bucket, folder}
    property: {sub_domain, limit_ips?, cell?, moving_from?}

Every value here ends up in an Apache config or a process environment, so the rules are strict
and bad input is rejected with every problem named, never silently corrected.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from redmica_ops.errors import JSONObject, Problem, UsageError, ValidationFailed
from redmica_ops.tenants import rules
from redmica_ops.tenants.references import canonical_reference, check_reference
from redmica_ops.tenants.safeyaml import load_document

_DISABLE_PLUGINS = "PYDANTIC_DISABLE_PLUGINS"
REDACTED = "********"
SECRET_FIELDS = frozenset({"db.password"})


def _reject(message: str) -> PydanticCustomError:
    return PydanticCustomError("redmica_rule", message)


# No pydantic plugin sees these models: a plugin installed next to redmica (found through
# package entry points) would receive every tenant document validated here, passwords included
# (its on_validate_python hook); and looking for plugins costs every `tenant validate` its
# start-up. Pydantic decides when a model's validator is built, at class creation: the switch
# is on for the classes below and the caller's own setting is back after them, so nothing
# leaks into the environment of the processes redmica starts.
_PLUGINS_SETTING = os.environ.get(_DISABLE_PLUGINS)
os.environ[_DISABLE_PLUGINS] = "__all__"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class Database(_Strict):
    name: str
    user: str
    # Exactly one of the two: the password itself, or where to read it (Secrets Manager ARN
    # or SSM SecureString name), so that it never sits in the config bucket.
    password: SecretStr | None = None
    password_secret: str | None = None
    host: str | None = None
    port: int | None = None

    def password_value(self) -> str:
        """The password held in the document; a secret reference is resolved elsewhere
        (tenants.passwords), by whoever builds the tenant's environment."""
        if self.password is None:
            raise UsageError(
                "this tenant's password is in a secret (db.password_secret) and was not read",
                "resolve it with tenants.passwords.PasswordResolver",
            )
        return self.password.get_secret_value()

    @model_validator(mode="after")
    def _one_password(self) -> Database:
        if (self.password is None) == (self.password_secret is None):
            raise _reject(
                "needs exactly one of db.password and db.password_secret (a Secrets Manager "
                "ARN or an SSM parameter name)"
            )
        return self

    @field_validator("password_secret")
    @classmethod
    def _password_secret(cls, value: str | None) -> str | None:
        if value is not None and (problem := check_reference(value)):
            raise _reject(problem)
        return value

    @field_validator("name", "user")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if problem := rules.check_pg_identifier(value):
            raise _reject(problem)
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        # Messages about the password never quote it.
        secret = value.get_secret_value()
        if not secret:
            raise _reject("must not be empty")
        if rules.has_control_character(secret):
            raise _reject("must not contain control characters (newline, tab, ...)")
        if len(secret) > 1024:
            raise _reject("must be at most 1024 characters")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and (problem := rules.check_hostname(value)):
            raise _reject(problem)
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 65535:
            raise _reject(f"{value} is not a port number (1..65535)")
        return value


class Storage(_Strict):
    bucket: str
    folder: str

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if problem := rules.check_bucket_name(value):
            raise _reject(problem)
        return value

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        if problem := rules.check_s3_folder(value):
            raise _reject(problem)
        return value


def _ip_or_network(value: str) -> str:
    if problem := rules.check_ip_or_network(value):
        raise _reject(problem)
    return value


IpOrNetwork = Annotated[str, AfterValidator(_ip_or_network)]


class Properties(_Strict):
    sub_domain: str
    limit_ips: tuple[IpOrNetwork, ...] | None = None
    # The cell serving the tenant (docs/cells.md); absent = the first configured cell.
    cell: str | None = None
    # Set only while `tenant move` runs: the source cell keeps serving until routing moved.
    moving_from: str | None = None
    # Language of Redmine's default data at provisioning (else the default_language setting).
    language: str | None = None

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and (problem := rules.check_redmine_language(value)):
            raise _reject(problem)
        return value

    @field_validator("sub_domain", "cell", "moving_from")
    @classmethod
    def _sub_domain(cls, value: str | None) -> str | None:
        if value is not None and (problem := rules.check_dns_label(value)):
            raise _reject(problem)
        return value

    @field_validator("limit_ips", mode="before")
    @classmethod
    def _limit_ips_is_list(cls, value: Any) -> Any:
        # YAML gives lists; strict tuple validation would otherwise ask for a tuple.
        if isinstance(value, list):
            return tuple(value)
        if value is not None and not isinstance(value, tuple):
            raise _reject("must be a list of IP addresses or CIDR networks")
        return value

    @field_validator("limit_ips")
    @classmethod
    def _limit_ips(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise _reject("must not be empty (leave it out to allow every address)")
        seen: set[str] = set()
        for item in value:
            if item in seen:
                raise _reject(f"{rules.show(item)} is listed twice")
            seen.add(item)
        return value


# A tenant's place in its life (docs/tenant-lifecycle.md). Only `active` tenants get their
# application; the others get a maintenance page from a vhost that never spawns Ruby.
Status = Literal["active", "provisioning", "suspended"]
STATUSES: tuple[str, ...] = ("active", "provisioning", "suspended")


def _status_message(value: str | None) -> str | None:
    if value is not None and (problem := rules.check_status_message(value)):
        raise _reject(problem)
    return value


class Tenant(_Strict):
    db: Database
    s3: Storage
    properties: Properties = Field(alias="property")
    status: Status = "active"
    status_message: Annotated[str | None, AfterValidator(_status_message)] = None

    @property
    def served(self) -> bool:
        """Whether its application runs; otherwise its host answers 503 (maintenance)."""
        return self.status == "active"

    @property
    def sub_domain(self) -> str:
        return self.properties.sub_domain

    def to_document(self, *, redact: bool = True) -> JSONObject:
        """The YAML-shaped mapping, password redacted unless asked for (only the store asks)."""
        db: dict[str, Any] = {"name": self.db.name, "user": self.db.user}
        if self.db.password_secret is not None:
            # A reference, not a secret: shown as it is.
            db["password_secret"] = self.db.password_secret
        else:
            db["password"] = REDACTED if redact else self.db.password_value()
        if self.db.host is not None:
            db["host"] = self.db.host
        if self.db.port is not None:
            db["port"] = self.db.port
        prop: dict[str, Any] = {"sub_domain": self.properties.sub_domain}
        if self.properties.limit_ips is not None:
            prop["limit_ips"] = list(self.properties.limit_ips)
        if self.properties.cell is not None:
            prop["cell"] = self.properties.cell
        if self.properties.moving_from is not None:
            prop["moving_from"] = self.properties.moving_from
        if self.properties.language is not None:
            prop["language"] = self.properties.language
        document: dict[str, Any] = {
            "db": db,
            "s3": {"bucket": self.s3.bucket, "folder": self.s3.folder},
            "property": prop,
        }
        if self.status != "active":
            document["status"] = self.status
        if self.status_message is not None:
            document["status_message"] = self.status_message
        return document

    def to_yaml(self, *, redact: bool = True) -> str:
        return yaml.safe_dump(
            self.to_document(redact=redact), sort_keys=False, allow_unicode=True, width=1000
        )

    def in_cell(self, cell: str | None, moving_from: str | None = None) -> Tenant:
        """The same tenant assigned to `cell` (None = the default cell)."""
        properties = self.properties.model_copy(update={"cell": cell, "moving_from": moving_from})
        return self.model_copy(update={"properties": properties})

    def with_password(self, password: SecretStr) -> Tenant:
        db = self.db.model_copy(update={"password": password, "password_secret": None})
        return self.model_copy(update={"db": db})

    def with_status(self, status: Status, message: str | None = None) -> Tenant:
        return self._revalidated(status=status, status_message=message)

    def with_login(self, user: str, password: SecretStr) -> Tenant:
        return self._revalidated(db={"user": user, "password": password.get_secret_value()})

    def _revalidated(self, **changes: Any) -> Tenant:
        """A changed copy that passes every rule again (model_copy alone would not check)."""
        document = self.to_document(redact=False)
        for key, value in changes.items():
            if isinstance(value, dict):
                document[key] = {**document[key], **value}
            elif value is None:
                document.pop(key, None)
            else:
                document[key] = value
        try:
            return Tenant.model_validate(document)
        except ValidationError as exc:
            raise ValidationFailed(problems_from_validation(exc, "(change)")) from None


if _PLUGINS_SETTING is None:
    del os.environ[_DISABLE_PLUGINS]
else:
    os.environ[_DISABLE_PLUGINS] = _PLUGINS_SETTING


def is_redacted(tenant: Tenant) -> bool:
    """Is the password the redaction placeholder (meaning "keep the stored one")?"""
    password = tenant.db.password
    return password is not None and password.get_secret_value() == REDACTED


_TYPE_MESSAGES = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "model_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "missing": "is required",
    "literal_error": "must be one of: " + ", ".join(STATUSES),
    "extra_forbidden": "is not a known field",
}


def _path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else part
    return path


def _message(error: Any, path: str) -> str:
    kind = error["type"]
    if kind == "redmica_rule":
        return str(error["msg"])
    message = _TYPE_MESSAGES.get(kind, str(error["msg"]))
    value = error.get("input")
    if kind in ("string_type", "int_type") and path not in SECRET_FIELDS:
        message += f" (got {type(value).__name__} {rules.show(value)}"
        if isinstance(value, bool) or value is None:
            message += "; quote the value in YAML"
        message += ")"
    elif kind == "extra_forbidden":
        known = {
            "": "db, s3, property, status, status_message",
            "db": "name, user, password, password_secret, host, port",
            "s3": "bucket, folder",
            "property": "sub_domain, limit_ips, cell, moving_from, language",
        }
        parent, _, key = path.rpartition(".")
        if parent in known:
            # Here, not at the top: only a misspelt key needs it, and every `tenant validate`
            # would pay its import (difflib, heapq).
            import difflib

            fields = known[parent].split(", ")
            close = difflib.get_close_matches(key.lower(), fields, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]!r}?"
            message += f" (known: {known[parent]})"
    return message


def problems_from_validation(error: ValidationError, source: str) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = ["property" if part == "properties" else part for part in item["loc"]]
        path = _path(loc)
        problems.append(Problem(source, path, _message(item, path)))
    return problems


def validate_data(tenant_id: str, data: object, source: str) -> tuple[Tenant | None, list[Problem]]:
    """Validate an already-parsed mapping; every problem is returned, not just the first."""
    problems: list[Problem] = []
    if problem := rules.check_dns_label(tenant_id):
        problems.append(Problem(source, "(tenant id)", problem))
    if not isinstance(data, dict):
        kind = type(data).__name__
        problems.append(
            Problem(
                source, "", f"the document must be a mapping with db, s3 and property, not {kind}"
            )
        )
        return None, problems
    try:
        tenant = Tenant.model_validate(data)
    except ValidationError as exc:
        return None, problems + problems_from_validation(exc, source)
    return (None if problems else tenant), problems


def parse_tenant_bytes(
    tenant_id: str, raw: bytes, source: str
) -> tuple[Tenant | None, list[Problem]]:
    """Parse and validate one document. Never raises: any failure is a problem of this document,
    so one bad object can never stop a reader of the whole bucket."""
    try:
        return _parse_tenant_bytes(tenant_id, raw, source)
    except Exception as exc:
        return None, [Problem(source, "", f"cannot be read ({type(exc).__name__})")]


def _parse_tenant_bytes(
    tenant_id: str, raw: bytes, source: str
) -> tuple[Tenant | None, list[Problem]]:
    data, problems = load_document(raw, source)
    if problems:
        id_problem = rules.check_dns_label(tenant_id)
        if id_problem:
            problems.insert(0, Problem(source, "(tenant id)", id_problem))
        return None, problems
    return validate_data(tenant_id, data, source)


def parse_tenant(tenant_id: str, raw: bytes, source: str) -> Tenant:
    tenant, problems = parse_tenant_bytes(tenant_id, raw, source)
    if tenant is None:
        raise ValidationFailed(problems)
    return tenant


@dataclass(frozen=True)
class Entry:
    """A tenant with its id and where it came from (a file, an S3 key), for cross-checks."""

    tenant_id: str
    source: str
    tenant: Tenant


# The values no two tenants may share (unique_values below), as hints name them.
UNIQUE_FIELDS = (
    "sub_domain, db.name, db.user (with its rotation twin), db.password_secret and s3 bucket+folder"
)


def unique_values(tenant: Tenant) -> list[tuple[str, object, str]]:
    """(field, value, value as shown) of every value that must be unique across tenants."""
    return [
        (
            "property.sub_domain",
            tenant.properties.sub_domain,
            rules.show(tenant.properties.sub_domain),
        ),
        ("db.name", tenant.db.name, rules.show(tenant.db.name)),
        (
            "s3.folder",
            (tenant.s3.bucket, tenant.s3.folder),
            f"s3://{tenant.s3.bucket}/{tenant.s3.folder}",
        ),
        # A shared role would open one tenant's database with another's credentials; the
        # rotation twin counts too, so `acme_2` cannot be given to a second tenant.
        *(
            ("db.user", role, f"role {rules.show(role)}")
            for role in sorted(rules.login_pair(tenant.db.user))
        ),
        # A shared secret would give one tenant another's database password.
        *(
            [
                (
                    "db.password_secret",
                    canonical_reference(tenant.db.password_secret),
                    f"secret {rules.show(tenant.db.password_secret)}",
                )
            ]
            if tenant.db.password_secret is not None
            else []
        ),
    ]


def conflicts_with(candidate: Entry, others: Iterable[Entry]) -> list[Problem]:
    """What in `candidate` is already used by one of `others` (reported on the candidate)."""
    owners: dict[tuple[str, object], Entry] = {}
    for other in sorted(others, key=lambda e: e.tenant_id):
        for field, value, _ in unique_values(other.tenant):
            owners.setdefault((field, value), other)
    problems = []
    told: set[tuple[str, str]] = set()  # a role and its twin: one problem, not two
    for field, value, shown in unique_values(candidate.tenant):
        owner = owners.get((field, value))
        if owner is not None and (field, owner.tenant_id) not in told:
            told.add((field, owner.tenant_id))
            problems.append(
                Problem(
                    candidate.source,
                    field,
                    f"{shown} is already used by tenant {owner.tenant_id!r} ({owner.source})",
                )
            )
    return problems


def find_conflicts(entries: Iterable[Entry]) -> list[Problem]:
    """Across tenants, the UNIQUE_FIELDS must be unique."""
    problems: list[Problem] = []
    owners: dict[tuple[str, object], Entry] = {}
    told: set[tuple[str, str, str]] = set()
    for entry in sorted(entries, key=lambda e: (e.tenant_id, e.source)):
        for field, value, shown in unique_values(entry.tenant):
            owner = owners.setdefault((field, value), entry)
            if owner is not entry and (entry.source, field, owner.source) not in told:
                told.add((entry.source, field, owner.source))
                if owner.tenant_id == entry.tenant_id:
                    other = f"another document of tenant {owner.tenant_id!r} ({owner.source})"
                else:
                    other = f"tenant {owner.tenant_id!r} ({owner.source})"
                problems.append(Problem(entry.source, field, f"{shown} is already used by {other}"))
    return problems


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: object
    new: object

    def describe(self) -> str:
        if self.field in SECRET_FIELDS:
            return f"{self.field}: changed (secret, not shown)"
        if self.old is None:
            return f"{self.field}: added {self.new!r}"
        if self.new is None:
            return f"{self.field}: removed (was {self.old!r})"
        return f"{self.field}: {self.old!r} -> {self.new!r}"

    def as_dict(self) -> JSONObject:
        if self.field in SECRET_FIELDS:
            return {"field": self.field, "old": REDACTED, "new": REDACTED}
        return {"field": self.field, "old": self.old, "new": self.new}


def _flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(value, path))
        else:
            flat[path] = value
    return flat


def diff(old: Tenant, new: Tenant) -> list[FieldChange]:
    """Field-level changes from old to new; the password is compared but never carried."""
    before = _flatten(old.to_document(redact=False))
    after = _flatten(new.to_document(redact=False))
    changes = []
    for field in sorted(set(before) | set(after)):
        if before.get(field) != after.get(field):
            if field in SECRET_FIELDS:
                changes.append(FieldChange(field, REDACTED, REDACTED))
            else:
                changes.append(FieldChange(field, before.get(field), after.get(field)))
    return changes

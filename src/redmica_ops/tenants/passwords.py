"""Database passwords kept in AWS Secrets Manager or SSM Parameter Store (db.password_secret).

A tenant document may name a secret instead of holding the password, so the password never
sits in the config bucket. Whoever builds the tenant's environment (`entrypoint serve`,
`entrypoint run-tenant`, the local executor) resolves it with its own role, which the stack
scopes to one prefix of secrets and parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from redmica_ops.errors import NotFound, Problem, RedmicaError, UsageError
from redmica_ops.tenants import rules

if TYPE_CHECKING:
    from redmica_ops.tenants.model import Entry, Tenant

_PARTITION = r"arn:aws(?:-[a-z]+)*"
SECRETS_MANAGER_ARN = re.compile(
    _PARTITION + r":secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}"
)
SSM_PARAMETER_ARN = re.compile(_PARTITION + r":ssm:[a-z0-9-]+:\d{12}:parameter/[A-Za-z0-9_./-]+")
SSM_PARAMETER_NAME = re.compile(r"/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*")
MAX_PASSWORD = 1024


def check_reference(value: str) -> str | None:
    """A Secrets Manager secret ARN, an SSM parameter ARN, or an SSM parameter name (/a/b)."""
    if (
        SECRETS_MANAGER_ARN.fullmatch(value)
        or SSM_PARAMETER_ARN.fullmatch(value)
        or (SSM_PARAMETER_NAME.fullmatch(value) and len(value) <= 2048)
    ):
        return None
    return (
        f"{rules.show(value)} is not a Secrets Manager secret ARN or an SSM parameter name "
        "(e.g. /redmica/tenants/acme/db-password)"
    )


def is_secrets_manager(reference: str) -> bool:
    return ":secretsmanager:" in reference


def reference_name(reference: str) -> str:
    """The secret's or parameter's name as an IAM resource ARN ends (`secret:NAME`,
    `parameter/NAME`): an SSM name `/a/b` is `parameter/a/b` there."""
    if is_secrets_manager(reference):
        return reference.split(":secret:", 1)[1]
    if reference.startswith("arn:"):
        return reference.split(":parameter/", 1)[1]
    return reference.lstrip("/")


def canonical_reference(reference: str) -> str:
    """One text per secret, however it is written (an SSM name or its ARN): the unique value."""
    kind = "secretsmanager" if is_secrets_manager(reference) else "ssm"
    return f"{kind}:{reference_name(reference)}"


def check_scope(reference: str, prefix: str) -> str | None:
    """A reference outside `tenant_secrets_prefix` names a secret the app task role cannot read
    (the stack and `iam-policy` grant only `secret:<prefix>*` and `parameter/<prefix>*`)."""
    if reference_name(reference).startswith(prefix):
        return None
    example = f"arn:aws:secretsmanager:REGION:ACCOUNT:secret:{prefix}... or /{prefix}..."
    return (
        f"{rules.show(reference)} is outside tenant_secrets_prefix {prefix!r}: the app task "
        f"cannot read it (use {example})"
    )


class _Clients(Protocol):
    def client(self, service: str) -> object: ...


class SecretReader(Protocol):
    """What reads a db.password_secret reference (PasswordResolver, or a test's stand-in)."""

    def resolve(self, reference: str) -> str: ...


def password_of(tenant: Tenant, reader: SecretReader | None) -> str:
    """The tenant's database password: from its document, or read from the secret it names."""
    if tenant.db.password is not None:
        return tenant.db.password.get_secret_value()
    reference = tenant.db.password_secret
    if reference is None or reader is None:
        raise UsageError(
            "this tenant's password is in a secret (db.password_secret) and nothing here can "
            "read it",
            "give the caller a tenants.passwords.PasswordResolver",
        )
    return reader.resolve(reference)


def _password_from(text: str, reference: str) -> str:
    # RDS-managed and rotated secrets are JSON with a "password" field; a plain string is
    # the password itself.
    password = text
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            value = data.get("password")
            if not isinstance(value, str):
                raise RedmicaError(
                    f'secret {reference} is JSON without a string "password" field',
                    "store the password itself, or JSON with a password field",
                )
            password = value
    from redmica_ops.tenants.model import REDACTED

    if password == REDACTED:
        # What a redacted copy of a document or secret shows: storing it back would make the
        # mask everyone's password.
        raise RedmicaError(
            f"secret {reference} holds the redaction marker {REDACTED}, not a password",
            "store the real database password in it",
        )
    if not password or rules.has_control_character(password) or len(password) > MAX_PASSWORD:
        # Never quote the value.
        raise RedmicaError(
            f"secret {reference} does not hold a usable password (empty, too long, or with "
            "control characters)",
            "store the database password as the secret's value",
        )
    return password


@dataclass
class PasswordResolver:
    """Resolves references with the caller's AWS role; each reference is fetched once."""

    clients: _Clients
    _cache: dict[str, str] = field(default_factory=dict)

    def resolve(self, reference: str) -> str:
        if reference in self._cache:
            return self._cache[reference]
        from redmica_ops.aws import error_code, translate

        try:
            if is_secrets_manager(reference):
                client = self.clients.client("secretsmanager")
                answer = client.get_secret_value(SecretId=reference)  # type: ignore[attr-defined]
                text = answer.get("SecretString")
                if text is None:
                    raise RedmicaError(
                        f"secret {reference} is binary", "store the password as a string"
                    )
            else:
                client = self.clients.client("ssm")
                # GetParameter takes a name or an ARN as it is.
                answer = client.get_parameter(  # type: ignore[attr-defined]
                    Name=reference, WithDecryption=True
                )
                parameter = answer["Parameter"]
                if parameter.get("Type") != "SecureString":
                    # A String parameter is stored and shown in clear text to anyone who may
                    # describe parameters: not a place for a password.
                    raise RedmicaError(
                        f"parameter {reference} is of type {parameter.get('Type')}, not "
                        "SecureString",
                        "store the password as a SecureString parameter (put-parameter "
                        "--type SecureString --overwrite)",
                    )
                text = parameter["Value"]
        except RedmicaError:
            raise
        except Exception as exc:
            if error_code(exc) in ("ResourceNotFoundException", "ParameterNotFound"):
                raise NotFound(
                    f"secret {reference} does not exist",
                    "create it, or fix db.password_secret in the tenant's document",
                ) from None
            translated = translate(exc, f"reading secret {reference}")
            if translated is None:
                raise
            raise translated from None
        password = _password_from(str(text), reference)
        self._cache[reference] = password
        return password

    def resolve_entries(
        self, entries: Iterable[Entry]
    ) -> tuple[dict[str, str], dict[str, list[Problem]]]:
        """Passwords of the tenants that name a secret; a secret that cannot be read puts its
        tenant aside (named, with why) instead of taking every tenant down."""
        found: dict[str, str] = {}
        failed: dict[str, list[Problem]] = {}
        for entry in entries:
            reference = entry.tenant.db.password_secret
            if reference is None:
                continue
            try:
                found[entry.tenant_id] = self.resolve(reference)
            except RedmicaError as error:
                failed[entry.tenant_id] = [
                    Problem(entry.source, "db.password_secret", error.message)
                ]
        return found, failed

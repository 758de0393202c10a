"""Database passwords kept in AWS Secrets Manager or SSM Parameter Store (db.password_secret).

A tenant document may name a secret instead of holding the password, so the password never
sits in the config bucket. Whoever builds the tenant's environment (`entrypoint serve`,
`entrypoint run-tenant`, the local executor) resolves it with its own role, which the stack
scopes to one prefix of secrets and parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from redmica_ops.aws import error_code, translate
from redmica_ops.errors import NotFound, Problem, RedmicaError, UsageError
from redmica_ops.tenants import rules
from redmica_ops.tenants.model import REDACTED, Entry, Tenant
from redmica_ops.tenants.references import MAX_PASSWORD, is_secrets_manager

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient


class _Clients(Protocol):
    """The two clients a resolver reads with (aws.ClientFactory, or a test's stand-in)."""

    def secretsmanager(self) -> SecretsManagerClient: ...

    def ssm(self) -> SSMClient: ...


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
        try:
            if is_secrets_manager(reference):
                secret = self.clients.secretsmanager().get_secret_value(SecretId=reference)
                text = secret.get("SecretString")
                if text is None:
                    raise RedmicaError(
                        f"secret {reference} is binary", "store the password as a string"
                    )
            else:
                # GetParameter takes a name or an ARN as it is.
                answer = self.clients.ssm().get_parameter(Name=reference, WithDecryption=True)
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

"""The pure syntax of db.password_secret references: which texts name a secret, and its name.

A leaf module (only `rules`): the tenant model checks a reference with it, and the secret reader
in `passwords.py` (which needs AWS) builds on it, so the model never imports AWS code.
"""

from __future__ import annotations

import re

from redmica_ops.tenants import rules

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

"""What only the command line reads: stdin, and a secret line from it."""

from __future__ import annotations

import sys
from typing import BinaryIO

from pydantic import SecretStr

from redmica_ops.errors import UsageError
from redmica_ops.tenants.inputs import read_password


def stdin_bytes() -> BinaryIO:
    return sys.stdin.buffer


def read_secret_line(what: str) -> SecretStr:
    """A secret from stdin's first line (--admin-password-stdin); empty is a usage error."""
    try:
        value = read_password(stdin_bytes())
    except UsageError:
        value = ""
    if not value:
        raise UsageError(
            f"--admin-password-stdin: no {what} on stdin; nothing was written",
            "pipe it in, e.g. `pass show redmine/acme-admin | redmica tenant provision acme "
            "--admin-password-stdin`",
        )
    return SecretStr(value)

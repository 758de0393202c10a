"""Per-tenant secret_key_base, derived from the one master secret at serve time.

With one key for every tenant, a session cookie or signed message made by tenant A verifies on
tenant B. Each tenant instead gets HKDF-SHA256(master, info=tenant id and incarnation) (RFC
5869), computed when its vhost or its migration environment is built; the master itself never
reaches a tenant's process, so one tenant cannot compute another's key. The incarnation
(tenants/incarnations.py) changes when a purged id is given to a new customer, so the new one
never shares the old one's key; a tenant without one keeps the key derived from its id alone.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from redmica_ops.errors import UsageError

# The task definition passes the master under the name Rails reads; each tenant's process gets
# its derived key under the same name (SetEnv / run-tenant), and Apache never sees the master.
MASTER_SECRET_ENV = "SECRET_KEY_BASE"  # noqa: S105 (a variable name, not a secret)
# Fixed, public: it only separates this use of the master from any other.
SALT = b"redmica-ops/secret_key_base/v1"
KEY_BYTES = 64  # what `rails secret` makes: 128 hex characters
MIN_MASTER_LENGTH = 32


def hkdf_sha256(key: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 extract-then-expand with HMAC-SHA256."""
    if not 0 < length <= 255 * 32:
        raise ValueError("HKDF-SHA256 output length must be 1..8160 bytes")
    prk = hmac.new(salt or bytes(32), key, hashlib.sha256).digest()
    output = b""
    block = b""
    counter = 1
    while len(output) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        output += block
        counter += 1
    return output[:length]


def check_master(master: str) -> None:
    # Never quote the value: only its length is safe to say.
    if len(master) < MIN_MASTER_LENGTH:
        raise UsageError(
            f"{MASTER_SECRET_ENV} is too short ({len(master)} characters; at least "
            f"{MIN_MASTER_LENGTH})",
            "generate one with `openssl rand -hex 64` and store it in the SSM parameter",
        )


def tenant_secret_key_base(master: str, tenant_id: str, incarnation: str | None = None) -> str:
    """The tenant's secret_key_base: 128 hex characters, stable for one master, tenant and
    incarnation (None: a tenant from before incarnations, whose key must not change)."""
    check_master(master)
    info = f"tenant:{tenant_id}".encode()
    if incarnation is not None:
        info += f"/incarnation:{incarnation}".encode()
    return hkdf_sha256(master.encode(), SALT, info, KEY_BYTES).hex()


def master_secret(environ: Mapping[str, str]) -> str | None:
    value = environ.get(MASTER_SECRET_ENV)
    if value is None or value == "":
        return None
    check_master(value)
    return value


def without_master(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment to hand to Apache: everything but the master secret, which every
    Passenger process would otherwise inherit."""
    return {name: value for name, value in environ.items() if name != MASTER_SECRET_ENV}

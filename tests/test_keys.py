"""Per-tenant secret_key_base: HKDF-SHA256 per RFC 5869, stable, distinct, never echoed."""

from __future__ import annotations

import re

import pytest

from redmica_ops.container.keys import (
    hkdf_sha256,
    master_secret,
    tenant_secret_key_base,
    without_master,
)
from redmica_ops.errors import UsageError


def test_hkdf_matches_rfc_5869_test_case_1() -> None:
    okm = hkdf_sha256(bytes([0x0B] * 22), bytes(range(0x00, 0x0D)), bytes(range(0xF0, 0xFA)), 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_matches_rfc_5869_test_case_3_empty_salt_and_info() -> None:
    okm = hkdf_sha256(bytes([0x0B] * 22), b"", b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_each_tenant_gets_its_own_stable_key() -> None:
    master = "0123456789abcdef" * 8
    acme = tenant_secret_key_base(master, "acme")
    assert re.fullmatch(r"[0-9a-f]{128}", acme)
    assert acme == tenant_secret_key_base(master, "acme")
    assert acme != tenant_secret_key_base(master, "acme2")
    assert acme != tenant_secret_key_base("f" * 128, "acme")
    assert master not in acme


def test_a_short_master_is_refused_without_being_quoted() -> None:
    with pytest.raises(UsageError) as caught:
        tenant_secret_key_base("tiny-secret", "acme")
    assert "tiny-secret" not in str(caught.value) + (caught.value.hint or "")
    assert master_secret({}) is None and master_secret({"SECRET_KEY_BASE": ""}) is None


def test_apache_gets_everything_but_the_master() -> None:
    env = {
        "SECRET_KEY_BASE": "x" * 64,
        "PATH": "/bin",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2",
    }
    assert without_master(env) == {"PATH": "/bin", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2"}


def test_the_images_middleware_removes_every_secret_redmica_sets() -> None:
    import re as regex

    from redmica_ops.container.templates import template_text
    from redmica_ops.tenants.environment import ENV_NAMES, SECRET_ENV_NAMES

    ruby = template_text("redmine/initializers/redmica_ops.rb")
    names = set(regex.search(r"NAMES = %w\[([^\]]*)\]", ruby).group(1).split())  # type: ignore[union-attr]
    prefixes = regex.search(r"PREFIXES = %w\[([^\]]*)\]", ruby).group(1).split()  # type: ignore[union-attr]
    assert names >= SECRET_ENV_NAMES
    # Every RAILS_DB_* variable (the database's whole address, not only its password).
    assert {n for n in ENV_NAMES if n.startswith("RAILS_DB")} <= {
        n for n in ENV_NAMES if any(n.startswith(p) for p in prefixes)
    }
    assert "Rails.application.config.secret_key_base = ENV.fetch('SECRET_KEY_BASE')" in ruby


def test_s3_yml_has_no_access_key_lines() -> None:
    """The plugin passes nil keys to the AWS SDK, which then uses the task role's credentials."""
    from redmica_ops.container.vhosts import render_redmine_config

    text = render_redmine_config("s3.yml")
    assert "access_key_id" not in text and "secret_access_key" not in text

"""Every rule of the tenant model, good and bad side, with the message the operator sees."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from redmica_ops.tenants.model import (
    REDACTED,
    Entry,
    Tenant,
    diff,
    find_conflicts,
    parse_tenant,
    parse_tenant_bytes,
    validate_data,
)
from tests.conftest import CANARY_PASSWORD, tenant_document


def problems_for(doc: Any, tenant_id: str = "acme") -> list[str]:
    tenant, problems = validate_data(tenant_id, doc, "acme.yaml")
    assert (tenant is None) == bool(problems)
    return [str(p) for p in problems]


def test_good_document_round_trips() -> None:
    doc = tenant_document("acme", db__host="db.example.com", db__port=5433)
    tenant, problems = validate_data("acme", doc, "acme.yaml")
    assert problems == []
    assert tenant is not None
    assert tenant.to_document(redact=False) == doc
    again = parse_tenant("acme", tenant.to_yaml(redact=False).encode(), "x")
    assert again == tenant


def test_optional_fields_may_be_absent() -> None:
    doc = tenant_document("acme", property__limit_ips=None)
    tenant, problems = validate_data("acme", doc, "acme.yaml")
    assert problems == [] and tenant is not None
    assert tenant.properties.limit_ips is None
    assert tenant.db.host is None and tenant.db.port is None


@pytest.mark.parametrize(
    ("tenant_id", "ok"),
    [
        ("acme", True),
        ("a", True),
        ("a-b-1", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("Acme", False),
        ("-acme", False),
        ("acme-", False),
        ("ac_me", False),
        ("ac.me", False),
        ("", False),
    ],
)
def test_tenant_id_is_a_dns_label(tenant_id: str, ok: bool) -> None:
    problems = problems_for(tenant_document("acme"), tenant_id)
    assert (problems == []) == ok
    if not ok:
        assert "(tenant id):" in problems[0] and "is not a DNS label" in problems[0]


BAD_FIELDS: list[tuple[str, Any, str]] = [
    ("property__sub_domain", "Acme!", "property.sub_domain: 'Acme!' is not a DNS label"),
    ("property__sub_domain", "a" * 64, "is not a DNS label"),
    ("property__sub_domain", "-x", "is not a DNS label"),
    ("property__sub_domain", False, "property.sub_domain: must be a string (got bool False; quote"),
    ("db__name", "Acme", "db.name: 'Acme' is not a PostgreSQL identifier"),
    ("db__name", "1acme", "db.name: '1acme' is not a PostgreSQL identifier"),
    ("db__name", "a" * 64, "is not a PostgreSQL identifier"),
    ("db__name", "acme-db", "is not a PostgreSQL identifier"),
    ("db__user", "ac me", "db.user: 'ac me' is not a PostgreSQL identifier"),
    ("db__user", 7, "db.user: must be a string (got int 7)"),
    ("db__password", "", "db.password: must not be empty"),
    ("db__password", "a\nb", "db.password: must not contain control characters"),
    ("db__password", "a\tb", "db.password: must not contain control characters"),
    ("db__password", "a\x7fb", "db.password: must not contain control characters"),
    ("db__password", 12345, "db.password: must be a string"),
    ("db__port", 0, "db.port: 0 is not a port number (1..65535)"),
    ("db__port", 65536, "db.port: 65536 is not a port number"),
    ("db__port", "5432", "db.port: must be an integer (got str '5432')"),
    ("db__port", True, "db.port: must be an integer"),
    ("db__host", "bad host", "db.host: 'bad host' is not a host name or IP address"),
    ("db__host", "a..b", "is not a host name or IP address"),
    ("db__host", "-a.example.com", "is not a host name or IP address"),
    ("s3__bucket", "ab", "s3.bucket: 'ab' is not a valid S3 bucket name: must be 3-63"),
    ("s3__bucket", "My_Bucket", "may hold only a-z, 0-9"),
    ("s3__bucket", "a..b", "must not contain two adjacent periods"),
    ("s3__bucket", "192.168.1.1", "must not be formatted as an IP address"),
    ("s3__bucket", "xn--bucket", "reserved prefix"),
    ("s3__bucket", "bucket-s3alias", "reserved suffix"),
    ("s3__bucket", "bucket-", "must start and end with a letter or digit"),
    ("s3__folder", "", "s3.folder: '' is not a valid folder: must not be empty"),
    ("s3__folder", "/abs", "must be a relative path"),
    ("s3__folder", "a/../b", "must not contain a '..' segment"),
    ("s3__folder", "..", "must not contain a '..' segment"),
    ("s3__folder", "a//b", "must not contain empty or '.' segments"),
    ("s3__folder", "a/./b", "must not contain empty or '.' segments"),
    ("s3__folder", "a/", "must not end with '/'"),
    ("s3__folder", "a\nb", "must not contain control characters"),
    ("s3__folder", "a\\b", "must use '/' as separator"),
    ("property__limit_ips", [], "property.limit_ips: must not be empty"),
    ("property__limit_ips", "10.0.0.0/8", "property.limit_ips: must be a list"),
    (
        "property__limit_ips",
        ["10.0.0.1/8"],
        "property.limit_ips[0]: '10.0.0.1/8' has host bits set; did you mean '10.0.0.0/8'?",
    ),
    ("property__limit_ips", ["2001:db8::1/32"], "has host bits set; did you mean '2001:db8::/32'?"),
    (
        "property__limit_ips",
        ["10.0.0.0/8", "nope"],
        "property.limit_ips[1]: 'nope' is not an IPv4/IPv6 address or CIDR network",
    ),
    ("property__limit_ips", ["300.1.1.1"], "is not an IPv4/IPv6 address"),
    ("property__limit_ips", ["10.0.0.0/33"], "is not an IPv4/IPv6 address or CIDR network"),
    ("property__limit_ips", ["fe80::1%eth0"], "is not an IPv4/IPv6 address"),
    ("property__limit_ips", [" 10.0.0.1"], "is not an IPv4/IPv6 address"),
    ("property__limit_ips", ["10.0.0.1", "10.0.0.1"], "'10.0.0.1' is listed twice"),
    ("property__limit_ips", [8], "property.limit_ips[0]: must be a string"),
]


@pytest.mark.parametrize(("field", "value", "expected"), BAD_FIELDS)
def test_field_rules(field: str, value: Any, expected: str) -> None:
    problems = problems_for(tenant_document("acme", **{field: value}))
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("acme.yaml: ") for p in problems)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("db.example.com", True),
        ("10.0.0.5", True),
        ("::1", True),
        ("localhost", True),
        ("db.example.com.", True),
        ("a" * 64 + ".com", False),
        ("db_1.example.com", False),
    ],
)
def test_db_host_accepts_hostnames_and_ips(value: str, ok: bool) -> None:
    assert (problems_for(tenant_document("acme", db__host=value)) == []) == ok


@pytest.mark.parametrize(
    "value", ["203.0.113.7", "192.168.0.0/24", "2001:db8::/32", "::1", "10.0.0.0/8", "0.0.0.0/0"]
)
def test_limit_ips_accepts_addresses_and_networks(value: str) -> None:
    assert problems_for(tenant_document("acme", property__limit_ips=[value])) == []


def test_missing_and_unknown_fields_are_all_reported() -> None:
    doc = tenant_document("acme")
    del doc["db"]["user"]
    del doc["s3"]
    doc["db"]["pasword"] = "typo"
    doc["extra"] = 1
    problems = problems_for(doc)
    assert "acme.yaml: db.user: is required" in problems
    assert "acme.yaml: s3: is required" in problems
    assert any(p.startswith("acme.yaml: db.pasword: is not a known field") for p in problems)
    assert any(p.startswith("acme.yaml: extra: is not a known field") for p in problems)


@pytest.mark.parametrize(
    ("section", "typo", "meant"),
    [
        ("db", "pasword", "password"),
        ("s3", "foldr", "folder"),
        ("property", "subdomain", "sub_domain"),
        ("property", "limit_ip", "limit_ips"),
        ("", "propery", "property"),
    ],
)
def test_a_mistyped_key_suggests_the_closest_known_one(section: str, typo: str, meant: str) -> None:
    doc = tenant_document("acme")
    (doc[section] if section else doc)[typo] = "x"
    field = f"{section}.{typo}" if section else typo
    problems = problems_for(doc)
    assert any(
        p.startswith(f"acme.yaml: {field}: is not a known field; did you mean {meant!r}? (known: ")
        for p in problems
    ), problems


def test_an_unrelated_key_gets_no_guess() -> None:
    doc = tenant_document("acme")
    doc["db"]["colour"] = "blue"
    [problem] = [p for p in problems_for(doc) if "db.colour" in p]
    assert "did you mean" not in problem
    assert "(known: name, user, password, password_secret, host, port)" in problem


@pytest.mark.parametrize("doc", [[], "text", 5, None])
def test_document_must_be_a_mapping(doc: Any) -> None:
    problems = problems_for(doc)
    assert any("the document must be a mapping" in p for p in problems)


def test_section_must_be_a_mapping() -> None:
    doc = tenant_document("acme")
    doc["db"] = "postgres://x"
    assert "acme.yaml: db: must be a mapping" in problems_for(doc)


def test_password_is_never_in_any_message_or_repr() -> None:
    doc = tenant_document("acme", password=CANARY_PASSWORD + "\n", db__port=0)
    problems = problems_for(doc)
    assert not any(CANARY_PASSWORD in p for p in problems)
    tenant, _ = validate_data("acme", tenant_document("acme"), "x")
    assert tenant is not None
    assert CANARY_PASSWORD not in repr(tenant) and CANARY_PASSWORD not in str(tenant)
    assert CANARY_PASSWORD not in tenant.to_yaml()
    assert REDACTED in tenant.to_yaml()
    assert CANARY_PASSWORD in tenant.to_yaml(redact=False)


def _tenant(name: str, **overrides: Any) -> Tenant:
    tenant, problems = validate_data(name, tenant_document(name, **overrides), f"{name}.yaml")
    assert tenant is not None, problems
    return tenant


def test_uniqueness_across_tenants() -> None:
    entries = [
        Entry("acme", "acme.yaml", _tenant("acme")),
        Entry(
            "beta",
            "beta.yaml",
            _tenant("beta", property__sub_domain="acme", db__name="acme", s3__folder="acme"),
        ),
        Entry(
            "gamma", "gamma.yaml", _tenant("gamma", s3__folder="acme", s3__bucket="other-bucket")
        ),
    ]
    messages = [str(p) for p in find_conflicts(entries)]
    assert messages == [
        "beta.yaml: property.sub_domain: 'acme' is already used by tenant 'acme' (acme.yaml)",
        "beta.yaml: db.name: 'acme' is already used by tenant 'acme' (acme.yaml)",
        "beta.yaml: s3.folder: s3://redmica-attachments/acme is already used by tenant "
        "'acme' (acme.yaml)",
    ]  # gamma's folder is in another bucket: allowed


def test_diff_names_fields_and_hides_the_password() -> None:
    old = _tenant("acme")
    new = _tenant("acme", db__port=5433, property__limit_ips=None).with_password(
        SecretStr("another-secret")
    )
    changes = diff(old, new)
    described = [c.describe() for c in changes]
    assert described == [
        "db.password: changed (secret, not shown)",
        "db.port: added 5433",
        "property.limit_ips: removed (was ['192.168.0.0/24'])",
    ]
    dumped = repr([c.as_dict() for c in changes]) + repr(changes)
    assert "another-secret" not in dumped and CANARY_PASSWORD not in dumped


def test_yaml_parse_entry_point_reports_yaml_and_model_problems() -> None:
    raw = yaml.safe_dump(tenant_document("acme", db__port=0)).encode()
    tenant, problems = parse_tenant_bytes("Bad!", raw, "f.yaml")
    assert tenant is None
    assert [p.field for p in problems] == ["(tenant id)", "db.port"]


PLUGIN_PROBE = """
import os, sys
import pydantic.plugin._loader as loader

class Spy:  # a pydantic plugin: would see every document the model validates
    def new_schema_validator(self, *args, **kwargs):
        return None, None, None

loader._plugins = {"spy": Spy()}  # as if found through an entry point
import pydantic
import redmica_ops.tenants.model as model
models = [m for m in vars(model).values() if isinstance(m, type)
          and issubclass(m, pydantic.BaseModel) and m.__module__ == model.__name__]
kinds = sorted({type(m.__pydantic_validator__).__name__ for m in models})
print(len(models), ",".join(kinds), os.environ.get("PYDANTIC_DISABLE_PLUGINS"))
"""


@pytest.mark.parametrize("setting", [None, "other_plugin"])
def test_no_pydantic_plugin_sees_tenant_documents(setting: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if setting is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = setting
    result = subprocess.run(
        [sys.executable, "-c", PLUGIN_PROBE], env=env, capture_output=True, text=True, check=True
    )
    # Every model of the module (Tenant, Database, Storage, ...) has a plain validator (no
    # plugin hook), and the caller's environment is as it was.
    count, kinds, after = result.stdout.split()
    assert int(count) >= 4
    assert (kinds, after) == ("SchemaValidator", str(setting))

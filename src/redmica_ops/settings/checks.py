"""The validators of single settings: each takes a value and returns its problem, or None.

`Settings` (in `__init__.py`) names one per field; `load_settings` runs it on every value that
is not a default. Pure: only the naming rules and the `cells` syntax.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from redmica_ops.cells.syntax import parse_cell_entry
from redmica_ops.tenants import rules


def check_prefix(value: str) -> str | None:
    if value and not value.endswith("/"):
        return f"{rules.show(value)} must be empty or end with '/'"
    if value.startswith("/") or rules.has_control_character(value) or ".." in value.split("/"):
        return f"{rules.show(value)} must be a relative key prefix without '..'"
    return None


def check_archive_prefix(value: str) -> str | None:
    # Empty would archive to <tenant>/..., where a tenant's own folder usually is.
    return f"{rules.show(value)} must not be empty" if not value else check_prefix(value)


def check_secrets_prefix(value: str) -> str | None:
    # Empty would scope the roles' GetSecretValue / GetParameter to every secret and parameter
    # of the account (`secret:*`, `parameter/*`); the stack's TenantSecretsPrefix refuses it too.
    if not value:
        return "must not be empty (it scopes who may read tenant passwords): e.g. redmica/tenants/"
    return check_prefix(value)


def check_domain(value: str) -> str | None:
    if "." not in value or rules.check_hostname(value) or rules.is_ip_address(value):
        return f"{rules.show(value)} is not a DNS domain name (e.g. redmine.example.com)"
    canonical = value.rstrip(".").lower()
    if value != canonical:
        # Apache matches ServerName against the Host header case-insensitively, but a
        # trailing dot or upper case here would silently mismatch what tenants are told.
        return f"{rules.show(value)} must be lower case without a trailing dot: use {canonical!r}"
    return None


def check_url(value: str) -> str | None:
    if not value.startswith(("http://", "https://")):
        return f"{rules.show(value)} is not an http(s) URL"
    return None


def check_region(value: str) -> str | None:
    if not rules.DNS_LABEL.fullmatch(value):
        return f"{rules.show(value)} is not an AWS region name (e.g. eu-west-1)"
    return None


def check_abs_path(value: str) -> str | None:
    if not value.startswith("/") or rules.has_control_character(value) or "/../" in f"{value}/":
        return f"{rules.show(value)} must be an absolute path without '..' or control characters"
    return None


def check_db_host(value: str) -> str | None:
    if value.startswith("/"):  # a Unix-socket directory, which only this setting may name
        return check_abs_path(value)
    return rules.check_hostname(value)


def split_endpoint(value: str) -> tuple[str, int] | None:
    """`HOST[:PORT]` (`[v6]:PORT` for an IPv6 address) -> (host, port); None if malformed."""
    host, port = value, rules.DEFAULT_PG_PORT
    if value.startswith("["):
        inside, _, rest = value[1:].partition("]")
        host = inside
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, number = value.partition(":")
        if not number.isdigit():
            return None
        port = int(number)
    if not 1 <= port <= 65535 or rules.check_hostname(host):
        return None
    return host.lower(), port


def check_endpoints(values: tuple[str, ...]) -> str | None:
    for value in values:
        if split_endpoint(value) is None:
            return f"{rules.show(value)} is not HOST[:PORT] (e.g. db2.internal:5432)"
    return None


def positive(limit: int) -> Callable[[int], str | None]:
    def check(value: int) -> str | None:
        if not 1 <= value <= limit:
            return f"{value} must be between 1 and {limit}"
        return None

    return check


def non_negative(value: int) -> str | None:
    if value < 0:
        return f"{value} must not be negative"
    return None


def positive_float(value: float) -> str | None:
    if not value > 0:
        return f"{value} must be greater than 0"
    return None


def check_words(pattern: str, what: str) -> Callable[[tuple[str, ...]], str | None]:
    compiled = re.compile(pattern)

    def check(values: tuple[str, ...]) -> str | None:
        bad = [v for v in values if not compiled.fullmatch(v)]
        if bad:
            return f"{rules.show(bad[0])} is not {what}"
        return None

    return check


def check_env_pairs(values: tuple[str, ...]) -> str | None:
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return f"{rules.show(item)} is not NAME=VALUE"
        if rules.has_control_character(value):
            return f"the value of {name} has control characters"
    return None


def check_networks(values: tuple[str, ...]) -> str | None:
    for value in values:
        if problem := rules.check_ip_or_network(value):
            return problem
    return None


def check_launch_type(value: str) -> str | None:
    if value not in ("FARGATE", "EC2", "EXTERNAL"):
        return f"{rules.show(value)} is not FARGATE, EC2 or EXTERNAL"
    return None


def check_not_blank(value: str) -> str | None:
    if not value.strip() or rules.has_control_character(value):
        return f"{rules.show(value)} must be non-blank without control characters"
    return None


def check_spawn_method(value: str) -> str | None:
    if value not in ("direct", "smart"):
        return f"{rules.show(value)} is not direct or smart"
    return None


ALLOCATORS = ("glibc", "arena2", "jemalloc")


def check_allocator(value: str) -> str | None:
    if value not in ALLOCATORS:
        return f"{rules.show(value)} is not one of {', '.join(ALLOCATORS)}"
    return None


def share(value: float) -> str | None:
    if not 0 < value <= 1:
        return f"{value} must be greater than 0 and at most 1"
    return None


def check_dns_label(value: str) -> str | None:
    return rules.check_dns_label(value)


def check_zone_id(value: str) -> str | None:
    if not re.fullmatch(r"(/hostedzone/)?[0-9A-Z]{1,32}", value):
        return f"{rules.show(value)} is not a Route 53 hosted zone id"
    return None


_LAMBDA_FUNCTION = re.compile(
    r"(arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:)?[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?"
)


def check_lambda_function(value: str) -> str | None:
    if not _LAMBDA_FUNCTION.fullmatch(value):
        return f"{rules.show(value)} is not a Lambda function name or ARN"
    return None


def check_role_arn(value: str) -> str | None:
    if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", value):
        return f"{rules.show(value)} is not an IAM role ARN"
    return None


def check_cells(values: tuple[str, ...]) -> str | None:
    # Parsed again (typed) by redmica_ops.cells.config; here only the shape is checked.
    seen: set[str] = set()
    for item in values:
        entry, problem = parse_cell_entry(item)
        if problem:
            return problem
        assert entry is not None
        if entry.name in seen:
            return f"cell {entry.name!r} is listed twice"
        seen.add(entry.name)
    return None

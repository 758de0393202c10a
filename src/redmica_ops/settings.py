"""Settings: a flag, else `REDMICA_<NAME>` (or a named alias), else `redmica.toml`, else a default.

Every value remembers where it came from, so `redmica config show` can answer the operator's
first question when something goes to the wrong bucket: "where did that come from?".
"""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from redmica_ops.errors import Problem, UsageError, ValidationFailed
from redmica_ops.tenants import rules

CONFIG_FILE_NAME = "redmica.toml"


def _check_prefix(value: str) -> str | None:
    if value and not value.endswith("/"):
        return f"{rules.show(value)} must be empty or end with '/'"
    if value.startswith("/") or rules.has_control_character(value) or ".." in value.split("/"):
        return f"{rules.show(value)} must be a relative key prefix without '..'"
    return None


def _check_archive_prefix(value: str) -> str | None:
    # Empty would archive to <tenant>/..., where a tenant's own folder usually is.
    return f"{rules.show(value)} must not be empty" if not value else _check_prefix(value)


def _check_secrets_prefix(value: str) -> str | None:
    # Empty would scope the roles' GetSecretValue / GetParameter to every secret and parameter
    # of the account (`secret:*`, `parameter/*`); the stack's TenantSecretsPrefix refuses it too.
    if not value:
        return "must not be empty (it scopes who may read tenant passwords): e.g. redmica/tenants/"
    return _check_prefix(value)


def _check_domain(value: str) -> str | None:
    if "." not in value or rules.check_hostname(value) or rules.is_ip_address(value):
        return f"{rules.show(value)} is not a DNS domain name (e.g. redmine.example.com)"
    canonical = value.rstrip(".").lower()
    if value != canonical:
        # Apache matches ServerName against the Host header case-insensitively, but a
        # trailing dot or upper case here would silently mismatch what tenants are told.
        return f"{rules.show(value)} must be lower case without a trailing dot: use {canonical!r}"
    return None


def _check_url(value: str) -> str | None:
    if not value.startswith(("http://", "https://")):
        return f"{rules.show(value)} is not an http(s) URL"
    return None


def _check_region(value: str) -> str | None:
    if not rules.DNS_LABEL.fullmatch(value):
        return f"{rules.show(value)} is not an AWS region name (e.g. eu-west-1)"
    return None


def _check_abs_path(value: str) -> str | None:
    if not value.startswith("/") or rules.has_control_character(value) or "/../" in f"{value}/":
        return f"{rules.show(value)} must be an absolute path without '..' or control characters"
    return None


def _check_db_host(value: str) -> str | None:
    if value.startswith("/"):  # a Unix-socket directory, which only this setting may name
        return _check_abs_path(value)
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


def _check_endpoints(values: tuple[str, ...]) -> str | None:
    for value in values:
        if split_endpoint(value) is None:
            return f"{rules.show(value)} is not HOST[:PORT] (e.g. db2.internal:5432)"
    return None


def _positive(limit: int) -> Callable[[int], str | None]:
    def check(value: int) -> str | None:
        if not 1 <= value <= limit:
            return f"{value} must be between 1 and {limit}"
        return None

    return check


def _non_negative(value: int) -> str | None:
    if value < 0:
        return f"{value} must not be negative"
    return None


def _positive_float(value: float) -> str | None:
    if not value > 0:
        return f"{value} must be greater than 0"
    return None


def _check_words(pattern: str, what: str) -> Callable[[tuple[str, ...]], str | None]:
    compiled = re.compile(pattern)

    def check(values: tuple[str, ...]) -> str | None:
        bad = [v for v in values if not compiled.fullmatch(v)]
        if bad:
            return f"{rules.show(bad[0])} is not {what}"
        return None

    return check


def _check_env_pairs(values: tuple[str, ...]) -> str | None:
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return f"{rules.show(item)} is not NAME=VALUE"
        if rules.has_control_character(value):
            return f"the value of {name} has control characters"
    return None


def _check_networks(values: tuple[str, ...]) -> str | None:
    for value in values:
        if problem := rules.check_ip_or_network(value):
            return problem
    return None


def _check_launch_type(value: str) -> str | None:
    if value not in ("FARGATE", "EC2", "EXTERNAL"):
        return f"{rules.show(value)} is not FARGATE, EC2 or EXTERNAL"
    return None


def _check_not_blank(value: str) -> str | None:
    if not value.strip() or rules.has_control_character(value):
        return f"{rules.show(value)} must be non-blank without control characters"
    return None


def _check_spawn_method(value: str) -> str | None:
    if value not in ("direct", "smart"):
        return f"{rules.show(value)} is not direct or smart"
    return None


def _share(value: float) -> str | None:
    if not 0 < value <= 1:
        return f"{value} must be greater than 0 and at most 1"
    return None


def _check_dns_label(value: str) -> str | None:
    return rules.check_dns_label(value)


def _check_zone_id(value: str) -> str | None:
    if not re.fullmatch(r"(/hostedzone/)?[0-9A-Z]{1,32}", value):
        return f"{rules.show(value)} is not a Route 53 hosted zone id"
    return None


_LAMBDA_FUNCTION = re.compile(
    r"(arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:)?[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?"
)


def _check_lambda_function(value: str) -> str | None:
    if not _LAMBDA_FUNCTION.fullmatch(value):
        return f"{rules.show(value)} is not a Lambda function name or ARN"
    return None


def _check_role_arn(value: str) -> str | None:
    if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", value):
        return f"{rules.show(value)} is not an IAM role ARN"
    return None


def _check_cells(values: tuple[str, ...]) -> str | None:
    # Parsed again (typed) by redmica_ops.cells.config; here only the shape is checked.
    from redmica_ops.cells.config import parse_cell_entry

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


SettingValue: TypeAlias = "str | int | float | bool | tuple[str, ...] | None"
"""What a setting can hold (its type is the annotation of its `Settings` field)."""

Check: TypeAlias = Callable[..., str | None]
"""A setting's validator: the problem with a value, or None when it is fine."""

_T = TypeVar("_T")


def setting(
    default: _T, help: str, *, env_aliases: tuple[str, ...] = (), check: Check | None = None
) -> _T:
    """Declare one setting: its default, one line of help, extra env names and its validator.

    The `Settings` dataclass below is the one declaration of every setting; `SPECS` (what
    flags, environment, redmica.toml and `config show` use) is derived from it, so a default
    cannot be written twice. Typed as the default so each field keeps its own type.
    """
    metadata = {"help": help, "env_aliases": env_aliases, "check": check}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """The effective settings; `sources` says where each value came from.

    Each field declared with `setting(...)` is a setting; its type is its annotation.
    """

    bucket: str | None = setting(
        None,
        "S3 config bucket holding one YAML document per tenant",
        env_aliases=("CONFIG_BUCKET_NAME",),
        check=rules.check_bucket_name,
    )
    prefix: str = setting(
        "tenants/", "key prefix of tenant documents in the bucket", check=_check_prefix
    )
    kms_key_id: str | None = setting(
        None, "KMS key for SSE-KMS on every write (else the bucket default)", check=_check_not_blank
    )
    domain: str | None = setting(
        None, "service domain; a tenant's host is <sub_domain>.<domain>", check=_check_domain
    )
    db_host: str | None = setting(
        None,
        "database host (or Unix-socket directory) for tenants whose document has no db.host; "
        "where the lifecycle's administrator connects",
        check=_check_db_host,
    )
    profile: str | None = setting(
        None,
        "AWS profile (else the standard credential chain)",
        env_aliases=("AWS_PROFILE",),
        check=_check_not_blank,
    )
    region: str | None = setting(
        None, "AWS region", env_aliases=("AWS_REGION", "AWS_DEFAULT_REGION"), check=_check_region
    )
    endpoint_url: str | None = setting(
        None,
        "AWS endpoint URL (a sandbox, LocalStack, a VPC endpoint)",
        env_aliases=("AWS_ENDPOINT_URL",),
        check=_check_url,
    )
    app_root: str = setting(
        "/usr/src/redmine",
        "Redmine directory served for every tenant (DocumentRoot is its public/)",
        check=_check_abs_path,
    )
    listen_port: int = setting(
        80, "port of the tenant virtual hosts (<VirtualHost *:PORT>)", check=_positive(65535)
    )
    processes_per_tenant: int = setting(
        2,
        "PassengerMaxInstancesPerApp: processes one tenant may use at most",
        check=_positive(64),
    )
    max_pool_size: int | None = setting(
        None,
        "PassengerMaxPoolSize (default: derived from the memory budget, see docs/capacity.md)",
        check=_positive(100_000),
    )
    min_instances: int = setting(
        0,
        "PassengerMinInstances: processes kept per idle tenant (0: idle tenants scale to zero)",
        check=_non_negative,
    )
    max_preloader_idle_time: int = setting(
        300, "PassengerMaxPreloaderIdleTime, seconds (smart spawning only)", check=_non_negative
    )
    vhosts_file: str = setting(
        "/etc/apache2/sites-enabled/redmica-tenants.conf",
        "where `entrypoint serve` writes the tenant vhosts",
        check=_check_abs_path,
    )
    apache_bin: str | None = setting(
        None,
        "Apache binary for config tests (default: apache2, else httpd)",
        check=_check_not_blank,
    )
    tenant_secrets_prefix: str = setting(
        "redmica/tenants/",
        "name prefix of Secrets Manager secrets / SSM parameters holding tenants' db passwords "
        "(not empty, ends with '/')",
        check=_check_secrets_prefix,
    )
    trusted_proxies: tuple[str, ...] = setting(
        (),
        "load balancer CIDRs whose X-Forwarded-For Apache trusts (RemoteIPTrustedProxy)",
        check=_check_networks,
    )
    serve_command: str = setting(
        "apache2 -DFOREGROUND",
        "what `entrypoint serve` execs to run Apache in the foreground",
        check=_check_not_blank,
    )
    # -- capacity (the pool from memory; `redmica capacity`, docs/capacity.md) ---------------
    serve_memory_mib: int = setting(
        2048,
        "memory (MiB) of the serving task when the ECS task metadata endpoint does not say",
        check=_positive(1_048_576),
    )
    memory_reserve_mib: int = setting(
        256,
        "memory (MiB) kept for Apache, Passenger's core and the log sidecar",
        check=_non_negative,
    )
    process_memory_mib: int | None = setting(
        None,
        "measured memory (PSS, MiB) of one app process (default: 160 direct, 200 smart)",
        check=_positive(65_536),
    )
    spawn_method: str = setting(
        "direct",
        "PassengerSpawnMethod: direct (measured cheaper per tenant) or smart",
        check=_check_spawn_method,
    )
    pool_idle_time: int = setting(
        300,
        "PassengerPoolIdleTime: seconds before an idle process is shut down",
        check=_non_negative,
    )
    start_timeout: int = setting(
        90,
        "PassengerStartTimeout: seconds a process may take to boot before its requests fail",
        check=_positive(3600),
    )
    max_request_queue_size: int = setting(
        100,
        "PassengerMaxRequestQueueSize: requests queued per tenant before a 503",
        check=_non_negative,
    )
    active_share: float = setting(
        0.1,
        "expected share of tenants active at once (0-1], for `redmica capacity` and cell placement",
        check=_share,
    )
    cold_start_seconds: float = setting(
        2.5,
        "measured first-request time of a tenant without a process, seconds",
        check=_positive_float,
    )
    # -- migrations (`redmica migrate`) -----------------------------------------------------
    cluster: str | None = setting(
        None, "ECS cluster that runs migration tasks", check=_check_not_blank
    )
    task_definition: str | None = setting(
        None, "task definition (family[:revision] or ARN) for migrations", check=_check_not_blank
    )
    container: str | None = setting(
        None, "name of the app container in the task definition", check=_check_not_blank
    )
    subnets: tuple[str, ...] = setting(
        (),
        "subnets for migration tasks (comma-separated in env)",
        check=_check_words(r"subnet-[0-9a-f]{1,32}", "a subnet id"),
    )
    security_groups: tuple[str, ...] = setting(
        (),
        "security groups for migration tasks (comma-separated)",
        check=_check_words(r"sg-[0-9a-f]{1,32}", "a security group id"),
    )
    assign_public_ip: bool = setting(False, "give migration tasks a public IP")
    launch_type: str = setting(
        "FARGATE", "ECS launch type (when no capacity_provider)", check=_check_launch_type
    )
    capacity_provider: str | None = setting(
        None,
        "capacity provider (e.g. FARGATE_SPOT) instead of a launch type",
        check=_check_not_blank,
    )
    migrate_command: str = setting(
        "bundle exec rake db:migrate redmine:plugins:migrate",
        "command a migration runs in the app container",
        check=_check_not_blank,
    )
    concurrency: int = setting(100, "migration tasks in flight at most", check=_positive(10_000))
    launch_rate: float = setting(
        20.0, "task launches per second (Fargate: 20 sustained)", check=_positive_float
    )
    launch_burst: int = setting(
        100, "task launches in a burst (Fargate: 100)", check=_positive(10_000)
    )
    task_timeout: int = setting(
        3600,
        "seconds before a migration task is stopped as timed out",
        check=_positive(7 * 24 * 3600),
    )
    max_start_attempts: int = setting(
        3, "launch attempts per tenant when a task fails to start", check=_positive(20)
    )
    tenants_per_task: int = setting(
        2, "tenants one migration task runs in turn (see docs/benchmarks.md)", check=_positive(100)
    )
    poll_interval: float = setting(
        10.0, "seconds between status polls of running tasks", check=_positive_float
    )
    runs_prefix: str = setting(
        "runs/", "key prefix of run records in the config bucket", check=_check_prefix
    )
    local_workdir: str | None = setting(
        None, "working directory of `migrate --executor local`", check=_check_abs_path
    )
    local_user: str | None = setting(
        None, "user that `migrate --executor local` runs commands as", check=_check_not_blank
    )
    local_env: tuple[str, ...] = setting(
        (),
        "extra NAME=VALUE environment for the local executor (comma-separated in env)",
        check=_check_env_pairs,
    )
    local_log_dir: str | None = setting(
        None, "where the local executor writes one log per tenant", check=_check_abs_path
    )
    # -- tenant lifecycle (docs/tenant-lifecycle.md) ------------------------------------------
    maintenance_retry_after: int = setting(
        300,
        "Retry-After seconds of a suspended tenant's 503 page",
        check=_positive(7 * 24 * 3600),
    )
    db_connection_limit: int = setting(
        20, "CONNECTION LIMIT of each tenant's database role", check=_positive(10_000)
    )
    default_language: str = setting(
        "en",
        "language of Redmine's default data unless property.language says",
        check=rules.check_redmine_language,
    )
    db_admin_user: str = setting(
        "postgres",
        "PostgreSQL admin of the local executor (password: PGPASSFILE)",
        check=rules.check_pg_identifier_syntax,
    )
    db_admin_hosts: tuple[str, ...] = setting(
        (),
        "other database endpoints HOST[:PORT] (port 5432 if not given) the lifecycle may "
        "connect to, for tenants on other clusters (comma-separated in env)",
        check=_check_endpoints,
    )
    db_ssl_root_cert: str | None = setting(
        None,
        "CA bundle (PEM) database certificates are verified against (e.g. the RDS bundle)",
        check=_check_abs_path,
    )
    db_master_secret: str | None = setting(
        None,
        "ARN of the RDS-managed master secret (read in admin tasks)",
        check=_check_not_blank,
    )
    admin_task_role: str | None = setting(
        None,
        "IAM role ARN of the admin task definition (its taskRoleArn); only the broker passes it",
        check=_check_role_arn,
    )
    admin_task_definition: str | None = setting(
        None,
        "task definition (family[:revision] or ARN) of lifecycle admin tasks, a family of its own",
        check=_check_not_blank,
    )
    admin_broker: str | None = setting(
        None,
        "Lambda function (name or ARN) that starts admin tasks (`--executor ecs`)",
        check=_check_lambda_function,
    )
    admin_request_max_age: int = setting(
        900,
        "seconds an admin task request stays valid (the broker and the task refuse older ones)",
        check=_positive(24 * 3600),
    )
    backups_prefix: str = setting(
        "backups/",
        "key prefix of tenant database backups in the config bucket",
        check=_check_prefix,
    )
    lifecycle_prefix: str = setting(
        "lifecycle/",
        "key prefix of admin task requests/results, purge records",
        check=_check_prefix,
    )
    attachments_archive_prefix: str = setting(
        "archive/",
        "prefix in a tenant's attachments bucket for purge --archive-attachments",
        check=_check_archive_prefix,
    )
    # -- deployments (`redmica deploy`, `reload`, `rollback`, `release`, `status`) ------------
    service: str | None = setting(
        None, "ECS service that serves every tenant", check=_check_not_blank
    )
    deploy_timeout: int = setting(
        1800, "seconds to wait for a deployment to finish", check=_positive(24 * 3600)
    )
    deploy_poll_interval: float = setting(
        5.0,
        "seconds before the first look at a rollout (then 1.5x longer each time, up to 30)",
        check=_positive_float,
    )
    # -- cells (docs/cells.md) -------------------------------------------------------------------
    cells: tuple[str, ...] = setting(
        (),
        "cells as NAME=SERVICE or NAME=CLUSTER/SERVICE (comma-separated in env); the first holds "
        "tenants without property.cell; empty: one cell, the `service` setting",
        check=_check_cells,
    )
    cell: str | None = setting(
        None,
        "the cell this container serves (`entrypoint serve`); empty: every tenant",
        check=_check_dns_label,
    )
    hosted_zone_id: str | None = setting(
        None,
        "Route 53 zone of `domain`: each tenant's host becomes an alias of its cell's balancer",
        check=_check_zone_id,
    )
    canary_cell: str | None = setting(
        None,
        "cell a wave release changes first, alone (default: the first cell)",
        check=_check_dns_label,
    )
    max_parallel_cells: int = setting(
        1, "cells deployed at once in each wave after the canary", check=_positive(100)
    )
    cell_capacity: int | None = setting(
        None,
        "tenants one cell holds at most, for placing new tenants (default: from the capacity "
        "model and the cell's task memory)",
        check=_positive(100_000),
    )
    move_drain: int = setting(
        60,
        "seconds `tenant move` waits after routing changed before the old cell stops serving",
        check=_non_negative,
    )
    # -- cost estimates (`redmica cost`, `migrate --dry-run`) ----------------------------------
    price_vcpu_minute: float = setting(
        0.0008426666667, "Fargate price per vCPU-minute, USD", check=_positive_float
    )
    price_gb_minute: float = setting(
        0.00009216666667, "Fargate price per GB-minute, USD", check=_positive_float
    )
    task_vcpu: float = setting(
        0.25, "vCPU of a migration task, for estimates", check=_positive_float
    )
    task_memory_gb: float = setting(
        0.5, "memory (GB) of a migration task, for estimates", check=_positive_float
    )
    task_minutes: float = setting(
        4.0, "minutes a migration task runs, for estimates", check=_positive_float
    )
    config_file: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def as_rows(self) -> list[tuple[str, SettingValue, str]]:
        return [(spec.name, getattr(self, spec.name), self.source(spec.name)) for spec in SPECS]


def display_value(value: SettingValue) -> str:
    """A value as an operator writes it in REDMICA_<NAME>: lists comma-separated, booleans as
    true/false, numbers without an exponent; blank when it is not set."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float):
        from decimal import Decimal

        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


DEFAULTS = Settings()
"""Every setting at its default: the one place other modules take a default from."""


@dataclass(frozen=True)
class SettingSpec:
    """One setting as flags, environment and redmica.toml see it (derived from `Settings`)."""

    name: str
    help: str
    default: SettingValue
    kind: type
    env_aliases: tuple[str, ...] = ()
    check: Check | None = None

    @property
    def env_name(self) -> str:
        return f"REDMICA_{self.name.upper()}"


def _kind(annotation: object) -> type:
    """The runtime type of a field's annotation: `int | None` -> int, `tuple[str, ...]` -> tuple."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return tuple
    if args and origin is not tuple:
        return _kind(args[0])
    assert isinstance(annotation, type), annotation
    return annotation


def _specs() -> tuple[SettingSpec, ...]:
    hints = typing.get_type_hints(Settings)
    return tuple(
        SettingSpec(
            name=f.name,
            help=f.metadata["help"],
            default=f.default,  # type: ignore[arg-type]  # MISSING never: setting() sets one
            kind=_kind(hints[f.name]),
            env_aliases=f.metadata["env_aliases"],
            check=f.metadata["check"],
        )
        for f in fields(Settings)
        if "help" in f.metadata
    )


SPECS: tuple[SettingSpec, ...] = _specs()
SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


# The settings every command also takes as a flag (cli/options.py's SETTING_OPTIONS; a test
# keeps the two equal). Others are set in the environment or redmica.toml only.
GLOBAL_FLAGS = frozenset(
    ["bucket", "prefix", "kms_key_id", "domain", "db_host", "profile", "region", "endpoint_url"]
)


def missing_setting(
    names: Sequence[str],
    who_needs: str = "this command needs",
    message: str | None = None,
    alternative: str = "",
) -> UsageError:
    """The one "setting X is missing" error: who needs it, and every way to set it."""
    ways = []
    for name in names:
        spec = SPECS_BY_NAME[name]
        envs = " / ".join([spec.env_name, *spec.env_aliases])
        flag = f"give --{name.replace('_', '-')}, or " if name in GLOBAL_FLAGS else ""
        ways.append(f"{flag}set {envs}, or `{name}` in redmica.toml")
    hint = "; ".join(ways) + (f" ({alternative})" if alternative else "")
    return UsageError(message or f"{who_needs} the setting(s): {', '.join(names)}", hint)


def require(
    settings: Settings,
    names: Sequence[str],
    who_needs: str = "this command needs",
    message: str | None = None,
    alternative: str = "",
) -> None:
    """Raise `missing_setting` for those of `names` that have no value."""
    missing = [name for name in names if not getattr(settings, name)]
    if missing:
        raise missing_setting(missing, who_needs, message, alternative)


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> tuple[Path | None, str]:
    """The config file to read and why: `--config`, `REDMICA_CONFIG`, or ./redmica.toml."""
    if explicit:
        return Path(explicit), "--config"
    if env.get("REDMICA_CONFIG"):
        return Path(env["REDMICA_CONFIG"]), "REDMICA_CONFIG"
    local = Path.cwd() / CONFIG_FILE_NAME
    if local.is_file():
        return local, "current directory"
    return None, ""


def _read_toml(path: Path, reason: str) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValidationFailed(
            [Problem(str(path), "", f"config file not found (named by {reason})")]
        ) from None
    except OSError as exc:
        raise ValidationFailed([Problem(str(path), "", f"cannot read: {exc.strerror}")]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValidationFailed([Problem(str(path), "", f"invalid TOML: {exc}")]) from None
    # A `[redmica]` table is accepted too, for a shared pyproject-style file.
    table = data.get("redmica", data)
    if not isinstance(table, dict):
        raise ValidationFailed([Problem(str(path), "redmica", "must be a table")])
    return table


def load_settings(
    flags: Mapping[str, object],
    env: Mapping[str, str] | None = None,
    config_path: str | None = None,
    specs: tuple[SettingSpec, ...] = SPECS,
) -> Settings:
    """Resolve every setting by precedence and validate it; all problems are reported together."""
    environ: Mapping[str, str] = os.environ if env is None else env
    path, reason = find_config_file(config_path, environ)
    file_values = _read_toml(path, reason) if path else {}
    problems: list[Problem] = []
    known = {spec.name for spec in specs}
    for key in file_values:
        if key not in known:
            problems.append(
                Problem(
                    str(path), key, f"is not a known setting (known: {', '.join(sorted(known))})"
                )
            )
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in specs:
        value, source = _resolve(spec, flags, environ, file_values, str(path) if path else "")
        if value is not None and source != "default":
            value, problem = _coerce(spec, value, from_text=source.startswith(("--", "env ")))
            if problem:
                problems.append(Problem(source, spec.name, problem))
                continue
            if spec.check and (problem := spec.check(value)):
                problems.append(Problem(source, spec.name, problem))
                continue
        values[spec.name] = value
        sources[spec.name] = source
    if problems:
        raise ValidationFailed(problems, hint="see `redmica config show --help`")
    return Settings(**values, config_file=str(path) if path else None, sources=sources)


_TRUE = {"1", "true", "yes", "on", "enabled"}
_FALSE = {"0", "false", "no", "off", "disabled"}


def _coerce(spec: SettingSpec, value: Any, from_text: bool) -> tuple[Any, str | None]:
    """Turn flag/env text into the setting's type; check TOML values' types."""
    kind = spec.kind
    if from_text and isinstance(value, str):
        text = value.strip()
        try:
            if kind is int:
                return int(text), None
            if kind is float:
                return float(text), None
        except ValueError:
            return value, f"{rules.show(value)} is not a number"
        if kind is bool:
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE, None
            return value, f"{rules.show(value)} is not true or false"
        if kind is tuple:
            return tuple(part.strip() for part in text.split(",") if part.strip()), None
    if isinstance(value, (list, tuple)) and kind is tuple:
        if not all(isinstance(item, str) for item in value):
            return value, "must be a list of strings"
        return tuple(value), None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value), None
    if isinstance(value, (list, tuple)) and from_text:
        return tuple(value), None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = {
            tuple: "list of strings",
            str: "string",
            int: "integer",
            float: "number",
            bool: "boolean",
        }
        return value, f"must be a {names.get(kind, kind.__name__)}"
    return value, None


def _resolve(
    spec: SettingSpec,
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    file_values: Mapping[str, Any],
    path: str,
) -> tuple[Any, str]:
    if flags.get(spec.name) is not None:
        return flags[spec.name], "--" + spec.name.replace("_", "-")
    # REDMICA_<NAME>="" is a value like any other (checked: an empty value is never "the
    # default"); an empty alias of another tool (AWS_PROFILE="", ...) counts as unset, as it
    # does for that tool.
    if spec.env_name in env:
        return env[spec.env_name], f"env {spec.env_name}"
    for name in spec.env_aliases:
        if env.get(name):
            return env[name], f"env {name}"
    if spec.name in file_values:
        return file_values[spec.name], path
    return spec.default, "default"

"""Settings: a flag, else `REDMICA_<NAME>` (or a named alias), else `redmica.toml`, else a default.

Every value remembers where it came from, so `redmica config show` can answer the operator's
first question when something goes to the wrong bucket: "where did that come from?".
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redmica_ops.errors import Problem, ValidationFailed
from redmica_ops.tenants import rules

CONFIG_FILE_NAME = "redmica.toml"


def _check_prefix(value: str) -> str | None:
    if value and not value.endswith("/"):
        return f"{rules.show(value)} must be empty or end with '/'"
    if value.startswith("/") or rules.has_control_character(value) or ".." in value.split("/"):
        return f"{rules.show(value)} must be a relative key prefix without '..'"
    return None


def _check_domain(value: str) -> str | None:
    if "." not in value or rules.check_hostname(value) or rules.is_ip_address(value):
        return f"{rules.show(value)} is not a DNS domain name (e.g. redmine.example.com)"
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


def _check_launch_type(value: str) -> str | None:
    if value not in ("FARGATE", "EC2", "EXTERNAL"):
        return f"{rules.show(value)} is not FARGATE, EC2 or EXTERNAL"
    return None


def _check_not_blank(value: str) -> str | None:
    if not value.strip() or rules.has_control_character(value):
        return f"{rules.show(value)} must be non-blank without control characters"
    return None


@dataclass(frozen=True)
class SettingSpec:
    name: str
    help: str
    default: Any = None
    kind: type = str
    env_aliases: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None

    @property
    def env_name(self) -> str:
        return f"REDMICA_{self.name.upper()}"


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "bucket",
        "S3 config bucket holding one YAML document per tenant",
        env_aliases=("CONFIG_BUCKET_NAME",),
        check=rules.check_bucket_name,
    ),
    SettingSpec(
        "prefix", "key prefix of tenant documents in the bucket", "tenants/", check=_check_prefix
    ),
    SettingSpec(
        "kms_key_id",
        "KMS key for SSE-KMS on every write (else the bucket default)",
        check=_check_not_blank,
    ),
    SettingSpec(
        "domain", "service domain; a tenant's host is <sub_domain>.<domain>", check=_check_domain
    ),
    SettingSpec(
        "db_host",
        "database host for tenants whose document has no db.host",
        check=rules.check_hostname,
    ),
    SettingSpec(
        "profile",
        "AWS profile (else the standard credential chain)",
        env_aliases=("AWS_PROFILE",),
        check=_check_not_blank,
    ),
    SettingSpec(
        "region",
        "AWS region",
        env_aliases=("AWS_REGION", "AWS_DEFAULT_REGION"),
        check=_check_region,
    ),
    SettingSpec(
        "endpoint_url",
        "AWS endpoint URL (a sandbox, LocalStack, a VPC endpoint)",
        env_aliases=("AWS_ENDPOINT_URL",),
        check=_check_url,
    ),
    SettingSpec(
        "app_root",
        "Redmine directory served for every tenant (DocumentRoot is its public/)",
        "/usr/src/redmine",
        check=_check_abs_path,
    ),
    SettingSpec(
        "listen_port",
        "port of the tenant virtual hosts (<VirtualHost *:PORT>)",
        80,
        kind=int,
        check=_positive(65535),
    ),
    SettingSpec(
        "processes_per_tenant",
        "Passenger processes one tenant may use at most",
        2,
        kind=int,
        check=_positive(64),
    ),
    SettingSpec(
        "max_pool_size",
        "PassengerMaxPoolSize (default: tenants x processes_per_tenant)",
        kind=int,
        check=_positive(100_000),
    ),
    SettingSpec(
        "min_instances",
        "PassengerMinInstances: processes kept per idle tenant",
        1,
        kind=int,
        check=_non_negative,
    ),
    SettingSpec(
        "max_preloader_idle_time",
        "PassengerMaxPreloaderIdleTime, seconds",
        300,
        kind=int,
        check=_non_negative,
    ),
    SettingSpec(
        "vhosts_file",
        "where `entrypoint serve` writes the tenant vhosts",
        "/etc/apache2/sites-enabled/redmica-tenants.conf",
        check=_check_abs_path,
    ),
    SettingSpec(
        "apache_bin",
        "Apache binary for config tests (default: apache2, else httpd)",
        check=_check_not_blank,
    ),
    SettingSpec(
        "serve_command",
        "what `entrypoint serve` execs to run Apache in the foreground",
        "apache2 -DFOREGROUND",
        check=_check_not_blank,
    ),
    # -- migrations (`redmica migrate`) -----------------------------------------------------
    SettingSpec("cluster", "ECS cluster that runs migration tasks", check=_check_not_blank),
    SettingSpec(
        "task_definition",
        "task definition (family[:revision] or ARN) for migrations",
        check=_check_not_blank,
    ),
    SettingSpec(
        "container", "name of the app container in the task definition", check=_check_not_blank
    ),
    SettingSpec(
        "subnets",
        "subnets for migration tasks (comma-separated in env)",
        (),
        kind=tuple,
        check=_check_words(r"subnet-[0-9a-f]{1,32}", "a subnet id"),
    ),
    SettingSpec(
        "security_groups",
        "security groups for migration tasks (comma-separated)",
        (),
        kind=tuple,
        check=_check_words(r"sg-[0-9a-f]{1,32}", "a security group id"),
    ),
    SettingSpec("assign_public_ip", "give migration tasks a public IP", False, kind=bool),
    SettingSpec(
        "launch_type",
        "ECS launch type (when no capacity_provider)",
        "FARGATE",
        check=_check_launch_type,
    ),
    SettingSpec(
        "capacity_provider",
        "capacity provider (e.g. FARGATE_SPOT) instead of a launch type",
        check=_check_not_blank,
    ),
    SettingSpec(
        "migrate_command",
        "command a migration runs in the app container",
        "bundle exec rake db:migrate redmine:plugins:migrate",
        check=_check_not_blank,
    ),
    SettingSpec(
        "concurrency", "migration tasks in flight at most", 100, kind=int, check=_positive(10_000)
    ),
    SettingSpec(
        "launch_rate",
        "task launches per second (Fargate: 20 sustained)",
        20.0,
        kind=float,
        check=_positive_float,
    ),
    SettingSpec(
        "launch_burst",
        "task launches in a burst (Fargate: 100)",
        100,
        kind=int,
        check=_positive(10_000),
    ),
    SettingSpec(
        "task_timeout",
        "seconds before a migration task is stopped as timed out",
        3600,
        kind=int,
        check=_positive(7 * 24 * 3600),
    ),
    SettingSpec(
        "max_start_attempts",
        "launch attempts per tenant when a task fails to start",
        3,
        kind=int,
        check=_positive(20),
    ),
    SettingSpec(
        "poll_interval",
        "seconds between status polls of running tasks",
        10.0,
        kind=float,
        check=_positive_float,
    ),
    SettingSpec(
        "runs_prefix",
        "key prefix of run records in the config bucket",
        "runs/",
        check=_check_prefix,
    ),
    SettingSpec(
        "local_workdir", "working directory of `migrate --executor local`", check=_check_abs_path
    ),
    SettingSpec(
        "local_user",
        "user that `migrate --executor local` runs commands as",
        check=_check_not_blank,
    ),
    SettingSpec(
        "local_env",
        "extra NAME=VALUE environment for the local executor (comma-separated in env)",
        (),
        kind=tuple,
        check=_check_env_pairs,
    ),
    SettingSpec(
        "local_log_dir", "where the local executor writes one log per tenant", check=_check_abs_path
    ),
    # -- deployments (`redmica deploy`, `reload`, `rollback`, `release`, `status`) ------------
    SettingSpec("service", "ECS service that serves every tenant", check=_check_not_blank),
    SettingSpec(
        "deploy_timeout",
        "seconds to wait for a deployment to finish",
        1800,
        kind=int,
        check=_positive(24 * 3600),
    ),
    # -- cost estimates (`redmica cost`, `migrate --dry-run`) ----------------------------------
    SettingSpec(
        "price_vcpu_minute",
        "Fargate price per vCPU-minute, USD",
        0.0008426666667,
        kind=float,
        check=_positive_float,
    ),
    SettingSpec(
        "price_gb_minute",
        "Fargate price per GB-minute, USD",
        0.00009216666667,
        kind=float,
        check=_positive_float,
    ),
    SettingSpec(
        "task_vcpu",
        "vCPU of a migration task, for estimates",
        0.25,
        kind=float,
        check=_positive_float,
    ),
    SettingSpec(
        "task_memory_gb",
        "memory (GB) of a migration task, for estimates",
        0.5,
        kind=float,
        check=_positive_float,
    ),
    SettingSpec(
        "task_minutes",
        "minutes a migration task runs, for estimates",
        4.0,
        kind=float,
        check=_positive_float,
    ),
)
SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


@dataclass(frozen=True)
class Settings:
    """The effective settings; `sources` says where each value came from."""

    bucket: str | None = None
    prefix: str = "tenants/"
    kms_key_id: str | None = None
    domain: str | None = None
    db_host: str | None = None
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    app_root: str = "/usr/src/redmine"
    listen_port: int = 80
    processes_per_tenant: int = 2
    max_pool_size: int | None = None
    min_instances: int = 1
    max_preloader_idle_time: int = 300
    vhosts_file: str = "/etc/apache2/sites-enabled/redmica-tenants.conf"
    apache_bin: str | None = None
    serve_command: str = "apache2 -DFOREGROUND"
    cluster: str | None = None
    task_definition: str | None = None
    container: str | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: bool = False
    launch_type: str = "FARGATE"
    capacity_provider: str | None = None
    migrate_command: str = "bundle exec rake db:migrate redmine:plugins:migrate"
    concurrency: int = 100
    launch_rate: float = 20.0
    launch_burst: int = 100
    task_timeout: int = 3600
    max_start_attempts: int = 3
    poll_interval: float = 10.0
    runs_prefix: str = "runs/"
    local_workdir: str | None = None
    local_user: str | None = None
    local_env: tuple[str, ...] = ()
    local_log_dir: str | None = None
    service: str | None = None
    deploy_timeout: int = 1800
    price_vcpu_minute: float = 0.0008426666667
    price_gb_minute: float = 0.00009216666667
    task_vcpu: float = 0.25
    task_memory_gb: float = 0.5
    task_minutes: float = 4.0
    config_file: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def as_rows(self) -> list[tuple[str, Any, str]]:
        return [(spec.name, getattr(self, spec.name), self.source(spec.name)) for spec in SPECS]


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
    flags: Mapping[str, Any],
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
    for name in (spec.env_name, *spec.env_aliases):
        if env.get(name):
            return env[name], f"env {name}"
    if spec.name in file_values:
        return file_values[spec.name], path
    return spec.default, "default"

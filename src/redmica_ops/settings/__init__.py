"""Settings: a flag, else `REDMICA_<NAME>` (or a named alias), else `redmica.toml`, else a default.

Every value remembers where it came from, so `redmica config show` can answer the operator's
first question when something goes to the wrong bucket: "where did that come from?".

This module declares the settings (the `Settings` dataclass, its first fields in `core.py`, and
what derives from it: `SPECS`, `DEFAULTS`, the "setting X is missing" error); `declare.py` is how
a setting is declared, `checks.py` holds the validators, `loading.py` resolves the values from
flags, the environment and redmica.toml. What only `redmica config show` needs (rendering
values) lives in cli/config.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from redmica_ops.errors import UsageError
from redmica_ops.settings.checks import (
    check_abs_path,
    check_archive_prefix,
    check_cells,
    check_dns_label,
    check_endpoints,
    check_env_pairs,
    check_lambda_function,
    check_launch_type,
    check_not_blank,
    check_prefix,
    check_role_arn,
    check_words,
    check_zone_id,
    non_negative,
    positive,
    positive_float,
    split_endpoint,
)
from redmica_ops.settings.core import CoreSettings
from redmica_ops.settings.declare import Check, SettingSpec, SettingValue, setting, specs_of
from redmica_ops.tenants import rules

__all__ = [
    "DEFAULTS",
    "GLOBAL_FLAGS",
    "SPECS",
    "SPECS_BY_NAME",
    "Check",
    "SettingSpec",
    "SettingValue",
    "Settings",
    "missing_setting",
    "require",
    "setting",
    "split_endpoint",  # the lifecycle parses db_admin_hosts with it
]


@dataclass(frozen=True)
class Settings(CoreSettings):
    """The effective settings; `sources` says where each value came from.

    Each field declared with `setting(...)` is a setting; its type is its annotation. The
    first fields (bucket, AWS access, serving, capacity) are declared in `core.py`.
    """

    # -- migrations (`redmica migrate`) -----------------------------------------------------
    cluster: str | None = setting(
        None, "ECS cluster that runs migration tasks", check=check_not_blank
    )
    task_definition: str | None = setting(
        None, "task definition (family[:revision] or ARN) for migrations", check=check_not_blank
    )
    container: str | None = setting(
        None, "name of the app container in the task definition", check=check_not_blank
    )
    subnets: tuple[str, ...] = setting(
        (),
        "subnets for migration tasks (comma-separated in env)",
        check=check_words(r"subnet-[0-9a-f]{1,32}", "a subnet id"),
    )
    security_groups: tuple[str, ...] = setting(
        (),
        "security groups for migration tasks (comma-separated)",
        check=check_words(r"sg-[0-9a-f]{1,32}", "a security group id"),
    )
    assign_public_ip: bool = setting(False, "give migration tasks a public IP")
    launch_type: str = setting(
        "FARGATE", "ECS launch type (when no capacity_provider)", check=check_launch_type
    )
    capacity_provider: str | None = setting(
        None,
        "capacity provider (e.g. FARGATE_SPOT) instead of a launch type",
        check=check_not_blank,
    )
    migrate_command: str = setting(
        "bundle exec rake db:migrate redmine:plugins:migrate",
        "command a migration runs in the app container",
        check=check_not_blank,
    )
    concurrency: int = setting(100, "migration tasks in flight at most", check=positive(10_000))
    launch_rate: float = setting(
        20.0, "task launches per second (Fargate: 20 sustained)", check=positive_float
    )
    launch_burst: int = setting(
        100, "task launches in a burst (Fargate: 100)", check=positive(10_000)
    )
    task_timeout: int = setting(
        3600,
        "seconds before a migration task is stopped as timed out",
        check=positive(7 * 24 * 3600),
    )
    max_start_attempts: int = setting(
        3, "launch attempts per tenant when a task fails to start", check=positive(20)
    )
    tenants_per_task: int = setting(
        2, "tenants one migration task runs in turn (see docs/benchmarks.md)", check=positive(100)
    )
    poll_interval: float = setting(
        10.0, "seconds between status polls of running tasks", check=positive_float
    )
    runs_prefix: str = setting(
        "runs/", "key prefix of run records in the config bucket", check=check_prefix
    )
    local_workdir: str | None = setting(
        None, "working directory of `migrate --executor local`", check=check_abs_path
    )
    local_user: str | None = setting(
        None, "user that `migrate --executor local` runs commands as", check=check_not_blank
    )
    local_env: tuple[str, ...] = setting(
        (),
        "extra NAME=VALUE environment for the local executor (comma-separated in env)",
        check=check_env_pairs,
    )
    local_log_dir: str | None = setting(
        None, "where the local executor writes one log per tenant", check=check_abs_path
    )
    # -- tenant lifecycle (docs/tenant-lifecycle.md) ------------------------------------------
    maintenance_retry_after: int = setting(
        300,
        "Retry-After seconds of a suspended tenant's 503 page",
        check=positive(7 * 24 * 3600),
    )
    db_connection_limit: int = setting(
        20, "CONNECTION LIMIT of each tenant's database role", check=positive(10_000)
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
        check=check_endpoints,
    )
    db_ssl_root_cert: str | None = setting(
        None,
        "CA bundle (PEM) database certificates are verified against (e.g. the RDS bundle)",
        check=check_abs_path,
    )
    db_master_secret: str | None = setting(
        None,
        "ARN of the RDS-managed master secret (read in admin tasks)",
        check=check_not_blank,
    )
    admin_task_role: str | None = setting(
        None,
        "IAM role ARN of the admin task definition (its taskRoleArn); only the broker passes it",
        check=check_role_arn,
    )
    admin_task_definition: str | None = setting(
        None,
        "task definition (family[:revision] or ARN) of lifecycle admin tasks, a family of its own",
        check=check_not_blank,
    )
    admin_broker: str | None = setting(
        None,
        "Lambda function (name or ARN) that starts admin tasks (`--executor ecs`)",
        check=check_lambda_function,
    )
    admin_request_max_age: int = setting(
        900,
        "seconds an admin task request stays valid (the broker and the task refuse older ones)",
        check=positive(24 * 3600),
    )
    backups_prefix: str = setting(
        "backups/",
        "key prefix of tenant database backups in the config bucket",
        check=check_prefix,
    )
    lifecycle_prefix: str = setting(
        "lifecycle/",
        "key prefix of admin task requests/results, purge records",
        check=check_prefix,
    )
    attachments_archive_prefix: str = setting(
        "archive/",
        "prefix in a tenant's attachments bucket for purge --archive-attachments",
        check=check_archive_prefix,
    )
    # -- deployments (`redmica deploy`, `reload`, `rollback`, `release`, `status`) ------------
    service: str | None = setting(
        None, "ECS service that serves every tenant", check=check_not_blank
    )
    deploy_timeout: int = setting(
        1800, "seconds to wait for a deployment to finish", check=positive(24 * 3600)
    )
    max_probe_failures: int | None = setting(
        None,
        "failed sites a deploy/release wave tolerates before it stops and rolls back (the "
        "site probe after each wave, docs/probe.md); unset: no probe unless "
        "--max-probe-failures",
        check=non_negative,
    )
    deploy_poll_interval: float = setting(
        5.0,
        "longest wait in seconds between two looks at a rollout (they start 1 s apart and "
        "double up to it)",
        check=positive_float,
    )
    # -- cells (docs/cells.md) -------------------------------------------------------------------
    cells: tuple[str, ...] = setting(
        (),
        "cells as NAME=SERVICE or NAME=CLUSTER/SERVICE (comma-separated in env); the first holds "
        "tenants without property.cell; empty: one cell, the `service` setting",
        check=check_cells,
    )
    cell: str | None = setting(
        None,
        "the cell this container serves (`entrypoint serve`); empty: every tenant",
        check=check_dns_label,
    )
    hosted_zone_id: str | None = setting(
        None,
        "Route 53 zone of `domain`: each tenant's host becomes an alias of its cell's balancer",
        check=check_zone_id,
    )
    canary_cell: str | None = setting(
        None,
        "cell a wave release changes first, alone (default: the first cell)",
        check=check_dns_label,
    )
    max_parallel_cells: int = setting(
        1, "cells deployed at once in each wave after the canary", check=positive(100)
    )
    cell_capacity: int | None = setting(
        None,
        "tenants one cell holds at most, for placing new tenants (default: from the capacity "
        "model and the cell's task memory)",
        check=positive(100_000),
    )
    move_drain: int = setting(
        60,
        "seconds `tenant move` waits after routing changed before the old cell stops serving",
        check=non_negative,
    )
    # -- cost estimates (`redmica cost`, `migrate --dry-run`) ----------------------------------
    price_vcpu_minute: float = setting(
        0.0008426666667, "Fargate price per vCPU-minute, USD", check=positive_float
    )
    price_gb_minute: float = setting(
        0.00009216666667, "Fargate price per GB-minute, USD", check=positive_float
    )
    task_vcpu: float = setting(
        0.25, "vCPU of a migration task, for estimates", check=positive_float
    )
    task_memory_gb: float = setting(
        0.5, "memory (GB) of a migration task, for estimates", check=positive_float
    )
    task_minutes: float = setting(
        4.0, "minutes a migration task runs, for estimates", check=positive_float
    )
    config_file: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")


DEFAULTS = Settings()
"""Every setting at its default: the one place other modules take a default from."""


SPECS: tuple[SettingSpec, ...] = specs_of(Settings)
SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


# The settings every command also takes as a flag (cli/options.py's SETTING_OPTIONS; a test
# keeps the two equal). Others are set in the environment or redmica.toml only.
GLOBAL_FLAGS = frozenset(spec.name for spec in SPECS if spec.flag)


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

"""The settings every part uses (the bucket, AWS access) and those of serving tenants: the
Apache vhosts, the Passenger pool and the capacity model. `Settings` (in `__init__.py`) adds
the rest; one dataclass split in two files only to keep each readable."""

from __future__ import annotations

from dataclasses import dataclass

from redmica_ops.settings.checks import (
    check_abs_path,
    check_allocator,
    check_db_host,
    check_domain,
    check_networks,
    check_not_blank,
    check_prefix,
    check_region,
    check_secrets_prefix,
    check_spawn_method,
    check_url,
    non_negative,
    positive,
    positive_float,
    share,
)
from redmica_ops.settings.declare import setting
from redmica_ops.tenants import rules


# Only declarations: `Settings` generates __init__, __eq__ and __repr__ for all the fields;
# generating them here as well would cost every command's start-up a second set.
@dataclass(frozen=True, init=False, repr=False, eq=False)
class CoreSettings:
    """The first fields of `Settings` (see there)."""

    bucket: str | None = setting(
        None,
        "S3 config bucket holding one YAML document per tenant",
        env_aliases=("CONFIG_BUCKET_NAME",),
        check=rules.check_bucket_name,
        flag=True,
    )
    prefix: str = setting(
        "tenants/", "key prefix of tenant documents in the bucket", check=check_prefix, flag=True
    )
    kms_key_id: str | None = setting(
        None,
        "KMS key for SSE-KMS on every write (else the bucket default)",
        check=check_not_blank,
        flag=True,
    )
    domain: str | None = setting(
        None,
        "service domain; a tenant's host is <sub_domain>.<domain>",
        check=check_domain,
        flag=True,
    )
    db_host: str | None = setting(
        None,
        "database host (or Unix-socket directory) for tenants whose document has no db.host; "
        "where the lifecycle's administrator connects",
        check=check_db_host,
        flag=True,
    )
    profile: str | None = setting(
        None,
        "AWS profile (else the standard credential chain)",
        env_aliases=("AWS_PROFILE",),
        check=check_not_blank,
        flag=True,
    )
    region: str | None = setting(
        None,
        "AWS region",
        env_aliases=("AWS_REGION", "AWS_DEFAULT_REGION"),
        check=check_region,
        flag=True,
    )
    endpoint_url: str | None = setting(
        None,
        "AWS endpoint URL (a sandbox, LocalStack, a VPC endpoint)",
        env_aliases=("AWS_ENDPOINT_URL",),
        check=check_url,
        flag=True,
    )
    app_root: str = setting(
        "/usr/src/redmine",
        "Redmine directory served for every tenant (DocumentRoot is its public/)",
        check=check_abs_path,
    )
    listen_port: int = setting(
        80, "port of the tenant virtual hosts (<VirtualHost *:PORT>)", check=positive(65535)
    )
    probe_port: int | None = setting(
        None,
        "a second port where each limit_ips tenant answers only the site probe's GET /login "
        "(docs/probe.md); reachable only from the probe's security group; unset: none",
        check=positive(65535),
    )
    processes_per_tenant: int = setting(
        2,
        "PassengerMaxInstancesPerApp: processes one tenant may use at most",
        check=positive(64),
    )
    max_pool_size: int | None = setting(
        None,
        "PassengerMaxPoolSize (default: derived from the memory budget, see docs/capacity.md)",
        check=positive(100_000),
    )
    min_instances: int = setting(
        0,
        "PassengerMinInstances: processes kept per idle tenant (0: idle tenants scale to zero)",
        check=non_negative,
    )
    max_preloader_idle_time: int = setting(
        300, "PassengerMaxPreloaderIdleTime, seconds (smart spawning only)", check=non_negative
    )
    vhosts_file: str = setting(
        "/etc/apache2/sites-enabled/redmica-tenants.conf",
        "where `entrypoint serve` writes the tenant vhosts",
        check=check_abs_path,
    )
    apache_bin: str | None = setting(
        None,
        "Apache binary for config tests (default: apache2, else httpd)",
        check=check_not_blank,
    )
    tenant_secrets_prefix: str = setting(
        "redmica/tenants/",
        "name prefix of Secrets Manager secrets / SSM parameters holding tenants' db passwords "
        "(not empty, ends with '/')",
        check=check_secrets_prefix,
    )
    trusted_proxies: tuple[str, ...] = setting(
        (),
        "load balancer CIDRs whose X-Forwarded-For Apache trusts (RemoteIPTrustedProxy)",
        check=check_networks,
    )
    serve_command: str = setting(
        "apache2 -DFOREGROUND",
        "what `entrypoint serve` execs to run Apache in the foreground",
        check=check_not_blank,
    )
    # -- capacity (the pool from memory; `redmica capacity`, docs/capacity.md) ---------------
    serve_memory_mib: int = setting(
        2048,
        "memory (MiB) of the serving task when the ECS task metadata endpoint does not say",
        check=positive(1_048_576),
    )
    memory_reserve_mib: int = setting(
        256,
        "memory (MiB) kept for Apache, Passenger's core and the log sidecar",
        check=non_negative,
    )
    process_memory_mib: int | None = setting(
        None,
        "measured memory (PSS, MiB) of one app process (default: 160 direct, 200 smart)",
        check=positive(65_536),
    )
    spawn_method: str = setting(
        "direct",
        "PassengerSpawnMethod: direct (measured cheaper per tenant) or smart",
        check=check_spawn_method,
    )
    pool_idle_time: int = setting(
        300,
        "PassengerPoolIdleTime: seconds before an idle process is shut down",
        check=non_negative,
    )
    start_timeout: int = setting(
        90,
        "PassengerStartTimeout: seconds a process may take to boot before its requests fail",
        check=positive(3600),
    )
    max_request_queue_size: int = setting(
        100,
        "PassengerMaxRequestQueueSize: requests queued per tenant before a 503",
        check=non_negative,
    )
    # -- cold starts (docs/container.md "Cold starts"; bench/density.py measures them) ---------
    boot_cache_dir: str | None = setting(
        None,
        "read-only Bootsnap cache every tenant's process boots from (built once by "
        "docker/build-boot-cache.sh; needs Debian's ruby-bootsnap); unset: no Bootsnap",
        check=check_abs_path,
    )
    max_booting: int = setting(
        0,
        "tenant processes booting at once (the vCPUs: a boot is CPU-bound); the others wait, "
        "before loading Redmine, for a place; 0: no limit",
        check=non_negative,
    )
    ruby_allocator: str = setting(
        "glibc",
        "malloc of the tenants' Ruby processes: glibc, arena2 (glibc with MALLOC_ARENA_MAX=2) or "
        "jemalloc (Debian's libjemalloc2 by LD_PRELOAD)",
        check=check_allocator,
    )
    active_share: float = setting(
        0.1,
        "expected share of tenants active at once (0-1], for `redmica capacity` and cell placement",
        check=share,
    )
    cold_start_seconds: float = setting(
        2.5,
        "measured first-request time of a tenant without a process, seconds",
        check=positive_float,
    )

"""Apache virtual hosts and Redmine config files, rendered from tenants and templates.

Every value reaches the Apache file through `apacheconf.quote` (or a strict bare word): the
Jinja environment's finalize hook refuses anything else, so a template change cannot add an
unescaped value by accident.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from redmica_ops import __version__
from redmica_ops.capacity import CapacityError, PoolRequest, PoolSettings, derive_pool
from redmica_ops.container import escape as apacheconf
from redmica_ops.container.boot import BootSettings
from redmica_ops.container.memory import MemoryBudget, memory_budget, pool_request
from redmica_ops.container.templates import template_text
from redmica_ops.errors import UsageError
from redmica_ops.settings import DEFAULTS, Settings, require
from redmica_ops.tenants.environment import SECRET_ENV_NAMES, tenant_environment
from redmica_ops.tenants.model import REDACTED, Entry, Tenant, find_conflicts

VHOSTS_TEMPLATE = "vhosts.conf.j2"
REDMINE_CONFIG_FILES = (
    "redmica_boot.rb",
    "database.yml",
    "s3.yml",
    "configuration.yml",
    "additional_environment.rb",
    "initializers/redmica_ops.rb",
)
CATCH_ALL_NAME = "redmica-catch-all.invalid"
# The one path a limit_ips tenant answers on the probe port: the probe's default, Redmine's
# sign-in page (probe.model.DEFAULT_PATH), matched exactly.
PROBE_PATH = "/login"


@dataclass(frozen=True)
class VhostSettings:
    domain: str
    app_root: str
    # Defaults are the settings' own (one declaration, in settings.py).
    listen_port: int = DEFAULTS.listen_port
    # The pool comes from memory, never from the tenant count (redmica_ops.capacity).
    pool: PoolRequest = field(
        default_factory=lambda: PoolRequest(memory_mib=DEFAULTS.serve_memory_mib)
    )
    db_host: str | None = DEFAULTS.db_host
    trusted_proxies: tuple[str, ...] = DEFAULTS.trusted_proxies
    retry_after: int = DEFAULTS.maintenance_retry_after
    # The site probe's own port (docs/probe.md): limit_ips tenants answer its path there.
    probe_port: int | None = DEFAULTS.probe_port
    # Bootsnap and the allocator of every tenant's process (container/boot.py).
    boot: BootSettings = field(default_factory=BootSettings)

    @classmethod
    def from_settings(cls, settings: Settings, budget: MemoryBudget | None = None) -> VhostSettings:
        """`budget`: the serving task's memory; without one, the setting serve_memory_mib."""
        require(
            settings,
            ["domain"],
            message="no service domain is set (vhost names are <sub_domain>.<domain>)",
        )
        assert settings.domain is not None
        return cls(
            domain=settings.domain,
            app_root=settings.app_root.rstrip("/") or "/",
            listen_port=settings.listen_port,
            pool=pool_request(settings, budget or memory_budget(settings, {})),
            db_host=settings.db_host,
            trusted_proxies=settings.trusted_proxies,
            retry_after=settings.maintenance_retry_after,
            probe_port=settings.probe_port,
            boot=BootSettings.from_settings(settings, settings.app_root.rstrip("/") or "/"),
        )


def derive_pool_for(settings: VhostSettings, tenants: int) -> PoolSettings:
    """The pool for `tenants` tenants; a budget that holds no process is a usage error."""
    try:
        return derive_pool(replace(settings.pool, tenants=tenants))
    except CapacityError as error:
        raise UsageError(
            f"the memory budget holds no Passenger process: {error}",
            "raise serve_memory_mib (or the task's memory), lower memory_reserve_mib, "
            "or set max_pool_size explicitly",
        ) from None


MAINTENANCE_TEXT = {
    "suspended": "This site is temporarily unavailable.",
    "provisioning": "This site is being set up.",
}


def maintenance_text(tenant: Tenant) -> str:
    """The page body of a tenant that is not served (validated: plain sentence characters)."""
    default = MAINTENANCE_TEXT.get(tenant.status, MAINTENANCE_TEXT["suspended"])
    return tenant.status_message or default


def app_group_name(tenant_id: str) -> str:
    # Tenant ids are unique DNS labels, so this is unique per tenant.
    return f"redmica-tenant-{tenant_id}"


def _environment(loader_name: str) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(template_text),
        # Not HTML: Apache escaping is enforced for every output by the finalize hook.
        autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        finalize=apacheconf.finalize if loader_name.endswith(".conf.j2") else None,
        keep_trailing_newline=True,
    )
    env.filters["quote"] = apacheconf.quote
    env.filters["bare"] = apacheconf.bare
    return env


def render_vhosts(
    entries: Iterable[Entry],
    settings: VhostSettings,
    *,
    redact: bool = False,
    master_secret: str | None = None,
    passwords: Mapping[str, str] | None = None,
    pool: PoolSettings | None = None,
    incarnations: Mapping[str, str] | None = None,
) -> str:
    """One Apache config for all tenants, sorted by id: same tenants, same bytes.

    With `master_secret` every tenant gets its own derived SECRET_KEY_BASE; `passwords` holds
    the resolved passwords of tenants whose document names a secret (db.password_secret).
    `pool`: the derived pool when the caller already has it (to report its warnings).
    `incarnations`: tenant id -> incarnation (tenants/incarnations.py), part of each key.
    """
    if settings.probe_port is not None and settings.probe_port == settings.listen_port:
        raise UsageError(
            f"probe_port {settings.probe_port} is the listen_port: the probe port must be one "
            "the load balancer never forwards to",
            "give the probe a port of its own, e.g. probe_port = 8081",
        )
    ordered = sorted(entries, key=lambda e: e.tenant_id)
    ids = [e.tenant_id for e in ordered]
    if len(set(ids)) != len(ids):
        raise UsageError("a tenant id appears twice; refusing to render")
    clashes = find_conflicts(ordered)
    if clashes:
        raise UsageError(
            "tenants clash; refusing to render vhosts that would share a site",
            "fix the tenants (see `redmica tenant validate`)",
            clashes,
        )
    tenants: list[dict[str, Any]] = []
    for entry in ordered:
        if not entry.tenant.served:
            tenants.append(
                {
                    "id": entry.tenant_id,
                    "status": entry.tenant.status,
                    "server_name": f"{entry.tenant.sub_domain}.{settings.domain}",
                    "maintenance": maintenance_text(entry.tenant),
                }
            )
            continue
        env = tenant_environment(
            entry.tenant_id,
            entry.tenant,
            settings.db_host,
            master_secret=master_secret,
            password=REDACTED if redact else (passwords or {}).get(entry.tenant_id),
            incarnation=(incarnations or {}).get(entry.tenant_id),
        )
        if redact:
            for name in SECRET_ENV_NAMES & env.keys():
                env[name] = REDACTED
        limit = entry.tenant.properties.limit_ips
        tenants.append(
            {
                "id": entry.tenant_id,
                "server_name": f"{entry.tenant.sub_domain}.{settings.domain}",
                "maintenance": None,
                "app_group": app_group_name(entry.tenant_id),
                "env": list(env.items()),
                "require_ip": apacheconf.ApacheValue(
                    " ".join(apacheconf.ip_word(ip) for ip in limit)
                )
                if limit
                else None,
            }
        )
    # A suspended or provisioning tenant has no application process: the pool counts the others.
    served = sum(1 for t in tenants if not t["maintenance"])
    pool = pool or derive_pool_for(settings, served)
    template = _environment(VHOSTS_TEMPLATE).get_template(VHOSTS_TEMPLATE)
    return str(
        template.render(
            version=__version__,
            tenant_count=len(tenants),
            dollar_define=apacheconf.ApacheValue(apacheconf.DOLLAR_DEFINE),
            pool=pool,
            listen_port=settings.listen_port,
            trusted_proxies=apacheconf.ApacheValue(
                " ".join(apacheconf.ip_word(net) for net in settings.trusted_proxies)
            ),
            retry_after=str(settings.retry_after),
            catch_all_name=CATCH_ALL_NAME,
            document_root=f"{settings.app_root.rstrip('/')}/public",
            app_root=settings.app_root,
            tenants=tenants,
            probe_port=settings.probe_port,
            probe_path=apacheconf.quote(f"^{re.escape(PROBE_PATH)}$"),
            probed=[t for t in tenants if t.get("require_ip") and not t["maintenance"]],
            boot_env=settings.boot.environment(),
        )
    )


def render_redmine_config(name: str) -> str:
    if name not in REDMINE_CONFIG_FILES:
        raise UsageError(f"unknown Redmine config file {name!r}")
    return template_text(f"redmine/{name}")


def require_directory(directory: Path, flag: str, mkdir: bool) -> None:
    """An operator-given output directory must exist unless `mkdir`: a typo in an Apache path
    must fail, not "work" somewhere Apache never reads."""
    if mkdir or directory.is_dir():
        return
    if directory.exists():
        raise UsageError(f"{flag}: {directory} is not a directory", "give a path in a directory")
    raise UsageError(
        f"{flag}: directory {directory} does not exist",
        "check the path for a typo, or add --mkdir to create it",
    )


def write_private(
    path: Path, text: str, mode: int = 0o600, check: Callable[[Path], None] | None = None
) -> None:
    """Write atomically (temp file in the same directory, then rename) with `mode`.

    Readers see the old file or the new one, never half of one; the temp file is created
    0600 by mkstemp, so a password is never readable by others, not even for a moment.
    `check` runs on the finished temp file; if it raises, the old file stays in place.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        if check is not None:
            check(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

"""The memory a serving container may fill, and the pool request built from it and the settings.

In a task, the truth is the ECS task metadata endpoint (v4): `$ECS_CONTAINER_METADATA_URI_V4`
describes this container and `.../task` the task, with memory limits in MiB. Our share is the
task's limit minus the limits of the other containers (the log sidecar), capped by our own
container's limit when it has one. Outside ECS, or when the endpoint does not answer within a
second, the setting `serve_memory_mib` is the fallback, and the source says which one was used.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from redmica_ops.capacity import PoolRequest, SpawnMethod
from redmica_ops.settings import Settings

METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"
METADATA_TIMEOUT_SECONDS = 1.0
# Anything larger is not a metadata document; a bound keeps a confused endpoint harmless.
MAX_METADATA_BYTES = 1_000_000

Fetch = Callable[[str, float], bytes]


@dataclass(frozen=True)
class MemoryBudget:
    memory_mib: int
    source: str
    note: str | None = None  # why the metadata was not used, when it was expected


class MetadataUnavailable(Exception):
    pass


def _fetch(url: str, timeout: float) -> bytes:
    # The endpoint is link-local HTTP set by the ECS agent; only http(s) URLs are followed.
    if not url.startswith(("http://", "https://")):
        raise MetadataUnavailable(f"{METADATA_ENV} is not an http URL")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        return bytes(response.read(MAX_METADATA_BYTES + 1))


def _get_json(fetch: Fetch, url: str, timeout: float) -> Mapping[str, object]:
    try:
        body = fetch(url, timeout)
    except MetadataUnavailable:
        raise
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise MetadataUnavailable(f"{url} did not answer ({exc.__class__.__name__})") from None
    if len(body) > MAX_METADATA_BYTES:
        raise MetadataUnavailable(f"{url} answered more than {MAX_METADATA_BYTES} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise MetadataUnavailable(f"{url} did not answer JSON") from None
    if not isinstance(data, dict):
        raise MetadataUnavailable(f"{url} did not answer a JSON object")
    return data


def _memory_limit(document: Mapping[str, object]) -> int | None:
    limits = document.get("Limits")
    if not isinstance(limits, dict):
        return None
    memory = limits.get("Memory")
    if isinstance(memory, bool) or not isinstance(memory, (int, float)) or memory <= 0:
        return None
    return int(memory)


def memory_from_metadata(
    base_url: str, fetch: Fetch = _fetch, timeout: float = METADATA_TIMEOUT_SECONDS
) -> MemoryBudget:
    """This container's share of the task's memory, from the task metadata endpoint v4."""
    base = base_url.rstrip("/")
    own = _get_json(fetch, base, timeout)
    task = _get_json(fetch, f"{base}/task", timeout)
    own_id = own.get("DockerId")
    own_limit = _memory_limit(own)
    task_limit = _memory_limit(task)
    others: list[tuple[str, int]] = []
    containers = task.get("Containers")
    for container in containers if isinstance(containers, list) else []:
        if not isinstance(container, dict) or container.get("DockerId") == own_id:
            continue
        if (limit := _memory_limit(container)) is not None:
            others.append((str(container.get("Name", "?")), limit))
    candidates: list[tuple[int, str]] = []
    if task_limit is not None:
        taken = sum(limit for _, limit in others)
        detail = "".join(f" - {limit} MiB for {name}" for name, limit in others)
        candidates.append((task_limit - taken, f"task {task_limit} MiB{detail}"))
    if own_limit is not None:
        candidates.append((own_limit, f"container limit {own_limit} MiB"))
    if not candidates:
        raise MetadataUnavailable("the task metadata has no memory limit")
    memory, how = min(candidates)
    if memory <= 0:
        raise MetadataUnavailable(f"the task metadata leaves no memory for us ({how})")
    return MemoryBudget(memory, f"ECS task metadata: {how}")


def memory_budget(
    settings: Settings, environ: Mapping[str, str], fetch: Fetch = _fetch
) -> MemoryBudget:
    """The metadata endpoint when ECS gives one, else the setting `serve_memory_mib`."""
    fallback = f"setting serve_memory_mib ({settings.source('serve_memory_mib')})"
    url = environ.get(METADATA_ENV)
    if not url:
        return MemoryBudget(settings.serve_memory_mib, fallback)
    try:
        return memory_from_metadata(url, fetch)
    except MetadataUnavailable as why:
        return MemoryBudget(
            settings.serve_memory_mib,
            fallback,
            note=f"ECS task metadata unavailable ({why}); using {fallback}",
        )


def pool_request(settings: Settings, budget: MemoryBudget, tenants: int = 0) -> PoolRequest:
    """The settings' side of the derivation: explicit values are passed on and win."""
    spawn: SpawnMethod = "smart" if settings.spawn_method == "smart" else "direct"
    return PoolRequest(
        memory_mib=budget.memory_mib,
        memory_source=budget.source,
        reserve_mib=settings.memory_reserve_mib,
        spawn_method=spawn,
        process_mib=settings.process_memory_mib,
        processes_per_tenant=settings.processes_per_tenant,
        min_instances=settings.min_instances,
        pool_idle_time=settings.pool_idle_time,
        max_preloader_idle_time=settings.max_preloader_idle_time,
        max_request_queue_size=settings.max_request_queue_size,
        start_timeout=settings.start_timeout,
        max_pool_size=settings.max_pool_size,
        tenants=tenants,
    )

"""The capacity model: Passenger pool settings from a memory budget, and fleet sizes from them.

One rule for everything that sizes processes (the rendered vhosts, `entrypoint serve`, `doctor`,
`redmica capacity`, the cells that place tenants): a task's memory, minus a reserve for Apache,
Passenger's core and the log sidecar, divided by what one application process costs, is how
many Ruby processes the task may hold at once. The tenant count never enters the pool size: 800
tenants cannot all be warm in one task, so the pool is bounded by memory and idle tenants scale
to zero (Passenger evicts the least recently used process when the pool is full).

The costs are measured (docs/capacity.md): Debian's Redmine 5.0.4 under Passenger 6.0.17 costs
about 156 MiB PSS per process with direct spawning, about 200 MiB per warm tenant with smart
spawning (a preloader per tenant's app group plus its worker); Debian 13's Redmine 6.0.5 under
Passenger 6.0.26 164 MiB as it boots by default and 153 MiB with the image's Bootsnap cache and
jemalloc (container/boot.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from redmica_ops.errors import UsageError
from redmica_ops.report import CellValue, Report, Table, plain_json, text
from redmica_ops.settings import DEFAULTS, Settings

SpawnMethod = Literal["direct", "smart"]
SPAWN_METHODS: tuple[SpawnMethod, ...] = ("direct", "smart")

# Measured PSS per warm process, rounded up (docs/capacity.md). With smart spawning every app
# group with a process also keeps a preloader; in a fleet most tenants have one worker, so the
# worst case (one preloader per worker) is what a budget must hold.
MEASURED_PROCESS_MIB: dict[SpawnMethod, int] = {"direct": 160, "smart": 200}
DEFAULT_COLD_START_SECONDS = DEFAULTS.cold_start_seconds
HOURS_PER_MONTH = 730.0  # AWS's convention for monthly prices


class CapacityError(ValueError):
    """The inputs cannot describe a working pool (e.g. the budget holds no process at all)."""


def measured_process_mib(spawn_method: SpawnMethod) -> int:
    return MEASURED_PROCESS_MIB[spawn_method]


def pool_size_for(memory_mib: int, reserve_mib: int, process_mib: int) -> int:
    """How many processes fit: floor((memory - reserve) / per-process cost); at least one."""
    if process_mib <= 0:
        raise CapacityError(f"the per-process cost must be positive, not {process_mib} MiB")
    budget = memory_mib - reserve_mib
    if budget < process_mib:
        raise CapacityError(
            f"{memory_mib} MiB minus a {reserve_mib} MiB reserve leaves {budget} MiB, "
            f"less than one process ({process_mib} MiB)"
        )
    return budget // process_mib


@dataclass(frozen=True)
class PoolRequest:
    """What the pool is derived from; a field left None is derived, a value given wins."""

    memory_mib: int
    reserve_mib: int = DEFAULTS.memory_reserve_mib
    spawn_method: SpawnMethod = "direct"
    process_mib: int | None = None
    # Defaults that are settings come from the settings (one declaration, in settings.py).
    processes_per_tenant: int = DEFAULTS.processes_per_tenant
    min_instances: int = DEFAULTS.min_instances
    pool_idle_time: int = DEFAULTS.pool_idle_time
    max_preloader_idle_time: int = DEFAULTS.max_preloader_idle_time
    max_request_queue_size: int = DEFAULTS.max_request_queue_size
    start_timeout: int = DEFAULTS.start_timeout
    max_pool_size: int | None = DEFAULTS.max_pool_size
    tenants: int = 0
    memory_source: str = "given"


@dataclass(frozen=True)
class PoolSettings:
    """The Passenger settings to render, how they were reached, and what cannot fit."""

    memory_mib: int
    memory_source: str
    reserve_mib: int
    process_mib: int
    max_pool_size: int
    pool_source: str  # "derived" or "explicit"
    max_instances_per_app: int
    min_instances: int
    pool_idle_time: int
    spawn_method: SpawnMethod
    max_preloader_idle_time: int | None  # only with smart spawning: no preloader otherwise
    max_request_queue_size: int
    start_timeout: int = DEFAULTS.start_timeout
    warnings: tuple[str, ...] = field(default=())

    @property
    def memory_needed_mib(self) -> int:
        """What a full pool costs with its reserve."""
        return self.reserve_mib + self.max_pool_size * self.process_mib

    def as_dict(self) -> dict[str, int | str | list[str] | None]:
        return {
            "memory_mib": self.memory_mib,
            "memory_source": self.memory_source,
            "reserve_mib": self.reserve_mib,
            "process_mib": self.process_mib,
            "max_pool_size": self.max_pool_size,
            "pool_source": self.pool_source,
            "max_instances_per_app": self.max_instances_per_app,
            "min_instances": self.min_instances,
            "pool_idle_time": self.pool_idle_time,
            "spawn_method": self.spawn_method,
            "max_preloader_idle_time": self.max_preloader_idle_time,
            "max_request_queue_size": self.max_request_queue_size,
            "start_timeout": self.start_timeout,
            "memory_needed_mib": self.memory_needed_mib,
            "warnings": list(self.warnings),
        }


def derive_pool(request: PoolRequest) -> PoolSettings:
    """Pool settings from memory; explicit values win and a warning says when they cannot fit.

    Raises CapacityError only when nothing can be derived (the memory holds no process and no
    explicit pool size was given).
    """
    process_mib = request.process_mib or measured_process_mib(request.spawn_method)
    warnings: list[str] = []
    if request.max_pool_size is not None:
        pool, source = request.max_pool_size, "explicit"
        needed = request.reserve_mib + pool * process_mib
        if needed > request.memory_mib:
            warnings.append(
                f"max_pool_size {pool} needs {needed} MiB ({request.reserve_mib} MiB reserve + "
                f"{pool} x {process_mib} MiB) but the task has {request.memory_mib} MiB "
                f"({request.memory_source}): a full pool can run out of memory"
            )
    else:
        pool = pool_size_for(request.memory_mib, request.reserve_mib, process_mib)
        source = "derived"
    per_app = request.processes_per_tenant
    if per_app > pool:
        warnings.append(
            f"processes_per_tenant {per_app} exceeds the pool of {pool}: "
            "one tenant can take every process"
        )
    warm = request.min_instances * request.tenants
    if warm > pool:
        warnings.append(
            f"min_instances {request.min_instances} x {request.tenants} tenants keeps {warm} "
            f"processes warm but the pool holds {pool}: Passenger will churn; use min_instances 0"
        )
    return PoolSettings(
        memory_mib=request.memory_mib,
        memory_source=request.memory_source,
        reserve_mib=request.reserve_mib,
        process_mib=process_mib,
        max_pool_size=pool,
        pool_source=source,
        max_instances_per_app=per_app,
        min_instances=request.min_instances,
        pool_idle_time=request.pool_idle_time,
        spawn_method=request.spawn_method,
        max_preloader_idle_time=(
            request.max_preloader_idle_time if request.spawn_method == "smart" else None
        ),
        max_request_queue_size=request.max_request_queue_size,
        start_timeout=request.start_timeout,
        warnings=tuple(warnings),
    )


# -- fleets: tasks (or cells) for a tenant count --------------------------------------------------
@dataclass(frozen=True)
class TaskSize:
    """A Fargate task size: vCPU and memory (MiB, as ECS counts it)."""

    vcpu: float
    memory_mib: int

    @property
    def label(self) -> str:
        return f"{self.vcpu:g} vCPU / {self.memory_mib / 1024:g} GB"

    def monthly_usd(self, price_vcpu_minute: float, price_gb_minute: float) -> float:
        """Running all month: vCPU x price + GB x price, per minute, x 60 x 730 hours."""
        per_minute = self.vcpu * price_vcpu_minute + self.memory_mib / 1024 * price_gb_minute
        return per_minute * 60 * HOURS_PER_MONTH


def parse_task_size(text: str) -> TaskSize:
    """ "2x4" is 2 vCPU with 4 GB (4096 MiB); fractions allowed ("0.5x1")."""
    vcpu_text, sep, gb_text = text.strip().lower().partition("x")
    try:
        vcpu, gb = float(vcpu_text), float(gb_text)
    except ValueError:
        raise CapacityError(f"{text!r} is not VCPUxGB (e.g. 2x4)") from None
    if not sep or vcpu <= 0 or gb <= 0:
        raise CapacityError(f"{text!r} is not VCPUxGB with positive numbers (e.g. 2x4)")
    return TaskSize(vcpu, round(gb * 1024))


@dataclass(frozen=True)
class Room:
    """Tenants one task (or cell) holds at an expected share of simultaneously active tenants."""

    pool_size: int
    active_share: float
    processes_per_active_tenant: int
    tenants_per_task: int


def tenants_per_task(
    pool_size: int, active_share: float, processes_per_active_tenant: int = 1
) -> Room:
    """floor(pool / (share x processes per active tenant)): the active tenants fill the pool."""
    if not 0 < active_share <= 1:
        raise CapacityError(f"the active share must be in (0, 1], not {active_share}")
    if processes_per_active_tenant < 1:
        raise CapacityError("an active tenant needs at least one process")
    # A tiny epsilon keeps 10 / 0.1 from becoming 99.99999 and losing a tenant to rounding.
    fit = math.floor(pool_size / (active_share * processes_per_active_tenant) + 1e-9)
    return Room(pool_size, active_share, processes_per_active_tenant, max(fit, 1))


def tasks_needed(tenants: int, per_task: int) -> int:
    if per_task < 1:
        raise CapacityError("a task must hold at least one tenant")
    return math.ceil(tenants / per_task) if tenants > 0 else 0


def room_left(tenants: int, per_task: int) -> int:
    """Free tenant places across the tasks `tasks_needed` gives (what the last cell can take)."""
    return tasks_needed(tenants, per_task) * per_task - tenants


@dataclass(frozen=True)
class FleetPlan:
    """One task size's answer: how many tasks, the pool in each, the exposure and the price."""

    size: TaskSize
    tenants: int
    pool: PoolSettings
    room: Room
    tasks: int
    room_left: int
    cold_start_seconds: float
    monthly_usd_per_task: float

    @property
    def monthly_usd(self) -> float:
        return self.tasks * self.monthly_usd_per_task

    @property
    def monthly_usd_per_tenant(self) -> float:
        return self.monthly_usd / self.tenants if self.tenants else 0.0

    @property
    def cold_tenants_per_task(self) -> int:
        """Tenants of a full task that have no process at a given moment (next hit is cold)."""
        warm = self.pool.max_pool_size // self.room.processes_per_active_tenant
        return max(self.room.tenants_per_task - warm, 0)

    def as_dict(self) -> dict[str, object]:
        return {
            "task": {"vcpu": self.size.vcpu, "memory_mib": self.size.memory_mib},
            "tenants": self.tenants,
            "tasks": self.tasks,
            "tenants_per_task": self.room.tenants_per_task,
            "room_left": self.room_left,
            "active_share": self.room.active_share,
            "pool": self.pool.as_dict(),
            "cold_tenants_per_task": self.cold_tenants_per_task,
            "cold_start_seconds": self.cold_start_seconds,
            "monthly_usd_per_task": round(self.monthly_usd_per_task, 2),
            "monthly_usd": round(self.monthly_usd, 2),
            "monthly_usd_per_tenant": round(self.monthly_usd_per_tenant, 4),
        }


def plan_fleet(
    tenants: int,
    size: TaskSize,
    pool_request: PoolRequest,
    *,
    active_share: float,
    price_vcpu_minute: float,
    price_gb_minute: float,
    processes_per_active_tenant: int = 1,
    cold_start_seconds: float = DEFAULT_COLD_START_SECONDS,
) -> FleetPlan:
    """Size a fleet of `tenants` on tasks of `size` (the request's memory is replaced by it)."""
    if tenants < 0:
        raise CapacityError("the tenant count must not be negative")
    request = replace(
        pool_request, memory_mib=size.memory_mib, memory_source=f"task size {size.label}"
    )
    room = tenants_per_task(
        derive_pool(request).max_pool_size, active_share, processes_per_active_tenant
    )
    tasks = tasks_needed(tenants, room.tenants_per_task)
    # Judge min_instances against the tenants one task will really serve.
    pool = derive_pool(replace(request, tenants=room.tenants_per_task))
    return FleetPlan(
        size=size,
        tenants=tenants,
        pool=pool,
        room=room,
        tasks=tasks,
        room_left=room_left(tenants, room.tenants_per_task),
        cold_start_seconds=cold_start_seconds,
        monthly_usd_per_task=size.monthly_usd(price_vcpu_minute, price_gb_minute),
    )


# Fargate's sizes from small to the largest (16 vCPU / 120 GB), one per step in memory.
FARGATE_TASK_SIZES: tuple[TaskSize, ...] = tuple(
    parse_task_size(text) for text in ("1x2", "2x4", "2x8", "4x16", "8x32", "16x64", "16x120")
)


def compare_task_sizes(
    tenants: int,
    sizes: tuple[TaskSize, ...],
    pool_request: PoolRequest,
    *,
    active_share: float,
    price_vcpu_minute: float,
    price_gb_minute: float,
    processes_per_active_tenant: int = 1,
    cold_start_seconds: float = DEFAULT_COLD_START_SECONDS,
) -> list[FleetPlan]:
    """One plan per task size that holds at least one process, cheapest first (then fewest
    tasks); sizes too small for a single process are left out."""
    plans = []
    for size in sizes:
        try:
            plans.append(
                plan_fleet(
                    tenants,
                    size,
                    pool_request,
                    active_share=active_share,
                    price_vcpu_minute=price_vcpu_minute,
                    price_gb_minute=price_gb_minute,
                    processes_per_active_tenant=processes_per_active_tenant,
                    cold_start_seconds=cold_start_seconds,
                )
            )
        except CapacityError:
            continue
    return sorted(plans, key=lambda p: (round(p.monthly_usd, 6), p.tasks, p.size.memory_mib))


@dataclass
class FleetSizing:
    """Every task size's plan for a fleet, cheapest first; the first one is the recommendation
    (`redmica capacity`)."""

    tenants: int
    active_share: float
    plans: list[FleetPlan]

    def as_dict(self) -> dict[str, object]:
        plans = [plan.as_dict() for plan in self.plans]
        return {
            "tenants": self.tenants,
            "active_share": self.active_share,
            "recommended": plans[0] if plans else None,
            "plans": plans,
        }

    def report(self) -> Report:
        """A row per task size, then the cheapest one's pool settings and cold starts."""
        headers = (
            *("task", "pool", "tenants/task", "tasks", "room left"),
            *("cold tenants/task", "USD/month", "USD/tenant/month"),
        )
        rows: list[list[CellValue]] = [
            [
                plan.size.label,
                plan.pool.max_pool_size,
                plan.room.tenants_per_task,
                plan.tasks,
                plan.room_left,
                plan.cold_tenants_per_task,
                f"{plan.monthly_usd:.2f}",
                f"{plan.monthly_usd_per_tenant:.4f}",
            ]
            for plan in self.plans
        ]
        best = self.plans[0]
        pool = best.pool
        lines = [
            "",
            f"cheapest: {best.tasks} task(s) of {best.size.label} for {self.tenants} tenants "
            f"({best.room.tenants_per_task} per task at {self.active_share:g} active), "
            f"{best.monthly_usd:.2f} USD/month, {best.monthly_usd_per_tenant:.4f} USD per "
            "tenant",
            f"pool settings per task: PassengerMaxPoolSize {pool.max_pool_size} "
            f"(({pool.memory_mib} - {pool.reserve_mib}) MiB / {pool.process_mib} MiB), "
            f"PassengerMaxInstancesPerApp {pool.max_instances_per_app}, "
            f"PassengerMinInstances {pool.min_instances}, "
            f"PassengerPoolIdleTime {pool.pool_idle_time}, "
            f"PassengerSpawnMethod {pool.spawn_method}, "
            f"PassengerMaxRequestQueueSize {pool.max_request_queue_size}",
            f"cold-start exposure: at most {pool.max_pool_size} tenant process(es) per task are "
            f"warm; the other {best.cold_tenants_per_task} tenants of a full task wait about "
            f"{best.cold_start_seconds:g} s on their first request after {pool.pool_idle_time} s "
            "idle or an eviction",
        ]
        lines += [f"warning: {warning}" for warning in pool.warnings]
        return Report(plain_json(self.as_dict()), [Table(headers, rows), text("\n".join(lines))])


def size_fleet(
    tenants: int,
    task_sizes: tuple[str, ...],
    pool_request: PoolRequest,
    settings: Settings,
    processes_per_active_tenant: int = 1,
) -> FleetSizing:
    """Plans for `tenants` on each of `task_sizes` ("2x8"; none: every Fargate size) with the
    settings' active share, prices and cold start; a size that does not parse, or no size that
    holds a process, is a usage error."""
    try:
        sizes = tuple(parse_task_size(text) for text in task_sizes) or FARGATE_TASK_SIZES
    except CapacityError as error:
        raise UsageError(f"--task-size: {error}", "e.g. --task-size 2x8 (2 vCPU, 8 GB)") from None
    plans = compare_task_sizes(
        tenants,
        sizes,
        pool_request,
        active_share=settings.active_share,
        price_vcpu_minute=settings.price_vcpu_minute,
        price_gb_minute=settings.price_gb_minute,
        processes_per_active_tenant=processes_per_active_tenant,
        cold_start_seconds=settings.cold_start_seconds,
    )
    if not plans:
        raise UsageError(
            "no task size holds a single process after the reserve",
            "give a larger --task-size, or lower memory_reserve_mib / --process-mib",
        )
    return FleetSizing(tenants, settings.active_share, plans)

"""The cells of one setup, wired to AWS: a deployer per cell, its load balancer, the router.

The one view of the services: a setup without the `cells` setting is one implicit cell (the
`service` setting). Built once per workspace (`Workspace.fleet()`) from the settings, the AWS
clients, the workspace's clock and its message and status callbacks; every `ServiceDeployer`,
`Router` and routing gateway is built here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from redmica_ops.capacity import PoolRequest, derive_pool, tenants_per_task
from redmica_ops.cells.config import Cell, CellMap, cell_map
from redmica_ops.cells.placement import place
from redmica_ops.cells.routing import (
    AliasTarget,
    LoadBalancerGateway,
    Route53Gateway,
    Router,
    load_balancer_of,
)
from redmica_ops.deploy.model import RolloutReport, ServiceTarget, revision_name
from redmica_ops.deploy.rollout import ServiceDeployer, roll_out
from redmica_ops.errors import Conflict, UsageError
from redmica_ops.settings import require
from redmica_ops.tenants.model import Entry, Tenant

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_ssm import SSMClient

    from redmica_ops.runs.pacing import Clock
    from redmica_ops.settings import Settings

Progress = Callable[[str], None]


class Fleet:
    """Every cell of the setup; also what `tenant move` uses to restart a cell."""

    def __init__(
        self,
        settings: Settings,
        ecs: ECSClient,
        clock: Clock,
        route53: Route53Client | None = None,
        elbv2: Callable[[], ElasticLoadBalancingv2Client] | None = None,
        progress: Progress | None = None,
        status: Progress | None = None,
        ssm: Callable[[], SSMClient] | None = None,
        cancelled: Callable[[], bool] | None = None,
        ecs_within: Callable[[float], ECSClient] | None = None,
    ) -> None:
        self.settings = settings
        self.cells: CellMap = cell_map(settings)
        self.ecs = ecs
        # The same client with socket timeouts no longer than a rollout's deadline.
        self.ecs_within = ecs_within
        self.clock = clock
        self.route53 = route53
        # Made on first use: only routing and the site probe look up a cell's balancer.
        self.elbv2 = elbv2
        self.progress = progress or (lambda text: None)
        # The single service's state line; cells in waves (threads) print plain lines instead.
        self.status = status
        self.ssm = ssm  # the image parameters' client, made when a rollout succeeded
        # Ctrl-C where it does not raise (sigint_escalates): a followed rollout stops following.
        self.cancelled = cancelled
        self._targets: dict[str, AliasTarget] = {}
        self._capacity: dict[str, int] = {}

    def select(self, names: Iterable[str] = ()) -> list[Cell]:
        """The named cells (an unknown name is a usage error); none named: every cell."""
        names = tuple(names)
        return self.cells.select(names) if names else list(self.cells.cells)

    # -- per cell -------------------------------------------------------------------------------
    def deployer(self, cell: Cell, progress: Progress | None = None) -> ServiceDeployer:
        if not cell.cluster or not cell.service:
            raise UsageError(
                f"cell {cell.name} needs a cluster and a service",
                'set REDMICA_CLUSTER and REDMICA_SERVICE, or cells = ["NAME=CLUSTER/SERVICE"]',
            )
        say = progress or self.progress
        prefix = f"[{cell.name}] " if self.cells.configured else ""
        return ServiceDeployer(
            self.ecs,
            ServiceTarget(cell.cluster, cell.service),
            self.clock,
            progress=lambda text: say(prefix + text),
            max_poll=self.settings.deploy_poll_interval,
            cancelled=self.cancelled,
            ecs_within=self.ecs_within,
        )

    def service_deployer(self) -> ServiceDeployer:
        """The deployer of the `service` setting, with the state line (the single-service
        verbs); a usage error names a missing setting."""
        settings = self.settings
        require(settings, ["cluster", "service"], "deployments need")
        return ServiceDeployer(
            self.ecs,
            ServiceTarget(str(settings.cluster), str(settings.service)),
            self.clock,
            progress=self.progress,
            max_poll=settings.deploy_poll_interval,
            status=self.status,
            cancelled=self.cancelled,
            ecs_within=self.ecs_within,
        )

    def image(self, cell: Cell, revision: str | None = None) -> str | None:
        """The app container's image in `revision`, else in the cell's current one."""
        deployer = self.deployer(cell)
        arn = revision or str(deployer.service()["taskDefinition"])
        definition, _ = deployer.task_definition(arn)
        containers = definition.get("containerDefinitions", [])
        wanted = self.settings.container
        for container in containers:
            if wanted is None or container.get("name") == wanted:
                return str(container.get("image"))
        return None

    def record_image(self, cell: Cell, revision: str, parameter: str) -> None:
        """Write the app image of `revision` (the one the cell now runs) into the SSM String
        parameter its stack reads (deploy/image.py)."""
        image = self.image(cell, revision)
        if image is None or self.ssm is None:
            return  # no app container to record (a usage error elsewhere), or no AWS here
        self.ssm().put_parameter(Name=parameter, Value=image, Type="String", Overwrite=True)

    def reload(self, cell: Cell) -> tuple[bool, str]:
        current = self.revision(cell)
        report = self.roll(cell, "reload", None, current, rollback=False, force=True)
        return report.ok, f"{report.result} ({revision_name(current)})"

    def revision(self, cell: Cell) -> str:
        """The task definition ARN the cell's service runs."""
        return str(self.deployer(cell).service()["taskDefinition"])

    def revision_for(self, tenants: Iterable[Tenant] = ()) -> str | None:
        """The revision a migration of these tenants runs: the service's (if a service is
        set), else the task_definition setting.

        With cells, the tenants' own cells decide: one run has one revision, so it is the
        revision of the first of their cells when those cells all run one image; when they run
        different images (a release half done) the run is refused rather than migrate some
        tenants with another cell's image. `migrate --cell` and `release` name each cell's
        revision themselves.
        """
        settings = self.settings
        if self.cells.configured:
            return self._cells_revision(tenants)
        if settings.service and settings.cluster:
            return self.revision(self.cells.home)  # the implicit cell: the service
        return settings.task_definition

    def _cells_revision(self, tenants: Iterable[Tenant]) -> str:
        cells = self.cells
        wanted = {cells.cell_of(t) for t in tenants}
        chosen = [c for c in cells.cells if c.name in wanted] or list(cells.cells)
        revisions: dict[str, tuple[str, str | None]] = {}
        for cell in chosen:
            deployer = self.deployer(cell)
            arn = str(deployer.service()["taskDefinition"])
            definition, _ = deployer.task_definition(arn)
            images = [
                str(c.get("image"))
                for c in definition.get("containerDefinitions", [])
                if self.settings.container is None or c.get("name") == self.settings.container
            ]
            revisions[cell.name] = (arn, images[0] if images else None)
        if len({image for _, image in revisions.values()}) > 1:
            running = ", ".join(f"{name}: {image}" for name, (_, image) in revisions.items())
            raise Conflict(
                f"these tenants' cells run different images ({running}); one run would migrate "
                "some of them with another cell's image",
                "migrate each cell with `redmica migrate --cell NAME`, or finish the release first",
            )
        return next(iter(revisions.values()))[0]

    def roll(
        self,
        cell: Cell,
        action: str,
        task_definition: str | None,
        previous: str | None,
        rollback: bool,
        force: bool = False,
        timeout: float | None = None,
        wait: bool = True,
    ) -> RolloutReport:
        """One rolling update of the cell's service, followed to its end (see deploy.py)."""
        return roll_out(
            self.deployer(cell),
            action,
            task_definition,
            previous,
            float(timeout if timeout is not None else self.settings.deploy_timeout),
            rollback=rollback,
            wait=wait,
            force=force,
        )

    def capacity(self, cell: Cell) -> int:
        """Tenants the cell holds: the `cell_capacity` setting, else the capacity model.

        Every task of a cell renders all the cell's tenants, so a cell holds what one task's
        memory holds (more tasks add throughput, not room): the pool the task's memory allows,
        divided by the share of tenants expected to be active at once (setting active_share)."""
        if self.settings.cell_capacity is not None:
            return self.settings.cell_capacity
        if cell.name not in self._capacity:
            deployer = self.deployer(cell)
            definition, _ = deployer.task_definition(str(deployer.service()["taskDefinition"]))
            memory = int(str(definition.get("memory") or "0") or 0)
            if memory <= 0:
                raise UsageError(
                    f"cell {cell.name}'s task definition has no task-level memory",
                    "set cell_capacity (tenants per cell) instead",
                )
            pool = derive_pool(PoolRequest(memory_mib=memory, memory_source=f"cell {cell.name}"))
            room = tenants_per_task(pool.max_pool_size, self.settings.active_share)
            self._capacity[cell.name] = room.tenants_per_task
        return self._capacity[cell.name]

    # -- routing --------------------------------------------------------------------------------
    def target(self, cell: Cell) -> AliasTarget:
        if cell.name not in self._targets:
            if self.elbv2 is None:
                raise UsageError("routing needs the ELBv2 client")
            service = self.deployer(cell).service()
            self._targets[cell.name] = load_balancer_of(service, LoadBalancerGateway(self.elbv2()))
        return self._targets[cell.name]

    def router(self) -> Router | None:
        """The router, or None when routing is not managed here (no hosted_zone_id)."""
        zone = self.settings.hosted_zone_id
        if not zone or self.route53 is None:
            return None
        if not self.settings.domain:
            raise UsageError(
                "hosted_zone_id is set but domain is not",
                "routing records are <sub_domain>.<domain>: set REDMICA_DOMAIN",
            )
        targets = {cell.name: self.target(cell) for cell in self.cells.cells}
        return Router(Route53Gateway(self.route53), zone, self.settings.domain, targets, self.clock)

    def routing_ready(self) -> None:
        """Find every cell's load balancer now, so a routing problem is found before anything
        is written (nothing to do when routing is not managed here)."""
        self.router()

    def route(self, tenant: Tenant, why: str) -> str | None:
        """Route a tenant's host to its cell (None when routing is not managed here)."""
        router = self.router()
        if router is None:
            return None
        cell = self.cells.cell_of(tenant)
        router.route(tenant.sub_domain, cell, why)
        return f"routed {router.host(tenant.sub_domain)} to cell {cell} (INSYNC)"

    def unroute(self, sub_domain: str, why: str) -> str | None:
        """Delete a host's routing record (None when routing is not managed here)."""
        router = self.router()
        if router is None:
            return None
        if router.unroute(sub_domain, why):
            return f"deleted the routing record of {router.host(sub_domain)} (INSYNC)"
        return f"{router.host(sub_domain)} had no routing record"

    # -- placement ------------------------------------------------------------------------------
    def assign(self, tenant: Tenant, entries: list[Entry], requested: str | None) -> Tenant:
        """The tenant as it will be written: in the requested cell, its document's, or the
        roomiest. Without configured cells the document is left alone (the implicit cell)."""
        cells = self.cells
        if requested is not None and tenant.properties.cell not in (None, requested):
            raise UsageError(
                f"--cell {requested} contradicts property.cell {tenant.properties.cell!r}",
                "give the cell in one place",
            )
        if tenant.properties.moving_from is not None:
            raise UsageError(
                "property.moving_from is set only by `redmica tenant move`",
                "remove it from the document",
            )
        name = requested or tenant.properties.cell
        if name is not None:
            cells.get(name)
            return tenant.in_cell(name)
        if not cells.configured:
            return tenant
        return tenant.in_cell(place(cells, entries, self.capacity).name)

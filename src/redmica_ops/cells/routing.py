"""Hostname routing: one Route 53 alias record per tenant, pointing at its cell's load balancer.

Why Route 53 and not ALB host-header rules: at 800 tenants, rules of 5 host values each need 160
rules, over the 100-rules-per-load-balancer quota; one alias record per tenant fits the 10,000
records of a hosted zone, and moving a tenant is one UPSERT (docs/cells.md). The gateways are thin
(one method per AWS call) so the logic above them is plain and testable; every change batch is
waited for until Route 53 says INSYNC, polled with an injected clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redmica_ops.aws import translate_errors
from redmica_ops.errors import NotFound, OperationFailed, UsageError

if TYPE_CHECKING:
    from mypy_boto3_ecs.type_defs import ServiceTypeDef
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_elbv2.type_defs import LoadBalancerTypeDef, TargetGroupTypeDef
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_route53.literals import RRTypeType
    from mypy_boto3_route53.type_defs import (
        ChangeInfoTypeDef,
        ChangeTypeDef,
        ListResourceRecordSetsResponseTypeDef,
        ResourceRecordSetOutputTypeDef,
    )

    from redmica_ops.cells.config import CellMap
    from redmica_ops.runs.pacing import Clock
    from redmica_ops.tenants.model import Entry

# Route 53 takes at most 1,000 changes in one ChangeResourceRecordSets request.
MAX_CHANGES_PER_BATCH = 500


class Route53Gateway:
    """ListResourceRecordSets, ChangeResourceRecordSets, GetChange: nothing else, nothing more."""

    def __init__(self, client: Route53Client) -> None:
        self.client = client

    def list_resource_record_sets(
        self, zone_id: str, start_name: str | None = None, start_type: RRTypeType | None = None
    ) -> ListResourceRecordSetsResponseTypeDef:
        with translate_errors(f"listing Route 53 records of zone {zone_id}"):
            if start_name and start_type:
                return self.client.list_resource_record_sets(
                    HostedZoneId=zone_id, StartRecordName=start_name, StartRecordType=start_type
                )
            if start_name:
                return self.client.list_resource_record_sets(
                    HostedZoneId=zone_id, StartRecordName=start_name
                )
            return self.client.list_resource_record_sets(HostedZoneId=zone_id)

    def change_resource_record_sets(
        self, zone_id: str, changes: Sequence[ChangeTypeDef], comment: str
    ) -> ChangeInfoTypeDef:
        with translate_errors(f"changing Route 53 records of zone {zone_id}"):
            response = self.client.change_resource_record_sets(
                HostedZoneId=zone_id, ChangeBatch={"Comment": comment, "Changes": list(changes)}
            )
        return response["ChangeInfo"]

    def get_change(self, change_id: str) -> ChangeInfoTypeDef:
        with translate_errors(f"reading Route 53 change {change_id}"):
            return self.client.get_change(Id=change_id)["ChangeInfo"]


class LoadBalancerGateway:
    """DescribeTargetGroups and DescribeLoadBalancers: where a cell's service receives traffic."""

    def __init__(self, client: ElasticLoadBalancingv2Client) -> None:
        self.client = client

    def describe_target_groups(self, arn: str) -> TargetGroupTypeDef:
        with translate_errors(f"describing target group {arn}"):
            return self.client.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]

    def describe_load_balancers(self, arn: str) -> LoadBalancerTypeDef:
        with translate_errors(f"describing load balancer {arn}"):
            return self.client.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]


@dataclass(frozen=True)
class AliasTarget:
    """A load balancer as Route 53 alias target."""

    dns_name: str
    zone_id: str

    @property
    def key(self) -> str:
        # Route 53 stores alias names with a trailing dot and may add the dualstack. prefix.
        name = self.dns_name.lower().rstrip(".")
        return name.removeprefix("dualstack.")


def load_balancer_of(service: ServiceTypeDef, gateway: LoadBalancerGateway) -> AliasTarget:
    """The load balancer in front of an ECS service (its first target group's)."""
    groups = [lb.get("targetGroupArn") for lb in service.get("loadBalancers", [])]
    groups = [g for g in groups if g]
    if not groups:
        raise UsageError(
            f"ECS service {service.get('serviceName')!r} has no load balancer target group",
            "routing by hostname needs each cell's service behind its own load balancer",
        )
    group = gateway.describe_target_groups(str(groups[0]))
    balancers = group.get("LoadBalancerArns") or []
    if not balancers:
        raise NotFound(f"target group {groups[0]} is not attached to a load balancer")
    balancer = gateway.describe_load_balancers(str(balancers[0]))
    return AliasTarget(str(balancer["DNSName"]), str(balancer["CanonicalHostedZoneId"]))


def fqdn(host: str) -> str:
    return host.lower().rstrip(".") + "."


@dataclass(frozen=True)
class Record:
    """An alias A record as Route 53 holds it."""

    name: str
    target: AliasTarget
    raw: ResourceRecordSetOutputTypeDef


@dataclass(frozen=True)
class Finding:
    """Routing drift: what `doctor` reports and `routing sync` repairs."""

    kind: str  # missing | wrong_cell | orphan
    host: str
    tenant: str | None
    expected_cell: str | None
    actual_cell: str | None

    def text(self) -> str:
        if self.kind == "missing":
            return f"{self.host} (tenant {self.tenant}) has no record (cell {self.expected_cell})"
        if self.kind == "wrong_cell":
            return (
                f"{self.host} (tenant {self.tenant}) is routed to cell {self.actual_cell}, "
                f"its document says {self.expected_cell}"
            )
        return f"{self.host} points at cell {self.actual_cell} but no tenant has this host"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "kind": self.kind,
            "host": self.host,
            "tenant": self.tenant,
            "expected_cell": self.expected_cell,
            "actual_cell": self.actual_cell,
        }


class Router:
    """Keeps the tenants' alias records equal to what their documents say."""

    def __init__(
        self,
        gateway: Route53Gateway,
        zone_id: str,
        domain: str,
        targets: Mapping[str, AliasTarget],
        clock: Clock,
        timeout: float = 600.0,
        poll: float = 5.0,
    ) -> None:
        self.gateway = gateway
        self.zone_id = zone_id
        self.domain = domain.lower().rstrip(".")
        self.targets = dict(targets)
        self.clock = clock
        self.timeout = timeout
        self.poll = poll

    def host(self, sub_domain: str) -> str:
        return fqdn(f"{sub_domain}.{self.domain}")

    def cell_for_target(self, target: AliasTarget) -> str | None:
        for cell, known in self.targets.items():
            if known.key == target.key:
                return cell
        return None

    # -- reading --------------------------------------------------------------------------------
    def records(self) -> dict[str, Record]:
        """Alias A records directly under the domain that point at one of the cells."""
        found: dict[str, Record] = {}
        start_name: str | None = None
        start_type: RRTypeType | None = None
        suffix = "." + self.domain + "."
        while True:
            page = self.gateway.list_resource_record_sets(self.zone_id, start_name, start_type)
            for item in page.get("ResourceRecordSets", []):
                name = str(item.get("Name", "")).lower()
                alias = item.get("AliasTarget")
                if item.get("Type") != "A" or not alias or not name.endswith(suffix):
                    continue
                label = name[: -len(suffix)]
                if "." in label:
                    continue  # deeper names are not tenant hosts
                if label in ("*", "\\052"):
                    # The main stack's catch-all *.<domain> (Route 53 spells it \052): no
                    # tenant's host, never an orphan to delete.
                    continue
                target = AliasTarget(str(alias["DNSName"]), str(alias["HostedZoneId"]))
                if self.cell_for_target(target) is not None:
                    found[name] = Record(name, target, item)
            if not page.get("IsTruncated"):
                return found
            start_name = page.get("NextRecordName")
            start_type = page.get("NextRecordType")

    # -- comparing ------------------------------------------------------------------------------
    def drift(self, entries: Iterable[Entry], cells: CellMap) -> list[Finding]:
        actual = self.records()
        findings: list[Finding] = []
        wanted: set[str] = set()
        for entry in sorted(entries, key=lambda e: e.tenant_id):
            tenant = entry.tenant
            host = self.host(tenant.sub_domain)
            wanted.add(host)
            expected = cells.cell_of(tenant)
            record = actual.get(host)
            if record is None:
                findings.append(Finding("missing", host, entry.tenant_id, expected, None))
                continue
            routed = self.cell_for_target(record.target)
            # While a move runs, both the source and the target cell are right.
            allowed = {expected, tenant.properties.moving_from}
            if routed not in allowed:
                findings.append(Finding("wrong_cell", host, entry.tenant_id, expected, routed))
        for host, record in sorted(actual.items()):
            if host not in wanted:
                routed = self.cell_for_target(record.target)
                findings.append(Finding("orphan", host, None, None, routed))
        return findings

    # -- changing -------------------------------------------------------------------------------
    def _upsert(self, host: str, cell: str) -> ChangeTypeDef:
        try:
            target = self.targets[cell]
        except KeyError:
            raise UsageError(f"cell {cell!r} has no load balancer to route to") from None
        return {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": host,
                "Type": "A",
                "AliasTarget": {
                    "HostedZoneId": target.zone_id,
                    "DNSName": target.dns_name,
                    "EvaluateTargetHealth": False,
                },
            },
        }

    def route(self, sub_domain: str, cell: str, why: str) -> None:
        """Point one tenant's host at `cell` and wait until Route 53 applied it."""
        self.apply([self._upsert(self.host(sub_domain), cell)], why)

    def unroute(self, sub_domain: str, why: str) -> bool:
        """Delete one tenant's record (if it points at a cell); False if there was none."""
        host = self.host(sub_domain)
        record = self.records().get(host)
        if record is None:
            return False
        self.apply([{"Action": "DELETE", "ResourceRecordSet": record.raw}], why)
        return True

    def repair(self, findings: Iterable[Finding], cells: CellMap, why: str) -> int:
        """Fix drift: create missing records, re-point wrong ones, delete orphans."""
        changes: list[ChangeTypeDef] = []
        records: dict[str, Record] | None = None
        for finding in findings:
            if finding.kind in ("missing", "wrong_cell") and finding.expected_cell:
                changes.append(self._upsert(finding.host, finding.expected_cell))
            elif finding.kind == "orphan":
                records = records if records is not None else self.records()
                if finding.host in records:
                    raw = records[finding.host].raw
                    changes.append({"Action": "DELETE", "ResourceRecordSet": raw})
        for start in range(0, len(changes), MAX_CHANGES_PER_BATCH):
            self.apply(changes[start : start + MAX_CHANGES_PER_BATCH], why)
        return len(changes)

    def apply(self, changes: Sequence[ChangeTypeDef], why: str) -> None:
        info = self.gateway.change_resource_record_sets(self.zone_id, changes, why[:256])
        self.wait_in_sync(str(info["Id"]), str(info.get("Status", "PENDING")))

    def wait_in_sync(self, change_id: str, status: str) -> None:
        deadline = self.clock.now() + self.timeout
        while status != "INSYNC":
            if self.clock.now() >= deadline:
                raise OperationFailed(
                    f"Route 53 change {change_id} was not INSYNC within {self.timeout:g}s",
                    f"check it with `aws route53 get-change --id {change_id}`",
                )
            self.clock.sleep(self.poll)
            status = str(self.gateway.get_change(change_id).get("Status", "PENDING"))

"""`redmica doctor`: what is wrong with this setup, each finding with a hint.

It looks through a workspace (its clients, its fleet, its password resolver) and reads the
tenant listing once, for every check that needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redmica_ops.aws import error_code, translate_errors
from redmica_ops.capacity import CapacityError, derive_pool
from redmica_ops.container.memory import memory_budget, pool_request
from redmica_ops.errors import JSONObject, RedmicaError
from redmica_ops.settings import Settings

if TYPE_CHECKING:
    from redmica_ops.container.apache import ApacheInstall
    from redmica_ops.tenants.model import Entry
    from redmica_ops.tenants.store import Listing
    from redmica_ops.workspace import BaseWorkspace

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    hint: str | None = None

    def as_dict(self) -> JSONObject:
        return self.__dict__.copy()


class Doctor:
    def __init__(
        self, ws: BaseWorkspace, apache_finder: Callable[[], ApacheInstall] | None = None
    ) -> None:
        self.ws = ws
        self.settings: Settings = ws.settings
        self.clients = ws.clients()
        self.apache_finder = apache_finder
        self.checks: list[Check] = []
        self.tenant_count = 0
        self._listing: Listing | RedmicaError | None = None

    def listing(self) -> Listing:
        """The tenant listing, read once for every check (a read that failed fails each)."""
        if self._listing is None:
            try:
                self._listing = self.ws.tenants()
            except RedmicaError as error:
                self._listing = error
        if isinstance(self._listing, RedmicaError):
            raise self._listing
        return self._listing

    def add(self, name: str, status: str, detail: str, hint: str | None = None) -> None:
        self.checks.append(Check(name, status, detail, hint))

    def run(self) -> list[Check]:
        self.check_settings()
        if self.check_identity():
            if self.settings.bucket:
                self.check_bucket()
                self.check_tenants()
                if self.settings.hosted_zone_id:
                    self.check_routing()
            if self.settings.cluster:
                self.check_ecs()
        self.check_capacity()
        self.check_apache()
        return self.checks

    def check_settings(self) -> None:
        s = self.settings
        self.add(
            "settings: bucket",
            OK if s.bucket else FAIL,
            s.bucket or "not set",
            None if s.bucket else "set REDMICA_BUCKET, CONFIG_BUCKET_NAME or `bucket`",
        )
        self.add(
            "settings: domain",
            OK if s.domain else WARN,
            s.domain or "not set",
            None if s.domain else "render and serve need the service domain",
        )
        missing = [n for n in ("cluster", "task_definition", "container") if not getattr(s, n)]
        self.add(
            "settings: migrations",
            WARN if missing else OK,
            f"missing {', '.join(missing)}"
            if missing
            else f"{s.cluster} / {s.task_definition} / {s.container}",
            "`migrate --executor ecs` needs them" if missing else None,
        )
        self.add(
            "settings: service",
            OK if s.service else WARN,
            s.service or "not set",
            None if s.service else "deploy, reload, rollback and status need it",
        )

    def check_identity(self) -> bool:
        try:
            with translate_errors("asking STS who we are"):
                identity = self.clients.sts().get_caller_identity()
        except RedmicaError as error:
            self.add("credentials", FAIL, error.message, error.hint)
            return False
        self.add("credentials", OK, f"{identity.get('Arn')} (account {identity.get('Account')})")
        return True

    def check_bucket(self) -> None:
        s3, bucket = self.clients.s3(), str(self.settings.bucket)
        try:
            versioning = s3.get_bucket_versioning(Bucket=bucket)
        except Exception as exc:
            code = error_code(exc)
            detail = "does not exist" if code == "NoSuchBucket" else f"cannot be read ({code})"
            self.add(
                "bucket",
                FAIL,
                f"s3://{bucket} {detail}",
                "check the bucket name, the "
                "region and the IAM policy (`redmica iam-policy --for operator`)",
            )
            return
        self.add("bucket", OK, f"s3://{bucket} exists")
        enabled = versioning.get("Status") == "Enabled"
        self.add(
            "bucket: versioning",
            OK if enabled else WARN,
            "enabled" if enabled else "not enabled",
            None if enabled else "enable it: tenant history/restore and undoing a remove need it",
        )
        try:
            rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
                "Rules"
            ]
            algorithm = rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
            kms = algorithm.startswith("aws:kms")
            self.add(
                "bucket: encryption",
                OK if kms else WARN,
                algorithm,
                None if kms else "use SSE-KMS: the documents hold database passwords",
            )
        except Exception as exc:
            self.add(
                "bucket: encryption",
                WARN,
                f"no default encryption ({error_code(exc)})",
                "set SSE-KMS default encryption (or kms_key_id for redmica's writes)",
            )
        try:
            block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
            blocked = all(
                block.get(k)
                for k in (
                    "BlockPublicAcls",
                    "IgnorePublicAcls",
                    "BlockPublicPolicy",
                    "RestrictPublicBuckets",
                )
            )
            self.add(
                "bucket: public access",
                OK if blocked else FAIL,
                "all public access blocked" if blocked else f"not fully blocked: {block}",
                None if blocked else "block all public access: it holds passwords",
            )
        except Exception as exc:
            self.add(
                "bucket: public access",
                FAIL,
                f"no public access block ({error_code(exc)})",
                "block all public access on the config bucket: it holds passwords",
            )

    def check_tenants(self) -> None:
        from redmica_ops.tenants.selection import NO_DB_HOST_HINT, Reason, Use, select

        try:
            registry = self.ws.registry()
            listing = self.listing()
        except RedmicaError as error:
            self.add("tenants", FAIL, error.message, error.hint)
            return
        selection = select(
            listing, Use.SERVE, registry.claims.owner_of, db_host=self.settings.db_host
        )
        clashes = [p for e in selection.excluded_by(Reason.CLASH) for p in e.problems]
        hostless = selection.excluded_by(Reason.NO_DATABASE)
        self.tenant_count = len(selection.eligible)
        if selection.excluded:
            bad = [d.key for d in listing.invalid] + [str(p) for p in clashes]
            bad += [f"{e.name}: no database host" for e in hostless]
            self.add(
                "tenants",
                FAIL,
                f"{len(listing.tenants)} valid, {len(listing.invalid)} "
                f"invalid, {len(clashes)} clash(es)"
                + (f", {len(hostless)} without a database host" if hostless else "")
                + f": {'; '.join(bad[:3])}",
                "see `redmica tenant list`; repair with `redmica tenant update ID -f FILE` "
                "or `redmica tenant edit ID`"
                + (f"; {NO_DB_HOST_HINT}" if hostless else "")
                + (
                    "; a key that is not a tenant id: `redmica tenant rename-key KEY NEW_ID`"
                    if any(d.tenant_id is None for d in listing.invalid)
                    else ""
                ),
            )
        else:
            self.add("tenants", OK, f"{len(listing.tenants)} tenant(s), all valid and unique")
        self.check_password_secrets(selection.entries())
        try:
            audit = registry.audit_claims(listing)
        except RedmicaError as error:
            self.add("tenants: claims", FAIL, error.message, error.hint)
            return
        if audit.clean:
            self.add("tenants: claims", OK, "every unique value is claimed by its tenant")
            return
        hints = []
        if audit.orphans:
            hints.append("`redmica tenant claims repair` releases orphan claims")
        if audit.unclaimed:
            hints.append("`redmica tenant claims rebuild` claims the unclaimed values")
        if audit.contested:
            hints.append("a contested value's document is not served: change one tenant")
        self.add(
            "tenants: claims",
            WARN if not audit.contested else FAIL,
            f"{len(audit.orphans)} orphan, {len(audit.unclaimed)} unclaimed, "
            f"{len(audit.contested)} contested: {'; '.join(audit.lines()[:3])}",
            "; ".join(hints),
        )

    def check_password_secrets(self, entries: list[Entry]) -> None:
        """Each db.password_secret read once, as serve would (values never shown): one that
        cannot be read sets its tenant aside at serve."""
        with_secret = [e for e in entries if e.tenant.db.password_secret is not None]
        if not with_secret:
            return
        _, failed = self.ws.passwords().resolve_entries(with_secret)
        if not failed:
            self.add("tenants: password secrets", OK, f"{len(with_secret)} secret(s) readable")
            return
        problems = [str(p) for found in failed.values() for p in found]
        self.add(
            "tenants: password secrets",
            FAIL,
            f"{len(failed)} of {len(with_secret)} cannot be read: {'; '.join(problems[:3])}",
            "serve leaves these tenants out: create or fix the secret (a SecureString "
            "parameter or a Secrets Manager secret under tenant_secrets_prefix)",
        )

    def check_capacity(self) -> None:
        """The pool `entrypoint serve` would derive here (the same rule, the same warnings)."""

        budget = memory_budget(self.settings, {})
        try:
            pool = derive_pool(pool_request(self.settings, budget, self.tenant_count))
        except CapacityError as error:
            self.add(
                "capacity", FAIL, str(error), "raise serve_memory_mib or lower memory_reserve_mib"
            )
            return
        detail = (
            f"pool {pool.max_pool_size} ({pool.pool_source}) from {pool.memory_mib} MiB "
            f"({pool.memory_source}) for {self.tenant_count} tenant(s); spawn "
            f"{pool.spawn_method}, min_instances {pool.min_instances}"
        )
        if pool.warnings:
            self.add(
                "capacity",
                WARN,
                f"{detail}; " + "; ".join(pool.warnings),
                "explicit values win; see `redmica capacity` and docs/capacity.md",
            )
        else:
            self.add("capacity", OK, detail)

    def check_routing(self) -> None:
        """Each tenant's host routed to its cell, and no cell record without a tenant."""
        try:
            fleet = self.ws.fleet()
            router = fleet.router()
            assert router is not None  # hosted_zone_id is set
            entries = self.listing().entries()
            findings = router.drift(entries, fleet.cells)
        except RedmicaError as error:
            self.add("routing", FAIL, error.message, error.hint)
            return
        unknown = [
            f"{e.tenant_id}: {problem}"
            for e in entries
            if (problem := fleet.cells.unknown_cell(e.tenant))
        ]
        if findings or unknown:
            texts = unknown + [f.text() for f in findings]
            self.add(
                "routing",
                FAIL,
                f"{len(texts)} problem(s): " + "; ".join(texts[:5]),
                "repair the records with `redmica cells routes --fix`",
            )
        else:
            self.add("routing", OK, f"{len(entries)} tenant host(s) routed to their cells")

    def check_ecs(self) -> None:
        s, ecs = self.settings, self.clients.ecs()
        cluster = str(s.cluster)
        try:
            with translate_errors(f"describing cluster {cluster}"):
                found = ecs.describe_clusters(clusters=[cluster]).get("clusters", [])
        except RedmicaError as error:
            self.add("ecs: cluster", FAIL, error.message, error.hint)
            return
        active = [c for c in found if c.get("status") == "ACTIVE"]
        self.add(
            "ecs: cluster",
            OK if active else FAIL,
            f"{cluster} is active" if active else f"{cluster} not found or inactive",
            None if active else "check the cluster setting and the region",
        )
        if not active:
            return
        image = None
        if s.task_definition:
            image = self._task_definition_image(ecs, str(s.task_definition), s.container)
        if s.service:
            self._check_service(ecs, cluster, str(s.service), image)

    def _task_definition_image(self, ecs: Any, arn: str, container: str | None) -> str | None:
        try:
            definition, names = _images(ecs, arn)
        except Exception as exc:
            self.add(
                "ecs: task definition",
                FAIL,
                f"{arn} not found ({error_code(exc)})",
                "check the task_definition setting",
            )
            return None
        label = f"{definition.get('family')}:{definition.get('revision')}"
        if container and container not in names:
            self.add(
                "ecs: task definition",
                FAIL,
                f"{label} has no container {container!r}",
                f"containers there: {', '.join(sorted(names))}",
            )
            return None
        self.add(
            "ecs: task definition",
            OK,
            f"{label}, container {container} runs {names.get(container or '', '?')}",
        )
        return names.get(container or "")

    def _check_service(self, ecs: Any, cluster: str, service: str, image: str | None) -> None:
        try:
            services = ecs.describe_services(cluster=cluster, services=[service]).get(
                "services", []
            )
        except Exception as exc:
            self.add("ecs: service", FAIL, f"cannot describe {service} ({error_code(exc)})")
            return
        live = [x for x in services if x.get("status") != "INACTIVE"]
        if not live:
            self.add(
                "ecs: service",
                FAIL,
                f"{service} not found in {cluster}",
                "check the service setting",
            )
            return
        primary: dict[str, Any] = next(
            (d for d in live[0].get("deployments", []) if d.get("status") == "PRIMARY"), {}
        )
        self.add(
            "ecs: service",
            OK,
            f"{service}: {primary.get('runningCount', '?')}/"
            f"{primary.get('desiredCount', '?')} running, rollout "
            f"{primary.get('rolloutState', '-')}",
        )
        if image and primary.get("taskDefinition"):
            running = self._image_of(ecs, primary["taskDefinition"])
            same = running == image
            self.add(
                "ecs: images agree",
                OK if same else WARN,
                f"service runs {running}" + ("" if same else f"; migrations would run {image}"),
                None
                if same
                else "expected between `release` steps; otherwise point "
                "task_definition at the service's revision",
            )

    def _image_of(self, ecs: Any, arn: str) -> str | None:
        try:
            return _images(ecs, arn)[1].get(self.settings.container or "")
        except Exception:
            return None

    def check_apache(self) -> None:
        if self.apache_finder is None:
            return
        try:
            install = self.apache_finder()
        except RedmicaError as error:
            self.add("apache (local rendering)", WARN, error.message, error.hint)
            return
        self.add("apache (local rendering)", OK, f"{install.binary} with Passenger")


def _images(ecs: Any, arn: str) -> tuple[dict[str, Any], dict[str, str | None]]:
    """A task definition and its containers' images by container name."""
    definition: dict[str, Any] = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    names = {c["name"]: c.get("image") for c in definition.get("containerDefinitions", [])}
    return definition, names


def failed(checks: list[Check]) -> bool:
    return any(c.status == FAIL for c in checks)

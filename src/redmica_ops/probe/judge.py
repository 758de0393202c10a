"""Judging one answer: is this the tenant's own site, in the state its document says?

- an active tenant: 200, or 302 to its own host (or a relative place), is up; the maintenance
  answer (503 with Retry-After) means the container did not render it as served;
- a suspended or provisioning tenant must answer 503 with Retry-After (the maintenance vhost);
  the application answering instead is a failure: the suspension is not in force;
- a wrong tenant: a redirect to another host, an `X-Redmica-Tenant` header naming another
  tenant (the process's own tenant, frozen at spawn: it exposes a shared app group), or a
  <title> without what `expect_title` asks for;
- a limit_ips tenant answering 403 refused the probe's address: restricted, not judged.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from redmica_ops.probe.model import Answer, Failure, SiteTarget, Verdict
from redmica_ops.tenants import rules

# The header a tenant's process names itself in (docs/probe.md: the image's initializer sets
# it from REDMICA_TENANT, which Passenger froze into the process when it spawned).
TENANT_HEADER = "X-Redmica-Tenant"
UP_STATUSES = (200, 302)
MAINTENANCE = {"suspended": Verdict.SUSPENDED, "provisioning": Verdict.PROVISIONING}

Judgement = tuple[Verdict, Failure | None, str]


def _is_maintenance(answer: Answer) -> bool:
    return answer.status == 503 and answer.header("Retry-After") is not None


def _identity(target: SiteTarget, answer: Answer, expect_title: str | None) -> str | None:
    """Why the answer is not this tenant's site, or None when nothing says so."""
    named = answer.header(TENANT_HEADER)
    if named is not None and named.strip() != target.tenant:
        return f"answered by tenant {rules.show(named.strip())}'s process"
    if answer.status == 302:
        location = answer.header("Location")
        if location is None:
            return "302 without a Location header"
        host = urlsplit(location.strip()).hostname
        if host is not None and host.rstrip(".").lower() != target.host:
            return f"redirects to another host, {rules.show(host)}"
    if answer.status == 200 and expect_title is not None:
        if answer.title is None:
            return f"no <title> in the page (expected one containing {expect_title!r})"
        if expect_title not in answer.title:
            return f"title {rules.show(answer.title)} does not contain {expect_title!r}"
    return None


def expected_title(template: str | None, target: SiteTarget) -> str | None:
    if template is None:
        return None
    sub_domain = target.host.split(".", 1)[0]
    return template.replace("{tenant}", target.tenant).replace("{sub_domain}", sub_domain)


def judge(target: SiteTarget, answer: Answer, expect_title: str | None = None) -> Judgement:
    """The verdict on one answer, the kind of failure and a one-line reason."""
    maintenance = MAINTENANCE.get(target.status)
    if maintenance is not None:
        if _is_maintenance(answer):
            return maintenance, None, f"503 with Retry-After {answer.header('Retry-After')}"
        if answer.status in UP_STATUSES:
            return (
                Verdict.FAILED,
                Failure.NOT_SUSPENDED,
                f"the tenant is {target.status} but its site answered {answer.status}",
            )
        return (
            Verdict.FAILED,
            Failure.STATUS,
            f"the tenant is {target.status}: expected 503 with Retry-After, got "
            f"{_describe(answer)}",
        )
    if answer.status in UP_STATUSES:
        wrong = _identity(target, answer, expected_title(expect_title, target))
        if wrong is not None:
            return Verdict.FAILED, Failure.WRONG_TENANT, f"not this tenant's site: {wrong}"
        return Verdict.UP, None, str(answer.status)
    if _is_maintenance(answer):
        return (
            Verdict.FAILED,
            Failure.NOT_SERVED,
            "the maintenance page answered (503 with Retry-After) for an active tenant: the "
            "container has not rendered it as served",
        )
    if answer.status == 403 and target.restricted:
        return (
            Verdict.RESTRICTED,
            None,
            "403: limit_ips refused the probe's address; not checked (docs/probe.md)",
        )
    return Verdict.FAILED, Failure.STATUS, f"answered {_describe(answer)}"


def _describe(answer: Answer) -> str:
    hint = {
        404: "no vhost for this host (the catch-all)",
        500: "the application failed (database, secret or plugin: see the app log)",
        502: "the load balancer got no valid answer from a task",
        503: "no capacity (Passenger's queue full) or no healthy task",
        504: "the load balancer timed out waiting for the task",
    }.get(answer.status)
    return f"{answer.status}" + (f" ({hint})" if hint else "")

"""`redmica tenant claims check | repair | rebuild`: the uniqueness claims of the tenants."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import command, pass_app
from redmica_ops.cli.result import Done
from redmica_ops.cli.tenant import tenant

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output
    from redmica_ops.tenants.registry import ClaimsAudit


@tenant.group()
def claims() -> None:
    """Check and repair the uniqueness claims (sub_domain, db.name, db roles, secret, s3 folder).

    Every value that must be unique across tenants is held by a claim object under
    <prefix>_claims/, created before the tenant's document is written. See docs/tenants.md.

    \b
    Examples:
      redmica tenant claims check
      redmica tenant claims repair
      redmica tenant claims rebuild
    """


def _audit_document(audit: ClaimsAudit) -> dict[str, list[dict[str, str]]]:
    return {
        "orphans": [
            {"field": h.claim.field, "value": h.claim.value, "owner": h.owner, "key": h.claim.key}
            for h in audit.orphans
        ],
        "unclaimed": [
            {"field": c.field, "value": c.value, "tenant": t, "key": c.key}
            for t, c in audit.unclaimed
        ],
        "contested": [
            {"field": h.claim.field, "value": h.claim.value, "tenant": t, "owner": h.owner}
            for t, h in audit.contested
        ],
    }


@command(claims, "check")
@pass_app
def check(app: Application) -> Done:
    """Compare the claims with the documents; exit 1 when anything needs attention.

    orphan: a claim held by a tenant that does not use the value (a crash between steps, or a
    tenant removed by hand): `tenant claims repair` releases it. unclaimed: a value of a
    document written before claims existed: `tenant claims rebuild` claims it. contested: a
    document uses a value another tenant holds: that document is not served (see
    `tenant list`); change one of the two.

    \b
    Examples:
      redmica tenant claims check --output json
    """
    audit = app.workspace().registry().audit_claims()

    def text(out: Output) -> None:
        for line in audit.lines():
            out.text(line)
        out.info(
            "claims match the documents" if audit.clean else f"{len(audit.lines())} finding(s)"
        )

    return Done(_audit_document(audit), text, code=0 if audit.clean else 1)


@command(claims, "repair")
@pass_app
def repair(app: Application) -> Done:
    """Release orphan claims (each removal conditional on the version checked).

    Only claims whose holder's valid document does not use the value are released; a claim
    held by a tenant whose document cannot be read is left alone.

    \b
    Examples:
      redmica tenant claims repair
    """
    registry = app.workspace().registry()
    done = registry.repair_claims(registry.audit_claims())

    def text(out: Output) -> None:
        for line in done:
            out.text(line)
        out.success(f"released {len(done)} orphan claim(s)")

    return Done({"released": done}, text)


@command(claims, "rebuild")
@pass_app
def rebuild(app: Application) -> Done:
    """Claim the values of documents written before claims existed (run once after upgrading).

    For every valid document, oldest first, each unclaimed value is claimed for it; a value
    another tenant already holds is left with its holder (that is a clash: see `tenant list`).

    \b
    Examples:
      redmica tenant claims rebuild && redmica tenant claims check
    """
    done = app.workspace().registry().rebuild_claims()

    def text(out: Output) -> None:
        for line in done:
            out.text(line)
        out.success(f"created {len(done)} claim(s)")

    return Done({"claimed": done}, text)

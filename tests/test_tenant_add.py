"""`tenants.add.add` as a library call: one listing read, the outcome's report, nothing
written on a refusal (the command's own tests are in test_cli_tenant.py)."""

from __future__ import annotations

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.errors import Conflict, UsageError
from redmica_ops.lifecycle.provision import ProvisionOptions
from redmica_ops.settings.loading import load_settings
from redmica_ops.tenants.add import AddRequest, add
from redmica_ops.tenants.model import parse_tenant
from redmica_ops.tenants.store import Listing
from redmica_ops.workspace import AwsWorkspace
from tests.conftest import BUCKET, DEFAULT_DB_HOST, objects_in, tenant_yaml


class CountingWorkspace(AwsWorkspace):
    """The moto workspace, with its messages kept and its listing reads counted."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.reads = 0
        super().__init__(
            load_settings({}, {"REDMICA_BUCKET": BUCKET, "REDMICA_DB_HOST": DEFAULT_DB_HOST}),
            message=self.messages.append,
        )

    def tenants(self) -> Listing:
        self.reads += 1
        return super().tenants()


def request(name: str, **fields: object) -> AddRequest:
    tenant = parse_tenant(name, tenant_yaml(name).encode(), f"{name}.yaml")
    return AddRequest(name, tenant, f"{name}.yaml", **fields)  # type: ignore[arg-type]


def test_add_writes_once_and_reports_what_it_did(s3: S3Client) -> None:
    ws = CountingWorkspace()
    outcome = add(request("acme", generated_password="not-shown"), ws)
    assert ws.reads == 1
    assert outcome.cell is None and outcome.routed is None and outcome.activation is None
    assert outcome.location == f"s3://{BUCKET}/tenants/acme.yaml"
    report = outcome.report()
    assert report.exit_code == 0
    assert report.document == {
        "tenant": "acme",
        "created": True,
        "key": "tenants/acme.yaml",
        "version_id": outcome.written.version_id,
        "warnings": [],
    }
    lines = report.plain_lines()
    assert lines[0].startswith(f"created tenant acme at s3://{BUCKET}/tenants/acme.yaml")
    assert "a random password was generated and stored; it is not shown" in lines[1]
    assert not any("not-shown" in line for line in lines)
    assert lines[-1].startswith("next: the site goes live")


def test_the_generated_password_is_shown_only_when_asked(s3: S3Client) -> None:
    outcome = add(
        request("acme", generated_password="Shown-Once-1", show_generated=True),
        CountingWorkspace(),
    )
    report = outcome.report()
    assert report.document["generated_password"] == "Shown-Once-1"  # type: ignore[index,call-overload]
    assert "Shown-Once-1" in report.plain_lines()
    assert not any("Shown-Once-1" in m for m in report.messages)


def test_an_existing_tenant_is_refused_and_nothing_is_written(s3: S3Client) -> None:
    add(request("acme"), CountingWorkspace())
    before = objects_in(s3)
    ws = CountingWorkspace()
    with pytest.raises(Conflict) as refused:
        add(request("acme"), ws)
    assert "already exists" in refused.value.message
    assert ws.reads == 1 and objects_in(s3) == before


def test_provision_and_activate_do_not_go_together() -> None:
    with pytest.raises(UsageError) as refused:
        request("acme", activate=True, provision=ProvisionOptions("local"))
    assert "--provision activates the site itself" in refused.value.message

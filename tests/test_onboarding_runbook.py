"""docs/onboarding-an-existing-fleet.md runs command by command (issue 28), as the handbook
does: against the embedded sandbox, on a bucket of 800 hand-written documents, a few of them
poison (a key that is not a tenant id, a .yml, one that does not validate, a newer one using an
older one's hostname), and no claims."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.conftest import tenant_yaml
from tests.test_docs import ROOT, doc_commands, run_in_sandbox

RUNBOOK = ROOT / "docs" / "onboarding-an-existing-fleet.md"
SCRATCH = "acme-redmica-scratch"
CUSTOMERS = [f"cust{number:04d}" for number in range(1, 797)]
POISON = {
    "Cust-Upper.yaml": tenant_yaml("cust-upper"),
    "old.yml": tenant_yaml("old"),
    "broken.yaml": tenant_yaml("broken", db__port="five"),
    # Written last: cust0001 had the hostname first and keeps it.
    "newco.yaml": tenant_yaml("newco", property__sub_domain="cust0001"),
}


def seed(env: dict[str, str]) -> None:
    """What was there before redmica: plain PUTs, no claims."""
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(max_pool_connections=16),
    )
    bucket = env["REDMICA_BUCKET"]

    def put(item: tuple[str, str]) -> None:
        s3.put_object(Bucket=bucket, Key=f"tenants/{item[0]}", Body=item[1].encode())

    # The runbook's scratch bucket, made as its plain `sh` block makes it with the AWS CLI.
    assert env["AWS_REGION"] == "us-east-1", env["AWS_REGION"]  # no LocationConstraint
    s3.create_bucket(Bucket=SCRATCH)
    s3.put_bucket_versioning(Bucket=SCRATCH, VersioningConfiguration={"Status": "Enabled"})
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, [(f"{name}.yaml", tenant_yaml(name)) for name in CUSTOMERS]))
    for item in POISON.items():
        put(item)
    env["_KEYS"] = "\n".join(
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="tenants/")
        for o in page.get("Contents", [])
    )


def test_the_runbook_looks_before_it_writes() -> None:
    commands = [command for command, _ in doc_commands(RUNBOOK, "onboarding")]
    assert len(commands) >= 15
    # Each kind of write has its dry run earlier in the runbook.
    for write, look in (
        ("redmica tenant rename-key Cust-Upper.yaml cust-upper --yes", "--dry-run"),
        ("redmica tenant claims rebuild", "redmica tenant claims rebuild --dry-run"),
    ):
        assert any(look in c for c in commands[: commands.index(write)]), write
    assert commands[0] == "redmica doctor" and "export" in " ".join(commands[:5])


@pytest.mark.subprocess
def test_every_runbook_command_runs_on_800_documents(tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    def seeded(env: dict[str, str]) -> None:
        seed(env)
        seen.update(env)

    done = run_in_sandbox(
        tmp_path,
        [],
        [
            "export REDMICA_DOMAIN=redmine.example.com",
            "export REDMICA_DB_HOST=aurora.cluster.example.internal",
        ],
        doc_commands(RUNBOOK, "onboarding"),
        seed=seeded,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert len(seen["_KEYS"].splitlines()) == 800
    out = done.stdout + done.stderr
    # The looks said what was wrong and why, and what would be written, before any write.
    assert "Cust-Upper.yaml: is not named like a tenant document" in out
    assert "broken.yaml: db.port" in out
    assert "tenant newco clashes and is not served" in out
    assert "the older document" in out
    assert "exported 800 document(s) to before-takeover.tar.gz: 797 valid, 3 invalid" in out
    # The rehearsal: the export's problems named, repaired in a directory, loaded into scratch.
    assert "rehearsal/Cust-Upper.yaml: (tenant id)" in out
    assert "rehearsal/broken.yaml: db.port" in out
    assert "800 file(s) valid, 800 tenant(s)" in out
    assert "imported 800 tenant(s)" in out
    rehearsed = (tmp_path / "work" / "rehearsal.txt").read_text(encoding="utf-8").splitlines()
    assert len(rehearsed) == 801 and all(line.split()[-1] == "ok" for line in rehearsed[1:])
    # Before the repairs: 796 customers and newco are valid; newco loses the hostname.
    assert re.search(r"dry run: would create \d+ claim\(s\) for 797 tenant\(s\) of 797", out)
    assert "clash: property.sub_domain 'cust0001' of newco: kept by tenant 'cust0001'" in out
    # No line per claim: 800 documents, a handful of lines for the rebuild.
    assert out.count("claimed ") < 10
    work = tmp_path / "work"
    listed = (work / "tenants.txt").read_text(encoding="utf-8").splitlines()
    assert len(listed) == 801  # the header and 800 tenants, every one ok
    assert [line for line in listed[1:] if line.split()[-1] != "ok"] == [], listed[:3]
    assert "wrote 800 tenant vhost(s)" in out

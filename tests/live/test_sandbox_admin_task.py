"""Issue #25: `tenant add --provision` and a lifecycle step through the admin task, to the end.

`redmica sandbox --ecs --local-db` stands up the stacks on moto with a private PostgreSQL (TLS,
an administrator as on RDS, not superuser) where the Aurora cluster would be: the operator's
request goes through the admin broker function and a RunTask of the admin task definition, the
admin task reads the master secret from moto's Secrets Manager and runs the step on that server.
The outcome is checked in PostgreSQL as the OS superuser, and in the config bucket.

moto runs no container, so the provisioning's migration task (Redmine's image) creates no table:
the first run stops at the admin task's set-admin step ("trackers" does not exist). The test then
makes the two tables that step touches, as the tenant's own login (what the migrations would
leave), and `tenant provision` resumes: every step checks what already exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import yaml

from tests.conftest import tenant_document
from tests.live.pgtls import ADMIN, TlsCluster
from tests.live.test_lifecycle_security import (  # the private cluster, the migrations' tables
    REDMINE_TABLES,
    cluster,  # noqa: F401
)
from tests.test_sandbox import sandbox_env

REDMICA = [sys.executable, "-m", "redmica_ops"]


def _start(tmp_path: Path, db: TlsCluster) -> tuple[subprocess.Popen[str], dict[str, str]]:
    master = tmp_path / "master.json"
    master.touch(mode=0o600)
    master.write_text(json.dumps({"username": ADMIN, "password": db.admin_password}))
    process, env = sandbox_env(
        tmp_path,
        *("--local-db", f"127.0.0.1:{db.port}", "--local-db-ca", str(db.ca)),
        *("--local-db-master", str(master)),
    )
    return process, {k: v for k, v in env.items() if not k.startswith("PG")}


def test_provision_and_backup_run_through_the_admin_task(
    tmp_path: Path,
    cluster: TlsCluster,  # noqa: F811
) -> None:
    password = f"pw-sbx-{os.urandom(8).hex()}"
    doc = tenant_document("sbx", password=password)
    doc["db"].update({"host": "127.0.0.1", "port": cluster.port})
    name, user = doc["db"]["name"], doc["db"]["user"]
    document = tmp_path / "sbx.yaml"
    document.write_text(yaml.safe_dump(doc))
    process, env = _start(tmp_path, cluster)
    try:

        def redmica(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                [*REDMICA, *args], capture_output=True, text=True, env=env, timeout=300
            )
            for secret in (password, cluster.admin_password):
                assert secret not in done.stdout + done.stderr
            return done

        added = redmica("tenant", "add", "sbx", "-f", str(document), "--provision")
        assert added.returncode == 1, added.stdout + added.stderr
        assert 'relation "trackers" does not exist' in added.stderr  # no migration ran
        assert name in cluster.databases() and user in cluster.roles()
        assert cluster.is_member(user, of=ADMIN) is False
        cluster.as_login(user, password, REDMINE_TABLES, name)
        provisioned = redmica("tenant", "provision", "sbx", "-O", "json")
        assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
        assert cluster.scalar("SELECT hashed_password IS NOT NULL FROM users;", name) == "t"
        cluster.as_login(user, password, "CREATE TABLE marker (x int);", name)

        backed_up = redmica("tenant", "backup", "sbx", "-O", "json")
        assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
        listed = redmica("tenant", "backups", "sbx", "-O", "json")
        assert listed.returncode == 0, listed.stderr
        assert len(json.loads(listed.stdout)["backups"]) == 1, listed.stdout

        endpoint, region = env["AWS_ENDPOINT_URL"], env["AWS_DEFAULT_REGION"]
        ecs = boto3.client("ecs", endpoint_url=endpoint, region_name=region)
        arns = ecs.list_tasks(cluster=env["REDMICA_CLUSTER"])["taskArns"]
        tasks = ecs.describe_tasks(cluster=env["REDMICA_CLUSTER"], tasks=arns)["tasks"]
        admin = [t for t in tasks if t["taskDefinitionArn"].endswith("/redmica-admin:1")]
        # create the database, set the admin (failed, then again), the backup; the override
        # carries the command and nothing else.
        assert len(admin) >= 4, [t["overrides"] for t in tasks]
        for task in admin:
            (override,) = task["overrides"]["containerOverrides"]
            assert set(override) == {"name", "command"}, override
            assert override["command"][0] == "admin-sql"
        exits = [c.get("exitCode") for t in admin for c in t["containers"]]
        assert exits.count(1) == 1 and exits.count(0) == len(exits) - 1, exits
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
        keys = [
            o["Key"]
            for o in s3.list_objects_v2(Bucket=env["REDMICA_BUCKET"], Prefix="backups/")["Contents"]
        ]
        (dump,) = [k for k in keys if k.endswith(".dump")]
        local = tmp_path / "sbx.dump"
        local.write_bytes(s3.get_object(Bucket=env["REDMICA_BUCKET"], Key=dump)["Body"].read())
        contents = subprocess.run(
            [str(cluster.pg.bin / "pg_restore"), "-l", str(local)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "TABLE public marker" in contents
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
        for secret in (password, cluster.admin_password):
            assert secret not in err

"""Fleet safety over moto's HTTP API: claims under concurrency, conditional requests on the wire,
lost responses, and the CLI guards (bulk changes, ids, passwords, export/import).

The HTTP server here is moto's WSGI app served by werkzeug *single-threaded*: S3 applies a
conditional write atomically, moto's threaded server does not, so serialising requests gives
moto S3's semantics. Every request is recorded with its conditional headers.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from mypy_boto3_s3 import S3Client

from redmica_ops.aws import ClientFactory
from redmica_ops.cli.app import Application
from redmica_ops.settings import Settings
from tests.conftest import BUCKET as LOCAL_BUCKET
from tests.conftest import CANARY_PASSWORD, Invoke, objects_in, tenant_add_flags, tenant_yaml

REDMICA = str(Path(sys.executable).parent / "redmica")
BUCKET = "redmica-fleet-test"


@dataclass
class Seen:
    method: str
    path: str
    if_match: str | None
    if_none_match: str | None


class RecordingServer:
    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        moto_app = DomainDispatcherApplication(create_backend_app)
        self.seen: list[Seen] = []

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            self.seen.append(
                Seen(
                    environ["REQUEST_METHOD"],
                    environ.get("PATH_INFO", ""),
                    environ.get("HTTP_IF_MATCH"),
                    environ.get("HTTP_IF_NONE_MATCH"),
                )
            )
            return moto_app(environ, start_response)

        self.server = make_server(
            "127.0.0.1", 0, app, threaded=False, request_handler=MotoRequestHandler
        )
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()


@pytest.fixture(scope="module")
def server() -> Iterator[RecordingServer]:
    running = RecordingServer()
    yield running
    running.stop()


@pytest.fixture
def bucket(server: RecordingServer) -> Iterator[S3Client]:
    s3 = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    server.seen.clear()
    yield s3
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"], VersionId=item["VersionId"])
    s3.delete_bucket(Bucket=BUCKET)


def redmica(
    server: RecordingServer, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": server.url, "REDMICA_BUCKET": BUCKET}
    return subprocess.run(
        [REDMICA, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def documents(s3: S3Client) -> list[str]:
    response = s3.list_object_versions(Bucket=BUCKET, Prefix="tenants/")
    return [
        v["Key"]
        for v in response.get("Versions", [])
        if "/_claims/" not in v["Key"] and "/_incarnations/" not in v["Key"]
    ]


SHARED = {
    "sub_domain": {"property__sub_domain": "shop"},
    "db.name": {"db__name": "shop"},
    "s3 folder": {"s3__folder": "shop"},
}


@pytest.mark.parametrize("field", list(SHARED))
def test_twenty_processes_distinct_ids_one_unique_value_exactly_one_wins(
    server: RecordingServer, bucket: S3Client, field: str
) -> None:
    def attempt(i: int) -> int:
        name = f"t{i:02d}"
        return redmica(
            server, "tenant", "add", name, "-f", "-", stdin=tenant_yaml(name, **SHARED[field])
        ).returncode

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(attempt, range(20)))
    assert sorted(codes) == [0] + [4] * 19
    (winner,) = [f"t{i:02d}" for i, code in enumerate(codes) if code == 0]
    assert documents(bucket) == [f"tenants/{winner}.yaml"]
    claims = bucket.list_objects_v2(Bucket=BUCKET, Prefix="tenants/_claims/")["Contents"]
    owners = {
        bucket.get_object(Bucket=BUCKET, Key=c["Key"])["Body"].read().decode() for c in claims
    }
    assert owners == {winner}  # the losers left no claim behind
    assert len(claims) == 5  # sub_domain, db.name, s3 folder, the role and its twin


def test_every_write_and_delete_in_the_tenant_prefix_is_conditional(
    server: RecordingServer, bucket: S3Client, tmp_path: Path
) -> None:
    for name in ("acme", "globex"):
        assert (
            redmica(server, "tenant", "add", name, "-f", "-", stdin=tenant_yaml(name)).returncode
            == 0
        )
    changed = tenant_yaml("acme", property__sub_domain="acme-corp")
    assert redmica(server, "tenant", "update", "acme", "-f", "-", stdin=changed).returncode == 0
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "acme.yaml").write_text(changed)
    (repo / "delta.yaml").write_text(tenant_yaml("delta"))
    synced = redmica(server, "tenant", "sync", str(repo), "--apply", "--prune", "--yes")
    assert synced.returncode == 0, synced.stderr
    assert redmica(server, "tenant", "remove", "delta", "--yes").returncode == 0
    assert redmica(server, "tenant", "claims", "repair").returncode == 0

    writes = [
        s
        for s in server.seen
        if s.method in ("PUT", "DELETE") and s.path.startswith(f"/{BUCKET}/tenants/")
    ]
    kinds = {(s.method, "/_claims/" in s.path) for s in writes}
    assert kinds == {("PUT", False), ("PUT", True), ("DELETE", False), ("DELETE", True)}
    unconditional = [s for s in writes if not (s.if_match or s.if_none_match)]
    assert unconditional == []
    assert all(s.if_none_match in (None, "*") for s in writes)


def drop_first_reply_to(key_suffix: str) -> Any:
    """A botocore hook: the first request for the key reaches the server (which applies it),
    then its response is lost; the SDK retries as it would after a dropped connection."""
    import urllib3
    from botocore.exceptions import ConnectionClosedError

    state = {"dropped": 0}

    def handler(request: Any, **_: Any) -> None:
        if state["dropped"] or not request.url.split("?")[0].endswith(key_suffix):
            return
        state["dropped"] += 1
        body = request.body
        if hasattr(body, "read"):
            position = body.tell()
            data = body.read()
            body.seek(position)
        else:
            data = body
        urllib3.PoolManager().request(
            request.method, request.url, body=data, headers=dict(request.headers)
        )
        raise ConnectionClosedError(endpoint_url=request.url)

    handler.state = state  # type: ignore[attr-defined]
    return handler


def test_a_lost_response_to_tenant_add_is_success_with_one_version(
    server: RecordingServer, bucket: S3Client, run: Invoke, no_retry_delay: None
) -> None:
    hook = drop_first_reply_to("/tenants/acme.yaml")

    def factory(settings: Settings) -> ClientFactory:
        clients = ClientFactory(settings)
        clients.s3().meta.events.register("before-send.s3.PutObject", hook)
        return clients

    app = Application(client_factory=factory)
    result = run(
        "--endpoint-url",
        server.url,
        *tenant_add_flags("acme"),
        "--generate-password",
        "--show-generated-password",
        app=app,
        bucket=BUCKET,
    )
    assert hook.state["dropped"] == 1  # the response really was lost once
    assert result.exit_code == 0, result.output
    password = result.stdout.strip().splitlines()[-1]
    assert len(documents(bucket)) == 1  # one version: the retry wrote nothing new
    body = bucket.get_object(Bucket=BUCKET, Key="tenants/acme.yaml")["Body"].read()
    assert yaml.safe_load(body)["db"]["password"] == password


def test_a_lost_response_to_a_run_record_save_is_success(
    server: RecordingServer, bucket: S3Client, no_retry_delay: None
) -> None:
    from redmica_ops.runs.record import RunRecord, RunStore

    clients = ClientFactory(Settings(endpoint_url=server.url, region="us-east-1"))
    hook = drop_first_reply_to(".json")
    clients.s3().meta.events.register("before-send.s3.PutObject", hook)
    store = RunStore(clients.s3(), BUCKET)
    record = RunRecord("r1", "local", ["true"], "2026-11-28T00:00:00Z", "2026-11-28T00:00:00Z")
    store.save(record)
    assert hook.state["dropped"] == 1
    store.save(record)  # the next save is conditional on the ETag the first one returned
    versions = bucket.list_object_versions(Bucket=BUCKET, Prefix="runs/")["Versions"]
    assert len(versions) == 2


# -- in-process: claims lifecycle, guards --------------------------------------------------------


def test_a_crash_between_claim_and_document_leaves_an_orphan_that_repair_releases(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redmica_ops.tenants import store as store_module

    def crash(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt  # the process dies after its claims, before its document

    from redmica_ops.tenants.registry import TenantRegistry as Registry

    # A killed process (SIGKILL, a lost container) runs no cleanup: no undo of its claims.
    original = store_module.TenantStore.create
    monkeypatch.setattr(store_module.TenantStore, "create", crash)
    monkeypatch.setattr(Registry, "_undo_claims", lambda self, tenant_id, taken: None)
    with pytest.raises(KeyboardInterrupt):
        from redmica_ops.tenants.registry import TenantRegistry
        from redmica_ops.tenants.store import TenantStore

        tenant = __import__("redmica_ops.tenants.model", fromlist=["x"]).parse_tenant(
            "acme", tenant_yaml("acme").encode(), "x"
        )
        TenantRegistry(TenantStore(s3, LOCAL_BUCKET)).add("acme", tenant, "x")
    monkeypatch.setattr(store_module.TenantStore, "create", original)
    check = run("tenant", "claims", "check", "-O", "json")
    assert check.exit_code == 1
    assert len(check.json()["orphans"]) == 5
    doctor = {c["name"]: c for c in run("doctor", "-O", "json").json()}
    assert doctor["tenants: claims"]["status"] == "warn"
    assert "claims repair" in doctor["tenants: claims"]["hint"]
    assert run("tenant", "claims", "repair").exit_code == 0
    assert run("tenant", "claims", "check").exit_code == 0
    # The values are free again.
    assert (
        run(
            "tenant",
            "add",
            "other",
            "-f",
            "-",
            input=tenant_yaml(
                "other", property__sub_domain="acme", db__name="acme", s3__folder="acme"
            ),
        ).exit_code
        == 0
    )


def test_rebuild_adopts_old_documents_and_serve_never_hands_a_site_to_the_newcomer(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    # Two documents written by hand (no claims), the newcomer sorting first by id.
    s3.put_object(Bucket=LOCAL_BUCKET, Key="tenants/zeta.yaml", Body=tenant_yaml("zeta").encode())
    assert run("tenant", "claims", "check").exit_code == 1  # unclaimed values
    assert run("tenant", "claims", "rebuild").exit_code == 0
    assert run("tenant", "claims", "check").exit_code == 0
    newcomer = tenant_yaml("aaa", property__sub_domain="zeta")
    s3.put_object(Bucket=LOCAL_BUCKET, Key="tenants/aaa.yaml", Body=newcomer.encode())

    listed = run("tenant", "list", "-O", "json")
    assert listed.exit_code == 1
    status = {t["tenant"]: t["status"] for t in listed.json()}
    assert status == {"aaa": "clash", "zeta": "ok"}
    assert "already used by tenant 'zeta'" in listed.stderr and "holds its claim" in listed.stderr

    calls: list[list[str]] = []
    # The container's master secret (entrypoint serve derives each tenant's from it).
    app = Application(env={**os.environ, "SECRET_KEY_BASE": "m" * 64})
    app.exec_process = lambda argv, env: calls.append(argv)
    app.overrides["vhosts_file"] = str(tmp_path / "t.conf")
    served = run("--domain", "d.example", "entrypoint", "serve", "--no-check", app=app)
    assert served.exit_code == 0, served.output
    text = (tmp_path / "t.conf").read_text()
    assert "redmica-tenant-zeta" in text and "redmica-tenant-aaa" not in text
    assert "warning: tenant aaa is NOT served (clash):" in served.stderr


def test_add_of_a_clashing_value_fails_on_the_claim_even_when_the_listing_missed_it(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redmica_ops.tenants.store import Listing, TenantStore

    assert run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme")).exit_code == 0
    # As if the other tenant's document were written after this process listed the bucket.
    monkeypatch.setattr(TenantStore, "load_all", lambda self: Listing())
    clash = run(
        "tenant", "add", "beta", "-f", "-", input=tenant_yaml("beta", property__sub_domain="acme")
    )
    assert clash.exit_code == 4
    assert "already claimed by tenant 'acme'" in clash.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=LOCAL_BUCKET)["Contents"]]
    assert "tenants/beta.yaml" not in keys
    assert not any("beta" in k for k in keys)  # its other claims were released


def test_update_releases_the_values_it_stops_using(s3: S3Client, run: Invoke) -> None:
    assert run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme")).exit_code == 0
    moved = tenant_yaml("acme", property__sub_domain="acme-corp")
    assert run("tenant", "update", "acme", "-f", "-", input=moved).exit_code == 0
    keys = {
        o["Key"]
        for o in s3.list_objects_v2(Bucket=LOCAL_BUCKET, Prefix="tenants/_claims/")["Contents"]
    }
    assert "tenants/_claims/sub_domain/acme-corp" in keys
    assert "tenants/_claims/sub_domain/acme" not in keys
    assert run("tenant", "remove", "acme", "--yes").exit_code == 0
    assert "Contents" not in s3.list_objects_v2(Bucket=LOCAL_BUCKET, Prefix="tenants/_claims/")


def test_remove_is_conditional_on_the_version_read(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redmica_ops.tenants.store import TenantStore

    assert run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme")).exit_code == 0
    original = TenantStore.get_document

    def read_then_someone_writes(
        self: TenantStore, tenant_id: str, version_id: str | None = None
    ) -> Any:
        document = original(self, tenant_id, version_id)
        s3.put_object(
            Bucket=LOCAL_BUCKET,
            Key="tenants/acme.yaml",
            Body=tenant_yaml("acme", db__port=6000).encode(),
        )
        return document

    monkeypatch.setattr(TenantStore, "get_document", read_then_someone_writes)
    result = run("tenant", "remove", "acme", "--yes")
    assert result.exit_code == 4
    assert "changed since it was read; nothing was removed" in result.stderr
    monkeypatch.setattr(TenantStore, "get_document", original)
    assert run("tenant", "show", "acme").exit_code == 0


def write_repo(repo: Path, *names: str, **overrides: Any) -> None:
    repo.mkdir(exist_ok=True)
    for name in names:
        (repo / f"{name}.yaml").write_text(tenant_yaml(name, **overrides))


def test_sync_prune_with_one_file_is_refused_above_max_changes_and_needs_yes(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    names = [f"t{i:02d}" for i in range(12)]
    for name in names:
        assert run("tenant", "add", name, "-f", "-", input=tenant_yaml(name)).exit_code == 0
    repo = tmp_path / "repo"
    write_repo(repo, "t00")
    too_many = run("tenant", "sync", str(repo), "--apply", "--prune", "--yes")
    assert too_many.exit_code == 2
    assert "changes 11 tenants, more than --max-changes 10" in too_many.stderr
    no_terminal = run("tenant", "sync", str(repo), "--apply", "--prune", "--max-changes", "20")
    assert no_terminal.exit_code == 2 and "without confirmation" in no_terminal.stderr

    app = Application()
    app.interactive = lambda: True
    questions: list[str] = []

    def answer_no(question: str) -> bool:
        questions.append(question)
        return False

    app.ask = answer_no
    declined = run(
        "tenant", "sync", str(repo), "--apply", "--prune", "--max-changes", "20", app=app
    )
    assert declined.exit_code == 6
    assert "- remove  t11" in declined.stderr  # the plan was shown before the question
    assert questions and "11 removal(s)" in questions[0]
    listed = run("tenant", "list", "-O", "json").json()
    assert len(listed) == 12  # nothing removed
    done = run("tenant", "sync", str(repo), "--apply", "--prune", "--max-changes", "20", "--yes")
    assert done.exit_code == 0, done.output
    assert [t["tenant"] for t in run("tenant", "list", "-O", "json").json()] == ["t00"]


def test_the_redaction_placeholder_rule_is_the_same_everywhere(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    for name in ("a1", "a2", "a3", "a4", "a5"):
        write_repo(repo, name)
        path = repo / f"{name}.yaml"
        path.write_text(path.read_text().replace(CANARY_PASSWORD, "'********'"))
    validated = run("tenant", "validate", str(repo))
    assert validated.exit_code == 0
    assert validated.stderr.count("can update an existing tenant, not add a new one") == 5
    synced = run("tenant", "sync", str(repo), "--apply")
    assert synced.exit_code == 2
    assert "5 problems" in synced.stderr
    for name in ("a1", "a2", "a3", "a4", "a5"):
        assert (
            f"{repo / name}.yaml: db.password: ******** is the redaction placeholder"
            in synced.stderr
        )
    added = run("tenant", "add", "a1", "-f", str(repo / "a1.yaml"))
    assert added.exit_code == 2
    assert f"{repo / 'a1.yaml'}: db.password: ******** is the redaction placeholder" in added.stderr


@pytest.mark.parametrize("bad", ["../runs/x", "Acme", "a/b", "x_y", ""])
def test_malformed_ids_are_usage_errors_before_any_key(s3: S3Client, run: Invoke, bad: str) -> None:
    for command in (["show", bad], ["history", bad], ["remove", bad, "--yes"]):
        result = run("tenant", *command)
        assert result.exit_code == 2, (command, result.output)
        assert "tenant id" in result.stderr


def test_password_from_stdin_on_a_terminal_is_prompted_without_echo(
    s3: S3Client, run: Invoke
) -> None:
    app = Application()
    app.interactive = lambda: True
    prompts: list[str] = []

    def read_secret(prompt: str) -> str:
        prompts.append(prompt)
        return CANARY_PASSWORD

    app.read_secret = read_secret
    result = run(
        *tenant_add_flags("acme"),
        "--db-password-stdin",
        app=app,
    )
    assert result.exit_code == 0, result.output
    assert prompts == ["Database password for tenant acme: "]
    assert CANARY_PASSWORD not in result.output
    body = s3.get_object(Bucket=LOCAL_BUCKET, Key="tenants/acme.yaml")["Body"].read()
    assert yaml.safe_load(body)["db"]["password"] == CANARY_PASSWORD


@pytest.mark.parametrize("domain", ["Redmine.Example.com", "redmine.example.com."])
def test_a_domain_with_upper_case_or_a_trailing_dot_is_refused(run: Invoke, domain: str) -> None:
    result = run("--domain", domain, "config", "show")
    assert result.exit_code == 2
    assert "use 'redmine.example.com'" in result.stderr


def test_export_is_private_and_import_restores_into_an_empty_bucket(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    for name in ("acme", "globex"):
        assert run("tenant", "add", name, "-f", "-", input=tenant_yaml(name)).exit_code == 0
    directory = tmp_path / "backup"
    assert run("tenant", "export", str(directory)).exit_code == 0
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert CANARY_PASSWORD in path.read_text()  # passwords included: it is a backup
    archive = tmp_path / "backup.tar.gz"
    assert run("tenant", "export", str(archive)).exit_code == 0
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as opened:
        assert sorted(opened.getnames()) == ["acme.yaml", "globex.yaml"]

    app = Application()
    app.stdout_is_terminal = lambda: True
    terminal = run("tenant", "export", "-", app=app)
    assert terminal.exit_code == 2 and "to a terminal" in terminal.stderr

    # Into the bucket it came from: every tenant is there with the same content.
    same = run("tenant", "import", str(archive), "--yes")
    assert same.exit_code == 0 and "imported 0 tenant(s)" in same.stderr
    assert "2 already there with the same content" in same.stderr
    changed = tenant_yaml("globex", db__port=7000).encode()
    s3.put_object(Bucket=LOCAL_BUCKET, Key="tenants/globex.yaml", Body=changed)
    before = objects_in(s3, LOCAL_BUCKET)
    refused = run("tenant", "import", str(archive), "--yes")
    assert refused.exit_code == 4 and "only loads into an empty bucket" in refused.stderr
    assert "tenants/globex.yaml: differs from" in refused.stderr
    assert objects_in(s3, LOCAL_BUCKET) == before
    s3.create_bucket(Bucket="redmica-restored")
    restored = run("tenant", "import", str(archive), "--yes", bucket="redmica-restored")
    assert restored.exit_code == 0, restored.output
    listed = run("tenant", "list", "-O", "json", bucket="redmica-restored").json()
    assert [t["tenant"] for t in listed] == ["acme", "globex"]
    check = run("tenant", "claims", "check", bucket="redmica-restored")
    assert check.exit_code == 0


def test_edit_keeps_the_operators_text_on_conflict_and_resumes_from_it(
    s3: S3Client, run: Invoke
) -> None:
    assert run("tenant", "add", "acme", "-f", "-", input=tenant_yaml("acme")).exit_code == 0
    app = Application()

    def editor(text: str) -> str:
        # Someone else changes the tenant while the editor is open.
        s3.put_object(
            Bucket=LOCAL_BUCKET,
            Key="tenants/acme.yaml",
            Body=tenant_yaml("acme", db__port=7000).encode(),
        )
        return text.replace("sub_domain: acme", "sub_domain: acme-new")

    app.edit_text = editor
    result = run("tenant", "edit", "acme", app=app)
    assert result.exit_code == 4
    kept = Path(result.stderr.split("your edit is kept in ", 1)[1].split()[0])
    assert "sub_domain: acme-new" in kept.read_text()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    again = Application()
    again.edit_text = lambda text: text
    resumed = run("tenant", "edit", "acme", "--from", str(kept), app=again)
    assert resumed.exit_code == 0, resumed.output
    body = s3.get_object(Bucket=LOCAL_BUCKET, Key="tenants/acme.yaml")["Body"].read()
    assert yaml.safe_load(body)["property"]["sub_domain"] == "acme-new"


def test_poison_objects_over_http_are_reported_and_the_others_served(
    server: RecordingServer, bucket: S3Client
) -> None:
    from tests.test_poison import POISON

    for name in ("acme", "globex"):
        assert (
            redmica(server, "tenant", "add", name, "-f", "-", stdin=tenant_yaml(name)).returncode
            == 0
        )
    for name, body in POISON.items():
        bucket.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=body)
    listed = redmica(server, "tenant", "list", "-O", "json")
    assert listed.returncode == 1, listed.stderr
    import json

    status = {t["tenant"]: t["status"] for t in json.loads(listed.stdout)}
    assert status == {"acme": "ok", "globex": "ok", **{name: "invalid" for name in POISON}}
    rendered = redmica(server, "--domain", "d.example", "render", "vhosts", "--redacted")
    assert rendered.returncode == 0, rendered.stderr
    assert "redmica-tenant-acme" in rendered.stdout and "redmica-tenant-globex" in rendered.stdout
    assert "internal error" not in listed.stderr + rendered.stderr

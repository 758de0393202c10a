"""`redmica entrypoint serve | run-tenant`: the container side, exec recorded instead of run."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.cli.app import Application
from redmica_ops.tenants.incarnations import Incarnations
from tests.conftest import BUCKET, CANARY_PASSWORD, Invoke, tenant_yaml


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, argv: list[str], env: Mapping[str, str]) -> None:
        self.calls.append((argv, dict(env)))


MASTER = "m" * 64


def recording_app(**env: str) -> tuple[Application, Recorder]:
    app = Application(env={**os.environ, "SECRET_KEY_BASE": MASTER, **env})
    recorder = Recorder()
    app.exec_process = recorder
    return app, recorder


def seed(run: Invoke, *names: str, **overrides: Any) -> None:
    for name in names:
        result = run("tenant", "add", name, "-f", "-", input=tenant_yaml(name, **overrides))
        assert result.exit_code == 0, result.output


def serve_args(_tmp_path: Path) -> list[str]:
    return ["--domain", "redmine.example.com", "entrypoint", "serve", "--no-check"]


def test_serve_renders_then_execs_apache(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    seed(run, "acme", "beta")
    target = tmp_path / "sites" / "tenants.conf"
    app, recorder = recording_app(REDMICA_VHOSTS_FILE=str(target))
    result = run(*serve_args(tmp_path), app=app)
    assert result.exit_code == 0, result.output
    assert recorder.calls[0][0] == ["apache2", "-DFOREGROUND"]
    text = target.read_text()
    assert 'ServerName "acme.redmine.example.com"' in text
    assert 'ServerName "beta.redmine.example.com"' in text
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "2 tenant(s)" in result.stderr
    assert CANARY_PASSWORD not in result.output


def test_serve_skips_an_invalid_tenant_loudly(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    seed(run, "acme")
    s3.put_object(
        Bucket=BUCKET,
        Key="tenants/broken.yaml",
        Body=tenant_yaml("broken", property__sub_domain="Bad!").encode(),
    )
    s3.put_object(
        Bucket=BUCKET,
        Key="tenants/zclash.yaml",
        Body=tenant_yaml("zclash", property__sub_domain="acme").encode(),
    )
    target = tmp_path / "tenants.conf"
    app, recorder = recording_app(REDMICA_VHOSTS_FILE=str(target))
    result = run(*serve_args(tmp_path), app=app)
    assert result.exit_code == 0, result.output
    assert "warning: tenant broken is NOT served (invalid):" in result.stderr
    assert "property.sub_domain: 'Bad!' is not a DNS label" in result.stderr
    assert "warning: tenant zclash is NOT served (clash):" in result.stderr
    assert "'acme' is already used by tenant 'acme'" in result.stderr
    assert "1 tenant(s)" in result.stderr and "2 skipped" in result.stderr
    assert target.read_text().count("<VirtualHost") == 2  # catch-all + acme
    assert len(recorder.calls) == 1


def test_serve_strict_refuses_to_start(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    seed(run, "acme")
    s3.put_object(Bucket=BUCKET, Key="tenants/broken.yaml", Body=b"db: 1\n")
    target = tmp_path / "tenants.conf"
    app, recorder = recording_app(REDMICA_VHOSTS_FILE=str(target))
    result = run(*serve_args(tmp_path), "--strict", app=app)
    assert result.exit_code == 2
    assert "cannot be served (--strict)" in result.stderr
    assert recorder.calls == [] and not target.exists()


def test_serve_without_bucket_access_says_why(run: Invoke, tmp_path: Path) -> None:
    app, recorder = recording_app(REDMICA_VHOSTS_FILE=str(tmp_path / "x.conf"))
    from moto import mock_aws

    with mock_aws():
        result = run(*serve_args(tmp_path), app=app)
    assert result.exit_code == 5
    assert "bucket 'redmica-config-test' does not exist" in result.stderr
    assert recorder.calls == []


def test_serve_custom_command(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    seed(run, "acme")
    app, recorder = recording_app(
        REDMICA_VHOSTS_FILE=str(tmp_path / "t.conf"),
        REDMICA_SERVE_COMMAND="httpd -DFOREGROUND -e info",
    )
    assert run(*serve_args(tmp_path), app=app).exit_code == 0
    assert recorder.calls[0][0] == ["httpd", "-DFOREGROUND", "-e", "info"]


def test_run_tenant_sets_the_vhost_environment(s3: S3Client, run: Invoke) -> None:
    seed(run, "acme", db__port=5433)
    app, recorder = recording_app()
    result = run(
        "--db-host",
        "db.default",
        "entrypoint",
        "run-tenant",
        "acme",
        "--",
        "bundle",
        "exec",
        "rake",
        "db:migrate",
        app=app,
    )
    assert result.exit_code == 0, result.output
    argv, env = recorder.calls[0]
    assert argv == ["bundle", "exec", "rake", "db:migrate"]
    assert {
        k: env[k]
        for k in (
            "RAILS_DB",
            "RAILS_DB_USERNAME",
            "RAILS_DB_PASSWORD",
            "RAILS_DB_HOST",
            "RAILS_DB_PORT",
            "S3_BUCKET_NAME",
            "S3_FOLDER_NAME",
            "REDMICA_TENANT",
        )
    } == {
        "RAILS_DB": "acme",
        "RAILS_DB_USERNAME": "acme",
        "RAILS_DB_PASSWORD": CANARY_PASSWORD,
        "RAILS_DB_HOST": "db.default",
        "RAILS_DB_PORT": "5433",
        "S3_BUCKET_NAME": "redmica-attachments",
        "S3_FOLDER_NAME": "acme",
        "REDMICA_TENANT": "acme",
    }
    assert env["PATH"] == os.environ["PATH"]  # the container's own environment is kept
    assert CANARY_PASSWORD not in result.output


@pytest.mark.parametrize(("tenant", "code"), [("ghost", 3), ("broken", 2)])
def test_run_tenant_refuses_unknown_or_invalid(
    s3: S3Client, run: Invoke, tenant: str, code: int
) -> None:
    s3.put_object(Bucket=BUCKET, Key="tenants/broken.yaml", Body=b"db: 1\n")
    app, recorder = recording_app()
    result = run("entrypoint", "run-tenant", tenant, "--", "true", app=app)
    assert result.exit_code == code
    assert recorder.calls == []


def test_run_tenant_needs_a_command(s3: S3Client, run: Invoke) -> None:
    app, _ = recording_app()
    assert run("entrypoint", "run-tenant", "acme", "--", app=app).exit_code == 2


@pytest.mark.subprocess
def test_run_tenant_really_execs_with_the_environment(tmp_path: Path) -> None:
    """The installed executable against moto's server; the child writes what it sees."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "REDMICA_BUCKET": "run-tenant-test",
        }
        import boto3

        boto3.client(
            "s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1"
        ).create_bucket(Bucket="run-tenant-test")
        redmica = str(Path(sys.executable).parent / "redmica")
        subprocess.run(
            [redmica, "tenant", "add", "acme", "-f", "-"],
            input=tenant_yaml("acme"),
            text=True,
            env=env,
            check=True,
            capture_output=True,
        )
        out = tmp_path / "seen.txt"
        probe = (
            "import os,sys; open(sys.argv[1],'w').write("
            "os.environ['RAILS_DB']+'|'+os.environ['RAILS_DB_PASSWORD'])"
        )
        result = subprocess.run(
            [
                redmica,
                "entrypoint",
                "run-tenant",
                "acme",
                "--",
                sys.executable,
                "-c",
                probe,
                str(out),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert out.read_text() == f"acme|{CANARY_PASSWORD}"
        assert CANARY_PASSWORD not in result.stdout + result.stderr
    finally:
        server.stop()


def test_serve_gives_each_tenant_its_own_key_and_apache_no_master(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    from redmica_ops.container.keys import tenant_secret_key_base

    seed(run, "acme", "beta")
    target = tmp_path / "tenants.conf"
    app, recorder = recording_app(REDMICA_VHOSTS_FILE=str(target))
    result = run(*serve_args(tmp_path), app=app)
    assert result.exit_code == 0, result.output
    _, apache_env = recorder.calls[0]
    assert "SECRET_KEY_BASE" not in apache_env  # every Passenger process inherits this
    text = target.read_text()
    assert MASTER not in text
    # Each tenant's key: its id and its incarnation (made by `tenant add`), from the one master.
    lives = Incarnations(s3, BUCKET).all()
    assert set(lives) == {"acme", "beta"}
    acme = tenant_secret_key_base(MASTER, "acme", lives["acme"])
    beta = tenant_secret_key_base(MASTER, "beta", lives["beta"])
    assert acme != beta
    assert f'SetEnv SECRET_KEY_BASE "{acme}"' in text
    assert f'SetEnv SECRET_KEY_BASE "{beta}"' in text
    assert MASTER not in result.output


def test_serve_refuses_without_a_master_secret(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    seed(run, "acme")
    target = tmp_path / "tenants.conf"
    app, recorder = recording_app(REDMICA_VHOSTS_FILE=str(target), SECRET_KEY_BASE="")
    result = run(*serve_args(tmp_path), app=app)
    assert result.exit_code == 2
    assert "SECRET_KEY_BASE is not set" in result.stderr
    assert recorder.calls == [] and not target.exists()
    app, recorder = recording_app(REDMICA_VHOSTS_FILE=str(target), SECRET_KEY_BASE="short-secret")
    result = run(*serve_args(tmp_path), app=app)
    assert result.exit_code == 2
    assert "too short (12 characters" in result.stderr
    assert "short-secret" not in result.output
    assert recorder.calls == []


def test_serve_warns_about_limit_ips_without_trusted_proxies(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    seed(run, "acme", property__limit_ips=["203.0.113.0/24"])
    app, _ = recording_app(REDMICA_VHOSTS_FILE=str(tmp_path / "t.conf"))
    result = run(*serve_args(tmp_path), app=app)
    assert result.exit_code == 0, result.output
    assert "warning: 1 tenant(s) with limit_ips (acme) but no trusted_proxies" in result.stderr
    app, _ = recording_app(
        REDMICA_VHOSTS_FILE=str(tmp_path / "t.conf"), REDMICA_TRUSTED_PROXIES="10.0.0.0/24"
    )
    result = run(*serve_args(tmp_path), app=app)
    assert result.exit_code == 0 and "warning" not in result.stderr
    text = (tmp_path / "t.conf").read_text()
    assert "RemoteIPHeader X-Forwarded-For\nRemoteIPTrustedProxy 10.0.0.0/24\n" in text


def test_run_tenant_gets_the_tenants_key_not_the_master(s3: S3Client, run: Invoke) -> None:
    from redmica_ops.container.keys import tenant_secret_key_base

    seed(run, "acme")
    app, recorder = recording_app()
    assert run("entrypoint", "run-tenant", "acme", "--", "true", app=app).exit_code == 0
    _, env = recorder.calls[0]
    life = Incarnations(s3, BUCKET).of("acme")  # made by `tenant add`: part of the key
    assert env["SECRET_KEY_BASE"] == tenant_secret_key_base(MASTER, "acme", life) != MASTER

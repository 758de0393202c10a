"""What keeps tenants apart inside one container, on real Apache + Passenger.

A tiny Rack app (Debian's ruby-rack under Passenger) loads the files the image ships
(templates/redmine/initializers/redmica_ops.rb, additional_environment.rb) and reports what
each tenant's process and each request can see:
- the secrets are in the process ENV (Redmine needs them) but not in the request's Rack env
  once the shipped middleware ran (and are there without it: the test can fail);
- each tenant's SECRET_KEY_BASE is its own key derived from the master, and the master is in
  no tenant's process;
- each tenant's Rails cache directory is its own;
- every answer names the tenant whose process made it (X-Redmica-Tenant, the site probe's
  wrong-tenant check);
- mod_remoteip believes X-Forwarded-For only from the trusted proxies, and never a private
  address from them, so `Require ip` sees the real client.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redmica_ops.container.apache import ApacheInstall, find_apache
from redmica_ops.container.keys import tenant_secret_key_base, without_master
from redmica_ops.container.templates import template_text
from redmica_ops.container.vhosts import VhostSettings, render_vhosts
from redmica_ops.errors import RedmicaError
from redmica_ops.tenants.model import Entry, validate_data
from tests.live.server import LiveApache, free_port

DOMAIN = "isolation.test"
MASTER = "master-" + "9f" * 40
SECRETS = ["RAILS_DB", "RAILS_DB_USERNAME", "RAILS_DB_PASSWORD", "RAILS_DB_PORT", "SECRET_KEY_BASE"]
TENANTS: dict[str, list[str] | None] = {
    "one": None,
    "two": None,
    "limited": ["203.0.113.7"],
    "private": ["10.1.2.3"],
}

CONFIG_RU = """\
require 'json'
require 'digest'
require %(initializer)s

module ActiveSupport
  class Logger
    def initialize(*) end
  end
end

# The shipped additional_environment.rb, evaluated as Redmine does (inside the application
# class, where `config` is Rails' configuration), against a stand-in that records the values.
class StandInConfig
  attr_accessor :logger, :cache_store
  def root = %(root)s
end
config = StandInConfig.new
eval(File.read(%(additional)s), binding)
CACHE = config.cache_store

SECRETS = %(secrets)s
MASTER_SHA = %(master_sha)s
inner = lambda { |env|
  body = {
    'tenant' => ENV['REDMICA_TENANT'],
    'process_env' => SECRETS.select { |k| ENV.key?(k) },
    'request_env' => SECRETS.select { |k| env.key?(k) },
    'key_sha256' => ENV['SECRET_KEY_BASE'] && Digest::SHA256.hexdigest(ENV['SECRET_KEY_BASE']),
    'master_in_env' => ENV.values.any? { |v| Digest::SHA256.hexdigest(v) == MASTER_SHA },
    'cache' => CACHE,
  }
  [200, { 'content-type' => 'application/json' }, [JSON.generate(body)]]
}
scrubbed = RedmicaOps::NameTheTenant.new(RedmicaOps::ScrubSecretsFromRackEnv.new(inner))
# /raw skips the middleware: proof that the request env does carry the secrets without it.
run lambda { |env| env['PATH_INFO'] == '/raw' ? inner.call(env) : scrubbed.call(env) }
"""


@pytest.fixture(scope="module")
def install() -> ApacheInstall:
    try:
        return find_apache()
    except RedmicaError as error:
        pytest.skip(
            f"Apache + Passenger are not installed here ({error.message}); "
            "`make test` installs them with apt-get"
        )


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Passenger runs the app as www-data: the tree must be readable by it.
    root = Path(tempfile.mkdtemp(prefix="redmica-isolation-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def ruby_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid double-quoted Ruby string here


def make_app(workdir: Path) -> Path:
    app = workdir / "app"
    (app / "public").mkdir(parents=True)
    shipped = workdir / "shipped"
    (shipped / "initializers").mkdir(parents=True)
    for name in ("initializers/redmica_ops.rb", "additional_environment.rb"):
        (shipped / name).write_text(template_text(f"redmine/{name}"))
    (app / "config.ru").write_text(
        CONFIG_RU
        % {
            "initializer": ruby_string(str(shipped / "initializers" / "redmica_ops.rb")),
            "additional": ruby_string(str(shipped / "additional_environment.rb")),
            "root": ruby_string(str(app)),
            "secrets": json.dumps(SECRETS),
            "master_sha": ruby_string(hashlib.sha256(MASTER.encode()).hexdigest()),
        }
    )
    return app


def entries() -> list[Entry]:
    found = []
    for name, limit in TENANTS.items():
        prop: dict[str, Any] = {"sub_domain": name}
        if limit:
            prop["limit_ips"] = limit
        data = {
            "db": {"name": name, "user": name, "password": f"pw-{name}", "port": 5433},
            "s3": {"bucket": "files-bucket", "folder": name},
            "property": prop,
        }
        tenant, problems = validate_data(name, data, name)
        assert tenant is not None, problems
        found.append(Entry(name, name, tenant))
    return found


def start(install: ApacheInstall, workdir: Path, app: Path, trusted: tuple[str, ...]) -> LiveApache:
    port = free_port()
    run = workdir / f"run-{port}"
    run.mkdir()
    run.chmod(0o755)
    site = run / "site.conf"
    settings = VhostSettings(
        domain=DOMAIN, app_root=str(app), listen_port=port, trusted_proxies=trusted
    )
    site.write_text(render_vhosts(entries(), settings, master_secret=MASTER))
    # What `entrypoint serve` hands to Apache: the container's environment minus the master.
    env = without_master({**os.environ, "SECRET_KEY_BASE": MASTER})
    server = LiveApache(install, run, site, port, env=env)
    server.start()
    return server


@pytest.fixture(scope="module")
def app(workdir: Path) -> Path:
    return make_app(workdir)


@pytest.fixture(scope="module")
def server(install: ApacheInstall, workdir: Path, app: Path) -> Iterator[LiveApache]:
    live = start(install, workdir, app, ("127.0.0.1",))
    try:
        yield live
    finally:
        live.stop()


def seen(server: LiveApache, name: str, path: str = "/") -> dict[str, Any]:
    response = server.get(f"{name}.{DOMAIN}", path)
    assert response.status == 200, (response.status, server.log_tail())
    data: dict[str, Any] = json.loads(response.body)
    assert data["tenant"] == name
    named = {k.lower(): v for k, v in response.headers.items()}.get("x-redmica-tenant")
    assert named == (None if path == "/raw" else name), "the answer names its own tenant"
    return data


def test_secrets_are_in_the_process_but_not_in_the_request(server: LiveApache) -> None:
    raw = seen(server, "one", "/raw")
    assert set(raw["request_env"]) >= {"RAILS_DB_PASSWORD", "SECRET_KEY_BASE"}
    scrubbed = seen(server, "one")
    assert scrubbed["process_env"] == SECRETS
    assert scrubbed["request_env"] == []


def test_each_tenant_has_its_own_key_and_no_process_has_the_master(server: LiveApache) -> None:
    keys = {}
    for name in ("one", "two"):
        data = seen(server, name)
        expected = tenant_secret_key_base(MASTER, name)
        assert data["key_sha256"] == hashlib.sha256(expected.encode()).hexdigest()
        assert data["master_in_env"] is False
        keys[name] = data["key_sha256"]
    assert keys["one"] != keys["two"]


def test_each_tenant_has_its_own_cache_directory(server: LiveApache, app: Path) -> None:
    caches = {name: seen(server, name)["cache"] for name in ("one", "two")}
    for name, cache in caches.items():
        assert cache == ["file_store", str(app / "tmp" / "cache" / "tenants" / name)]
    assert caches["one"] != caches["two"]


@pytest.mark.parametrize(
    ("tenant", "forwarded_for", "status"),
    [
        ("limited", "203.0.113.7", 200),  # the client, as the load balancer reports it
        ("limited", "198.51.100.9", 403),  # another client
        ("limited", None, 403),  # the proxy's own address is not the client
        ("limited", "203.0.113.7, 198.51.100.9", 403),  # the nearest hop counts
        ("private", "10.1.2.3", 403),  # a private address from the header is never believed
        ("one", "198.51.100.9", 200),
    ],
)
def test_remoteip_trusts_only_the_load_balancer(
    server: LiveApache, tenant: str, forwarded_for: str | None, status: int
) -> None:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = server.get(f"{tenant}.{DOMAIN}", headers=headers)
    assert response.status == status, server.log_tail()


def test_an_untrusted_peer_cannot_claim_a_client_address(
    install: ApacheInstall, workdir: Path, app: Path
) -> None:
    live = start(install, workdir, app, ("192.0.2.0/24",))
    try:
        response = live.get(f"limited.{DOMAIN}", headers={"X-Forwarded-For": "203.0.113.7"})
        assert response.status == 403
    finally:
        live.stop()

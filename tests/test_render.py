"""Rendering vhosts and Redmine config: escaping, determinism, file safety (no Apache needed)."""

from __future__ import annotations

import random
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from mypy_boto3_s3 import S3Client

from redmica_ops.capacity import PoolRequest
from redmica_ops.container import escape as apacheconf
from redmica_ops.container.vhosts import VhostSettings, app_group_name, render_vhosts, write_private
from redmica_ops.errors import UsageError
from redmica_ops.tenants.model import Entry, parse_tenant
from tests.conftest import CANARY_PASSWORD, Invoke, tenant_yaml

SETTINGS = VhostSettings(
    domain="redmine.example.com",
    app_root="/usr/src/redmine",
    listen_port=8080,
    db_host="db.default",
)


def entry(name: str, **overrides: Any) -> Entry:
    return Entry(
        name, f"{name}.yaml", parse_tenant(name, tenant_yaml(name, **overrides).encode(), name)
    )


def unquote(arg: str) -> str:
    """Apache's reading of one double-quoted argument (server/util.c, substring_conf),
    after `${REDMICA_DOLLAR}` has been expanded to `$`."""
    assert arg.startswith('"') and arg.endswith('"')
    body = arg[1:-1].replace("${" + apacheconf.DOLLAR_VARIABLE + "}", "$")
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '\\"':
            out.append(body[i + 1])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


HOSTILE = [
    'q"uote',
    "back\\slash",
    "trailing\\",
    "${HOME}",
    "$${X}",
    "$",
    "{x}",
    "# hash",
    "100%",
    "</VirtualHost>",
    "sp ace",
    "ünï€ode",
    '"\\"',
    "\\${HOME}",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_quote_round_trips_through_apaches_unquoting(value: str) -> None:
    quoted = apacheconf.quote(value)
    assert unquote(quoted) == value
    # Every "${" left is the escape itself, so Apache expands nothing of the value.
    assert quoted.count("${") == quoted.count("${" + apacheconf.DOLLAR_VARIABLE + "}")
    # No unescaped quote can end the argument early.
    inner = quoted[1:-1].replace("\\\\", "")
    assert '"' not in inner.replace('\\"', "")


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\tb", "a\x00b", "a\x1bb", "a\x7fb"])
def test_quote_refuses_control_characters(value: str) -> None:
    with pytest.raises(apacheconf.UnsafeValue):
        apacheconf.quote(value)


@pytest.mark.parametrize("value", ["a b", "x\ny", "a;b", '"', "${X}", ""])
def test_bare_words_are_strict(value: str) -> None:
    with pytest.raises(apacheconf.UnsafeValue):
        apacheconf.bare(value)


def test_finalize_refuses_unquoted_strings() -> None:
    assert apacheconf.finalize(apacheconf.quote("x")) == '"x"'
    assert apacheconf.finalize(5) == 5
    for value in ("plain", True, None, 1.5):
        with pytest.raises(apacheconf.UnsafeValue):
            apacheconf.finalize(value)


def vhost_blocks(text: str) -> list[str]:
    return [
        "<VirtualHost" + block.split("</VirtualHost>")[0]
        for block in text.split("<VirtualHost")[1:]
    ]


def test_vhosts_layout() -> None:
    text = render_vhosts(
        [entry("beta", property__limit_ips=None, db__port=5433), entry("acme", db__host="db.acme")],
        SETTINGS,
    )
    blocks = vhost_blocks(text)
    assert len(blocks) == 3
    assert "PassengerEnabled off" in blocks[0] and "Redirect 404 /" in blocks[0]
    assert blocks[0].startswith("<VirtualHost *:8080>")
    acme, beta = blocks[1], blocks[2]
    assert 'ServerName "acme.redmine.example.com"' in acme
    assert 'DocumentRoot "/usr/src/redmine/public"' in acme
    assert 'PassengerAppRoot "/usr/src/redmine"' in acme
    assert f'PassengerAppGroupName "{app_group_name("acme")}"' in acme
    assert 'SetEnv RAILS_DB_HOST "db.acme"' in acme
    assert 'SetEnv RAILS_DB_HOST "db.default"' in beta
    assert "RAILS_DB_PORT" not in acme and 'SetEnv RAILS_DB_PORT "5433"' in beta
    assert "Require ip 192.168.0.0/24" in acme
    assert "Require ip" not in beta and "<Location" not in beta
    env_names = [line.split()[1] for line in acme.splitlines() if line.strip().startswith("SetEnv")]
    assert env_names == [
        "RAILS_DB",
        "RAILS_DB_USERNAME",
        "RAILS_DB_PASSWORD",
        "RAILS_DB_HOST",
        "S3_BUCKET_NAME",
        "S3_FOLDER_NAME",
        "REDMICA_TENANT",
    ]
    assert f'SetEnv RAILS_DB_PASSWORD "{CANARY_PASSWORD}"' in acme
    server_level = text.split("<VirtualHost")[0]
    # From memory, not from the tenant count: (2048 - 256) MiB / 160 MiB = 11 processes
    assert "PassengerMaxPoolSize 11\n" in server_level
    assert "PassengerMaxInstancesPerApp 2\n" in server_level
    assert "PassengerMinInstances 0\n" in server_level  # idle tenants scale to zero
    assert "PassengerPoolIdleTime 300\n" in server_level
    assert "PassengerSpawnMethod direct\n" in server_level
    assert "PassengerMaxPreloaderIdleTime" not in server_level  # no preloader when direct
    assert "PassengerMaxRequestQueueSize 100\n" in server_level
    assert "PassengerStartTimeout 90\n" in server_level
    assert apacheconf.DOLLAR_DEFINE in server_level
    for forbidden in ("Listen", "LoadModule", "PassengerRoot", "SetEnvIf", "PassengerEnvVar"):
        assert forbidden not in text


def test_every_tenant_gets_its_own_app_group() -> None:
    text = render_vhosts([entry(f"t{i}") for i in range(50)], SETTINGS)
    groups = [
        line.split()[1]
        for line in text.splitlines()
        if line.strip().startswith("PassengerAppGroupName")
    ]
    assert len(groups) == 50 and len(set(groups)) == 50


def test_rendering_is_deterministic() -> None:
    entries = [entry(f"t{i}") for i in range(30)]
    first = render_vhosts(entries, SETTINGS)
    shuffled = entries[:]
    random.Random(7).shuffle(shuffled)
    assert render_vhosts(shuffled, SETTINGS) == first
    ids = [line.split()[2] for line in first.splitlines() if line.startswith("# tenant ")]
    assert ids == sorted(ids)


def test_pool_size_from_settings() -> None:
    custom = VhostSettings(
        domain="x.example",
        app_root="/app",
        pool=PoolRequest(
            memory_mib=4096,
            max_pool_size=7,
            processes_per_tenant=3,
            min_instances=1,
            spawn_method="smart",
            max_preloader_idle_time=0,
            pool_idle_time=60,
            max_request_queue_size=5,
            start_timeout=240,
        ),
    )
    text = render_vhosts([entry("acme")], custom)
    assert "PassengerMaxPoolSize 7\n" in text and "PassengerMaxInstancesPerApp 3\n" in text
    assert "PassengerMinInstances 1\n" in text and "PassengerMaxPreloaderIdleTime 0\n" in text
    assert "PassengerSpawnMethod smart\n" in text and "PassengerPoolIdleTime 60\n" in text
    assert "PassengerMaxRequestQueueSize 5\n" in text and "PassengerStartTimeout 240\n" in text


def test_pool_does_not_grow_with_tenants() -> None:
    settings = VhostSettings(domain="x.example", app_root="/app", pool=PoolRequest(8192))
    one = render_vhosts([entry("t0")], settings)
    many = render_vhosts([entry(f"t{i}") for i in range(200)], settings)
    # (8192 - 256) // 160 = 49 for 1 tenant and for 200
    assert "PassengerMaxPoolSize 49\n" in one and "PassengerMaxPoolSize 49\n" in many


def test_a_budget_without_room_for_one_process_is_refused() -> None:
    settings = VhostSettings(domain="x.example", app_root="/app", pool=PoolRequest(400))
    with pytest.raises(UsageError, match="holds no Passenger process"):
        render_vhosts([entry("acme")], settings)


def test_pool_from_settings_memory_and_explicit_values(tmp_path: Path) -> None:
    from redmica_ops.settings.loading import load_settings

    env = {"REDMICA_DOMAIN": "x.example", "REDMICA_SERVE_MEMORY_MIB": "4096"}
    settings = VhostSettings.from_settings(load_settings({}, env))
    text = render_vhosts([entry("acme")], settings)
    assert "PassengerMaxPoolSize 24\n" in text  # (4096 - 256) // 160
    env |= {"REDMICA_MAX_POOL_SIZE": "3", "REDMICA_SPAWN_METHOD": "smart"}
    text = render_vhosts([entry("acme")], VhostSettings.from_settings(load_settings({}, env)))
    assert "PassengerMaxPoolSize 3\n" in text and "PassengerSpawnMethod smart\n" in text
    assert "PassengerMaxPreloaderIdleTime 300\n" in text


def test_hostile_values_are_escaped_in_the_file() -> None:
    hostile = '${HOME} "</VirtualHost>\nx'.replace("\n", "")
    text = render_vhosts([entry("acme", password=hostile, s3__folder="a/${PWD}/b")], SETTINGS)
    line = next(ln for ln in text.splitlines() if "RAILS_DB_PASSWORD" in ln)
    assert unquote(line.partition("RAILS_DB_PASSWORD ")[2]) == hostile
    # The value's "</VirtualHost>" stays inside its quotes: only two real closing lines.
    assert [ln for ln in text.splitlines() if ln.strip() == "</VirtualHost>"] == [
        "</VirtualHost>"
    ] * 2
    assert 'SetEnv S3_FOLDER_NAME "a/${REDMICA_DOLLAR}{PWD}/b"' in text


def test_redacted_rendering_hides_passwords() -> None:
    text = render_vhosts([entry("acme")], SETTINGS, redact=True)
    assert CANARY_PASSWORD not in text
    assert 'SetEnv RAILS_DB_PASSWORD "********"' in text


def test_clashing_tenants_are_refused() -> None:
    with pytest.raises(UsageError) as caught:
        render_vhosts([entry("acme"), entry("beta", property__sub_domain="acme")], SETTINGS)
    assert "already used by tenant 'acme'" in str(caught.value.problems[0])


def test_write_private_is_atomic_and_0600(tmp_path: Path) -> None:
    target = tmp_path / "sites" / "tenants.conf"
    write_private(target, "one\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "one\n"

    def reject(path: Path) -> None:
        assert path.read_text() == "two\n" and path != target
        raise RuntimeError("config test failed")

    with pytest.raises(RuntimeError):
        write_private(target, "two\n", check=reject)
    assert target.read_text() == "one\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["tenants.conf"]


# -- CLI -------------------------------------------------------------------------------------
def seed(run: Invoke, *names: str) -> None:
    for name in names:
        assert run("tenant", "add", name, "-f", "-", input=tenant_yaml(name)).exit_code == 0


def test_render_vhosts_from_bucket(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    seed(run, "acme", "beta")
    out = tmp_path / "site.conf"
    result = run("--domain", "redmine.example.com", "render", "vhosts", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 2 tenant vhost(s)" in result.stderr
    assert CANARY_PASSWORD not in result.output
    text = out.read_text()
    groups = [ln for ln in text.splitlines() if ln.strip().startswith("PassengerAppGroupName")]
    assert len(groups) == 2
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_render_vhosts_from_dir_matches_bucket(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    seed(run, "acme", "beta")
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("acme", "beta"):
        (repo / f"{name}.yaml").write_text(tenant_yaml(name))
    run("--domain", "d.example", "render", "vhosts", "-o", str(tmp_path / "a.conf"))
    run(
        "--domain",
        "d.example",
        "render",
        "vhosts",
        "--from-dir",
        str(repo),
        "-o",
        str(tmp_path / "b.conf"),
        bucket=None,
    )
    assert (tmp_path / "a.conf").read_text() == (tmp_path / "b.conf").read_text()


def test_render_vhosts_never_prints_passwords(s3: S3Client, run: Invoke) -> None:
    seed(run, "acme")
    refused = run("--domain", "d.example", "render", "vhosts")
    assert refused.exit_code == 2
    assert "-o FILE is required" in refused.stderr
    redacted = run("--domain", "d.example", "render", "vhosts", "--redacted")
    assert redacted.exit_code == 0
    assert 'RAILS_DB_PASSWORD "********"' in redacted.stdout
    assert CANARY_PASSWORD not in redacted.output


def test_render_vhosts_needs_a_domain(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    result = run("render", "vhosts", "-o", str(tmp_path / "x.conf"))
    assert result.exit_code == 2
    assert "no service domain is set" in result.stderr
    assert not (tmp_path / "x.conf").exists()


def test_render_vhosts_refuses_invalid_documents_with_strict(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    seed(run, "acme")
    s3.put_object(Bucket="redmica-config-test", Key="tenants/bad.yaml", Body=b"db: 1\n")
    result = run(
        "--domain", "d.example", "render", "vhosts", "--strict", "-o", str(tmp_path / "x.conf")
    )
    assert result.exit_code == 2
    assert "s3://redmica-config-test/tenants/bad.yaml: db: must be a mapping" in result.stderr
    assert not (tmp_path / "x.conf").exists()


def test_render_vhosts_skips_an_invalid_document_and_renders_the_rest(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    # Issue 12: one bad document never stops the others; it is named, the rest are rendered.
    seed(run, "acme")
    s3.put_object(Bucket="redmica-config-test", Key="tenants/bad.yaml", Body=b"db: 1\n")
    out = tmp_path / "x.conf"
    result = run("--domain", "d.example", "render", "vhosts", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "tenant bad is NOT rendered (invalid)" in result.stderr
    assert "db: must be a mapping" in result.stderr
    text = out.read_text()
    assert 'ServerName "acme.d.example"' in text and "bad" not in text


def test_vhosts_check_without_apache_says_so_and_writes_nothing(
    s3: S3Client, run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redmica_ops.container import apache

    monkeypatch.setattr(apache, "_which", lambda name: None)
    seed(run, "acme")
    out = tmp_path / "x.conf"
    result = run("--domain", "d.example", "render", "vhosts", "-o", str(out), "--check")
    assert result.exit_code == 2
    assert "Apache is not installed" in result.stderr
    assert not out.exists()


def test_check_with_a_missing_apache_binary_fails_loudly(run: Invoke, tmp_path: Path) -> None:
    site = tmp_path / "site.conf"
    site.write_text("# empty\n")
    result = run(
        "render",
        "check",
        str(site),
        bucket=None,
        app=_app_with_env({"REDMICA_APACHE_BIN": "/nonexistent/apache2"}),
    )
    assert result.exit_code == 2
    assert "Apache binary '/nonexistent/apache2' not found" in result.stderr


def _app_with_env(extra: dict[str, str]) -> Any:
    import os

    from redmica_ops.cli.app import Application

    return Application(env={**os.environ, **extra})


def test_redmine_config_files(run: Invoke, tmp_path: Path) -> None:
    result = run("render", "redmine-config", "-o", str(tmp_path), bucket=None)
    assert result.exit_code == 0, result.output
    database = (tmp_path / "database.yml").read_text()
    for name in (
        "RAILS_DB",
        "RAILS_DB_USERNAME",
        "RAILS_DB_PASSWORD",
        "RAILS_DB_HOST",
        "RAILS_DB_PORT",
    ):
        assert f"'{name}'" in database
    assert "adapter: postgresql" in database and "production:" in database
    s3_yml = (tmp_path / "s3.yml").read_text()
    assert "S3_BUCKET_NAME" in s3_yml and "S3_FOLDER_NAME" in s3_yml
    assert "access_key" not in s3_yml.split("production:")[1]
    # With the ERB tags replaced, both are plain YAML with the expected keys.
    import re

    def without_erb(text: str) -> dict[str, Any]:
        statements_removed = re.sub(r"<%[^=].*?%>", "", text)
        data: dict[str, Any] = yaml.safe_load(re.sub(r"<%=.*?%>", '"x"', statements_removed))
        return data

    assert set(without_erb(database)["production"]) == {
        "adapter",
        "database",
        "username",
        "password",
        "host",
        "port",
        "encoding",
    }
    configuration = (tmp_path / "configuration.yml").read_text()
    assert set(without_erb(configuration)["production"]) == {"attachments_storage_path"}
    assert "REDMICA_TENANT" in configuration
    assert set(without_erb(s3_yml)["production"]) == {
        "bucket",
        "folder",
        "thumb_folder",
        "import_folder",
        "region",
        "endpoint",
    }


def test_render_vhosts_into_a_missing_directory_is_refused(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    seed(run, "acme")
    out = tmp_path / "no" / "such" / "dir" / "x.conf"
    result = run("--domain", "d.example", "render", "vhosts", "-o", str(out))
    assert result.exit_code == 2
    assert f"error: -o {out}: directory {out.parent} does not exist" in result.stderr
    assert "--mkdir" in result.stderr
    assert not (tmp_path / "no").exists()
    made = run("--domain", "d.example", "render", "vhosts", "-o", str(out), "--mkdir")
    assert made.exit_code == 0, made.output
    assert "PassengerAppGroupName" in out.read_text()


def test_render_redmine_config_into_a_missing_directory_is_refused(
    run: Invoke, tmp_path: Path
) -> None:
    out = tmp_path / "confg"
    result = run("render", "redmine-config", "-o", str(out), bucket=None)
    assert result.exit_code == 2 and not out.exists()
    assert run("render", "redmine-config", "-o", str(out), "--mkdir", bucket=None).exit_code == 0
    assert (out / "database.yml").is_file()


def test_the_probe_port_serves_only_the_probes_path_of_limit_ips_tenants() -> None:
    """docs/probe.md: a second vhost on the probe port for each limit_ips tenant, with the same
    application group and environment, refusing every path but GET/HEAD /login."""
    suspended = tenant_yaml("gone") + "status: suspended\n"
    tenants = [
        entry("acme"),  # limit_ips 192.168.0.0/24 (the test document's)
        entry("beta", property__limit_ips=None),
        Entry("gone", "gone.yaml", parse_tenant("gone", suspended.encode(), "gone")),
    ]
    without = render_vhosts(tenants, SETTINGS)
    text = render_vhosts(tenants, replace(SETTINGS, probe_port=8081))
    assert text.startswith(without.rstrip("\n")), "the main port's vhosts are unchanged"
    probe_part = text[len(without.rstrip("\n")) :]
    assert "\nListen 8081\n" in probe_part and "Listen" not in without
    blocks = vhost_blocks(probe_part)
    assert [b.splitlines()[1].strip() for b in blocks] == [
        'ServerName "redmica-catch-all.invalid"',
        'ServerName "acme.redmine.example.com"',
    ]
    assert all(b.startswith("<VirtualHost *:8081>") for b in blocks)
    catch_all, acme = blocks
    assert "Redirect 404 /" in catch_all and "PassengerEnabled off" in catch_all
    main_acme = next(b for b in vhost_blocks(without) if '"acme.redmine' in b)
    same = [
        line for line in main_acme.splitlines() if line.strip().startswith(("Passenger", "SetEnv"))
    ]
    assert same and all(line in acme.splitlines() for line in same)
    assert "<Location />\n        Require all denied\n    </Location>" in acme
    assert '<LocationMatch "^/login$">\n        Require method GET HEAD\n' in acme
    assert "Require ip" not in acme  # the port itself is the restriction (its security group)
    with pytest.raises(UsageError, match="probe_port 8080 is the listen_port"):
        render_vhosts(tenants, replace(SETTINGS, probe_port=8080))


# -- cold starts: how every tenant's process boots (container/boot.py) ----------------------------
def test_no_boot_environment_by_default() -> None:
    text = render_vhosts([entry("acme")], SETTINGS)
    for name in ("BOOTSNAP", "RUBYOPT", "LD_PRELOAD", "MALLOC_ARENA_MAX"):
        assert name not in text


@pytest.mark.parametrize(
    ("allocator", "line"),
    [
        ("jemalloc", 'SetEnv LD_PRELOAD "libjemalloc.so.2"\n'),
        ("arena2", 'SetEnv MALLOC_ARENA_MAX "2"\n'),
        ("glibc", None),
    ],
)
def test_boot_cache_and_allocator_are_server_wide_and_quoted(
    allocator: str, line: str | None
) -> None:
    from redmica_ops.settings.loading import load_settings

    env = {
        "REDMICA_DOMAIN": "x.example",
        "REDMICA_BOOT_CACHE_DIR": '/var/cache/a "b" ${X}',
        "REDMICA_RUBY_ALLOCATOR": allocator,
    }
    settings = VhostSettings.from_settings(load_settings({}, env))
    text = render_vhosts([entry("acme"), entry("globex")], settings)
    server = text[: text.index("<VirtualHost")]
    cache = next(x for x in server.splitlines() if x.startswith("SetEnv BOOTSNAP_CACHE_DIR "))
    assert unquote(cache.split(" ", 2)[2]) == '/var/cache/a "b" ${X}'
    assert 'SetEnv BOOTSNAP_READONLY "1"\n' in server
    assert 'SetEnv RUBYOPT "-r/usr/src/redmine/config/redmica_boot.rb"\n' in server
    assert "REDMICA_MAX_BOOTING" not in text
    if line:
        assert line in server
    else:
        assert "LD_PRELOAD" not in text and "MALLOC_ARENA_MAX" not in text
    # Still one process group per tenant: the boot settings share files, never processes.
    groups = [x for x in text.splitlines() if x.startswith("    PassengerAppGroupName ")]
    assert len(set(groups)) == 2
    assert text.count("BOOTSNAP_CACHE_DIR") == 1


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("REDMICA_BOOT_CACHE_DIR", "var/cache/boot", "absolute path"),
        ("REDMICA_BOOT_CACHE_DIR", "/var/../etc", "absolute path"),
        ("REDMICA_BOOT_CACHE_DIR", "/var/cache\n/x", "absolute path"),
        ("REDMICA_RUBY_ALLOCATOR", "tcmalloc", "not one of glibc, arena2, jemalloc"),
        ("REDMICA_MAX_BOOTING", "-1", "must not be negative"),
        ("REDMICA_MAX_BOOTING", "two", "REDMICA_MAX_BOOTING"),
    ],
)
def test_bad_boot_settings_are_refused_and_nothing_is_written(
    run: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    problem: str,
) -> None:
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "acme.yaml").write_text(tenant_yaml("acme"))
    out = tmp_path / "site.conf"
    monkeypatch.setenv(name, value)
    result = run(
        *("--domain", "x.example", "render", "vhosts", "--from-dir", str(tmp_path / "tenants")),
        *("-o", str(out)),
    )
    assert result.exit_code == 2
    assert problem in result.output and name in result.output
    assert not out.exists()


def test_max_booting_alone_loads_the_prelude_without_bootsnap() -> None:
    from redmica_ops.container.boot import BootSettings

    settings = VhostSettings(
        domain="x.example", app_root="/srv/redmine", boot=BootSettings("/srv/redmine", None, 2)
    )
    text = render_vhosts([entry("acme")], settings)
    assert 'SetEnv RUBYOPT "-r/srv/redmine/config/redmica_boot.rb"\n' in text
    assert 'SetEnv REDMICA_MAX_BOOTING "2"\n' in text
    assert "BOOTSNAP" not in text


def test_an_app_root_with_white_space_cannot_take_the_prelude() -> None:
    from redmica_ops.container.boot import BootSettings

    boot = BootSettings("/srv/red mine", "/var/cache/boot")
    settings = VhostSettings(domain="x.example", app_root="/srv/red mine", boot=boot)
    with pytest.raises(UsageError, match="white space"):
        render_vhosts([entry("acme")], settings)
    # Without the prelude nothing goes through RUBYOPT, and the same app root renders.
    plain = VhostSettings(domain="x.example", app_root="/srv/red mine")
    assert "RUBYOPT" not in render_vhosts([entry("acme")], plain)

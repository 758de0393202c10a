"""Settings precedence (flag > env > redmica.toml > default), validation and `config show`."""

from __future__ import annotations

from pathlib import Path

import pytest

from redmica_ops.errors import ValidationFailed
from redmica_ops.settings.loading import load_settings
from tests.conftest import Invoke


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_anything() -> None:
    settings = load_settings({}, env={})
    assert settings.bucket is None
    assert settings.prefix == "tenants/"
    assert settings.source("prefix") == "default"
    assert settings.config_file is None


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    write_toml(
        tmp_path / "redmica.toml",
        'bucket = "from-file"\ndomain = "file.example.com"\n'
        'db_host = "db.file"\nprefix = "file/"\n',
    )
    env = {"REDMICA_BUCKET": "from-env", "REDMICA_DOMAIN": "env.example.com"}
    settings = load_settings({"bucket": "from-flag"}, env=env)
    assert (settings.bucket, settings.source("bucket")) == ("from-flag", "--bucket")
    assert (settings.domain, settings.source("domain")) == ("env.example.com", "env REDMICA_DOMAIN")
    assert settings.db_host == "db.file"
    assert settings.source("db_host") == str(tmp_path / "redmica.toml")
    assert settings.prefix == "file/"
    assert settings.source("kms_key_id") == "default"


def test_config_bucket_name_is_honoured_but_redmica_bucket_wins() -> None:
    settings = load_settings({}, env={"CONFIG_BUCKET_NAME": "talk-bucket"})
    assert (settings.bucket, settings.source("bucket")) == ("talk-bucket", "env CONFIG_BUCKET_NAME")
    both = load_settings({}, env={"CONFIG_BUCKET_NAME": "talk-bucket", "REDMICA_BUCKET": "ours"})
    assert both.bucket == "ours"


def test_aws_endpoint_url_is_honoured() -> None:
    settings = load_settings({}, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})
    assert settings.endpoint_url == "http://127.0.0.1:5000"
    assert settings.source("endpoint_url") == "env AWS_ENDPOINT_URL"


def test_named_config_file_via_flag_and_env(tmp_path: Path) -> None:
    named = write_toml(tmp_path / "prod.toml", '[redmica]\nbucket = "prod-config"\n')
    assert load_settings({}, env={}, config_path=str(named)).bucket == "prod-config"
    assert load_settings({}, env={"REDMICA_CONFIG": str(named)}).bucket == "prod-config"


def test_missing_named_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        load_settings({}, env={"REDMICA_CONFIG": str(tmp_path / "nope.toml")})
    assert "config file not found (named by REDMICA_CONFIG)" in str(caught.value.problems[0])


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('bucket = "Bad_Bucket"\n', "bucket: 'Bad_Bucket' is not a valid S3 bucket name"),
        ('prefix = "tenants"\n', "prefix: 'tenants' must be empty or end with '/'"),
        ('prefix = "/abs/"\n', "prefix: '/abs/' must be a relative key prefix"),
        ('domain = "localhost"\n', "domain: 'localhost' is not a DNS domain name"),
        ('domain = "10.0.0.1"\n', "domain: '10.0.0.1' is not a DNS domain name"),
        ('db_host = "bad host"\n', "db_host: 'bad host' is not a host name"),
        (
            'endpoint_url = "localhost:5000"\n',
            "endpoint_url: 'localhost:5000' is not an http(s) URL",
        ),
        ("bucket = 5\n", "bucket: must be a str"),
        ('bukcet = "x"\n', "bukcet: is not a known setting"),
        ("bucket = \n", "invalid TOML"),
    ],
)
def test_bad_config_file_names_file_and_field(tmp_path: Path, toml: str, expected: str) -> None:
    path = write_toml(tmp_path / "redmica.toml", toml)
    with pytest.raises(ValidationFailed) as caught:
        load_settings({}, env={})
    messages = [str(p) for p in caught.value.problems]
    assert any(m.startswith(str(path)) and expected in m for m in messages), messages


def test_an_unknown_key_is_one_short_line_with_a_guess(tmp_path: Path) -> None:
    # Issue 28: not 1,176 characters listing every setting.
    write_toml(tmp_path / "redmica.toml", 'bukcet = "x"\ndb_hots = "h"\nzzzz = 1\n')
    with pytest.raises(ValidationFailed) as caught:
        load_settings({}, env={})
    lines = [str(p) for p in caught.value.problems]
    assert all(len(line) < 200 for line in lines), lines
    assert "bukcet: is not a known setting; did you mean bucket?" in lines[0]
    assert "did you mean db_host" in lines[1]
    assert "did you mean" not in lines[2] and "redmica config show" in lines[2]


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ValidationFailed) as caught:
        load_settings({}, env={"REDMICA_PREFIX": "x"})
    assert str(caught.value.problems[0]).startswith("env REDMICA_PREFIX: prefix:")


def test_config_show_lists_values_and_sources(
    run: Invoke, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short directory: pytest's own paths grow with its run counter until the table, 200
    # columns when not on a terminal, shortens the source column.
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="cfg", dir="/tmp"))
    monkeypatch.chdir(tmp_path)
    write_toml(tmp_path / "redmica.toml", 'domain = "redmine.example.com"\n')
    data = run("config", "show", "--output", "json", "--prefix", "t/", bucket=None).json()
    assert data["config_file"] == str(tmp_path / "redmica.toml")
    assert data["settings"]["prefix"] == {"value": "t/", "source": "--prefix"}
    assert data["settings"]["domain"] == {
        "value": "redmine.example.com",
        "source": str(tmp_path / "redmica.toml"),
    }
    text = run("config", "show", bucket=None)
    assert text.exit_code == 0
    row = next(line for line in text.stdout.splitlines() if line.startswith("domain"))
    assert row.split()[:3] == ["domain", "redmine.example.com", str(tmp_path / "redmica.toml")]


def test_global_options_work_before_and_after_the_command(run: Invoke) -> None:
    before = run("--prefix", "a/", "config", "show", "-O", "json", bucket=None).json()
    after = run("config", "show", "--prefix", "a/", "--output", "json", bucket=None).json()
    assert (
        before["settings"]["prefix"]
        == after["settings"]["prefix"]
        == {"value": "a/", "source": "--prefix"}
    )


def test_invalid_setting_is_exit_2_with_the_rule(run: Invoke) -> None:
    result = run("--prefix", "nope", "config", "show", bucket=None)
    assert result.exit_code == 2
    assert "--prefix: prefix: 'nope' must be empty or end with '/'" in result.stderr


# -- one declaration per setting -------------------------------------------------------------


def test_every_setting_has_one_default_one_env_name_and_one_doc_line() -> None:
    import dataclasses
    import re

    from redmica_ops.settings import DEFAULTS, SPECS, Settings

    declared = [f.name for f in dataclasses.fields(Settings) if "help" in f.metadata]
    assert [spec.name for spec in SPECS] == declared  # the table is derived, in order
    env_names = [name for spec in SPECS for name in (spec.env_name, *spec.env_aliases)]
    assert len(env_names) == len(set(env_names)), "an environment name is used twice"
    doc = (Path(__file__).parents[1] / "docs" / "settings.md").read_text(encoding="utf-8")
    for spec in SPECS:
        assert spec.default == getattr(DEFAULTS, spec.name)
        assert (spec.help and spec.check is not None) or spec.kind is bool, spec.name
        rows = [line for line in doc.splitlines() if line.startswith(f"| `{spec.name}` |")]
        assert len(rows) == 1, f"docs/settings.md needs one row for {spec.name}: {rows}"
        assert spec.env_name in rows[0], f"{spec.name}: the doc row does not name {spec.env_name}"
        for alias in spec.env_aliases:
            assert alias in rows[0], f"{spec.name}: the doc row does not name {alias}"
        shown = re.sub(r"[`,]", "", rows[0].rstrip(" |").rsplit("|", 1)[-1]).strip()
        if spec.default not in (None, ()):
            if isinstance(spec.default, float):
                assert float(shown.split()[0]) == spec.default, (spec.name, shown)
                continue
            default = str(spec.default).lower() if spec.kind is bool else str(spec.default)
            assert shown.startswith(default), (spec.name, shown, default)


def test_each_setting_kind_is_its_annotation_as_typing_reads_it() -> None:
    """specs_of reads the annotations as text (start-up); typing's reading agrees."""
    import typing

    from redmica_ops.settings import SPECS, Settings

    hints = typing.get_type_hints(Settings)
    for spec in SPECS:
        hint = hints[spec.name]
        origin = typing.get_origin(hint)
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        expected = tuple if origin is tuple else (args[0] if args else hint)
        assert spec.kind is expected, spec.name


def test_a_setting_of_another_type_is_refused_when_declared() -> None:
    import dataclasses

    from redmica_ops.settings.declare import setting, specs_of

    @dataclasses.dataclass(frozen=True)
    class Odd:
        when: frozenset[str] = setting(frozenset(), "a set is no setting's type")

    with pytest.raises(TypeError, match="cannot be declared as 'frozenset\\[str\\]'"):
        specs_of(Odd)


def test_component_defaults_are_the_settings_defaults() -> None:
    import dataclasses

    from redmica_ops.container.vhosts import VhostSettings
    from redmica_ops.runs.fanout import FanOutOptions
    from redmica_ops.settings import DEFAULTS

    vhost = {f.name: f.default for f in dataclasses.fields(VhostSettings)}
    for name in ("listen_port", "db_host", "trusted_proxies"):
        assert vhost[name] == getattr(DEFAULTS, name), name
    from redmica_ops.capacity import PoolRequest

    rendered = dataclasses.asdict(VhostSettings("x.example", "/app").pool)
    assert rendered == dataclasses.asdict(PoolRequest(memory_mib=DEFAULTS.serve_memory_mib))
    for name in (
        "processes_per_tenant",
        "max_pool_size",
        "min_instances",
        "max_preloader_idle_time",
        "pool_idle_time",
        "max_request_queue_size",
        "start_timeout",
    ):
        assert rendered[name] == getattr(DEFAULTS, name), name
    assert rendered["reserve_mib"] == DEFAULTS.memory_reserve_mib
    fan = FanOutOptions(command=["true"])
    assert (fan.concurrency, fan.rate, fan.burst, fan.timeout) == (
        DEFAULTS.concurrency,
        DEFAULTS.launch_rate,
        DEFAULTS.launch_burst,
        float(DEFAULTS.task_timeout),
    )
    from redmica_ops.capacity import PoolRequest

    pool = PoolRequest(memory_mib=4096)
    assert pool.processes_per_tenant == DEFAULTS.processes_per_tenant
    assert pool.max_preloader_idle_time == DEFAULTS.max_preloader_idle_time
    assert (fan.max_start_attempts, fan.poll_interval) == (
        DEFAULTS.max_start_attempts,
        DEFAULTS.poll_interval,
    )


def test_a_missing_setting_names_every_way_to_set_it() -> None:
    from redmica_ops.errors import UsageError
    from redmica_ops.settings import require

    settings = load_settings({}, env={})
    with pytest.raises(UsageError) as caught:
        require(settings, ["bucket", "cluster"], "the test needs")
    assert caught.value.message == "the test needs the setting(s): bucket, cluster"
    assert "--bucket" in str(caught.value.hint) and "CONFIG_BUCKET_NAME" in str(caught.value.hint)
    assert "REDMICA_CLUSTER" in str(caught.value.hint)
    require(load_settings({"bucket": "my-bucket", "cluster": "c"}, env={}), ["bucket", "cluster"])


def _config_rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()[1:]
    return {line.split()[0]: line.split()[1:] for line in lines if line.strip()}


def test_config_show_writes_values_as_an_operator_would(
    run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDMICA_SUBNETS", "subnet-a, subnet-b")
    rows = _config_rows(run("config", "show", bucket=None).stdout)
    assert rows["subnets"][0] == "subnet-a,subnet-b"  # was ('subnet-a', 'subnet-b')
    assert rows["security_groups"] == ["default", "REDMICA_SECURITY_GROUPS"]  # was ()
    assert rows["price_gb_minute"][0] == "0.00009216666667"  # was 9.216666667e-05
    assert rows["assign_public_ip"][0] == "false"  # was False
    assert rows["task_minutes"][0] == "4"
    assert not any("(" in cell or "e-0" in cell for row in rows.values() for cell in row[:1])


def test_config_show_names_and_changed_filter(run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDMICA_DOMAIN", "redmine.example.com")
    named = run("config", "show", "bucket", "domain", bucket=None)
    assert list(_config_rows(named.stdout)) == ["bucket", "domain"]
    changed = run("config", "show", "--changed", "--prefix", "t/", bucket=None)
    assert {"prefix", "domain"} <= set(_config_rows(changed.stdout))
    assert {"bucket", "app_root", "listen_port"}.isdisjoint(_config_rows(changed.stdout))
    data = run("config", "show", "--changed", "-O", "json", bucket=None).json()
    assert "domain" in data["settings"] and "prefix" not in data["settings"]
    assert all(entry["source"] != "default" for entry in data["settings"].values())


def test_config_show_of_an_unknown_name_suggests_one(run: Invoke) -> None:
    result = run("config", "show", "buckt", bucket=None)
    assert result.exit_code == 2
    assert "error: no setting named 'buckt'; did you mean 'bucket'?" in result.stderr


def test_the_missing_setting_hint_offers_a_flag_only_where_one_exists() -> None:
    from redmica_ops.cli.options import SETTING_OPTIONS
    from redmica_ops.settings import GLOBAL_FLAGS, missing_setting

    assert {name for _, name, _ in SETTING_OPTIONS} == GLOBAL_FLAGS
    with_flag = missing_setting(["bucket"])
    assert "give --bucket, or set REDMICA_BUCKET" in str(with_flag.hint)
    without = missing_setting(["cluster"])
    assert "--cluster" not in str(without.hint)
    assert "set REDMICA_CLUSTER, or `cluster` in redmica.toml" in str(without.hint)

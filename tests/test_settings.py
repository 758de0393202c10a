"""Settings precedence (flag > env > redmica.toml > default), validation and `config show`."""

from __future__ import annotations

from pathlib import Path

import pytest

from redmica_ops.errors import ValidationFailed
from redmica_ops.settings import load_settings
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


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ValidationFailed) as caught:
        load_settings({}, env={"REDMICA_PREFIX": "x"})
    assert str(caught.value.problems[0]).startswith("env REDMICA_PREFIX: prefix:")


def test_config_show_lists_values_and_sources(run: Invoke, tmp_path: Path) -> None:
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

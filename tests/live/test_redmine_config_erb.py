"""The rendered database.yml / s3.yml evaluated by real Ruby ERB + YAML, as Rails does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from redmica_ops.container.vhosts import render_redmine_config

EVALUATE = """
require 'erb'; require 'yaml'; require 'json'
puts JSON.generate(YAML.safe_load(ERB.new(File.read(ARGV[0])).result))
"""
HOSTILE = "p#x: \\ \"q\" ${HOME} ü'single' - [a] {b} &c *d !e |f >g %h @i `j`"


def evaluate(path: Path, env: dict[str, str]) -> dict[str, object]:
    ruby = shutil.which("ruby")
    if ruby is None:
        pytest.skip("ruby is not installed (it comes with Passenger, which `make test` installs)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAILS_", "S3_", "REDMICA_"))}
    result = subprocess.run(
        [ruby, "-e", EVALUATE, str(path)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_database_yml_carries_any_password_exactly(tmp_path: Path) -> None:
    path = tmp_path / "database.yml"
    path.write_text(render_redmine_config("database.yml"))
    env = {
        "RAILS_DB": "acme",
        "RAILS_DB_USERNAME": "acme_user",
        "RAILS_DB_PASSWORD": HOSTILE,
        "RAILS_DB_HOST": "db.internal",
        "RAILS_DB_PORT": "5433",
    }
    assert evaluate(path, env) == {
        "production": {
            "adapter": "postgresql",
            "database": "acme",
            "username": "acme_user",
            "password": HOSTILE,
            "host": "db.internal",
            "port": 5433,
            "encoding": "utf8",
        }
    }
    without_host = {k: v for k, v in env.items() if k not in ("RAILS_DB_HOST", "RAILS_DB_PORT")}
    production = evaluate(path, without_host)["production"]
    assert isinstance(production, dict)
    assert production["host"] is None and production["port"] == 5432


def test_s3_yml_keeps_everything_in_the_tenant_folder(tmp_path: Path) -> None:
    path = tmp_path / "s3.yml"
    path.write_text(render_redmine_config("s3.yml"))
    env = {"S3_BUCKET_NAME": "files", "S3_FOLDER_NAME": "acme/x y", "AWS_REGION": "eu-west-1"}
    assert evaluate(path, env) == {
        "production": {
            "bucket": "files",
            "folder": "acme/x y",
            "thumb_folder": "acme/x y/tmp/thumbnails",
            "import_folder": "acme/x y/tmp/imports",
            "region": "eu-west-1",
            "endpoint": None,
        }
    }


def test_configuration_yml_gives_each_tenant_its_own_files(tmp_path: Path) -> None:
    path = tmp_path / "configuration.yml"
    path.write_text(render_redmine_config("configuration.yml"))
    env = {"REDMICA_TENANT": "acme", "REDMICA_ATTACHMENTS_ROOT": "/var/lib/redmine/files"}
    assert evaluate(path, env) == {
        "production": {"attachments_storage_path": "/var/lib/redmine/files/acme"}
    }

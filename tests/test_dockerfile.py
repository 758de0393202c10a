"""Dockerfile.redmine: linted with hadolint (no Docker engine here) and kept in step with the
package (version, entrypoint, settings it relies on)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from redmica_ops import __version__
from redmica_ops.settings import SPECS_BY_NAME

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile.redmine"
TEXT = DOCKERFILE.read_text(encoding="utf-8")


def arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", TEXT, re.M)
    assert match, f"ARG {name} is not pinned"
    return match.group(1)


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_versions_are_pinned_and_agree_with_the_package() -> None:
    assert arg("REDMICA_OPS_VERSION") == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", arg("REDMICA_VERSION"))
    assert re.fullmatch(r"[0-9a-f]{40}", arg("REDMICA_S3_REF"))
    assert re.fullmatch(r"\d+\.\d+\.\d+", arg("PASSENGER_VERSION"))
    ruby = re.fullmatch(r"ruby:(\d+)\.(\d+)-slim-\w+", arg("RUBY_IMAGE"))
    assert ruby, "use an official ruby:X.Y-slim-<debian> base"
    assert (int(ruby.group(1)), int(ruby.group(2))) >= (3, 2)  # RedMica needs Ruby >= 3.2


def test_entrypoint_and_command() -> None:
    assert 'ENTRYPOINT ["redmica", "entrypoint"]' in TEXT
    assert 'CMD ["serve"]' in TEXT
    assert "HEALTHCHECK" in TEXT


def test_redmica_settings_set_in_the_image_exist() -> None:
    names = set(re.findall(r"\bREDMICA_([A-Z_]+)=", TEXT))
    settings = {n for n in names if n not in ("VERSION", "S3_REF", "OPS_VERSION")}
    assert settings, "the image configures redmica through REDMICA_* settings"
    for name in settings:
        assert name.lower() in SPECS_BY_NAME, f"REDMICA_{name} is not a redmica setting"


def test_no_secret_is_baked_in() -> None:
    assert not re.search(r"SECRET_KEY_BASE\s*=", TEXT)
    assert not re.search(
        r"(AWS_SECRET_ACCESS_KEY|PASSWORD)\s*=\s*\S", TEXT.replace("RAILS_DB_PASSWORD=build", "")
    )
    assert "generate_secret_token" not in TEXT

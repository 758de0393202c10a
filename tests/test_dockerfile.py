"""Dockerfile.redmine: linted with hadolint (no Docker engine here), its pins consistent with
docker/pins.toml and with each other, and kept in step with the package."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from redmica_ops import __version__
from redmica_ops.settings import SPECS_BY_NAME

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile.redmine"
TEXT = DOCKERFILE.read_text(encoding="utf-8")
PINS: dict[str, Any] = tomllib.loads((ROOT / "docker" / "pins.toml").read_text(encoding="utf-8"))
TLS_SCRIPT = ROOT / "docker" / "redmica_s3-verify-tls.sh"
NOT_SETTINGS = {"VERSION", "SHA256", "S3_TAG", "S3_SHA256", "OPS_VERSION"}


def arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", TEXT, re.M)
    assert match, f"ARG {name} is not pinned"
    return match.group(1)


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.lstrip("v").split("."))


def stages() -> list[str]:
    return re.split(r"^(?=FROM )", TEXT, flags=re.M)[1:]


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_pins_what_pins_toml_records() -> None:
    assert arg("REDMICA_OPS_VERSION") == __version__
    assert arg("REDMICA_VERSION") == PINS["redmica"]["version"]
    assert arg("REDMICA_S3_TAG") == PINS["redmica_s3"]["tag"]
    assert arg("PASSENGER_VERSION") == PINS["passenger"]["version"]
    assert arg("REDMICA_SHA256") == PINS["redmica"]["sha256"]
    assert arg("REDMICA_S3_SHA256") == PINS["redmica_s3"]["sha256"]
    assert arg("PASSENGER_SHA256") == PINS["passenger"]["sha256"]
    assert PINS["redmica"]["tarball"].endswith(f"/v{arg('REDMICA_VERSION')}.tar.gz")
    assert PINS["redmica_s3"]["tarball"].endswith(f"/{arg('REDMICA_S3_TAG')}.tar.gz")
    assert PINS["passenger"]["gem"].endswith(f"/passenger-{arg('PASSENGER_VERSION')}.gem")


@pytest.mark.parametrize("section", ["redmica", "redmica_s3", "passenger"])
def test_every_checksum_is_a_sha256_or_openly_unverified(section: str) -> None:
    pin = PINS[section]
    if pin["verified"]:
        assert re.fullmatch(r"[0-9a-f]{64}", pin["sha256"]), f"{section}: not a SHA-256"
    else:
        # A placeholder, never a made-up digest: `sha256sum --check` rejects it, the build
        # stops, and nobody mistakes it for a checked value.
        assert pin["sha256"] == "UNVERIFIED", f"{section}: unverified but looks real"
    assert pin["source"].strip()


def test_every_stage_starts_from_the_pinned_base_by_digest() -> None:
    base = PINS["base"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", base["digest"])
    froms = re.findall(r"^FROM (\S+)", TEXT, re.M)
    assert len(froms) == 2, "a build stage and a final stage"
    assert froms == [f"{base['image']}@{base['digest']}"] * 2
    # The tag stays readable next to the digest.
    assert TEXT.count(f"# {base['image']}") == 2


def test_ruby_and_plugin_requirements_hold() -> None:
    match = re.fullmatch(r"ruby:(\d+\.\d+)-slim-bookworm", PINS["base"]["image"])
    assert match
    ruby = version(match.group(1))
    redmica = PINS["redmica"]
    assert version(redmica["ruby_min"])[:2] <= ruby < version(redmica["ruby_below"])[:2]
    requires = version(PINS["redmica_s3"]["requires_redmica"])
    assert version(arg("REDMICA_VERSION")) >= requires
    # The plugin line is made for one RedMica major: a new major needs a new plugin tag.
    assert version(arg("REDMICA_VERSION"))[0] == requires[0]


def test_the_final_stage_has_no_compilers_and_is_not_root() -> None:
    final = stages()[-1]
    assert " AS " not in final.splitlines()[0]
    for tool in ("build-essential", "-dev ", "-dev\n", "gcc", "make ", "python3-venv"):
        assert tool not in final, f"{tool!r} in the final stage"
    users = re.findall(r"^USER (\S+)$", final, re.M)
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and gid.isdigit() and int(gid) != 0
    port = re.search(r"REDMICA_LISTEN_PORT=(\d+)", final)
    assert port and int(port.group(1)) >= 1024, "an unprivileged port needs no root"
    assert f"EXPOSE {port.group(1)}" in final
    assert "Listen ${REDMICA_LISTEN_PORT}" in (ROOT / "docker" / "ports.conf").read_text()


def test_downloads_are_checked_before_use() -> None:
    build = stages()[0]
    check = build.index("sha256sum --strict --check")
    assert build.index("curl -fsSL") < check < build.index("tar -xzf")
    assert check < build.index("gem install")
    for name in ("REDMICA_SHA256", "REDMICA_S3_SHA256", "PASSENGER_SHA256"):
        assert f'"${{{name}}}"' in build


def tls_plugin(tmp_path: Path, body: str) -> Path:
    plugin = tmp_path / "redmica_s3"
    connection = plugin / PINS["redmica_s3"]["tls_off_file"]
    connection.parent.mkdir(parents=True)
    connection.write_text(body)
    return plugin


def run_tls_script(plugin: Path) -> subprocess.CompletedProcess[str]:
    sh = shutil.which("sh")
    assert sh
    return subprocess.run(
        [sh, str(TLS_SCRIPT), str(plugin)], capture_output=True, text=True, check=False
    )


def test_tls_verification_comes_back_on(tmp_path: Path) -> None:
    line = PINS["redmica_s3"]["tls_off_line"]
    plugin = tls_plugin(tmp_path, f"require 'aws-sdk-s3'\n\n{line}\n\nmodule RedmicaS3\nend\n")
    result = run_tls_script(plugin)
    assert result.returncode == 0, result.stderr
    text = (plugin / PINS["redmica_s3"]["tls_off_file"]).read_text()
    assert text == "require 'aws-sdk-s3'\n\n\nmodule RedmicaS3\nend\n"
    assert f"RUN /usr/local/sbin/{TLS_SCRIPT.name} /usr/src/redmine/plugins/redmica_s3" in TEXT


@pytest.mark.parametrize(
    "body",
    [
        "Aws.config[:ssl_verify_peer] = nil\n",  # the plugin's line changed
        "module RedmicaS3\nend\n",  # gone
        "Aws.config[:ssl_verify_peer] = false\nAws.config[:ssl_verify_peer] = false\n",
        "Aws.config[:ssl_verify_peer] = false\nAws.config.update(ssl_verify_peer: false)\n",
    ],
)
def test_tls_patch_fails_the_build_when_the_plugin_changes(tmp_path: Path, body: str) -> None:
    result = run_tls_script(tls_plugin(tmp_path, body))
    assert result.returncode == 1
    assert "redmica_s3-verify-tls" in result.stderr


def test_entrypoint_and_command() -> None:
    assert 'ENTRYPOINT ["redmica", "entrypoint"]' in TEXT
    assert 'CMD ["serve"]' in TEXT
    assert "HEALTHCHECK" in TEXT


def test_redmica_settings_set_in_the_image_exist() -> None:
    names = set(re.findall(r"\bREDMICA_([A-Z0-9_]+)=", TEXT))
    settings = names - NOT_SETTINGS
    assert settings, "the image configures redmica through REDMICA_* settings"
    for name in settings:
        assert name.lower() in SPECS_BY_NAME, f"REDMICA_{name} is not a redmica setting"


def test_no_secret_is_baked_in() -> None:
    assert not re.search(r"SECRET_KEY_BASE\s*=", TEXT)
    assert not re.search(
        r"(AWS_SECRET_ACCESS_KEY|PASSWORD)\s*=\s*\S", TEXT.replace("RAILS_DB_PASSWORD=build", "")
    )
    assert "generate_secret_token" not in TEXT

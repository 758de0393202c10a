"""Dockerfile.redmine and what it builds from: linted with hadolint (there is no Docker engine
on our build machines), its pins in step with docker/pins.toml, docker/make-base.sh and the
sources they name, and the build scripts it runs (fetch-commit.sh, redmica_s3-verify-tls.sh,
build-image.sh) run here on synthetic input and, where RedMica's repositories are on the
machine, on the real sources at the pinned commits."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from redmica_ops import __version__
from redmica_ops.settings import SPECS_BY_NAME

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile.redmine"
TEXT = DOCKERFILE.read_text(encoding="utf-8")
DOCKER = ROOT / "docker"
PINS: dict[str, Any] = tomllib.loads((DOCKER / "pins.toml").read_text(encoding="utf-8"))
TLS_SCRIPT = DOCKER / "redmica_s3-verify-tls.sh"
FETCH_SCRIPT = DOCKER / "fetch-commit.sh"
MAKE_BASE = DOCKER / "make-base.sh"
BUILD_IMAGE = DOCKER / "build-image.sh"
BOOT_CACHE_SCRIPT = DOCKER / "build-boot-cache.sh"
# Build arguments named REDMICA_* that are pins, not redmica settings.
NOT_SETTINGS = {"VERSION", "COMMIT", "S3_TAG", "S3_COMMIT", "OPS_VERSION"}

# The projects' git repositories, where this machine has a copy (CI has none, and no GitHub).
REDMICA_REPO = Path(os.environ.get("PINS_REDMICA_REPO", "/work/.mirror/redmica+redmica/repo"))
REDMICA_S3_REPO = Path(
    os.environ.get("PINS_REDMICA_S3_REPO", "/work/.mirror/redmica+redmica_s3/repo")
)


def args(name: str) -> set[str]:
    """Every value ARG NAME is given (each stage that needs it declares it again)."""
    values = set(re.findall(rf"^ARG {name}=(\S+)$", TEXT, re.M))
    assert values, f"ARG {name} is not pinned"
    return values


def arg(name: str) -> str:
    values = args(name)
    assert len(values) == 1, f"ARG {name} differs between stages: {values}"
    return values.pop()


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.lstrip("v").split("."))


def stages() -> list[str]:
    return re.split(r"^(?=FROM )", TEXT, flags=re.M)[1:]


def stage(name: str) -> str:
    return next(s for s in stages() if s.splitlines()[0].endswith(f" AS {name}"))


def final_stage() -> str:
    return stages()[-1]


def shell_value(script: Path, name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", script.read_text(encoding="utf-8"), re.M)
    assert match, f"{script.name} sets no {name}"
    return match.group(1)


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def sh() -> str:
    found = shutil.which("sh")
    assert found
    return found


def git(*argv: str, cwd: Path | None = None) -> str:
    result = run(["git", *argv], cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# ---- the Dockerfile itself ----------------------------------------------------------------


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = run([str(hadolint), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_nothing_is_left_unverified() -> None:
    for path in (DOCKERFILE, DOCKER / "pins.toml"):
        assert "UNVERIFIED" not in path.read_text(encoding="utf-8").upper(), path.name
    assert "sha256sum" not in TEXT, "no checksum copied from elsewhere: pins are checked"
    for name, pin in PINS.items():
        if name == "debian":
            continue  # versions seen in Debian 13, not inputs of the build
        assert pin.get("check", "").strip(), f"[{name}] says how the build checks it"
        if pin.get("pinned", True) is False:
            assert pin.get("why", "").strip(), f"[{name}] is not pinned: it must say why"
    for name in ("redmica", "redmica_s3"):
        assert re.fullmatch(r"[0-9a-f]{40}", PINS[name]["commit"]), f"{name}: a full commit id"


def test_the_dockerfile_pins_what_pins_toml_records() -> None:
    assert arg("REDMICA_OPS_VERSION") == __version__
    redmica, plugin = PINS["redmica"], PINS["redmica_s3"]
    assert arg("REDMICA_VERSION") == redmica["version"]
    assert redmica["tag"] == f"v{redmica['version']}"
    assert arg("REDMICA_COMMIT") == redmica["commit"]
    assert arg("REDMICA_S3_TAG") == plugin["tag"] == f"v{plugin['version']}"
    assert arg("REDMICA_S3_COMMIT") == plugin["commit"]
    assert arg("RDS_CA_BUNDLE_URL") == PINS["rds_ca"]["url"]
    # Both stages carry the commits: the build fetches them, the final stage labels the image.
    assert len(re.findall(r"^ARG REDMICA_COMMIT=", TEXT, re.M)) == 2
    assert 'org.redmica.redmica.commit="${REDMICA_COMMIT}"' in final_stage()


def test_the_sources_are_fetched_at_the_pinned_commits_and_checked() -> None:
    build = stage("build")
    redmica, plugin = PINS["redmica"], PINS["redmica_s3"]
    fetch_redmica = build.index(
        f'fetch-commit.sh {redmica["repository"]} "${{REDMICA_COMMIT}}" /usr/src/redmine'
    )
    fetch_plugin = build.index(
        f'fetch-commit.sh {plugin["repository"]} "${{REDMICA_S3_COMMIT}}"'
        " \\\n      /usr/src/redmine/plugins/redmica_s3"
    )
    tls = build.index(f"{TLS_SCRIPT.name} /usr/src/redmine/plugins/redmica_s3")
    assert fetch_redmica < fetch_plugin < tls < build.index("bundle install")
    assert f"COPY --chmod=0755 docker/{FETCH_SCRIPT.name} docker/{TLS_SCRIPT.name}" in build
    # The final stage downloads nothing (its only curl is the local health check).
    assert "fetch-commit" not in final_stage() and "https://" not in final_stage()


def test_the_base_is_debian_13_from_the_signed_archive() -> None:
    base = PINS["base"]
    froms = re.findall(r"^FROM (.+)$", TEXT, re.M)
    assert froms == ["scratch AS base", "base AS build", "base"], "no registry image anywhere"
    assert f"ADD {base['rootfs']} /" in stage("base")
    assert f"VERSION_CODENAME={base['suite']}" in stage("base")
    # The script that makes the base uses exactly the recorded archive, suite and keys.
    assert shell_value(MAKE_BASE, "suite") == base["suite"]
    assert shell_value(MAKE_BASE, "mirror") == base["mirror"]
    assert shell_value(MAKE_BASE, "security_mirror") == base["security_mirror"]
    assert shell_value(MAKE_BASE, "keyring") == base["keyring"]
    assert "--force-check-gpg" in MAKE_BASE.read_text()
    assert shell_value(BUILD_IMAGE, "base") == base["rootfs"]
    makefile = (ROOT / "Makefile").read_text()
    assert f"docker/make-base.sh {base['rootfs']}" in makefile
    assert "sh docker/build-image.sh $(IMAGE)" in makefile


def test_debian_13_ruby_fits_redmica_and_the_plugin_fits_redmica() -> None:
    redmica, debian = PINS["redmica"], PINS["debian"]
    ruby = version(debian["ruby"])
    assert version(redmica["ruby_min"])[:2] <= ruby < version(redmica["ruby_below"])[:2]
    assert version(PINS["redmica_s3"]["requires_redmine"]) <= version(redmica["redmine"])
    # The image's Ruby, Passenger and Bundler are Debian's packages (so no checksum to pin).
    final = final_stage()
    for package in ("libapache2-mod-passenger", "ruby", "ruby-bundler", "postgresql-client"):
        assert re.search(rf"\s{re.escape(package)}\s", final), package
    assert "gem install" not in TEXT and "passenger-install-apache2-module" not in TEXT


def test_the_gems_are_locked_with_checksums_and_installed_frozen() -> None:
    build = stage("build")
    lock = build.index("bundle lock --add-checksums")
    frozen = build.index("bundle config set --local frozen true")
    assert lock < frozen < build.index("bundle install")
    assert "without 'development test'" in build
    assert PINS["gems"]["pinned"] is False  # said plainly until a lock is committed


def test_the_python_dependencies_come_from_the_hashed_lock() -> None:
    lock_text = (ROOT / PINS["python"]["lock"]).read_text(encoding="utf-8")
    pinned = {
        m.group(1).lower(): Version(m.group(2))
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock_text, re.M)
    }
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock_text.split("\n\n")[-1].strip())
    for block in blocks:
        if block.startswith("#"):
            continue
        assert "--hash=sha256:" in block, f"no hash for {block.splitlines()[0]}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = project["project"]["dependencies"] + project["build-system"]["requires"]
    for text in needed:
        requirement = Requirement(text)
        name = requirement.name.lower()
        assert name in pinned, f"{name} is not in {PINS['python']['lock']}"
        assert requirement.specifier.contains(pinned[name]), f"{name} {pinned[name]}"
    build = stage("build")
    assert "--require-hashes \\\n      -r /opt/redmica-ops-src/requirements.lock" in build
    assert "--no-deps --no-build-isolation" in build
    assert build.count("pip install") == 2


def test_the_rds_ca_bundle_is_fetched_over_https_and_carried() -> None:
    rds = PINS["rds_ca"]
    build = stage("build")
    assert f"curl -fsS --proto '=https' --tlsv1.2 --retry 3 -o {rds['path']}" in build
    assert '"x509_ca"' in build, "the file must load as CA certificates"
    folder = str(Path(rds["path"]).parent)
    assert f"COPY --from=build {folder} {folder}" in final_stage()
    assert rds["path"] in (ROOT / "docs" / "container.md").read_text(encoding="utf-8")


def test_the_build_context_holds_what_the_dockerfile_reads() -> None:
    allowed = {
        line[1:]
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    sources: list[str] = []
    for line in re.findall(r"^(?:COPY|ADD) (.+)$", TEXT, re.M):
        words = [w for w in line.split() if not w.startswith("--")]
        if "--from=" not in line:
            sources.extend(words[:-1])
    assert sources
    for source in sources:
        assert source in allowed or source.split("/")[0] in allowed, source
    assert ".venv" not in allowed and ".git" not in allowed


def test_the_final_stage_has_no_compilers_and_is_not_root() -> None:
    final = final_stage()
    assert " AS " not in final.splitlines()[0]
    for tool in ("build-essential", "-dev ", "-dev\n", "gcc", "make ", "python3-venv", " git "):
        assert tool not in final, f"{tool!r} in the final stage"
    users = re.findall(r"^USER (\S+)$", final, re.M)
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and gid.isdigit() and int(gid) != 0
    port = re.search(r"REDMICA_LISTEN_PORT=(\d+)", final)
    assert port and int(port.group(1)) >= 1024, "an unprivileged port needs no root"
    assert f"EXPOSE {port.group(1)}" in final
    assert "Listen ${REDMICA_LISTEN_PORT}" in (DOCKER / "ports.conf").read_text()
    # Apache runs as `redmica`: Debian's root-owned log files would stop it at start.
    assert "rm -f /var/log/apache2/*.log" in final
    assert "a2disconf other-vhosts-access-log" in final
    # `run-tenant` keeps the working directory; `bundle exec` needs the app root.
    assert re.findall(r"^WORKDIR (\S+)$", final, re.M)[-1] == "/usr/src/redmine"


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


def test_the_boot_cache_is_built_where_the_image_reads_it_as_the_bench_measured() -> None:
    """The image's cold-start settings are the benchmark's `new` column (docs/benchmarks.md),
    its Bootsnap cache is built in the build stage by the script the benchmark runs, and the
    final stage has what the settings need at run time."""
    from bench.density import BOOT_CACHE, SHIPPED

    final = final_stage()
    image = dict(
        re.findall(
            r"\b(REDMICA_(?:BOOT_CACHE_DIR|MAX_BOOTING|START_TIMEOUT|RUBY_ALLOCATOR))=(\S+)", final
        )
    )
    assert image == SHIPPED
    build = "\n".join(stages()[:-1])
    assert f"COPY --chmod=0755 docker/{BOOT_CACHE_SCRIPT.name} /usr/local/sbin/" in build
    assert f"RUN {BOOT_CACHE_SCRIPT.name} /usr/src/redmine {BOOT_CACHE}\n" in build
    assert build.index("bundle install") < build.index(f"RUN {BOOT_CACHE_SCRIPT.name}")
    assert f"COPY --from=build {BOOT_CACHE} {BOOT_CACHE}\n" in final
    assert "ruby-bootsnap" in build and "ruby-bootsnap" in final
    if SHIPPED.get("REDMICA_RUBY_ALLOCATOR") == "jemalloc":
        assert "libjemalloc2" in final


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/app"], "usage: build-boot-cache.sh APP_ROOT CACHE_DIR"),
        (["/app", "relative/cache"], "CACHE_DIR must be an absolute path"),
        (["/nonexistent-app", "/tmp/x"], "/nonexistent-app has no config/environment.rb"),
    ],
)
def test_build_boot_cache_refuses_bad_arguments_before_touching_anything(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    result = subprocess.run(
        ["sh", str(BOOT_CACHE_SCRIPT), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_no_secret_is_baked_in() -> None:
    assert not re.search(r"SECRET_KEY_BASE\s*=", TEXT)
    assert not re.search(
        r"(AWS_SECRET_ACCESS_KEY|PASSWORD)\s*=\s*\S", TEXT.replace("RAILS_DB_PASSWORD=build", "")
    )
    assert "generate_secret_token" not in TEXT


def test_the_scripts_the_build_runs_are_executable_in_git() -> None:
    for script in (TLS_SCRIPT, FETCH_SCRIPT, MAKE_BASE, BUILD_IMAGE, BOOT_CACHE_SCRIPT):
        assert script.stat().st_mode & stat.S_IXUSR, script.name
        assert script.read_text().startswith("#!/bin/sh\n"), script.name


# ---- fetch-commit.sh ------------------------------------------------------------------------


@pytest.fixture
def upstream(tmp_path: Path) -> tuple[Path, str]:
    """A small git repository with two commits; returns it and the first commit's id."""
    repo = tmp_path / "upstream"
    repo.mkdir()
    git("init", "-q", str(repo))
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    (repo / "init.rb").write_text("version '1'\n")
    git("-C", str(repo), "add", ".")
    git(*ident, "-C", str(repo), "commit", "-q", "-m", "one")
    first = git("-C", str(repo), "rev-parse", "HEAD")
    (repo / "init.rb").write_text("version '2'\n")
    git(*ident, "-C", str(repo), "commit", "-q", "-am", "two")
    return repo, first


def fetch(url: str, commit: str, into: Path) -> subprocess.CompletedProcess[str]:
    return run([sh(), str(FETCH_SCRIPT), url, commit, str(into)])


def test_fetch_commit_gives_exactly_the_pinned_commit(
    upstream: tuple[Path, str], tmp_path: Path
) -> None:
    repo, first = upstream
    out = tmp_path / "out"
    result = fetch(f"file://{repo}", first, out)
    assert result.returncode == 0, result.stderr
    assert (out / "init.rb").read_text() == "version '1'\n", "the pinned commit, not the tip"
    assert not (out / ".git").exists()


@pytest.mark.parametrize(
    ("commit", "message"),
    [
        ("f" * 40, "could not fetch commit"),  # well-formed, not in the repository
        ("abc123", "full commit id"),  # a short id could match another commit later
        ("A" * 40, "full commit id"),
        ("v1.0.0", "full commit id"),  # a tag can be moved
    ],
)
def test_fetch_commit_refuses_anything_but_the_commit(
    upstream: tuple[Path, str], tmp_path: Path, commit: str, message: str
) -> None:
    repo, _ = upstream
    result = fetch(f"file://{repo}", commit, tmp_path / "out")
    assert result.returncode == 1
    assert "fetch-commit:" in result.stderr and message in result.stderr


def test_fetch_commit_refuses_a_directory_with_files(
    upstream: tuple[Path, str], tmp_path: Path
) -> None:
    repo, first = upstream
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.rb").write_text("")
    result = fetch(f"file://{repo}", first, out)
    assert result.returncode == 1 and "is not empty" in result.stderr


# ---- redmica_s3-verify-tls.sh ---------------------------------------------------------------


def tls_plugin(tmp_path: Path, body: str) -> Path:
    plugin = tmp_path / "redmica_s3"
    connection = plugin / PINS["redmica_s3"]["tls_off_file"]
    connection.parent.mkdir(parents=True)
    connection.write_text(body)
    return plugin


def run_tls_script(plugin: Path) -> subprocess.CompletedProcess[str]:
    return run([sh(), str(TLS_SCRIPT), str(plugin)])


def test_tls_verification_comes_back_on(tmp_path: Path) -> None:
    line = PINS["redmica_s3"]["tls_off_line"]
    plugin = tls_plugin(tmp_path, f"require 'aws-sdk-s3'\n\n{line}\n\nmodule RedmicaS3\nend\n")
    result = run_tls_script(plugin)
    assert result.returncode == 0, result.stderr
    text = (plugin / PINS["redmica_s3"]["tls_off_file"]).read_text()
    assert text == "require 'aws-sdk-s3'\n\n\nmodule RedmicaS3\nend\n"


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


# ---- the real sources at the pinned commits (only where their repositories are) -------------

NO_COPY = (
    "no git repository of {name} at {path} (set {var} to one): the pinned source is not "
    "checked on this machine. CI has neither a copy nor GitHub; the tests on synthetic input "
    "above still check the scripts, and the image build itself checks the commit"
)


def repository(path: Path, name: str, var: str) -> Path:
    if not (path / "HEAD").exists() and not (path / ".git").exists():
        pytest.skip(NO_COPY.format(name=name, path=path, var=var))
    return path


@pytest.fixture
def redmica_repo() -> Path:
    return repository(REDMICA_REPO, "redmica/redmica", "PINS_REDMICA_REPO")


@pytest.fixture
def redmica_s3_repo() -> Path:
    return repository(REDMICA_S3_REPO, "redmica/redmica_s3", "PINS_REDMICA_S3_REPO")


def show(repo: Path, commit: str, path: str) -> str:
    return git("-C", str(repo), "show", f"{commit}:{path}")


def pin_of(repo: Path, section: str) -> tuple[dict[str, str], str]:
    """The section's pin and commit, after checking its tag resolves to that commit."""
    pin = PINS[section]
    assert git("-C", str(repo), "rev-parse", f"{pin['tag']}^{{commit}}") == pin["commit"]
    return pin, pin["commit"]


def test_redmica_tag_commit_and_versions_are_the_pins(redmica_repo: Path) -> None:
    pin, commit = pin_of(redmica_repo, "redmica")
    gemfile = show(redmica_repo, commit, "Gemfile")
    assert f"ruby '>= {pin['ruby_min']}', '< {pin['ruby_below']}'" in gemfile
    assert f"gem 'rails', '{pin['rails']}'" in gemfile
    versions = {"lib/redmine/version.rb": "redmine", "lib/redmica/version.rb": "version"}
    for path, expected in versions.items():
        text = show(redmica_repo, commit, path)
        parts = [re.search(rf"{key}\s*=\s*(\d+)", text) for key in ("MAJOR", "MINOR", "TINY")]
        assert all(parts), path
        assert ".".join(p.group(1) for p in parts if p) == pin[expected], path


def test_redmica_s3_at_its_pinned_commit_gets_tls_verification_back(
    redmica_s3_repo: Path, tmp_path: Path
) -> None:
    pin, commit = pin_of(redmica_s3_repo, "redmica_s3")
    init = show(redmica_s3_repo, commit, "init.rb")
    assert f"requires_redmine version_or_higher: '{pin['requires_redmine']}'" in init
    assert f"version '{pin['version']}'" in init

    # The build's own two steps, on the real source: fetch the commit, then the TLS patch.
    plugin = tmp_path / "redmica_s3"
    fetched = fetch(f"file://{redmica_s3_repo.resolve()}", commit, plugin)
    assert fetched.returncode == 0, fetched.stderr
    connection = plugin / pin["tls_off_file"]
    before = connection.read_text().splitlines(keepends=True)
    assert [line.rstrip("\n") for line in before].count(pin["tls_off_line"]) == 1
    assert before[2].rstrip("\n") == pin["tls_off_line"], "line 3, as recorded"
    result = run_tls_script(plugin)
    assert result.returncode == 0, result.stderr
    after = connection.read_text().splitlines(keepends=True)
    assert after == before[:2] + before[3:], "exactly that line removed, nothing else"
    assert "ssl_verify_peer" not in "".join(after)


# ---- build-image.sh (make image) without a Docker engine ---------------------------------


def test_make_image_says_it_needs_a_docker_engine_when_there_is_no_docker(
    tmp_path: Path,
) -> None:
    result = run([sh(), str(BUILD_IMAGE)], env={"PATH": str(tmp_path), "DOCKER": "docker"})
    assert result.returncode == 2
    assert "needs a Docker engine" in result.stderr and "no 'docker' command" in result.stderr


def test_make_image_says_it_needs_a_docker_engine_when_none_answers(tmp_path: Path) -> None:
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///x.sock' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "DOCKER": str(fake)}
    result = run([sh(), str(BUILD_IMAGE)], env=env)
    assert result.returncode == 2
    assert "needs a Docker engine" in result.stderr
    assert "Cannot connect to the Docker daemon" in result.stderr
    assert not (ROOT / "build" / "image" / "Gemfile.lock.partial").exists()

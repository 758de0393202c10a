"""Finding Apache + Passenger on this machine, and testing a generated site config with it.

`apache2 -t` needs a whole server config; we build a minimal wrapper around the generated file
(ErrorLog, an MPM, authz_core/authz_host, env, alias, headers and passenger) so the check exercises
exactly what the site file uses, without touching the system's Apache configuration.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redmica_ops.container.escape import quote
from redmica_ops.errors import OperationFailed, UsageError

MODULE_DIRS = (
    "/usr/lib/apache2/modules",
    "/usr/lib64/httpd/modules",
    "/usr/lib/httpd/modules",
    "/usr/local/apache2/modules",
)
REQUIRED_MODULES = ("authz_core", "authz_host", "env", "alias", "remoteip", "headers")
MPMS = ("event", "worker", "prefork")
PASSENGER_CONF = Path("/etc/apache2/mods-available/passenger.conf")


@dataclass(frozen=True)
class ApacheInstall:
    binary: str
    modules_dir: Path
    passenger_root: str
    passenger_ruby: str

    def module(self, name: str) -> Path:
        return self.modules_dir / f"mod_{name}.so"


def find_apache(explicit: str | None = None) -> ApacheInstall:
    """Locate Apache, its modules and Passenger; say plainly what is missing."""
    hint = "install Apache + Passenger (Debian: apt-get install apache2 libapache2-mod-passenger)"
    if explicit and not _which(explicit):
        raise UsageError(f"Apache binary {explicit!r} not found", hint)
    binary = (
        _which(explicit)
        if explicit
        else next((found for name in ("apache2", "httpd") if (found := _which(name))), None)
    )
    if not binary:
        raise UsageError("Apache is not installed (no apache2 or httpd found)", hint)
    modules = next(
        (Path(d) for d in MODULE_DIRS if (Path(d) / "mod_authz_core.so").is_file()), None
    )
    if modules is None:
        raise UsageError("Apache's modules directory was not found", hint)
    if not (modules / "mod_passenger.so").is_file():
        raise UsageError("Apache's Passenger module (mod_passenger.so) is not installed", hint)
    root, ruby = _passenger_locations()
    return ApacheInstall(binary, modules, root, ruby)


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def _passenger_locations() -> tuple[str, str]:
    root = ruby = None
    if PASSENGER_CONF.is_file():
        text = PASSENGER_CONF.read_text(encoding="utf-8", errors="replace")
        if match := re.search(r"^\s*PassengerRoot\s+(\S+)", text, re.M):
            root = match.group(1).strip('"')
        if match := re.search(r"^\s*PassengerDefaultRuby\s+(\S+)", text, re.M):
            ruby = match.group(1).strip('"')
    if root is None and (config := shutil.which("passenger-config")):
        result = subprocess.run([config, "--root"], capture_output=True, text=True, check=False)
        root = result.stdout.strip() or None
    if root is None:
        raise UsageError(
            "cannot find PassengerRoot (no passenger.conf, no passenger-config)",
            "install libapache2-mod-passenger",
        )
    return root, ruby or shutil.which("ruby") or "/usr/bin/ruby"


def server_config(
    install: ApacheInstall,
    site_file: Path,
    workdir: Path,
    listen: str | None = None,
    extra: tuple[str, ...] = (),
) -> str:
    """A whole, private server config that includes `site_file`: its own ServerRoot, pid file
    and logs under `workdir`, so it runs beside (not instead of) any system Apache."""
    mpm = next((m for m in MPMS if install.module(f"mpm_{m}").is_file()), None)
    if mpm is None:
        raise UsageError("no Apache MPM module found")
    lines = [
        f"ServerRoot {quote(workdir)}",
        f"PidFile {quote(workdir / 'httpd.pid')}",
        f"ErrorLog {quote(workdir / 'error.log')}",
        "LogLevel warn",
        "ServerName localhost",
        f"DefaultRuntimeDir {quote(workdir)}",
        f"LoadModule mpm_{mpm}_module {quote(install.module(f'mpm_{mpm}'))}",
    ]
    lines += [
        f"LoadModule {name}_module {quote(install.module(name))}" for name in REQUIRED_MODULES
    ]
    lines += [
        f"LoadModule passenger_module {quote(install.module('passenger'))}",
        f"PassengerRoot {quote(install.passenger_root)}",
        f"PassengerDefaultRuby {quote(install.passenger_ruby)}",
        f"PassengerInstanceRegistryDir {quote(workdir)}",
        "PassengerDisableSecurityUpdateCheck on",
    ]
    if listen:
        lines.append(f"Listen {listen}")
    lines += list(extra)
    lines.append(f"Include {quote(site_file)}")
    return "\n".join(lines) + "\n"


def config_test(site_file: Path, install: ApacheInstall) -> None:
    """Run `apache2 -t` on the site file inside a minimal wrapper; fail with Apache's words."""
    with tempfile.TemporaryDirectory(prefix="redmica-apache-test-") as tmp:
        workdir = Path(tmp)
        wrapper = workdir / "wrapper.conf"
        wrapper.write_text(server_config(install, site_file.resolve(), workdir), encoding="utf-8")
        result = subprocess.run(
            [install.binary, "-t", "-f", str(wrapper)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    output = (result.stderr + result.stdout).strip()
    if result.returncode != 0:
        raise OperationFailed(
            f"Apache rejected the configuration: {_first_error(output)}",
            "the file was not installed; fix the tenants and render again",
        )


def _first_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    lines = [line for line in lines if line != "Syntax OK"]
    return " ".join(lines[:4]) or "no output"


def config_checker(apache_bin: str | None) -> Callable[[Path], None]:
    """A config test to pass as `write_private(check=...)`: Apache is located once, now."""
    install = find_apache(apache_bin)

    def check(path: Path) -> None:
        config_test(path, install)

    return check

"""A private Apache + Passenger for tests: own ServerRoot, pid file and port on 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from redmica_ops.container.apache import ApacheInstall, server_config

# Reports the tenant variables of the serving process, hex-encoded so the test can compare
# bytes exactly, plus its pid (to see which processes served which tenant).
CONFIG_RU = """\
require 'json'
KEYS = %w[RAILS_DB RAILS_DB_USERNAME RAILS_DB_PASSWORD RAILS_DB_HOST RAILS_DB_PORT
          S3_BUCKET_NAME S3_FOLDER_NAME REDMICA_TENANT]
run lambda { |env|
  values = KEYS.to_h { |k| [k, ENV[k] && ENV[k].unpack1('H*')] }
  [200, { 'Content-Type' => 'application/json' },
   [JSON.generate(values.merge('pid' => Process.pid))]]
}
"""


def make_app(root: Path) -> Path:
    app = root / "app"
    (app / "public").mkdir(parents=True)
    (app / "config.ru").write_text(CONFIG_RU, encoding="utf-8")
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LiveApache:
    install: ApacheInstall
    workdir: Path
    site_file: Path
    port: int
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    # Apache's environment (which every Passenger process inherits); None: this process's.
    env: dict[str, str] | None = None

    def start(self, timeout: float = 30.0) -> None:
        extra: tuple[str, ...] = ("PassengerDefaultUser www-data", *self.extra)
        if os.geteuid() == 0:
            extra += ("User www-data", "Group www-data")
        config = self.workdir / "server.conf"
        config.write_text(
            server_config(
                self.install,
                self.site_file,
                self.workdir,
                listen=f"127.0.0.1:{self.port}",
                extra=extra,
            )
        )
        self.process = subprocess.Popen(
            [self.install.binary, "-f", str(config), "-DFOREGROUND"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "stderr.log").open("wb"),
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Apache exited: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError as exc:
                if time.monotonic() > deadline:
                    message = f"Apache did not listen in {timeout}s: {self.log_tail()}"
                    raise RuntimeError(message) from exc
                time.sleep(0.05)

    def graceful(self) -> None:
        """Re-read the configuration without dropping connections (SIGUSR1 to the parent)."""
        pid = int((self.workdir / "httpd.pid").read_text().strip())
        os.kill(pid, signal.SIGUSR1)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop by Apache's own pid file (it also takes Passenger down), then reap."""
        pid_file = self.workdir / "httpd.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        elif self.process is not None:
            # Apache listens before it writes its pid file; in -DFOREGROUND the process we
            # started is the parent, and SIGTERM to it stops its children and Passenger too
            # (a SIGKILL would orphan them).
            self.process.terminate()
        if self.process is not None:
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
            self.process = None

    def get(
        self,
        host: str,
        path: str = "/",
        timeout: float = 120.0,
        headers: dict[str, str] | None = None,
    ) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.putrequest("GET", path, skip_host=True)
            connection.putheader("Host", host)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            return Response(response.status, response.read(), dict(response.getheaders()))
        finally:
            connection.close()

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for name in ("error.log", "stderr.log"):
            path = self.workdir / name
            if path.exists():
                parts.append("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

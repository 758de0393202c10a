"""`redmica sandbox`: run an embedded AWS endpoint until Ctrl-C / SIGTERM."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.cli.result import Done
from redmica_ops.errors import UsageError
from redmica_ops.sandbox import DEFAULT_BUCKET, LocalDatabase, start_sandbox


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="port (0 = any free port)",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also write the export lines to this file once ready (removed on exit)",
)
@click.option(
    "--ecs",
    is_flag=True,
    help="also stand up the platform's stacks (docs/infrastructure.md) and export their settings",
)
@click.option(
    "--fail-once",
    multiple=True,
    metavar="TENANT",
    help="with --ecs: this tenant's first migration task exits 1 (repeat)",
)
@click.option(
    "--fail-image",
    multiple=True,
    metavar="IMAGE",
    help="with --ecs: a deployment of this image fails and is rolled back (repeat)",
)
@click.option(
    "--cells",
    type=click.IntRange(0, 8),
    default=0,
    metavar="N",
    help="the stacks with N cells: main, b, c, ... (a cell stack each beside the main stack's)",
)
@click.option(
    "--local-db",
    metavar="HOST[:PORT]",
    help="with --ecs, sandbox only: the admin task's database is this PostgreSQL server (TLS) "
    "instead of the cluster endpoint moto has no server behind",
)
@click.option(
    "--local-db-ca",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PEM",
    help="with --local-db: the CA its certificate is verified against",
)
@click.option(
    "--local-db-master",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="JSON",
    help='with --local-db: a file {"username": ..., "password": ...}, its administrator, put '
    "into the master secret as RDS would",
)
@global_options(hidden=True)
@pass_app
def sandbox(
    app: Application,
    host: str,
    port: int,
    env_file: Path | None,
    ecs: bool,
    fail_once: tuple[str, ...],
    fail_image: tuple[str, ...],
    cells: int,
    local_db: str | None,
    local_db_ca: Path | None,
    local_db_master: Path | None,
) -> Done:
    """Run an embedded AWS endpoint (moto) with a versioned config bucket.

    Prints the `export` lines that point redmica (and the AWS CLI) at it, then serves until
    Ctrl-C or SIGTERM. Everything lives in memory and is gone when it stops. Needs the extra
    `redmica-ops[sandbox]`. The bucket is --bucket / REDMICA_BUCKET, else redmica-config.
    With --ecs or --cells, the foundation, database and main stacks (and a stack per further
    cell) are made from templates/cloudformation/ by moto's CloudFormation and the exports
    are the settings `redmica config from-stack` reads from them (the config bucket is the
    main stack's). --local-db (with --ecs) puts a PostgreSQL server of this machine where
    the Aurora cluster would be, so lifecycle steps run through the admin task to the end.

    \b
    Examples:
      redmica sandbox --env-file /tmp/sandbox.env &
      . /tmp/sandbox.env && redmica tenant list
      redmica sandbox --ecs --fail-once globex --env-file /tmp/sandbox.env &
      redmica sandbox --cells 3 --fail-image redmica:broken --env-file /tmp/cells.env &
      redmica sandbox --ecs --local-db 127.0.0.1:5433 --local-db-ca ca.pem \\
        --local-db-master master.json --env-file /tmp/sandbox.env &
    """
    if (ecs or cells) and app.overrides.get("bucket"):
        raise UsageError(
            "--bucket does not go with --ecs or --cells: the config bucket is the main stack's",
            "leave out --bucket; the sandbox exports REDMICA_BUCKET",
        )
    bucket = app.overrides.get("bucket") or app.env.get("REDMICA_BUCKET") or DEFAULT_BUCKET
    box = start_sandbox(
        host=host,
        port=port,
        bucket=bucket,
        ecs=ecs,
        fail_once=frozenset(fail_once),
        fail_images=frozenset(fail_image),
        env_file=env_file,
        cells=cells,
        local_db=_local_database(local_db, local_db_ca, local_db_master),
    )
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        lines = box.export_lines()
        app.output.text("\n".join(lines))
        if env_file is not None:
            box.write_env_file(env_file)
        app.output.info(
            f"sandbox: AWS endpoint {box.endpoint_url}, bucket {box.bucket} (versioned); "
            "Ctrl-C to stop"
        )
        while not stop.wait(timeout=1.0):
            pass
    finally:
        box.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if env_file is not None:
            env_file.unlink(missing_ok=True)
        app.output.info("sandbox stopped")
    return Done({"endpoint_url": box.endpoint_url, "bucket": box.bucket, "stopped": True})


def _local_database(
    endpoint: str | None, root_cert: Path | None, master: Path | None
) -> LocalDatabase | None:
    if endpoint is None:
        if root_cert is not None or master is not None:
            raise UsageError("--local-db-ca and --local-db-master go with --local-db")
        return None
    if root_cert is None or master is None:
        raise UsageError(
            "--local-db needs --local-db-ca and --local-db-master",
            "give the server's CA and a file with its administrator's credentials",
        )
    return LocalDatabase.read(endpoint, root_cert, master)

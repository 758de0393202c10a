"""`redmica probe`: request every selected tenant's site and judge the answer (docs/probe.md).

Parses the options into a `ProbeRequest`, runs `probe.run.run` with the workspace's probe
site (its balancers and records) and shows the outcome's report.
"""

from __future__ import annotations

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.cli.result import ReportResult
from redmica_ops.probe import model
from redmica_ops.probe.run import run
from redmica_ops.probe.wiring import aws_site


@click.command()
@click.option(
    "--path",
    default=model.DEFAULT_PATH,
    show_default=True,
    help="the URL path requested on every site (Redmine's sign-in page needs its database)",
)
@click.option(
    "--base-url",
    metavar="URL",
    help="send every request here (http(s)://HOST[:PORT]) [default: each cell's load balancer]",
)
@click.option(
    "--cell", "cells", multiple=True, metavar="CELL", help="only this cell's tenants (repeatable)"
)
@click.option("--wave", type=int, metavar="N", help="only the N-th wave of the release plan")
@click.option(
    "--tenant", "tenants", multiple=True, metavar="ID", help="only this tenant (repeatable)"
)
@click.option(
    "--timeout",
    type=float,
    default=model.DEFAULT_TIMEOUT,
    show_default=True,
    help="seconds one site may take (a cold start included)",
)
@click.option(
    "--concurrency",
    type=int,
    default=model.DEFAULT_CONCURRENCY,
    show_default=True,
    help="requests in flight across the fleet",
)
@click.option(
    "--per-cell",
    type=int,
    default=model.DEFAULT_PER_CELL,
    show_default=True,
    help="requests in flight in one cell (tenants woken at once there)",
)
@click.option(
    "--rate",
    type=float,
    default=model.DEFAULT_RATE,
    show_default=True,
    help="requests per second across the fleet",
)
@click.option(
    "--expect-title",
    metavar="TEXT",
    help="a 200 page's <title> must contain this ({tenant}, {sub_domain} filled in)",
)
@click.option("--no-record", is_flag=True, help="do not write the probe record to the bucket")
@global_options(hidden=True)
@pass_app
def probe(
    app: Application,
    path: str,
    base_url: str | None,
    cells: tuple[str, ...],
    wave: int | None,
    tenants: tuple[str, ...],
    timeout: float,
    concurrency: int,
    per_cell: int,
    rate: float,
    expect_title: str | None,
    no_record: bool,
) -> ReportResult:
    """Request every tenant's site and judge it: up, suspended, restricted or failed.

    One GET of --path per site with the tenant's host (Host header, and TLS server name over
    https), through its cell's load balancer or --base-url. 200, or 302 to the tenant's own
    host, is up; a suspended or provisioning tenant must answer 503 with Retry-After; a
    limit_ips tenant that refuses the probe (403) is restricted, not checked; anything else,
    a timeout or another tenant's answer is failed, with the reason. Paced (--rate) and
    bounded (--concurrency, --per-cell) so idle tenants are not all woken at once. The result
    is recorded under <runs_prefix>probes/ in the config bucket. See docs/probe.md.

    Exit codes: 0 every site up, suspended, provisioning or restricted; 1 a site failed; 2
    bad input (nothing probed); 3 a named tenant does not exist; 5 an AWS error; 130
    interrupted.

    \b
    Examples:
      redmica probe
      redmica probe --cell b --path /login --output json
      redmica probe --wave 2 --base-url https://redmica-b-123.eu-west-1.elb.amazonaws.com
      redmica probe --tenant acme --timeout 60
    """
    request = model.ProbeRequest(
        path=path,
        base_url=base_url,
        cells=cells,
        wave=wave,
        tenants=tenants,
        timeout=timeout,
        concurrency=concurrency,
        per_cell=per_cell,
        rate=rate,
        expect_title=expect_title,
        record=not no_record,
    )
    model.check_request(request)  # bad input: exit 2 before any client is made
    ws = app.workspace()
    return ReportResult(run(request, ws, aws_site(ws)).report())

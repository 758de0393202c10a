"""`redmica tenant ...`: manage tenant documents in the S3 config bucket."""

from __future__ import annotations

import click


@click.group()
def tenant() -> None:
    """Manage tenants: one YAML document each in the S3 config bucket.

    \b
    Examples:
      redmica tenant add acme -f acme.yaml
      redmica tenant list
      redmica tenant validate tenants/
    """


def _register() -> None:
    from redmica_ops.cli.tenant import (  # noqa: F401  (registers)
        add,
        change,
        claims,
        files,
        lifecycle,
        move,
        read,
    )


_register()

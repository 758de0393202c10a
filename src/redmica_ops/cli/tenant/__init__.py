"""`redmica tenant ...`: manage tenant documents in the S3 config bucket."""

from __future__ import annotations

import click

from redmica_ops.cli.lazy import LazyCommand, LazyGroup

# Each sub-command's module is imported when that command runs (`tenant validate` needs only
# files.py); `redmica tenant --help` imports them all for their one-line help.
_PACKAGE = "redmica_ops.cli.tenant"
_COMMANDS = {
    "add": ("add", "add"),
    "update": ("change", "update"),
    "edit": ("change", "edit"),
    "remove": ("change", "remove"),
    "restore": ("change", "restore"),
    "rename-key": ("change", "rename_key"),
    "claims": ("claims", "claims"),
    "validate": ("files", "validate"),
    "sync": ("files", "sync"),
    "example": ("files", "example"),
    "export": ("files", "export"),
    "import": ("files", "import_"),
    "provision": ("lifecycle", "provision_command"),
    "suspend": ("lifecycle", "suspend_command"),
    "resume": ("lifecycle", "resume_command"),
    "backup": ("lifecycle", "backup_command"),
    "backups": ("lifecycle", "backups_command"),
    "restore-db": ("lifecycle", "restore_db_command"),
    "rotate-password": ("lifecycle", "rotate_command"),
    "move": ("move", "move"),
    "list": ("read", "list_"),
    "show": ("read", "show"),
    "history": ("read", "history"),
}
LAZY = {
    name: LazyCommand(f"{_PACKAGE}.{module}", attribute)
    for name, (module, attribute) in _COMMANDS.items()
}


@click.group(cls=LazyGroup, lazy=LAZY)
def tenant() -> None:
    """Manage tenants: one YAML document each in the S3 config bucket.

    \b
    Examples:
      redmica tenant add acme -f acme.yaml
      redmica tenant list
      redmica tenant validate tenants/
    """

"""`redmica iam-policy`: the least-privilege IAM policy of each principal (policy.py)."""

from __future__ import annotations

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.cli.result import Done
from redmica_ops.errors import UsageError
from redmica_ops.policy import policy_document, scope_from_settings


@click.command("iam-policy")
@click.option(
    "--for",
    "role",
    required=True,
    type=click.Choice(
        ["operator", "migrator", "container", "admin_task", "admin_broker", "pipeline"]
    ),
    help="who the policy is for",
)
@click.option(
    "--backup-data",
    is_flag=True,
    help="operator: also read and write backup dumps (only `--executor local` lifecycle "
    "commands need it; without it, only the manifests)",
)
@click.option("--account-id", help="AWS account id [default: from STS]")
@click.option(
    "--pass-role",
    multiple=True,
    metavar="ARN",
    help="task role / execution role the policy may pass to ECS [default: the "
    "roles of the configured task definition]",
)
@global_options(hidden=True)
@pass_app
def iam_policy(
    app: Application,
    role: str,
    backup_data: bool,
    account_id: str | None,
    pass_role: tuple[str, ...],
) -> Done:
    """Print the least-privilege IAM policy JSON for a principal.

    operator: a person running redmica (invokes the admin broker; may neither start the admin
    task nor pass its role, nor read backup dumps unless --backup-data); migrator: the
    scheduled `migrate` job; container: the app task role (reads tenants; attachments access is
    granted by the stack); admin_task: the role of lifecycle admin tasks (the one master
    secret db_master_secret, backups); admin_broker: the Lambda function that starts admin
    tasks (admin_task_definition, its roles); pipeline: the release pipeline's release stage
    (`release` with the site probe, docs/release-day.md). Actions are exactly those the code
    calls (a test keeps them in step); resources are scoped to the configured bucket and
    prefixes, KMS key, cluster, service, task definition families, broker function and master
    secret.

    \b
    Examples:
      redmica iam-policy --for operator > operator-policy.json
      redmica iam-policy --for migrator --pass-role arn:aws:iam::123456789012:role/redmica-task
      redmica iam-policy --for admin_broker > broker-policy.json
      redmica iam-policy --for pipeline --output json > pipeline-policy.json
    """
    if backup_data and role != "operator":
        raise UsageError("--backup-data goes with --for operator", "drop --backup-data")
    scope = scope_from_settings(
        role, app.settings, app.workspace().clients(), account_id, pass_role, backup_data
    )
    document = policy_document(role, scope)
    return Done(document, lambda out: out.data(document))

"""`redmica doctor` and `redmica iam-policy`: check the setup; print least-privilege policies."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.cli.result import Done

if TYPE_CHECKING:
    from redmica_ops.cli.output import Output


@click.command()
@global_options(hidden=True)
@pass_app
def doctor(app: Application) -> Done:
    """Check the setup: settings, credentials, bucket, tenants, ECS, Apache.

    Each check is ok, warn or fail, with a hint. Exit code 0 when nothing fails, 1 otherwise.

    \b
    Examples:
      redmica doctor
      redmica doctor --output json | jq '.[] | select(.status != "ok")'
    """
    from redmica_ops.container.apache import find_apache
    from redmica_ops.doctor import Doctor, failed

    settings = app.settings
    checks = Doctor(
        settings, app.clients(), app.store, apache_finder=lambda: find_apache(settings.apache_bin)
    ).run()

    def text(out: Output) -> None:
        out.table(["check", "status", "detail"], [[c.name, c.status, c.detail] for c in checks])
        for check in checks:
            if check.hint and check.status != "ok":
                out.info(f"{check.status}: {check.name}: {check.hint}")

    return Done([c.as_dict() for c in checks], text, code=1 if failed(checks) else 0)


@click.command("iam-policy")
@click.option(
    "--for",
    "role",
    required=True,
    type=click.Choice(["operator", "migrator", "container", "admin_task", "admin_broker"]),
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
    tasks (admin_task_definition, its roles). Actions are exactly those the code calls (a test
    keeps them in step); resources are scoped to the configured bucket and prefixes, KMS key,
    cluster, service, task definition families, broker function and master secret.

    \b
    Examples:
      redmica iam-policy --for operator > operator-policy.json
      redmica iam-policy --for migrator --pass-role arn:aws:iam::123456789012:role/redmica-task
      redmica iam-policy --for admin_broker > broker-policy.json
    """
    from redmica_ops.aws import translate_errors
    from redmica_ops.cells.config import cell_map
    from redmica_ops.errors import UsageError
    from redmica_ops.policy import policy_document, required_settings, scope_for
    from redmica_ops.settings import require

    settings = app.settings
    if backup_data and role != "operator":
        raise UsageError("--backup-data goes with --for operator", "drop --backup-data")
    cells = cell_map(settings)
    # Before any AWS call: a policy scoped to nothing would print "successfully" and be useless.
    needed = required_settings(role, cells=cells.configured)
    require(settings, needed, f"`iam-policy --for {role}` needs")
    bucket = app.bucket()
    clients = app.clients()
    if not account_id:
        with translate_errors("asking STS for the account id"):
            account_id = str(clients.sts().get_caller_identity()["Account"])

    def task_roles(task_definition: str) -> list[str]:
        with translate_errors(f"describing task definition {task_definition}"):
            definition = clients.ecs().describe_task_definition(taskDefinition=task_definition)[
                "taskDefinition"
            ]
        return [r for r in (definition.get("taskRoleArn"), definition.get("executionRoleArn")) if r]

    cell_services = [
        f"{c.cluster}/{c.service}" for c in cells.cells if cells.configured and c.cluster
    ]
    scope = scope_for(
        role,
        region=settings.region or clients.client("sts").meta.region_name or "us-east-1",
        account=account_id,
        bucket=bucket,
        prefix=settings.prefix,
        runs_prefix=settings.runs_prefix,
        kms_key_id=settings.kms_key_id,
        cluster=settings.cluster,
        service=settings.service,
        task_definition=settings.task_definition,
        pass_roles=pass_role,
        task_roles=task_roles,
        cell_services=cell_services,
        hosted_zone_id=settings.hosted_zone_id,
        lifecycle_prefix=settings.lifecycle_prefix,
        backups_prefix=settings.backups_prefix,
        master_secret_arn=settings.db_master_secret,
        admin_task_role=settings.admin_task_role,
        secrets_prefix=settings.tenant_secrets_prefix,
        admin_task_definition=settings.admin_task_definition,
        admin_broker=settings.admin_broker,
        backup_data=backup_data,
    )
    document = policy_document(role, scope)
    return Done(document, lambda out: out.data(document))

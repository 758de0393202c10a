"""`redmica doctor` and `redmica iam-policy`: check the setup; print least-privilege policies."""

from __future__ import annotations

import click

from redmica_ops.cli.app import Application
from redmica_ops.cli.options import global_options, pass_app
from redmica_ops.errors import UsageError


@click.command()
@global_options(hidden=True)
@pass_app
def doctor(app: Application) -> None:
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
    if app.json:
        app.output.data([c.as_dict() for c in checks])
    else:
        app.output.table(
            ["check", "status", "detail"], [[c.name, c.status, c.detail] for c in checks]
        )
        for check in checks:
            if check.hint and check.status != "ok":
                app.output.info(f"{check.status}: {check.name}: {check.hint}")
    if failed(checks):
        raise click.exceptions.Exit(1)


@click.command("iam-policy")
@click.option(
    "--for",
    "role",
    required=True,
    type=click.Choice(["operator", "migrator", "container"]),
    help="who the policy is for",
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
    app: Application, role: str, account_id: str | None, pass_role: tuple[str, ...]
) -> None:
    """Print the least-privilege IAM policy JSON for a principal.

    operator: a person running redmica; migrator: the scheduled `migrate` job; container: the
    app task role (reads tenants; attachments access is granted by the stack). Actions are
    exactly those the code calls (a test keeps them in step); resources are scoped to the
    configured bucket and prefixes, KMS key, cluster, service and task definition family.

    \b
    Examples:
      redmica iam-policy --for operator > operator-policy.json
      redmica iam-policy --for migrator --pass-role arn:aws:iam::123456789012:role/redmica-task
    """
    from redmica_ops.aws import translate_errors
    from redmica_ops.policy import PolicyScope, actions_for, policy_document

    settings = app.settings
    bucket = app.bucket()
    clients = app.clients()
    if not account_id:
        with translate_errors("asking STS for the account id"):
            account_id = str(clients.sts().get_caller_identity()["Account"])
    region = settings.region or clients.client("sts").meta.region_name or "us-east-1"
    partition = (
        "aws-cn"
        if region.startswith("cn-")
        else "aws-us-gov"
        if region.startswith("us-gov-")
        else "aws"
    )
    kms_arn = None
    if settings.kms_key_id:
        key = settings.kms_key_id
        if key.startswith("alias/") or ":alias/" in key:
            raise UsageError("kms_key_id is an alias; IAM policies need the key id or ARN")
        kms_arn = (
            key
            if key.startswith("arn:")
            else (f"arn:{partition}:kms:{region}:{account_id}:key/{key}")
        )
    family = None
    roles = list(pass_role)
    if settings.task_definition:
        family = settings.task_definition.rsplit("/", 1)[-1].split(":")[0]
        if not roles and "iam:PassRole" in actions_for(role):
            with translate_errors(f"describing task definition {settings.task_definition}"):
                definition = clients.ecs().describe_task_definition(
                    taskDefinition=settings.task_definition
                )["taskDefinition"]
            roles = [
                r for r in (definition.get("taskRoleArn"), definition.get("executionRoleArn")) if r
            ]
    document = policy_document(
        role,
        PolicyScope(
            partition=partition,
            region=region,
            account=account_id,
            bucket=bucket,
            prefix=settings.prefix,
            runs_prefix=settings.runs_prefix,
            cluster=settings.cluster,
            service=settings.service if role == "operator" else None,
            family=family,
            kms_key_arn=kms_arn,
            pass_roles=tuple(roles),
        ),
    )
    app.output.data(document)

"""db.password_secret: a tenant's password kept in Secrets Manager or SSM, never in the
config bucket; validated, resolved by the container with its role (moto), shown as a
reference, and never printed once read."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from mypy_boto3_s3 import S3Client

from redmica_ops.aws import ClientFactory
from redmica_ops.cli.app import Application
from redmica_ops.errors import AwsError, NotFound, RedmicaError
from redmica_ops.settings import Settings
from redmica_ops.tenants.model import validate_data
from redmica_ops.tenants.passwords import PasswordResolver
from redmica_ops.tenants.references import check_reference
from tests.conftest import BUCKET, REGION, Invoke, tenant_document

ACCOUNT = "123456789012"
SM_PASSWORD = "from-secrets-manager 'q\" ${X}"
SSM_PASSWORD = "from-ssm-parameter"


def secret_document(name: str, reference: str | None, **db: Any) -> dict[str, Any]:
    doc = tenant_document(name)
    doc["db"].pop("password")
    if reference is not None:
        doc["db"]["password_secret"] = reference
    doc["db"].update(db)
    return doc


@pytest.mark.parametrize(
    "reference",
    [
        f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:redmica/tenants/acme-AbCdEf",
        f"arn:aws-cn:secretsmanager:cn-north-1:{ACCOUNT}:secret:acme",
        "/redmica/tenants/acme/db-password",
        f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/redmica/tenants/acme",
    ],
)
def test_references_that_are_accepted(reference: str) -> None:
    assert check_reference(reference) is None
    tenant, problems = validate_data("acme", secret_document("acme", reference), "acme.yaml")
    assert tenant is not None, problems
    assert tenant.to_document()["db"]["password_secret"] == reference
    assert "password" not in tenant.to_document()["db"]


@pytest.mark.parametrize(
    ("db", "field", "message"),
    [
        ({"password_secret": "redmica/no-leading-slash"}, "db.password_secret", "is not a"),
        ({"password_secret": "arn:aws:s3:::bucket/key"}, "db.password_secret", "is not a"),
        ({"password_secret": "/a b"}, "db.password_secret", "is not a"),
        ({"password_secret": "/ok", "password": "also"}, "db", "exactly one of"),
        ({}, "db", "exactly one of"),
    ],
)
def test_references_that_are_refused(db: dict[str, Any], field: str, message: str) -> None:
    tenant, problems = validate_data("acme", secret_document("acme", None, **db), "acme.yaml")
    assert tenant is None
    assert any(p.field == field and message in p.message for p in problems), problems


@pytest.fixture
def secrets(s3: S3Client) -> dict[str, str]:
    """A plain secret, an RDS-style JSON secret and an SSM SecureString (moto)."""
    sm = boto3.client("secretsmanager", region_name=REGION)
    plain = sm.create_secret(Name="redmica/tenants/acme", SecretString=SM_PASSWORD)["ARN"]
    as_json = sm.create_secret(
        Name="redmica/tenants/beta",
        SecretString=json.dumps({"username": "beta", "password": "json-password"}),
    )["ARN"]
    no_password = sm.create_secret(
        Name="redmica/tenants/bad", SecretString=json.dumps({"user": "x"})
    )["ARN"]
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(
        Name="/redmica/tenants/gamma/db-password", Value=SSM_PASSWORD, Type="SecureString"
    )
    ssm.put_parameter(Name="/redmica/tenants/newline", Value="a\nb", Type="SecureString")
    return {
        "plain": plain,
        "json": as_json,
        "no_password": no_password,
        "ssm": "/redmica/tenants/gamma/db-password",
        "newline": "/redmica/tenants/newline",
        "missing": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:redmica/tenants/none-AbCdEf",
    }


def resolver() -> PasswordResolver:
    return PasswordResolver(ClientFactory(Settings(region=REGION)))


def test_the_resolver_reads_each_kind(secrets: dict[str, str]) -> None:
    reader = resolver()
    assert reader.resolve(secrets["plain"]) == SM_PASSWORD
    assert reader.resolve(secrets["json"]) == "json-password"
    assert reader.resolve(secrets["ssm"]) == SSM_PASSWORD


@pytest.mark.parametrize(
    ("key", "error", "words"),
    [
        ("missing", NotFound, "does not exist"),
        ("no_password", RedmicaError, 'without a string "password" field'),
        ("newline", RedmicaError, "does not hold a usable password"),
    ],
)
def test_the_resolver_fails_plainly_without_quoting_a_value(
    secrets: dict[str, str], key: str, error: type[RedmicaError], words: str
) -> None:
    with pytest.raises(error) as caught:
        resolver().resolve(secrets[key])
    assert words in caught.value.message
    assert "a\nb" not in caught.value.message


def test_access_denied_is_an_aws_error(secrets: dict[str, str]) -> None:
    from botocore.stub import Stubber

    clients = ClientFactory(Settings(region=REGION))
    # The factory keeps one client per service: the resolver reads with the stubbed one.
    stub = Stubber(clients.secretsmanager())
    stub.add_client_error("get_secret_value", "AccessDeniedException", http_status_code=400)
    stub.activate()

    with pytest.raises(AwsError) as caught:
        PasswordResolver(clients).resolve(secrets["plain"])
    assert "access denied while reading secret" in caught.value.message


def recording_app(**env: str) -> tuple[Application, list[tuple[list[str], dict[str, str]]]]:
    calls: list[tuple[list[str], dict[str, str]]] = []

    def record(argv: list[str], environ: Mapping[str, str]) -> None:
        calls.append((argv, dict(environ)))

    app = Application(env={**os.environ, "SECRET_KEY_BASE": "m" * 64, **env})
    app.exec_process = record
    return app, calls


def put_tenant(s3: S3Client, name: str, document: dict[str, Any]) -> None:
    import yaml

    s3.put_object(Bucket=BUCKET, Key=f"tenants/{name}.yaml", Body=yaml.safe_dump(document).encode())


def test_serve_reads_the_secrets_and_sets_aside_a_tenant_whose_secret_is_missing(
    s3: S3Client, secrets: dict[str, str], run: Invoke, tmp_path: Path
) -> None:
    put_tenant(s3, "acme", secret_document("acme", secrets["plain"]))
    put_tenant(s3, "gamma", secret_document("gamma", secrets["ssm"]))
    put_tenant(s3, "ghost", secret_document("ghost", secrets["missing"]))
    target = tmp_path / "tenants.conf"
    app, calls = recording_app(REDMICA_VHOSTS_FILE=str(target))
    result = run("--domain", "redmine.example.com", "entrypoint", "serve", "--no-check", app=app)
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "from-secrets-manager 'q\\\" ${REDMICA_DOLLAR}{X}" in text
    assert f'SetEnv RAILS_DB_PASSWORD "{SSM_PASSWORD}"' in text
    assert "ghost" not in text
    assert "warning: tenant ghost is NOT served (secret):" in result.stderr
    assert "db.password_secret: secret" in result.stderr and "does not exist" in result.stderr
    assert SM_PASSWORD not in result.output and SSM_PASSWORD not in result.output
    assert len(calls) == 1


def test_run_tenant_reads_the_secret(s3: S3Client, secrets: dict[str, str], run: Invoke) -> None:
    put_tenant(s3, "beta", secret_document("beta", secrets["json"]))
    app, calls = recording_app()
    result = run("entrypoint", "run-tenant", "beta", "--", "true", app=app)
    assert result.exit_code == 0, result.output
    assert calls[0][1]["RAILS_DB_PASSWORD"] == "json-password"
    assert "json-password" not in result.output
    put_tenant(s3, "ghost", secret_document("ghost", secrets["missing"]))
    assert run("entrypoint", "run-tenant", "ghost", "--", "true", app=app).exit_code == 3


def test_tenant_add_and_show_keep_the_reference(
    s3: S3Client, secrets: dict[str, str], run: Invoke
) -> None:
    import yaml

    document = yaml.safe_dump(secret_document("acme", secrets["plain"]))
    added = run("tenant", "add", "acme", "-f", "-", input=document)
    assert added.exit_code == 0, added.output
    shown = run("tenant", "show", "acme")
    assert shown.exit_code == 0, shown.output
    assert secrets["plain"] in shown.stdout and SM_PASSWORD not in shown.output
    stored = s3.get_object(Bucket=BUCKET, Key="tenants/acme.yaml")["Body"].read().decode()
    assert "password_secret" in stored and SM_PASSWORD not in stored


def test_render_vhosts_reads_the_secret_and_refuses_one_it_cannot_read(
    s3: S3Client, secrets: dict[str, str], run: Invoke, tmp_path: Path
) -> None:
    put_tenant(s3, "gamma", secret_document("gamma", secrets["ssm"]))
    out = tmp_path / "site.conf"
    result = run("--domain", "d.example", "render", "vhosts", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f'SetEnv RAILS_DB_PASSWORD "{SSM_PASSWORD}"' in out.read_text()
    redacted = run("--domain", "d.example", "render", "vhosts", "--redacted")
    assert redacted.exit_code == 0 and SSM_PASSWORD not in redacted.output
    put_tenant(s3, "ghost", secret_document("ghost", secrets["missing"]))
    # As its help says: left out and named (as an invalid document is), the others rendered.
    partial = run("--domain", "d.example", "render", "vhosts", "-o", str(tmp_path / "b.conf"))
    assert partial.exit_code == 0, partial.output
    assert "warning: tenant ghost is NOT rendered (secret):" in partial.stderr
    assert "db.password_secret" in partial.stderr and "does not exist" in partial.stderr
    written = (tmp_path / "b.conf").read_text()
    assert "ghost" not in written and f'"{SSM_PASSWORD}"' in written
    # --redacted leaves out and names the same tenants.
    review = run("--domain", "d.example", "render", "vhosts", "--redacted")
    assert review.exit_code == 0, review.output
    assert "warning: tenant ghost is NOT rendered (secret):" in review.stderr
    assert "ghost" not in review.stdout and "gamma" in review.stdout
    strict = run(
        "--domain", "d.example", "render", "vhosts", "--strict", "-o", str(tmp_path / "c.conf")
    )
    assert strict.exit_code == 2, strict.output
    assert not (tmp_path / "c.conf").exists()


def test_a_local_migration_gets_the_password_from_the_secret(
    s3: S3Client, secrets: dict[str, str], tmp_path: Path
) -> None:
    import sys
    import time

    from redmica_ops.runs.executors import Job, Launched, LaunchFailed
    from redmica_ops.runs.executors.local import LocalExecutor, LocalTarget

    documents = {
        "beta": secret_document("beta", secrets["json"]),
        "ghost": secret_document("ghost", secrets["missing"]),
    }
    tenants = {}
    for name, document in documents.items():
        found, problems = validate_data(name, document, f"{name}.yaml")
        assert found is not None, problems
        tenants[name] = found
    # Without a result sink, as `migrate` ran it before result objects: each tenant its own
    # process, a password that cannot be read refused at launch (the workspace wires the
    # resolver into its executor, result sink and all: the test below).
    passwords = PasswordResolver(ClientFactory(Settings(region=REGION)))
    executor = LocalExecutor(tenants, LocalTarget(tmp_path / "run-1", passwords=passwords))
    executor.preflight()
    dump = "import os; print('pw=' + os.environ['RAILS_DB_PASSWORD'])"
    launched = executor.launch(Job("beta", 1, [sys.executable, "-c", dump]))
    assert isinstance(launched, Launched), launched
    deadline = time.monotonic() + 30
    while not executor.poll([launched.handle])[launched.handle].stopped:
        assert time.monotonic() < deadline, "the child did not finish"
        time.sleep(0.02)
    assert "pw=json-password" in (tmp_path / "run-1" / "beta.log").read_text()
    refused = executor.launch(Job("ghost", 1, [sys.executable, "-c", dump]))
    assert isinstance(refused, LaunchFailed) and not refused.retryable
    assert "does not exist" in refused.reason and "json-password" not in refused.reason


def test_a_local_migration_reads_the_secret_with_the_injected_clients(
    s3: S3Client, secrets: dict[str, str], run: Invoke, tmp_path: Path
) -> None:
    """The local executor's password reads go through the workspace's client factory: the
    one the command line was given (profile, endpoint, role), never a second one of its own."""
    import sys

    import yaml

    document = yaml.safe_dump(secret_document("beta", secrets["json"]))
    assert run("tenant", "add", "beta", "-f", "-", input=document).exit_code == 0
    calls: list[str] = []

    def factory(settings: Settings) -> ClientFactory:
        clients = ClientFactory(settings)

        def seen(model: Any, **_: Any) -> None:
            calls.append(model.name)

        clients.client("secretsmanager").meta.events.register("before-call", seen)
        return clients

    env = {**os.environ, "REDMICA_LOCAL_LOG_DIR": str(tmp_path), "REDMICA_POLL_INTERVAL": "0.05"}
    app = Application(env=env, client_factory=factory)
    dump = "import os; print('pw=' + os.environ['RAILS_DB_PASSWORD'])"
    command = f'{sys.executable} -c "{dump}"'
    result = run("migrate", "beta", "--executor", "local", "--command", command, app=app)
    assert result.exit_code == 0, result.output
    assert calls == ["GetSecretValue"]
    assert "json-password" not in result.output


OUTSIDE = [
    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:other/acme-AbCdEf",
    "/elsewhere/pw",
    f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/other/acme",
    "/redmica/tenantsX/acme",
]


@pytest.mark.parametrize("reference", OUTSIDE)
def test_a_secret_outside_tenant_secrets_prefix_is_refused_at_add_and_validate(
    s3: S3Client, run: Invoke, tmp_path: Path, reference: str
) -> None:
    """The app task role may read only `<prefix>*`: such a tenant could never be served."""
    import yaml

    document = yaml.safe_dump(secret_document("acme", reference))
    added = run("tenant", "add", "acme", "-f", "-", input=document)
    assert added.exit_code == 2, added.output
    assert "db.password_secret" in added.stderr and "tenant_secrets_prefix" in added.stderr
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0  # nothing, not even a claim
    path = tmp_path / "acme.yaml"
    path.write_text(document)
    validated = run("tenant", "validate", str(path))
    assert validated.exit_code == 2, validated.output
    assert "tenant_secrets_prefix" in validated.output


def test_a_secret_outside_the_prefix_is_set_aside_at_serve_and_named_by_doctor(
    s3: S3Client, secrets: dict[str, str], run: Invoke, tmp_path: Path
) -> None:
    put_tenant(s3, "gamma", secret_document("gamma", secrets["ssm"]))
    put_tenant(s3, "other", secret_document("other", "/elsewhere/pw"))
    target = tmp_path / "tenants.conf"
    app, _ = recording_app(REDMICA_VHOSTS_FILE=str(target))
    result = run("--domain", "redmine.example.com", "entrypoint", "serve", "--no-check", app=app)
    assert result.exit_code == 0, result.output
    assert "from 1 tenant(s)" in target.read_text() and "other.redmine" not in target.read_text()
    assert "warning: tenant other is NOT served (invalid)" in result.stderr
    assert "tenant_secrets_prefix" in result.stderr
    doctor = run("doctor", "--output", "json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["tenants"]["status"] == "fail" and "other" in checks["tenants"]["detail"]


def test_doctor_reports_a_secret_it_cannot_read(
    s3: S3Client, secrets: dict[str, str], run: Invoke
) -> None:
    put_tenant(s3, "gamma", secret_document("gamma", secrets["ssm"]))
    doctor = run("doctor", "--output", "json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["tenants: password secrets"]["status"] == "ok"
    put_tenant(s3, "ghost", secret_document("ghost", secrets["missing"]))
    doctor = run("doctor", "--output", "json")
    assert doctor.exit_code == 1
    check = {c["name"]: c for c in json.loads(doctor.stdout)}["tenants: password secrets"]
    assert check["status"] == "fail" and "does not exist" in check["detail"]
    assert SSM_PASSWORD not in doctor.output


@pytest.mark.parametrize("same", ["identical", "ssm name and its arn"])
def test_two_tenants_cannot_share_a_password_secret(
    s3: S3Client, secrets: dict[str, str], run: Invoke, same: str
) -> None:
    """One tenant would get another's database password: a unique value, claimed."""
    import yaml

    first = run(
        "tenant",
        "add",
        "gamma",
        "-f",
        "-",
        input=yaml.safe_dump(secret_document("gamma", secrets["ssm"])),
    )
    assert first.exit_code == 0, first.output
    claims = s3.list_objects_v2(Bucket=BUCKET, Prefix="tenants/_claims/db_password_secret/")
    assert claims["KeyCount"] == 1
    reference = secrets["ssm"]
    if same != "identical":
        reference = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{reference}"
    second = run(
        "tenant",
        "add",
        "delta",
        "-f",
        "-",
        input=yaml.safe_dump(secret_document("delta", reference)),
    )
    assert second.exit_code == 4, second.output
    assert "db.password_secret" in second.stderr and "gamma" in second.stderr
    assert "tenants/delta.yaml" not in str(s3.list_objects_v2(Bucket=BUCKET).get("Contents"))


def test_two_documents_sharing_a_secret_clash_in_validate(tmp_path: Path, run: Invoke) -> None:
    import yaml

    for name in ("acme", "beta"):
        (tmp_path / f"{name}.yaml").write_text(
            yaml.safe_dump(secret_document(name, "/redmica/tenants/shared"))
        )
    result = run("tenant", "validate", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "db.password_secret" in result.output and "already used by" in result.output


def test_the_redaction_marker_and_a_string_parameter_are_not_passwords(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    sm = boto3.client("secretsmanager", region_name=REGION)
    masked = sm.create_secret(Name="redmica/tenants/masked", SecretString="********")["ARN"]
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/redmica/tenants/plain", Value="clear-text-pw", Type="String")
    with pytest.raises(RedmicaError, match="redaction marker"):
        resolver().resolve(masked)
    with pytest.raises(RedmicaError, match="not SecureString") as caught:
        resolver().resolve("/redmica/tenants/plain")
    assert "clear-text-pw" not in caught.value.message
    put_tenant(s3, "masked", secret_document("masked", masked))
    put_tenant(s3, "plain", secret_document("plain", "/redmica/tenants/plain"))
    target = tmp_path / "tenants.conf"
    app, _ = recording_app(REDMICA_VHOSTS_FILE=str(target))
    result = run("--domain", "redmine.example.com", "entrypoint", "serve", "--no-check", app=app)
    assert result.exit_code == 0, result.output
    assert "warning: tenant masked is NOT served (secret)" in result.stderr
    assert "warning: tenant plain is NOT served (secret)" in result.stderr
    assert "clear-text-pw" not in target.read_text() + result.output

"""`redmica config from-stack`: the settings of a platform read from its CloudFormation stacks.

The four templates (templates/cloudformation/, docs/infrastructure.md) name the main stack's
outputs after the settings they hold (`ConfigBucketName` is `bucket`, ...). This reads the
stacks an operator names, tells them apart by their parameters, checks that each has the
outputs its template declares and that they belong together (one region, one domain, one
database, the cells of the main stack), and turns them into `redmica.toml`: printed, or
written whole (a temporary file renamed into place) and never over an existing file unless
asked. Any problem is one error naming what is missing or wrong, and nothing is written.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from redmica_ops.aws import error_code, translate
from redmica_ops.errors import Conflict, NotFound, UsageError
from redmica_ops.report import Part, Report, Table, info, success, text
from redmica_ops.settings import SPECS, SPECS_BY_NAME, SettingValue
from redmica_ops.settings.loading import CONFIG_FILE_NAME

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import StackTypeDef

    from redmica_ops.workspace import BaseWorkspace

FOUNDATION, DATABASE, MAIN, CELL = "foundation", "database", "main", "cell"

# A stack's kind, from the parameters only its template declares (parameters are there even
# when a failed stack has no outputs, so a stack missing outputs is still recognised).
KIND_PARAMETERS: dict[str, tuple[str, ...]] = {
    CELL: ("ParentStack", "CellName"),
    MAIN: ("AdminImageUri", "BrokerCodeKey"),
    DATABASE: ("EngineVersion", "MasterUsername"),
    FOUNDATION: ("CreateNetwork", "ImageRepositoryName"),
}
TEMPLATES = {
    FOUNDATION: "redmica-foundation.yaml",
    DATABASE: "redmica-database.yaml",
    MAIN: "redmica.yaml",
    CELL: "redmica-cell.yaml",
}

# The main stack's output -> setting (docs/infrastructure.md, step 7); each output's
# description starts with its setting's name (tests/test_stacks.py checks both agree).
SETTING_OUTPUTS: dict[str, str] = {
    "ConfigBucketName": "bucket",
    "ConfigKeyArn": "kms_key_id",
    "ClusterName": "cluster",
    "ServiceName": "service",
    "TaskDefinitionFamily": "task_definition",
    "ContainerName": "container",
    "TaskSubnets": "subnets",
    "TaskSecurityGroups": "security_groups",
    "Domain": "domain",
    "HostedZoneId": "hosted_zone_id",
    "DatabaseHost": "db_host",
    "DatabaseMasterSecretArn": "db_master_secret",
    "AdminTaskDefinitionFamily": "admin_task_definition",
    "AdminTaskRoleArn": "admin_task_role",
    "AdminBrokerName": "admin_broker",
}
# The outputs each other stack must have: what the main stack's are checked against.
EXPECTED_OUTPUTS: dict[str, tuple[str, ...]] = {
    FOUNDATION: ("Domain", "CertificateArn", "PrivateSubnetIds"),
    DATABASE: ("DatabaseHost", "DatabaseMasterSecretArn", "DatabaseClientSecurityGroupId"),
    MAIN: tuple(SETTING_OUTPUTS),
    CELL: ("ServiceName",),
}
# Complete enough to read: a stack being created or rolled back has no (or stale) outputs.
READY = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:([a-z0-9-]*):")


@dataclass(frozen=True)
class FromStackRequest:
    """The stacks to read (names or stack ARNs, in any order) and where the settings go."""

    stacks: tuple[str, ...]
    write: Path | None = None  # None: printed
    force: bool = False  # replace an existing file


@dataclass(frozen=True)
class Stack:
    """One stack as read: its kind, parameters and outputs."""

    name: str
    kind: str
    stack_id: str
    parameters: Mapping[str, str]
    outputs: Mapping[str, str]

    def as_dict(self) -> dict[str, object]:
        return {"stack": self.name, "kind": self.kind, "stack_id": self.stack_id}


@dataclass(frozen=True)
class FromStackOutcome:
    region: str
    stacks: tuple[Stack, ...]
    settings: dict[str, SettingValue] = field(default_factory=dict)
    toml: str = ""
    written: Path | None = None

    def report(self) -> Report:
        document: dict[str, object] = {
            "region": self.region,
            "stacks": [s.as_dict() for s in self.stacks],
            "settings": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.settings.items()
            },
            "written": str(self.written) if self.written else None,
        }
        read = ", ".join(f"{s.name} ({s.kind})" for s in self.stacks)
        body: list[Part]
        if self.written is None:
            body = [text(self.toml.rstrip("\n")), info(f"from {read} in {self.region}")]
        else:
            rows: list[list[str | int | float | None]] = [
                [name, _toml_value(value)] for name, value in self.settings.items()
            ]
            body = [
                Table(("setting", "value"), rows),
                success(f"wrote {self.written} from {read} in {self.region}"),
                info(f"check it: redmica --config {self.written} doctor"),
            ]
        return Report(document=json.loads(json.dumps(document)), body=body)


class _StackReader:
    """DescribeStacks, one stack at a time, with the errors an operator can act on."""

    def __init__(self, cloudformation: CloudFormationClient, region: str) -> None:
        self.cloudformation = cloudformation
        self.region = region

    def read(self, name: str) -> Stack:
        where = _ARN_REGION.match(name)
        if where and where.group(1) != self.region:
            raise UsageError(
                f"stack {name} is in region {where.group(1)}, not in the settings' region "
                f"{self.region}",
                f"every stack of a platform is in one region: run with --region {where.group(1)} "
                "(or AWS_REGION) if the platform is there",
            )
        try:
            found = self.cloudformation.describe_stacks(StackName=name)["Stacks"]
        except Exception as exc:
            # CloudFormation answers an unknown stack with a ValidationError "does not exist".
            if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                raise _absent(name, self.region) from None
            translated = translate(exc, f"reading stack {name}")
            if translated is None:
                raise
            raise translated from exc
        if not found:
            raise _absent(name, self.region)
        return self._stack(name, found[0])

    def _stack(self, name: str, described: StackTypeDef) -> Stack:
        parameters = {
            str(p.get("ParameterKey")): str(p.get("ResolvedValue", p.get("ParameterValue", "")))
            for p in described.get("Parameters", [])
        }
        kind = next(
            (k for k, needed in KIND_PARAMETERS.items() if set(needed) <= set(parameters)), None
        )
        if kind is None:
            raise UsageError(
                f"stack {name} is not a redmica stack: its parameters match none of "
                f"{', '.join(TEMPLATES.values())}",
                "give the foundation, database, main and cell stacks made from "
                "templates/cloudformation/ (docs/infrastructure.md)",
            )
        status = str(described.get("StackStatus", ""))
        if status not in READY:
            raise UsageError(
                f"stack {name} is {status}: its outputs cannot be read yet",
                "wait until it is CREATE_COMPLETE or UPDATE_COMPLETE "
                f"(aws cloudformation wait stack-create-complete --stack-name {name})",
            )
        outputs = {
            str(o.get("OutputKey")): str(o.get("OutputValue", ""))
            for o in described.get("Outputs", [])
        }
        return Stack(
            str(described.get("StackName", name)),
            kind,
            str(described.get("StackId", "")),
            parameters,
            outputs,
        )


def _absent(name: str, region: str) -> NotFound:
    return NotFound(
        f"stack {name} does not exist in region {region}",
        "check the name (aws cloudformation list-stacks) and the region: stacks are read in "
        "the settings' region (--region, AWS_REGION or `region` in redmica.toml)",
    )


def _one_of(stacks: Sequence[Stack], kind: str) -> Stack | None:
    found = [s for s in stacks if s.kind == kind]
    if len(found) > 1:
        raise UsageError(
            f"{len(found)} {kind} stacks given ({', '.join(s.name for s in found)}); one "
            "platform has one",
            "give the stacks of one platform",
        )
    return found[0] if found else None


def _check_outputs(stack: Stack) -> None:
    expected = list(EXPECTED_OUTPUTS[stack.kind])
    if stack.kind == MAIN and not stack.parameters.get("HostedZoneId"):
        expected.remove("HostedZoneId")  # made only when the stack was given a zone
    missing = [o for o in expected if not stack.outputs.get(o)]
    if missing:
        for_settings = [SETTING_OUTPUTS[o] for o in missing if stack.kind == MAIN]
        settings = f" (settings {', '.join(for_settings)})" if for_settings else ""
        raise UsageError(
            f"stack {stack.name} ({stack.kind}) lacks the output(s) {', '.join(missing)}{settings}",
            f"update it with templates/cloudformation/{TEMPLATES[stack.kind]} of this version",
        )


def _check_region(stack: Stack, region: str) -> None:
    """Every ARN a stack names (its id, its outputs) is in the settings' region."""
    named = {"StackId": stack.stack_id, **stack.outputs}
    for output, value in named.items():
        where = _ARN_REGION.match(value)
        if where and where.group(1) not in ("", region):
            raise UsageError(
                f"stack {stack.name}: {output} is in region {where.group(1)}, not in the "
                f"settings' region {region}",
                "the stacks of a platform are made in one region, the one redmica runs in: "
                f"set --region {where.group(1)} (or AWS_REGION) if that is the platform's",
            )


def _clashes(main: Stack, other: Stack) -> list[str]:
    """How `other` differs from what the main stack was made with (empty: it belongs)."""
    mine, theirs, found = main.outputs, other.outputs, []
    if other.kind == FOUNDATION:
        if theirs["Domain"] != mine["Domain"]:
            found.append(f"its Domain {theirs['Domain']} is not {main.name}'s {mine['Domain']}")
        if set(theirs["PrivateSubnetIds"].split(",")) != set(mine["TaskSubnets"].split(",")):
            found.append(f"its PrivateSubnetIds are not {main.name}'s TaskSubnets")
    elif other.kind == DATABASE:
        found += [
            f"its {name} is not {main.name}'s"
            for name in ("DatabaseHost", "DatabaseMasterSecretArn")
            if theirs[name] != mine[name]
        ]
        if theirs["DatabaseClientSecurityGroupId"] not in mine["TaskSecurityGroups"].split(","):
            found.append(f"its DatabaseClientSecurityGroupId is not among {main.name}'s groups")
    elif other.kind == CELL:
        parent = other.parameters.get("ParentStack")
        entry = f"{other.parameters.get('CellName')}={theirs['ServiceName']}"
        cells = main.parameters.get("Cells", "")
        if parent != main.name:
            found.append(f"its ParentStack is {parent}")
        elif entry not in cells.split(","):
            found.append(f"{entry} is not in {main.name}'s Cells ({cells or 'empty'})")
    return [f"{other.name}: {clash}" for clash in found]


def _check_together(main: Stack, others: Sequence[Stack]) -> None:
    """The foundation, database and cells the operator named are the main stack's own."""
    clashes = [clash for other in others for clash in _clashes(main, other)]
    if clashes:
        raise UsageError(
            f"stacks that do not belong to main stack {main.name}: {'; '.join(clashes)}",
            "give the stacks the main stack was made from; a new cell joins with the "
            f"stack update of docs/infrastructure.md step 6 (Cells of {main.name})",
        )


def settings_of(main: Stack, region: str) -> dict[str, SettingValue]:
    """The settings in declaration order, each checked by its setting's own rule."""
    values: dict[str, SettingValue] = {"region": region}
    for output, name in SETTING_OUTPUTS.items():
        value = main.outputs.get(output, "")
        if not value:
            continue
        kind = SPECS_BY_NAME[name].kind
        values[name] = tuple(v for v in value.split(",") if v) if kind is tuple else value
    cells = main.parameters.get("Cells", "")
    if cells:
        values["cells"] = tuple(cells.split(","))
    problems: list[str] = []
    for name, derived in values.items():
        check = SPECS_BY_NAME[name].check
        found = check(derived) if check is not None else None
        if found:
            problems.append(f"{name}: {found}")
    if problems:
        raise UsageError(
            f"stack {main.name}: outputs that are not valid settings: {'; '.join(problems)}",
            "the stack was not made from templates/cloudformation/redmica.yaml of this version",
        )
    order = [spec.name for spec in SPECS]
    return dict(sorted(values.items(), key=lambda item: order.index(item[0])))


def _toml_value(value: SettingValue) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return json.dumps(value)


def as_toml(settings: Mapping[str, SettingValue], stacks: Sequence[Stack]) -> str:
    """redmica.toml's text: a comment naming the stacks, then one `name = value` a line (JSON
    strings are TOML basic strings)."""
    lines = [
        "# redmica settings from the CloudFormation stacks "
        + ", ".join(s.name for s in stacks)
        + " (redmica config from-stack)",
    ]
    lines += [f"{name} = {_toml_value(value)}" for name, value in settings.items()]
    return "\n".join(lines) + "\n"


def check_target(path: Path, force: bool) -> None:
    """Where --write goes: refused before any AWS call when it cannot be written."""
    if path.is_dir():
        raise UsageError(
            f"--write {path}: is a directory", f"give a file name, e.g. {path / CONFIG_FILE_NAME}"
        )
    if not path.parent.is_dir():
        raise UsageError(
            f"--write {path}: directory {path.parent} does not exist", "create it first"
        )
    if path.exists() and not force:
        raise Conflict(
            f"--write {path}: the file exists; nothing was written",
            "add --force to replace it, or give another path",
        )


def write_whole(path: Path, content: str, force: bool) -> None:
    """The file appears whole or not at all; without `force` an existing file is never
    replaced, not even one created meanwhile (a hard link fails when the name exists)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o644)  # ids and ARNs, no secret
        if force:
            tmp.replace(path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise Conflict(
                    f"--write {path}: the file exists; nothing was written",
                    "add --force to replace it, or give another path",
                ) from None
    finally:
        tmp.unlink(missing_ok=True)


def from_stack(request: FromStackRequest, ws: BaseWorkspace) -> FromStackOutcome:
    """Read the stacks, derive the settings, print or write them (see the module's text)."""
    if request.write is not None:
        check_target(request.write, request.force)
    return read_stacks(request, ws.clients().cloudformation())


def read_stacks(
    request: FromStackRequest, cloudformation: CloudFormationClient
) -> FromStackOutcome:
    """`from_stack` with its CloudFormation client (the sandbox reads the stacks it made)."""
    if not request.stacks:
        raise UsageError("name at least the main stack", "e.g. redmica config from-stack redmica")
    region = str(cloudformation.meta.region_name)
    reader = _StackReader(cloudformation, region)
    stacks = tuple(reader.read(name) for name in dict.fromkeys(request.stacks))
    main = _one_of(stacks, MAIN)
    if main is None:
        raise UsageError(
            f"no main stack among {', '.join(s.name for s in stacks)} (made from "
            "redmica.yaml): it holds the settings",
            "add it, e.g. redmica config from-stack redmica-foundation redmica-database redmica",
        )
    _one_of(stacks, FOUNDATION)
    _one_of(stacks, DATABASE)
    for stack in stacks:
        _check_outputs(stack)
        _check_region(stack, region)
    _check_together(main, [s for s in stacks if s is not main])
    settings = settings_of(main, region)
    content = as_toml(settings, stacks)
    if request.write is not None:
        write_whole(request.write, content, request.force)
    return FromStackOutcome(region, stacks, settings, content, request.write)

"""The image a service runs, recorded where its CloudFormation stack reads it.

The stacks (templates/cloudformation/redmica.yaml, redmica-cell.yaml) take the app image from
an SSM String parameter, `ImageParameter`, named by convention `/redmica/<service>/image` (one
per ECS service: the main stack's `<stack>-app`, each cell's `<stack>-cell-<name>`). After a
rollout that succeeded, `deploy`, `release` and `rollback` write the image the service now
runs there, so a later stack update registers its revision with that image instead of rolling
the fleet back to the first one (docs/infrastructure.md, "Who owns the image"). There is no
setting for the name: the stacks and `iam-policy --for operator` (RecordDeployedImage) use the
same convention.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from redmica_ops.aws import translate_errors
from redmica_ops.errors import RedmicaError

if TYPE_CHECKING:
    from redmica_ops.cells.fleet import Fleet
    from redmica_ops.workspace import Workspace


def image_parameter(service: str) -> str:
    """The SSM parameter that holds the image `service` runs (the stacks' ImageParameter)."""
    return f"/redmica/{service}/image"


def record_images(fleet: Fleet, ws: Workspace, moved: Iterable[tuple[str, str]]) -> None:
    """Write the image each (cell, revision) now runs, after a rollout onto that revision
    succeeded. A failed write does not undo a rollout that succeeded: it is a warning with the
    command that writes it by hand, before any stack update."""
    for name, revision in moved:
        cell = fleet.cells.get(name)
        parameter = image_parameter(str(cell.service))
        try:
            with translate_errors(f"writing {parameter}"):
                fleet.record_image(cell, revision, parameter)
        except RedmicaError as error:
            ws.message(
                f"warning: {error.message}; the stack's next update would register the "
                "image it last recorded: before any stack update run "
                f"aws ssm put-parameter --overwrite --type String --name {parameter} "
                "--value IMAGE"
            )

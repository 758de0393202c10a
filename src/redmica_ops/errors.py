"""One error family: every error the operator sees has a message, a hint and an exit code.

The exit codes are a contract with shell runbooks; `redmica --help` and docs/cli.md list them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeAlias

JSONObject: TypeAlias = dict[str, Any]
"""A JSON object as the library builds it for output (`--output json`, IAM policies, records):
string keys, JSON-serialisable values. Named so no public signature says a bare `Any`."""
JSONValue: TypeAlias = (
    "str | int | float | bool | Sequence[JSONValue] | Mapping[str, JSONValue] | None"
)
"""Any JSON value: what a result's `--output json` document is."""


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    AWS = 5
    DECLINED = 6
    CANNOT_EXECUTE = 126
    COMMAND_NOT_FOUND = 127
    INTERRUPTED = 130


EXIT_CODE_HELP = (
    "0 ok; 1 the operation ran and failed; 2 usage or validation error (nothing written); "
    "3 not found; 4 conflict (already exists, or changed by someone else); "
    "5 AWS or infrastructure error (credentials, missing bucket, retries exhausted); "
    "6 declined at a confirmation prompt (nothing done); "
    "126/127 (entrypoint) the command cannot be run / was not found, as in a shell; "
    "130 interrupted."
)


@dataclass(frozen=True)
class Problem:
    """One validation finding: where (source, field path) and which rule it breaks."""

    source: str
    field: str
    message: str

    def __str__(self) -> str:
        if self.field:
            return f"{self.source}: {self.field}: {self.message}"
        return f"{self.source}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "field": self.field, "message": self.message}


class RedmicaError(Exception):
    """Base of every error shown to the operator. Messages must never contain a secret."""

    exit_code: ExitCode = ExitCode.FAILED
    # How the one line starts; not every stop is an error (see Declined).
    label: str = "error"

    def __init__(
        self, message: str, hint: str | None = None, problems: Sequence[Problem] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.problems = list(problems)

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "error": self.message,
            "hint": self.hint,
            "exit_code": int(self.exit_code),
        }
        if self.problems:
            data["problems"] = [p.as_dict() for p in self.problems]
        return data


class OperationFailed(RedmicaError):
    exit_code = ExitCode.FAILED


class UsageError(RedmicaError):
    exit_code = ExitCode.USAGE


class ValidationFailed(UsageError):
    """Bad input: one or more problems, all reported.

    `before_writing` says the command was about to write and wrote nothing: only then does the
    message say so (a read-only command that says "nothing was written" confuses).
    """

    def __init__(
        self,
        problems: Sequence[Problem],
        hint: str | None = None,
        message: str | None = None,
        *,
        before_writing: bool = False,
    ) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        message = message or f"validation failed: {count} {noun}" + (
            "; nothing was written" if before_writing else ""
        )
        super().__init__(message, hint, problems)


class NotFound(RedmicaError):
    exit_code = ExitCode.NOT_FOUND


class Conflict(RedmicaError):
    exit_code = ExitCode.CONFLICT


class AwsError(RedmicaError):
    exit_code = ExitCode.AWS


class Interrupted(RedmicaError):
    exit_code = ExitCode.INTERRUPTED


class Declined(RedmicaError):
    """The operator answered no at a confirmation prompt: a choice, not a failure."""

    exit_code = ExitCode.DECLINED
    label = "nothing done"


class CannotExecute(RedmicaError):
    """An entry point's program could not be started; exit codes as a shell's."""

    exit_code = ExitCode.CANNOT_EXECUTE

    def __init__(self, message: str, hint: str | None = None, *, not_found: bool) -> None:
        super().__init__(message, hint)
        if not_found:
            self.exit_code = ExitCode.COMMAND_NOT_FOUND


def error_from_dict(data: Mapping[str, object], default: str) -> RedmicaError:
    """The error an `as_dict()` stands for, as it came back from elsewhere (an admin task's
    result object, the admin broker's answer): usage, not found and conflict keep their class
    and exit code; anything else is a failure of the operation."""
    classes: dict[int, type[RedmicaError]] = {
        int(ExitCode.USAGE): UsageError,
        int(ExitCode.NOT_FOUND): NotFound,
        int(ExitCode.CONFLICT): Conflict,
    }
    code = data.get("exit_code", 1)
    error_class = classes.get(code if isinstance(code, int) else 1, OperationFailed)
    hint = data.get("hint")
    return error_class(str(data.get("error") or default), str(hint) if hint else None)

"""How a setting is declared: `setting(...)` on a field of the `Settings` dataclass, and the
`SettingSpec` derived from each such field (what flags, environment, redmica.toml and
`config show` use)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TypeAlias, TypeVar

SettingValue: TypeAlias = "str | int | float | bool | tuple[str, ...] | None"
"""What a setting can hold (its type is the annotation of its `Settings` field)."""

Check: TypeAlias = Callable[..., str | None]
"""A setting's validator: the problem with a value, or None when it is fine."""

_T = TypeVar("_T")


def setting(
    default: _T,
    help: str,
    *,
    env_aliases: tuple[str, ...] = (),
    check: Check | None = None,
    flag: bool = False,
) -> _T:
    """Declare one setting: its default, one line of help, extra env names and its validator;
    `flag`: every command also takes it as a global option (cli/options.py).

    The `Settings` dataclass is the one declaration of every setting; `SPECS` (what
    flags, environment, redmica.toml and `config show` use) is derived from it, so a default
    cannot be written twice. Typed as the default so each field keeps its own type.
    """
    metadata = {"help": help, "env_aliases": env_aliases, "check": check, "flag": flag}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class SettingSpec:
    """One setting as flags, environment and redmica.toml see it (derived from `Settings`)."""

    name: str
    help: str
    default: SettingValue
    kind: type
    env_aliases: tuple[str, ...] = ()
    check: Check | None = None
    flag: bool = False

    @property
    def env_name(self) -> str:
        return f"REDMICA_{self.name.upper()}"


# The annotations a setting may have, as written (`from __future__ import annotations` keeps
# them as text): read here rather than evaluated by typing.get_type_hints, which cost every
# command's start-up about 7 M instructions for the 80 fields.
_KINDS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


def _kind(annotation: str) -> type:
    """The runtime type of a field's annotation: `int | None` -> int, `tuple[str, ...]` -> tuple."""
    if annotation.startswith("tuple["):
        return tuple
    kind = _KINDS.get(annotation.removesuffix(" | None"))
    if kind is None:
        known = ", ".join([*_KINDS, "tuple[str, ...]"])
        raise TypeError(f"a setting cannot be declared as {annotation!r}: one of {known}")
    return kind


def specs_of(settings: type) -> tuple[SettingSpec, ...]:
    """The specs of every field declared with `setting(...)`, in declaration order."""
    return tuple(
        SettingSpec(
            name=f.name,
            help=f.metadata["help"],
            default=f.default,  # type: ignore[arg-type]  # MISSING never: setting() sets one
            kind=_kind(str(f.type)),
            env_aliases=f.metadata["env_aliases"],
            check=f.metadata["check"],
            flag=f.metadata["flag"],
        )
        for f in fields(settings)
        if "help" in f.metadata
    )

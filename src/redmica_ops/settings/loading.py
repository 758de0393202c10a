"""Resolving the settings: flags, else the environment, else redmica.toml, else the default.

Every value is coerced to its setting's type and checked by its validator; all problems are
reported together, naming where each value came from.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from redmica_ops.errors import Problem, ValidationFailed
from redmica_ops.settings import SPECS, Settings, SettingSpec
from redmica_ops.tenants import rules

CONFIG_FILE_NAME = "redmica.toml"


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> tuple[Path | None, str]:
    """The config file to read and why: `--config`, `REDMICA_CONFIG`, or ./redmica.toml."""
    if explicit:
        return Path(explicit), "--config"
    if env.get("REDMICA_CONFIG"):
        return Path(env["REDMICA_CONFIG"]), "REDMICA_CONFIG"
    local = Path.cwd() / CONFIG_FILE_NAME
    if local.is_file():
        return local, "current directory"
    return None, ""


def _read_toml(path: Path, reason: str) -> dict[str, Any]:
    import tomllib  # only when a config file exists: `tenant validate` starts without it

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValidationFailed(
            [Problem(str(path), "", f"config file not found (named by {reason})")]
        ) from None
    except OSError as exc:
        raise ValidationFailed([Problem(str(path), "", f"cannot read: {exc.strerror}")]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValidationFailed([Problem(str(path), "", f"invalid TOML: {exc}")]) from None
    # A `[redmica]` table is accepted too, for a shared pyproject-style file.
    table = data.get("redmica", data)
    if not isinstance(table, dict):
        raise ValidationFailed([Problem(str(path), "redmica", "must be a table")])
    return table


def unknown_setting(key: str, known: Iterable[str]) -> str:
    """One short line, with the nearest setting names: the list of all 80 helps nobody."""
    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
    guess = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"is not a known setting{guess} (every setting: `redmica config show`)"


def load_settings(
    flags: Mapping[str, object],
    env: Mapping[str, str] | None = None,
    config_path: str | None = None,
    specs: tuple[SettingSpec, ...] = SPECS,
) -> Settings:
    """Resolve every setting by precedence and validate it; all problems are reported together."""
    environ: Mapping[str, str] = os.environ if env is None else env
    path, reason = find_config_file(config_path, environ)
    file_values = _read_toml(path, reason) if path else {}
    problems: list[Problem] = []
    known = {spec.name for spec in specs}
    for key in file_values:
        if key not in known:
            problems.append(Problem(str(path), key, unknown_setting(key, known)))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in specs:
        value, source = _resolve(spec, flags, environ, file_values, str(path) if path else "")
        if value is not None and source != "default":
            value, problem = _coerce(spec, value, from_text=source.startswith(("--", "env ")))
            if problem:
                problems.append(Problem(source, spec.name, problem))
                continue
            if spec.check and (problem := spec.check(value)):
                problems.append(Problem(source, spec.name, problem))
                continue
        values[spec.name] = value
        sources[spec.name] = source
    if problems:
        raise ValidationFailed(problems, hint="see `redmica config show --help`")
    return Settings(**values, config_file=str(path) if path else None, sources=sources)


_TRUE = {"1", "true", "yes", "on", "enabled"}
_FALSE = {"0", "false", "no", "off", "disabled"}


def _coerce(spec: SettingSpec, value: Any, from_text: bool) -> tuple[Any, str | None]:
    """Turn flag/env text into the setting's type; check TOML values' types."""
    kind = spec.kind
    if from_text and isinstance(value, str):
        text = value.strip()
        try:
            if kind is int:
                return int(text), None
            if kind is float:
                return float(text), None
        except ValueError:
            return value, f"{rules.show(value)} is not a number"
        if kind is bool:
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE, None
            return value, f"{rules.show(value)} is not true or false"
        if kind is tuple:
            return tuple(part.strip() for part in text.split(",") if part.strip()), None
    if isinstance(value, (list, tuple)) and kind is tuple:
        if not all(isinstance(item, str) for item in value):
            return value, "must be a list of strings"
        return tuple(value), None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value), None
    if isinstance(value, (list, tuple)) and from_text:
        return tuple(value), None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = {
            tuple: "list of strings",
            str: "string",
            int: "integer",
            float: "number",
            bool: "boolean",
        }
        return value, f"must be a {names.get(kind, kind.__name__)}"
    return value, None


def _resolve(
    spec: SettingSpec,
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    file_values: Mapping[str, Any],
    path: str,
) -> tuple[Any, str]:
    if flags.get(spec.name) is not None:
        return flags[spec.name], "--" + spec.name.replace("_", "-")
    # REDMICA_<NAME>="" is a value like any other (checked: an empty value is never "the
    # default"); an empty alias of another tool (AWS_PROFILE="", ...) counts as unset, as it
    # does for that tool.
    if spec.env_name in env:
        return env[spec.env_name], f"env {spec.env_name}"
    for name in spec.env_aliases:
        if env.get(name):
            return env[name], f"env {name}"
    if spec.name in file_values:
        return file_values[spec.name], path
    return spec.default, "default"

"""A small IAM policy evaluator for tests: may this policy do ACTION on RESOURCE in CONTEXT?

It follows IAM's rules for what our policies use: an explicit Deny wins, else any matching
Allow; `*` and `?` wildcards in actions (case-insensitive) and resources; the condition
operators StringEquals, StringNotEquals, StringLike, ArnEquals, ArnLike and Null, each value
list ORed, each key and operator ANDed; a key missing from the context fails every operator
but Null. It is a model for asserting what a generated policy refuses, not a replacement for
IAM's policy simulator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

Context = Mapping[str, str]


def _pattern(text: str, ignore_case: bool = False) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Context) -> bool:
    for operator, keys in condition.items():
        for key, wanted in keys.items():
            values = _listed(wanted)
            present = key in context
            actual = context.get(key, "")
            if operator == "Null":
                if (values[0] == "true") == present:
                    return False
            elif not present:
                return False
            elif operator in ("StringEquals", "ArnEquals"):
                if actual not in values:
                    return False
            elif operator == "StringNotEquals":
                if actual in values:
                    return False
            elif operator in ("StringLike", "ArnLike"):
                if not any(_pattern(v).match(actual) for v in values):
                    return False
            else:
                raise ValueError(f"iam_eval does not model the {operator} operator")
    return True


def _matches(statement: Mapping[str, Any], action: str, resource: str, context: Context) -> bool:
    if not any(_pattern(a, ignore_case=True).match(action) for a in _listed(statement["Action"])):
        return False
    if not any(_pattern(r).match(resource) for r in _listed(statement["Resource"])):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


def allowed(
    policy: Mapping[str, Any], action: str, resource: str, context: Context | None = None
) -> bool:
    """True when `policy` lets `action` on `resource` through (with `context` keys)."""
    context = context or {}
    statements: Sequence[Mapping[str, Any]] = policy["Statement"]
    matching = [s for s in statements if _matches(s, action, resource, context)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)

"""Writing values into Apache configuration so that data can never become a directive.

The rules (verified with Apache 2.4 by tests/live, on the machine's Debian and in the Debian 13
root, see docs/container.md):
- control characters (newline above all) are rejected: validation already refuses them, and
  this module refuses them again, because a newline in a value once turned an IP-restricted
  tenant into an open one;
- inside double quotes Apache's parser turns `\\\\` into `\\` and `\\"` into `"`;
- Apache expands `${NAME}` anywhere on a line, quotes or not, before it splits arguments, so
  `${` is written as `${REDMICA_DOLLAR}{` with `Define REDMICA_DOLLAR $` once at the top;
- every value is double-quoted; bare words (numbers, IP networks) must match a strict pattern.
"""

from __future__ import annotations

import ipaddress
import re

from redmica_ops.tenants.rules import has_control_character

DOLLAR_VARIABLE = "REDMICA_DOLLAR"
DOLLAR_DEFINE = f"Define {DOLLAR_VARIABLE} $"
_BARE_WORD = re.compile(r"[A-Za-z0-9_.:/-]+")


class UnsafeValue(ValueError):
    """A value that cannot be written into Apache configuration safely."""


class ApacheValue(str):
    """A string that has been quoted or checked for Apache; templates accept only these."""


def quote(value: object) -> ApacheValue:
    text = str(value)
    if has_control_character(text):
        raise UnsafeValue("a value with control characters cannot go into Apache configuration")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("${", "${" + DOLLAR_VARIABLE + "}{")
    return ApacheValue(f'"{escaped}"')


def bare(value: object) -> ApacheValue:
    """An unquoted word: only for numbers and addresses, which cannot hold anything else."""
    text = str(value)
    if not _BARE_WORD.fullmatch(text):
        raise UnsafeValue(f"{text!r} is not a plain word")
    return ApacheValue(text)


def ip_word(value: str) -> ApacheValue:
    """An address or network for `Require ip`, normalised by ipaddress (so nothing else)."""
    network = ipaddress.ip_network(value, strict=True)
    if network.num_addresses == 1 and "/" not in value:
        return bare(str(network.network_address))
    return bare(str(network))


def finalize(value: object) -> object:
    """Jinja's finalize hook: refuse any output that did not go through quote() or bare()."""
    if isinstance(value, ApacheValue):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise UnsafeValue(f"template output {value!r} was not quoted (use |quote or |bare)")

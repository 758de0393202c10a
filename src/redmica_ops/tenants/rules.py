"""The naming rules, as small functions that return what is wrong (or None).

Shared by the tenant model and the settings so that a bucket name or host name means the same
thing everywhere. Messages quote the value with `show()`, which never prints control characters
raw and truncates long values.
"""

from __future__ import annotations

import ipaddress
import re

DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
PG_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Reserved by AWS (see "General purpose bucket naming rules" in the S3 user guide).
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")

DNS_LABEL_RULE = "is not a DNS label (a-z, 0-9 and '-', 1-63 characters, no '-' at either end)"


def show(value: object, limit: int = 60) -> str:
    """`value` quoted for a message, cut to about `limit` characters; a cut string keeps its
    closing quote, so the reader sees where the value ends."""
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, str):
        cut = repr(value[: max(limit - 5, 1)])
        return f"{cut[:-1]}...{cut[-1]}"
    return text[: limit - 3] + "..."


def has_control_character(value: str) -> bool:
    return _CONTROL.search(value) is not None


def check_dns_label(value: str) -> str | None:
    if DNS_LABEL.fullmatch(value):
        return None
    return f"{show(value)} {DNS_LABEL_RULE}"


# PostgreSQL 15's reserved key words (`pg_get_keywords()` categories R and T) and the names
# PostgreSQL keeps for itself as roles: a database or role may not be called any of them, even
# though quoting would let the SQL run, so no statement ever depends on quoting alone.
PG_RESERVED = frozenset(
    {
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "authorization",
        "binary",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "collation",
        "column",
        "concurrently",
        "constraint",
        "create",
        "cross",
        "current_catalog",
        "current_date",
        "current_role",
        "current_schema",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "freeze",
        "from",
        "full",
        "grant",
        "group",
        "having",
        "ilike",
        "in",
        "initially",
        "inner",
        "intersect",
        "into",
        "is",
        "isnull",
        "join",
        "lateral",
        "leading",
        "left",
        "like",
        "limit",
        "localtime",
        "localtimestamp",
        "natural",
        "not",
        "notnull",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "outer",
        "overlaps",
        "placing",
        "primary",
        "references",
        "returning",
        "right",
        "select",
        "session_user",
        "similar",
        "some",
        "symmetric",
        "table",
        "tablesample",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "verbose",
        "when",
        "where",
        "window",
        "with",
        "public",
        "none",
        "postgres",
        "template0",
        "template1",
        "rdsadmin",
    }
)


def check_pg_identifier_syntax(value: str) -> str | None:
    """Only the shape (for names that are not ours to choose, e.g. the administrator)."""
    if PG_IDENTIFIER.fullmatch(value):
        return None
    return f"{show(value)} is not a PostgreSQL identifier (a-z, 0-9 and '_', at most 63)"


def check_pg_identifier(value: str) -> str | None:
    if not PG_IDENTIFIER.fullmatch(value):
        return (
            f"{show(value)} is not a PostgreSQL identifier "
            "(a-z, 0-9 and '_', starting with a letter or '_', at most 63 characters)"
        )
    if value in PG_RESERVED or value.startswith(("pg_", "rds_")):
        return f"{show(value)} is a name PostgreSQL reserves (a key word, or pg_*/rds_*)"
    return None


# Login roles alternate for password rotation (docs/tenant-lifecycle.md): the owner `acme` and
# its twin `acme_2`. Both are the tenant's, so both count as used by it.
TWIN_SUFFIX = "_2"


def twin_of(owner: str) -> str:
    return f"{owner}{TWIN_SUFFIX}"


def login_pair(user: str) -> frozenset[str]:
    """Every role name a document whose db.user is `user` may stand for (owner and twin)."""
    names = {user, twin_of(user)}
    if user.endswith(TWIN_SUFFIX) and len(user) > len(TWIN_SUFFIX):
        names.add(user[: -len(TWIN_SUFFIX)])
    return frozenset(n for n in names if not check_pg_identifier(n))


# The languages of Redmine's default data (its config/locales, Redmine 5.0 to 6.x; RedMica
# ships the same). `rake redmine:load_default_data` with any other REDMINE_LANG does not fail:
# it asks on stdin, which a task does not have, so an unknown code is refused here instead.
REDMINE_LANGUAGES = frozenset(
    {
        "ar",
        "az",
        "bg",
        "bs",
        "ca",
        "cs",
        "da",
        "de",
        "el",
        "en",
        "en-GB",
        "es",
        "es-PA",
        "et",
        "eu",
        "fa",
        "fi",
        "fr",
        "gl",
        "he",
        "hr",
        "hu",
        "id",
        "it",
        "ja",
        "ko",
        "lt",
        "lv",
        "mk",
        "mn",
        "nl",
        "no",
        "pl",
        "pt",
        "pt-BR",
        "ro",
        "ru",
        "sk",
        "sl",
        "sq",
        "sr",
        "sr-YU",
        "sv",
        "ta-IN",
        "th",
        "tr",
        "uk",
        "vi",
        "zh",
        "zh-TW",
    }
)


def check_redmine_language(value: str) -> str | None:
    if value in REDMINE_LANGUAGES:
        return None
    return (
        f"{show(value)} is not a language of Redmine's default data "
        "(e.g. en, de, fr, ja, pt-BR, zh-TW; see docs/tenant-lifecycle.md)"
    )


# Shown in a maintenance page through Apache's ErrorDocument, which also evaluates %{...}
# expressions: only plain sentence characters, so nothing can be interpreted or injected.
STATUS_MESSAGE = re.compile(r"[A-Za-z0-9 .,:;!?'()/@+_-]{1,300}")


def check_status_message(value: str) -> str | None:
    if STATUS_MESSAGE.fullmatch(value):
        return None
    return (
        f"{show(value)} may only hold letters, digits, spaces and .,:;!?'()/@+_- (1-300 characters)"
    )


DEFAULT_PG_PORT = 5432  # a document without db.port: libpq's default, for the app and the admin


def check_hostname(value: str) -> str | None:
    """A DNS host name (RFC 1123) or an IPv4/IPv6 address."""
    if is_ip_address(value):
        return None
    name = value.removesuffix(".")
    labels = name.split(".")
    if 0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels):
        return None
    return f"{show(value)} is not a host name or IP address"


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_bucket_name(value: str) -> str | None:
    rule = None
    if not 3 <= len(value) <= 63:
        rule = "must be 3-63 characters long"
    elif not _BUCKET_CHARS.fullmatch(value):
        rule = "may hold only a-z, 0-9, '.' and '-', and must start and end with a letter or digit"
    elif ".." in value:
        rule = "must not contain two adjacent periods"
    elif is_ip_address(value):
        rule = "must not be formatted as an IP address"
    elif value.startswith(_BUCKET_PREFIXES):
        rule = "must not start with a reserved prefix (xn--, sthree-, amzn-s3-demo-)"
    elif value.endswith(_BUCKET_SUFFIXES):
        rule = "must not end with a reserved suffix (-s3alias, --ol-s3, .mrap, --x-s3, --table-s3)"
    if rule is None:
        return None
    return f"{show(value)} is not a valid S3 bucket name: {rule}"


def check_s3_folder(value: str) -> str | None:
    rule = None
    if not value:
        rule = "must not be empty"
    elif has_control_character(value):
        rule = "must not contain control characters"
    elif len(value.encode()) > 512:
        rule = "must be at most 512 bytes"
    elif value.startswith("/"):
        rule = "must be a relative path (no leading '/')"
    elif value.endswith("/"):
        rule = "must not end with '/'"
    elif "\\" in value:
        rule = "must use '/' as separator, not '\\'"
    else:
        parts = value.split("/")
        if any(part == ".." for part in parts):
            rule = "must not contain a '..' segment"
        elif any(part in ("", ".") for part in parts):
            rule = "must not contain empty or '.' segments"
    if rule is None:
        return None
    return f"{show(value)} is not a valid folder: {rule}"


def check_ip_or_network(value: str) -> str | None:
    """An address or a CIDR network; a network with host bits set is an error, not rounded."""
    if "%" in value or has_control_character(value) or value.strip() != value:
        return f"{show(value)} is not an IPv4/IPv6 address or CIDR network"
    if "/" not in value:
        try:
            ipaddress.ip_address(value)
            return None
        except ValueError:
            return f"{show(value)} is not an IPv4/IPv6 address or CIDR network"
    try:
        ipaddress.ip_network(value, strict=True)
        return None
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"{show(value)} is not an IPv4/IPv6 address or CIDR network"
    return f"{show(value)} has host bits set; did you mean '{loose}'?"

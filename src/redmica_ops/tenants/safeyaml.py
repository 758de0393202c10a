"""Strict YAML reading for documents that come from operators and from S3.

PyYAML's safe loader still builds sets, binary blobs and timestamps from tags, expands
anchors/aliases (billion-laughs) and silently keeps the last of two duplicate keys. A tenant
document needs none of that, and a silently dropped duplicate `password:` or `limit_ips:` is a
security bug, so this reader rejects all of it and reports every problem with its field path.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import yaml

from redmica_ops.errors import Problem

YAMLData: TypeAlias = object
"""What the loader built from a document, not yet validated: any shape, checked by the model."""

MAX_DOCUMENT_BYTES = 64 * 1024
# The schema nests three deep (document -> property -> limit_ips); anything much deeper is not a
# tenant document, and refusing it before composing keeps the recursive builders safe.
MAX_DEPTH = 8
_MERGE_TAG = "tag:yaml.org,2002:merge"


try:  # libyaml is about five times faster; the checks below work the same on both.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


def _join(path: str, key: object) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class _Builder:
    """Turns the composed node tree into plain Python data, collecting problems with paths.

    The checks work on the node tree, so they hold for libyaml and pure-Python PyYAML alike:
    a node met twice is an alias, and a node whose tag differs from what its plain or quoted
    text would resolve to carries an explicit tag.
    """

    def __init__(self, loader: Any, source: str) -> None:
        self.loader = loader
        self.source = source
        self.problems: list[Problem] = []
        self.seen: set[int] = set()
        self.reported: set[int] = set()

    def build(self, node: yaml.Node, path: str) -> YAMLData:
        line = node.start_mark.line + 1
        if id(node) in self.seen:
            if id(node) not in self.reported:  # one line per repeated node, not per use
                self.reported.add(id(node))
                self._add(path, f"YAML aliases (*name) are not allowed (it repeats line {line})")
            return None
        self.seen.add(id(node))
        if node.tag != self._implicit_tag(node):
            self._add(path, f"line {line}: YAML tags ({node.tag}) are not allowed")
            return None
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE_TAG:
                    self._add(path, f"line {line}: YAML merge keys (<<) are not allowed")
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    self._add(path, f"line {line}: a key must be a plain string")
                    continue
                key = self.loader.construct_object(key_node)
                if not isinstance(key, str):
                    self._add(path, f"line {line}: key {key!r} must be a string")
                    continue
                if key in result:
                    self._add(_join(path, key), f"line {line}: duplicate key {key!r}")
                    continue
                result[key] = self.build(value_node, _join(path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, _join(path, i)) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node)
        except (ValueError, OverflowError, TypeError, yaml.YAMLError):
            # e.g. `2024-13-45` resolves to a date that does not exist, or a 5,000-digit int
            # exceeds Python's limit. Never quote the text: it may be a password.
            kind = node.tag.rsplit(":", 1)[-1]
            self._add(path, f"line {line}: value cannot be read as {kind}; quote it in YAML")
            return None

    def _implicit_tag(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return _MAP_TAG
        if isinstance(node, yaml.SequenceNode):
            return _SEQ_TAG
        plain = not getattr(node, "style", None)  # libyaml: "" for plain scalars; PyYAML: None
        return str(self.loader.resolve(yaml.ScalarNode, node.value, (plain, not plain)))

    def _add(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, path, message))


class Truncated(bytes):
    """The first bytes of a document longer than the limit (readers stop one byte past it),
    with its real size when the reader knows it (a file's, an S3 object's; not a pipe's)."""

    total: int | None

    def __new__(cls, data: bytes, total: int | None) -> Truncated:
        made = super().__new__(cls, data)
        made.total = total
        return made


def bounded(data: bytes, total: int | None) -> bytes:
    """What a reader that read MAX_DOCUMENT_BYTES + 1 bytes of a `total`-byte source returns."""
    return Truncated(data, total) if len(data) > MAX_DOCUMENT_BYTES else data


def too_large(data: bytes) -> str:
    total = data.total if isinstance(data, Truncated) else None
    limit = f"the limit is {MAX_DOCUMENT_BYTES} bytes ({MAX_DOCUMENT_BYTES // 1024} KiB)"
    if total is None or total <= MAX_DOCUMENT_BYTES:
        return f"document is larger than {MAX_DOCUMENT_BYTES} bytes; {limit}"
    return f"document is {total} bytes; {limit}"


def load_document(data: bytes, source: str) -> tuple[YAMLData, list[Problem]]:
    """Parse one YAML document strictly. Returns (data, problems); data is None on problems."""
    if len(data) > MAX_DOCUMENT_BYTES:
        return None, [Problem(source, "", too_large(data))]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(source, "", f"is not valid UTF-8 (bad byte at offset {exc.start})")]
    text = text.removeprefix("\ufeff")
    if (problem := _too_deep(text)) is not None:
        return None, [Problem(source, "", problem)]
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:
        return None, [Problem(source, "", _describe_yaml_error(exc))]
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        return None, [Problem(source, "", _describe_yaml_error(exc))]
    finally:
        loader.dispose()
    if node is None:
        return None, [Problem(source, "", "document is empty")]
    builder = _Builder(loader, source)
    try:
        value = builder.build(node, "")
    except yaml.YAMLError as exc:
        return None, [Problem(source, "", _describe_yaml_error(exc))]
    if builder.problems:
        return None, builder.problems
    return value, []


def _too_deep(text: str) -> str | None:
    """Refuse nesting deeper than MAX_DEPTH by walking the event stream, without recursion."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else "?"
                    return f"line {line}: nested deeper than {MAX_DEPTH} levels"
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None  # the composer reports the syntax error with its place
    return None


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    # The problem text from PyYAML may quote the offending line; keep only the rule and place,
    # never the document's content (it could be a password).
    if isinstance(exc, yaml.reader.ReaderError):
        return (
            f"character #x{exc.character:02x} at offset {exc.position} is not allowed "
            "(control characters are rejected)"
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if "but found another document" in (exc.problem or "") or "single document" in (
            exc.context or ""
        ):
            return f"{where}expected exactly one YAML document"
        return f"{where}invalid YAML: {problem}"
    return "invalid YAML"

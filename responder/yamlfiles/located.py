"""YAML documents that remember where each value came from, read defensively.

Shipped YAML (rules, playbooks) is validated by pydantic; when validation fails the user needs
the file, the line and the field. `load_located` keeps a map from each key path to its line, and
`located_errors` turns a `ValidationError` into messages like `rules/x.yaml:7: window: ...`.

Definition files are treated as hostile, so the loader accepts only plain YAML: no anchors or
aliases (an alias bomb expands exponentially, a recursive alias never ends), no merge keys
(`<<`), no tags on lists or mappings, only scalar mapping keys, at most `MAX_DEPTH` levels of
nesting, `MAX_NODES` values and `MAX_FILE_BYTES`. Documents are built from the parser's event
stream (libyaml's when available) with an explicit stack: no recursion, nothing expanded, and a
refusal as soon as the event arrives. Every refusal is a `YamlFileError` in the form
`file:line: field: message`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

Path_ = tuple[str | int, ...]

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 50
MAX_NODES = 100_000
_MERGE = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = {None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_EVENTS_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlFileError(ValueError):
    """A YAML file that cannot be used; the message names the file, line and field."""

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


@dataclass
class Located:
    """A parsed document plus the line (1-based) of every key path in it."""

    path: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, loc: Path_) -> int:
        """Line of the deepest known prefix of `loc` (1 if nothing matches)."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return 1

    def error(self, loc: Path_, message: str) -> str:
        dotted = ".".join(str(p) for p in loc) or "<document>"
        return f"{self.path}:{self.line_of(loc)}: {dotted}: {message}"


def _dotted(at: Path_) -> str:
    return ".".join(str(p) for p in at) or "<document>"


class _Refused(Exception):
    """A construct this loader does not accept, at a line and field."""

    def __init__(self, line: int, at: Path_, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.at = at
        self.message = message


_KEY = object()  # a mapping frame waiting for its next key


@dataclass
class _Frame:
    at: Path_
    value: dict[Any, Any] | list[Any]
    key: Any = _KEY


class _Builder:
    """Builds one document from parser events, refusing what the loader does not accept."""

    def __init__(self) -> None:
        self.scalars = yaml.SafeLoader("")  # its resolver and constructor, for scalars only
        self.stack: list[_Frame] = []
        self.lines: dict[Path_, int] = {}
        self.nodes = 0
        self.documents = 0
        self.root: Any = None

    def build(self, events: Iterator[yaml.Event]) -> Any:
        for event in events:
            self.event(event)
        self.scalars.dispose()
        return self.root

    def event(self, event: yaml.Event) -> None:
        line = event.start_mark.line + 1 if event.start_mark else 1
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise _Refused(line, (), "a file holds one YAML document")
            return
        if isinstance(event, yaml.CollectionEndEvent):
            frame = self.stack.pop()
            self.place(frame.value, line)
            return
        if not isinstance(event, yaml.NodeEvent):
            return  # stream and document boundaries
        at = self.where(line)
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(line, at, f"aliases (*{event.anchor}) are not allowed")
        if event.anchor is not None:
            raise _Refused(line, at, f"anchors (&{event.anchor}) are not allowed")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Refused(line, at, f"more than {MAX_NODES} values")
        if isinstance(event, yaml.ScalarEvent):
            self.place(self.scalar(event, line, at), line)
        elif isinstance(event, yaml.CollectionStartEvent):
            self.open(event, line, at)

    def open(self, event: yaml.CollectionStartEvent, line: int, at: Path_) -> None:
        if self.stack and self.stack[-1].key is _KEY and isinstance(self.stack[-1].value, dict):
            raise _Refused(line, at, "keys must be plain values, not lists or mappings")
        if event.tag not in _COLLECTION_TAGS:
            raise _Refused(line, at, f"tags on lists and mappings ({event.tag}) are not allowed")
        if len(self.stack) >= MAX_DEPTH:
            raise _Refused(line, at, f"nested deeper than {MAX_DEPTH} levels")
        self.lines.setdefault(at, line)
        collection: dict[Any, Any] | list[Any] = (
            {} if isinstance(event, yaml.MappingStartEvent) else []
        )
        self.stack.append(_Frame(at, collection))

    def where(self, line: int) -> Path_:
        """The path of the node an event starts (for a mapping key: the mapping's path)."""
        if not self.stack:
            return ()
        frame = self.stack[-1]
        if isinstance(frame.value, list):
            return (*frame.at, len(frame.value))
        if frame.key is _KEY:
            return frame.at
        return (*frame.at, frame.key)

    def scalar(self, event: yaml.ScalarEvent, line: int, at: Path_) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.scalars.resolve(  # type: ignore[no-untyped-call]
                yaml.ScalarNode, event.value, event.implicit
            )
        if tag == _MERGE:
            raise _Refused(line, at, "merge keys (<<) are not allowed")
        node = yaml.ScalarNode(tag, event.value, style=event.style)  # lines are ours to tell
        try:
            return self.scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise _Refused(line, at, f"invalid value: {problem}") from None

    def place(self, value: Any, line: int) -> None:
        if not self.stack:
            self.root = value
            self.lines.setdefault((), line)
            return
        frame = self.stack[-1]
        if isinstance(frame.value, list):
            self.lines.setdefault((*frame.at, len(frame.value)), line)
            frame.value.append(value)
            return
        if frame.key is not _KEY:
            self.lines.setdefault((*frame.at, frame.key), line)
            frame.value[frame.key] = value
            frame.key = _KEY
            return
        try:
            duplicate = value in frame.value
        except TypeError:
            raise _Refused(line, frame.at, f"{value!r} cannot be a key") from None
        if duplicate:
            raise _Refused(line, (*frame.at, value), f"duplicate key {value!r}")
        self.lines[(*frame.at, value)] = line
        frame.key = value


def _read(path: Path) -> str:
    if not path.is_file():
        raise YamlFileError([f"{path}:1: <document>: not a regular file"])
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise YamlFileError([f"{path}:1: <document>: cannot read: {exc}"]) from exc
    if len(data) > MAX_FILE_BYTES:
        raise YamlFileError([f"{path}:1: <document>: file larger than {MAX_FILE_BYTES} bytes"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlFileError([f"{path}:1: <document>: cannot read: {exc}"]) from exc


def load_located(path: Path) -> Located:
    """Parse one YAML file (a single document) keeping key lines; errors name the file."""
    text = _read(path)
    builder = _Builder()
    try:
        data = builder.build(yaml.parse(text, Loader=_EVENTS_LOADER))
    except _Refused as exc:
        raise YamlFileError([f"{path}:{exc.line}: {_dotted(exc.at)}: {exc.message}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else 1
        raise YamlFileError([f"{path}:{line}: <document>: invalid YAML: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise YamlFileError([f"{path}:1: <document>: invalid YAML: {exc}"]) from None
    if builder.documents == 0:
        raise YamlFileError([f"{path}:1: <document>: the file is empty"])
    return Located(path=path, data=data, lines=builder.lines)


def located_errors(doc: Located, error: ValidationError) -> list[str]:
    """One message per pydantic error, each with file, line and dotted field."""
    messages = []
    for err in error.errors(include_url=False):
        loc: Path_ = ()
        for part in err["loc"]:
            if _is_union_tag(part) and (*loc, part) not in doc.lines:
                continue  # a schema tag, unless the document has a key of that name
            loc = (*loc, part)
        messages.append(doc.error(loc, err["msg"]))
    return messages


def _is_union_tag(part: str | int) -> bool:
    # pydantic inserts the union member / function name into loc; they are not document keys
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)

"""YAML documents that remember where each value came from.

Shipped YAML (rules, playbooks) is validated by pydantic; when validation fails the user needs
the file, the line and the field. `load_located` keeps a map from each key path to its line, and
`located_errors` turns a `ValidationError` into messages like `rules/x.yaml:7: window: ...`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

Path_ = tuple[str | int, ...]


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


def _convert(node: yaml.Node, at: Path_, lines: dict[Path_, int]) -> Any:
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            if key in out:
                raise YamlFileError(
                    [f"{{file}}:{key_node.start_mark.line + 1}: duplicate key {key!r}"]
                )
            lines[(*at, key)] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, (*at, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*at, i), lines) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def load_located(path: Path) -> Located:
    """Parse one YAML file (a single document) keeping key lines; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else 1
        raise YamlFileError([f"{path}:{line}: invalid YAML: {exc.problem}"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlFileError([f"{path}: cannot read: {exc}"]) from exc
    if node is None:
        raise YamlFileError([f"{path}:1: the file is empty"])
    lines: dict[Path_, int] = {}
    try:
        data = _convert(node, (), lines)
    except YamlFileError as exc:
        raise YamlFileError(m.replace("{file}", str(path)) for m in exc.messages) from None
    return Located(path=path, data=data, lines=lines)


def located_errors(doc: Located, error: ValidationError) -> list[str]:
    """One message per pydantic error, each with file, line and dotted field."""
    messages = []
    for err in error.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
        messages.append(doc.error(loc, err["msg"]))
    return messages


def _is_union_tag(part: str | int) -> bool:
    # pydantic inserts the union member / function name into loc; they are not document keys
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)

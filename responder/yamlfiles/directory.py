"""A directory of YAML definitions (rules, playbooks, ...): every file loaded, all problems at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from responder.yamlfiles.located import YamlFileError

T = TypeVar("T")


def yaml_files(directory: Path) -> list[Path]:
    """The `*.yaml` and `*.yml` files of a directory, sorted by path."""
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_directory(
    directory: Path, what: str, load_file: Callable[[Path], T], id_of: Callable[[T], str]
) -> dict[str, tuple[T, Path]]:
    """Load every file with `load_file`; ids must be unique. Returns `{id: (item, path)}` in
    file order, or raises one `YamlFileError` with every problem (file:line: field: message)."""
    if not directory.is_dir():
        raise YamlFileError([f"{directory}: {what}s directory not found"])
    loaded: dict[str, tuple[T, Path]] = {}
    errors: list[str] = []
    for path in yaml_files(directory):
        try:
            item = load_file(path)
        except YamlFileError as exc:
            errors.extend(exc.messages)
            continue
        except Exception as exc:  # a check that raised: still a file:line error, not a crash
            errors.append(f"{path}:1: <document>: cannot load: {type(exc).__name__}: {exc}")
            continue
        key = id_of(item)
        if key in loaded:
            errors.append(f"{path}:1: id: duplicate {what} id {key!r} (also in {loaded[key][1]})")
            continue
        loaded[key] = (item, path)
    if errors:
        raise YamlFileError(errors)
    return loaded

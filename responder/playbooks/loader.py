"""Load `playbooks/*.yaml` into a `PlaybookSet`; every problem names file, line and field.

Like `responder.correlation.rules.load_rules`: all files are read, all problems collected and
raised together as one `YamlFileError`, so `responder playbooks validate` shows everything at
once. The action registry is a parameter so tests can load against their own test actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from responder.actions.registry import REGISTRY, Registry
from responder.playbooks.schema import Playbook, check_playbook, on_key, on_keys
from responder.playbooks.trigger import TriggerChange, compile_condition
from responder.yamlfiles import (
    Located,
    YamlFileError,
    load_directory,
    load_located,
    located_errors,
)


class PlaybookSet:
    """Loaded playbooks by id; `matching` answers which of them respond to an incident change."""

    def __init__(self, playbooks: Iterable[Playbook], sources: Mapping[str, Path] | None = None):
        self.playbooks: dict[str, Playbook] = {}
        for playbook in sorted(playbooks, key=lambda p: p.id):
            if playbook.id in self.playbooks:
                raise ValueError(f"duplicate playbook id {playbook.id!r}")
            self.playbooks[playbook.id] = playbook
        self.sources: dict[str, Path] = dict(sources or {})

    def __len__(self) -> int:
        return len(self.playbooks)

    def __iter__(self) -> Iterator[Playbook]:
        return iter(self.playbooks.values())

    def __contains__(self, playbook_id: object) -> bool:
        return playbook_id in self.playbooks

    def get(self, playbook_id: str) -> Playbook:
        return self.playbooks[playbook_id]

    def matching(self, incident: Mapping[str, Any], change: TriggerChange | str) -> list[Playbook]:
        """Every playbook whose `on:` holds for this incident view and change kind, by id."""
        return [p for p in self.playbooks.values() if p.on.matches(incident, change)]


def _rename_on_keys(doc: Located) -> None:
    """PyYAML reads a bare `on:` key as `True` (`schema.on_key`): in the data and the lines."""
    doc.data = on_keys(doc.data)
    doc.lines = {tuple(on_key(p) for p in k): v for k, v in doc.lines.items()}


def load_playbook_file(path: Path, registry: Registry = REGISTRY) -> Playbook:
    """Parse, shape-check and registry-check one file."""
    doc = load_located(path)
    if not isinstance(doc.data, dict):
        raise YamlFileError([f"{path}:1: a playbook file holds one mapping (id, on, steps, ...)"])
    _rename_on_keys(doc)
    try:
        playbook = Playbook.model_validate(doc.data)
    except ValidationError as exc:
        raise YamlFileError(_shape_errors(doc, exc)) from None
    issues = check_playbook(playbook, registry)
    if issues:
        raise YamlFileError(doc.error(loc, message) for loc, message in issues)
    return playbook


def _shape_errors(doc: Located, error: ValidationError) -> list[str]:
    """`located_errors`, except a bad trigger condition, which is reported at its own key."""
    messages = []
    for err, message in zip(
        error.errors(include_url=False), located_errors(doc, error), strict=True
    ):
        if tuple(err["loc"]) == ("on", "conditions") and err["type"] == "value_error":
            for key, value in doc.data["on"].items():
                if key == "change":
                    continue
                try:
                    compile_condition(str(key), value)
                except ValueError as exc:
                    messages.append(doc.error(("on", key), str(exc)))
        elif err["loc"][:2] == ("on", "conditions"):
            messages.append(doc.error(("on", *err["loc"][2:]), err["msg"]))
        else:
            messages.append(message)
    return messages


def load_playbooks(directory: Path, registry: Registry = REGISTRY) -> PlaybookSet:
    """Load every playbook in a directory; all problems are reported together."""
    loaded = load_directory(
        directory, "playbook", lambda path: load_playbook_file(path, registry), lambda p: p.id
    )
    return PlaybookSet(
        (playbook for playbook, _ in loaded.values()),
        {key: path for key, (_, path) in loaded.items()},
    )

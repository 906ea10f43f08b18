"""Declared assets: what MLflow does not know, from `assets/*.yaml` files.

Endpoints and the model aliases (or pinned versions) they serve, the images they run, the API
keys they use and the hardened version their alias may move to under attack; services and their
keys; teams, and the owner and tier of any asset, including the registry's models and datasets.
Each entry declares its own outgoing edges (`serves`, `runs`, `uses`, `owner`), so a file reads
as "this endpoint serves that alias".

Files are validated like rules and playbooks: unknown keys, bad references and owners that name
no declared team are reported together as `file:line: field: message`, and a directory is used
only when every file in it is valid. Every file is its own source (`assets/<file name>`): a sync
replaces what one file said and forgets files that are gone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from responder.assets.model import (
    DECLARED_PREFIX,
    MAX_ENTRIES,
    MAX_NAME,
    MAX_VALUE,
    AssetIdError,
    Edge,
    EdgeKind,
    Node,
    NodeKind,
    Tier,
    alias_id,
    dataset_id,
    edge,
    model_id,
    model_version_id,
    node,
    simple_id,
)
from responder.yamlfiles import (
    Located,
    YamlFileError,
    load_directory,
    load_located,
    located_errors,
    yaml_files,
)

MAX_FILE_BYTES: Final = 1024 * 1024
MAX_ITEMS: Final = 5000  # entries per section of one file
MAX_REFS: Final = 100  # serves / runs / uses of one entry

# No control characters anywhere (values reach terminals and Slack).
Text = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
]
Key = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+=-]*$"),
]
TeamId = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
]
TagKey = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")
]
TagValue = Annotated[
    str, StringConstraints(max_length=MAX_VALUE, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")
]
Tags = Annotated[dict[TagKey, TagValue], Field(max_length=MAX_ENTRIES)]
# `model@alias` or `model/version`: split at the last separator, both sides non-empty.
_SERVED = re.compile(r"^(?P<model>.+)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>[0-9]+))$")


def _listed(value: Any) -> Any:
    """A single reference may be written without the list."""
    return [value] if isinstance(value, str) else value


def _served(value: str) -> str:
    if not _SERVED.match(value):
        raise ValueError("write model@alias (e.g. fraud-detector@champion) or model/version")
    return value


Refs = Annotated[list[Key], BeforeValidator(_listed), Field(max_length=MAX_REFS)]
# A registry version number; YAML reads `7` as an int, which is meant as "7".
HardenedVersion = Annotated[
    str,
    BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v),
    StringConstraints(pattern=r"^[0-9]{1,12}$"),
]
ServedRefs = Annotated[
    list[Annotated[Text, AfterValidator(_served)]],
    BeforeValidator(_listed),
    Field(max_length=MAX_REFS),
]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: Tier | None = None
    owner: TeamId | None = Field(default=None, description="a team declared under `teams`")
    tags: Tags = Field(default_factory=dict)
    description: Annotated[str, StringConstraints(max_length=1024)] | None = None


class EndpointEntry(_Entry):
    id: Key
    serves: ServedRefs = Field(default_factory=list)
    runs: Refs = Field(default_factory=list, description="image references")
    uses: Refs = Field(default_factory=list, description="API key ids (never the secret)")
    hardened_version: HardenedVersion | None = Field(
        default=None,
        description="a version of the served model hardened against adversarial inputs, where "
        "a playbook may move the served alias under attack (needs exactly one model@alias)",
    )

    @model_validator(mode="after")
    def _hardened_needs_one_alias(self) -> EndpointEntry:
        if self.hardened_version is not None:
            aliases = [ref for ref in self.serves if _served_alias(ref) is not None]
            if len(self.serves) != 1 or len(aliases) != 1:
                raise ValueError("hardened_version needs `serves` to name exactly one model@alias")
        return self

    def hardened(self) -> dict[str, str]:
        """The node's attributes for the hardened version: the version and the alias to move."""
        if self.hardened_version is None:
            return {}
        return {"hardened_version": self.hardened_version, "hardened_alias": self.serves[0]}


class ServiceEntry(_Entry):
    id: Key
    uses: Refs = Field(default_factory=list, description="API key ids (never the secret)")


class KeyEntry(_Entry):
    id: Key = Field(description="the key's id as events name it (e.g. AKIA...), never its secret")


class ImageEntry(_Entry):
    id: Key = Field(description="an image reference, e.g. fraud-serving:1.4.2 or name@sha256:...")


class ModelEntry(_Entry):
    name: Text = Field(description="the registered model's name in MLflow")


class DatasetEntry(_Entry):
    name: Text
    digest: Key = Field(description="the digest MLflow logged with the dataset")


class TeamEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: TeamId
    name: Text | None = None
    contact: Text | None = Field(default=None, description="e.g. a Slack channel or an email")
    tags: Tags = Field(default_factory=dict)


def _section() -> Any:
    return Field(default_factory=list, max_length=MAX_ITEMS)


class AssetFile(BaseModel):
    """One `assets/*.yaml` file: lists of entries by kind, every section optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoints: list[EndpointEntry] = _section()
    services: list[ServiceEntry] = _section()
    api_keys: list[KeyEntry] = _section()
    images: list[ImageEntry] = _section()
    models: list[ModelEntry] = _section()
    datasets: list[DatasetEntry] = _section()
    teams: list[TeamEntry] = _section()


@dataclass(frozen=True)
class Declared:
    """What one file says, as graph claims under its source (`assets/<file name>`)."""

    source: str
    path: Path
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


@dataclass(frozen=True)
class _Parsed:
    doc: Located
    spec: AssetFile
    source: str


def source_of(path: Path) -> str:
    return f"{DECLARED_PREFIX}{path.name}"


def parse_file(path: Path) -> _Parsed:
    """Parse and validate one file (no cross-file checks); `YamlFileError` with every problem."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise YamlFileError([f"{path}: cannot read: {exc}"]) from exc
    if size > MAX_FILE_BYTES:
        raise YamlFileError([f"{path}:1: file too large: {size} bytes > {MAX_FILE_BYTES}"])
    doc = load_located(path)
    if not isinstance(doc.data, dict):
        raise YamlFileError(
            [f"{path}:1: an asset file holds one mapping (endpoints, services, teams, ...)"]
        )
    try:
        spec = AssetFile.model_validate(doc.data)
    except ValidationError as exc:
        raise YamlFileError(located_errors(doc, exc)) from None
    return _Parsed(doc, spec, source_of(path))


# Sections whose entries are assets, with the id each entry names.
def _entries(spec: AssetFile) -> Iterable[tuple[str, int, _Entry, str]]:
    for i, ep in enumerate(spec.endpoints):
        yield "endpoints", i, ep, simple_id(NodeKind.endpoint, ep.id)
    for i, svc in enumerate(spec.services):
        yield "services", i, svc, simple_id(NodeKind.service, svc.id)
    for i, key in enumerate(spec.api_keys):
        yield "api_keys", i, key, simple_id(NodeKind.api_key, key.id)
    for i, image in enumerate(spec.images):
        yield "images", i, image, simple_id(NodeKind.image, image.id)
    for i, model in enumerate(spec.models):
        yield "models", i, model, model_id(model.name)
    for i, ds in enumerate(spec.datasets):
        yield "datasets", i, ds, dataset_id(ds.name, ds.digest)


def _served_alias(ref: str) -> str | None:
    match = _SERVED.match(ref)
    return None if match is None else match.group("alias")


def _served_id(ref: str) -> str:
    match = _SERVED.match(ref)
    assert match is not None  # validated by the model
    if match.group("alias") is not None:
        return alias_id(match.group("model"), match.group("alias"))
    return model_version_id(match.group("model"), match.group("version"))


def _claims(parsed: _Parsed, at: datetime) -> tuple[list[Node], list[Edge], list[str]]:
    """The nodes and edges of one file, and the problems (ids too long) with their lines."""
    doc, spec, source = parsed.doc, parsed.spec, parsed.source
    nodes: list[Node] = []
    edges: list[Edge] = []
    errors: list[str] = []

    def link(loc: tuple[str | int, ...], src: str, kind: EdgeKind, make: Any, ref: str) -> None:
        try:
            edges.append(edge(src, kind, make(ref), source, at))
        except AssetIdError as exc:
            errors.append(doc.error(loc, str(exc)))

    for team in spec.teams:
        attributes = {"contact": team.contact} if team.contact else {}
        nodes.append(
            node(
                simple_id(NodeKind.team, team.id),
                source,
                at,
                name=team.name or team.id,
                tags=team.tags,
                attributes=attributes,
            )
        )
    for section, i, entry, node_id in _entries(spec):
        attributes = {"description": entry.description} if entry.description else {}
        if isinstance(entry, EndpointEntry):
            attributes.update(entry.hardened())
        name = entry.name if isinstance(entry, DatasetEntry) else None  # its digest: in the id
        try:
            nodes.append(
                node(
                    node_id,
                    source,
                    at,
                    name=name,
                    tier=entry.tier,
                    tags=entry.tags,
                    attributes=attributes,
                )
            )
        except AssetIdError as exc:
            errors.append(doc.error((section, i), str(exc)))
            continue
        if entry.owner is not None:
            link((section, i, "owner"), node_id, EdgeKind.owned_by, _team_id, entry.owner)
        if isinstance(entry, EndpointEntry):
            for j, ref in enumerate(entry.serves):
                link((section, i, "serves", j), node_id, EdgeKind.serves, _served_id, ref)
            for j, ref in enumerate(entry.runs):
                link((section, i, "runs", j), node_id, EdgeKind.runs, _image_id, ref)
        if isinstance(entry, EndpointEntry | ServiceEntry):
            for j, ref in enumerate(entry.uses):
                link((section, i, "uses", j), node_id, EdgeKind.uses, _key_id, ref)
    return nodes, edges, errors


def _team_id(ref: str) -> str:
    return simple_id(NodeKind.team, ref)


def _image_id(ref: str) -> str:
    return simple_id(NodeKind.image, ref)


def _key_id(ref: str) -> str:
    return simple_id(NodeKind.api_key, ref)


def load_declared(directory: Path, at: datetime) -> list[Declared]:
    """Every file of a directory as claims; one `YamlFileError` with every problem, including
    an asset declared twice and an owner that names no declared team."""
    parsed = load_directory(directory, "asset file", parse_file, lambda p: p.source)
    errors: list[str] = []
    teams = {t.id for p, _ in parsed.values() for t in p.spec.teams}
    first: dict[str, str] = {}  # asset or team id -> where it was declared first
    loaded: list[Declared] = []
    for p, path in parsed.values():
        doc, spec = p.doc, p.spec
        for i, team in enumerate(spec.teams):
            _once(first, f"team:{team.id}", doc, ("teams", i, "id"), errors)
        for section, i, entry, node_id in _entries(spec):
            field = "name" if section in ("models", "datasets") else "id"
            _once(first, node_id, doc, (section, i, field), errors)
            if entry.owner is not None and entry.owner not in teams:
                known = ", ".join(sorted(teams)) or "none"
                errors.append(
                    doc.error(
                        (section, i, "owner"),
                        f"no team {entry.owner!r} is declared under `teams` (declared: {known})",
                    )
                )
        nodes, edges, problems = _claims(p, at)
        errors.extend(problems)
        loaded.append(Declared(p.source, path, tuple(nodes), tuple(edges)))
    if errors:
        raise YamlFileError(errors)
    return loaded


def _once(
    first: dict[str, str],
    asset: str,
    doc: Located,
    loc: tuple[str | int, ...],
    errors: list[str],
) -> None:
    where = f"{doc.path}:{doc.line_of(loc)}"
    if asset in first:
        errors.append(doc.error(loc, f"{asset} is already declared at {first[asset]}"))
    else:
        first[asset] = where


def declared_files(directory: Path) -> list[Path]:
    """The files `load_declared` reads."""
    return yaml_files(directory)

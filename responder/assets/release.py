"""What a moved model alias is checked against: the versions' release facts, from the graph (pure).

An alias is a release: serving follows `models:/<name>@<alias>`. When a webhook says an alias
moved, the receiver asks the graph, before it applies the move, what it knows (`alias_facts`;
`store.alias_facts` reads just those rows) and `webhooks.convert` puts the answer into the
`model.alias_changed` event, so rules can match it:

- `attributes.previous_version`: the version the alias pointed at before (absent if unknown);
- `attributes.release`: the new version's check, `{check: passed|failed, problems: [...],
  scan, approved_by}`;
- `attributes.previous_release`: the same for the previous version (absent if unknown).

The policy: a version passes when it carries the tag `scan=clean` (what scanners set and what
`mlflow.rollback_model` looks for) and a non-empty `approved_by` tag (what the release process
sets when a human signs the version off), and no `quarantine` tag (what
`mlflow.quarantine_versions` sets on versions trained on poisoned data). A version the graph
does not know has none of them, so it fails. Tags
are only as trustworthy as the registry's permissions: whoever may move an alias may usually
tag a version too, so the check catches mistakes and rushed releases, and an attacker only
when the registry separates those permissions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from responder.assets.graph import AssetGraph
from responder.assets.model import EdgeKind, alias_id, model_version_id

SCAN_TAG: Final = "scan"
CLEAN: Final = "clean"
APPROVAL_TAG: Final = "approved_by"
QUARANTINE_TAG: Final = "quarantine"  # set by mlflow.quarantine_versions: trained on bad data
PASSED: Final = "passed"
FAILED: Final = "failed"


@dataclass(frozen=True)
class VersionFacts:
    """What the graph knows about one version's release (its tags; None: not in the graph)."""

    version: str
    tags: Mapping[str, str] | None = None

    def check(self) -> dict[str, Any]:
        tags = self.tags or {}
        problems: list[str] = []
        scan = tags.get(SCAN_TAG)
        approved_by = tags.get(APPROVAL_TAG) or None
        if self.tags is None:
            problems.append("version unknown to the asset graph")
        if scan != CLEAN:
            problems.append(f"{SCAN_TAG} is {scan!r}, not {CLEAN!r}" if scan else "not scanned")
        if approved_by is None:
            problems.append(f"no approval (tag {APPROVAL_TAG})")
        quarantined = tags.get(QUARANTINE_TAG)
        if quarantined:
            problems.append(f"quarantined: trained on {quarantined}")
        out: dict[str, Any] = {"check": FAILED if problems else PASSED, "problems": problems}
        if scan is not None:
            out["scan"] = scan
        if approved_by is not None:
            out["approved_by"] = approved_by
        return out


@dataclass(frozen=True)
class AliasFacts:
    """The graph's view of a moved alias: the new version, and the one it pointed at before."""

    new: VersionFacts
    previous: VersionFacts | None = None

    def attributes(self) -> dict[str, Any]:
        """What the `model.alias_changed` event carries (see the module docstring)."""
        out: dict[str, Any] = {"release": self.new.check()}
        if self.previous is not None and self.previous.version != self.new.version:
            out["previous_version"] = self.previous.version
            out["previous_release"] = self.previous.check()
        return out


def _version_facts(graph: AssetGraph, name: str, version: str) -> VersionFacts:
    found = graph.node(model_version_id(name, version))
    known = found is not None and bool(found.sources)  # a placeholder: referred to, not described
    return VersionFacts(version, dict(found.tags) if found is not None and known else None)


def alias_facts(graph: AssetGraph, name: str, alias: str, version: str) -> AliasFacts:
    """The facts for `name@alias` moving to `version`, from a graph that does not have the move
    yet. The previous version is where the alias's newest `points_to` claim leads."""
    out, _ = graph.edges_of(alias_id(name, alias))
    pointers = sorted((e for e in out if e.kind is EdgeKind.points_to), key=lambda e: e.at)
    previous: VersionFacts | None = None
    if pointers:  # model_version:<name>/<version>; the version is digits, never encoded
        previous = _version_facts(graph, name, pointers[-1].dst.rsplit("/", 1)[-1])
    return AliasFacts(new=_version_facts(graph, name, version), previous=previous)

"""Datasets a playbook names, and whether a model version was trained on one (pure).

A reference is `name` (any digest), `name@digest` (that content only), or the asset graph's id
`dataset:<name>@<digest>` (percent-encoded, so a name that holds `@` is written this way). A
version was trained on a dataset when its source run logged it as an input (`mlflow.log_input`,
`run.inputs.dataset_inputs`), whatever the input's context: the asset graph draws `trained_on`
for every logged input too, and a version evaluated on poisoned data is better passed over than
served.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from responder.assets.model import AssetIdError, NodeKind, display_name, kind_of

MAX_NAME: Final = 256
_DIGEST = re.compile(r"^[A-Za-z0-9_.+=-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class DatasetRef:
    name: str
    digest: str | None = None

    def __str__(self) -> str:
        return self.name if self.digest is None else f"{self.name}@{self.digest}"

    def matches(self, name: str, digest: str) -> bool:
        return name == self.name and (self.digest is None or digest == self.digest)


def parse_ref(text: str) -> DatasetRef:
    """`name`, `name@digest` or `dataset:<id>`; ValueError says what is wrong."""
    raw = text.strip()
    if raw.startswith(f"{NodeKind.dataset.value}:"):
        try:
            if kind_of(raw) is not NodeKind.dataset:
                raise ValueError("not a dataset id")
            raw = display_name(raw)
        except AssetIdError as exc:
            raise ValueError(str(exc)) from None
        if raw.startswith("@"):
            raise ValueError(f"{_shown(text)}: a dataset id is dataset:<name>@<digest>")
    name, at, digest = raw.rpartition("@")
    if not at:
        name, digest = raw, ""
    elif not _DIGEST.match(digest):
        raise ValueError(f"{_shown(text)}: the digest after @ must be 1-128 of [A-Za-z0-9_.+=-]")
    if not name or len(name) > MAX_NAME or _CONTROL.search(name) or name != name.strip():
        raise ValueError(f"{_shown(text)}: a dataset name is 1-{MAX_NAME} printable characters")
    return DatasetRef(name, digest or None)


def _shown(text: str) -> str:
    clean = _CONTROL.sub("?", text[:80])
    return repr(clean if len(text) <= 80 else clean + "…")


def trained_on(
    inputs: Iterable[tuple[str, str]], refs: Iterable[DatasetRef]
) -> tuple[DatasetRef, str, str] | None:
    """The first reference among a version's logged `(name, digest)` inputs, with the input
    that matched; None when the version was trained on none of them."""
    listed = list(inputs)
    for ref in refs:
        for name, digest in listed:
            if ref.matches(name, digest):
                return ref, name, digest
    return None

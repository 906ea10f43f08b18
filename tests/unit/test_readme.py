"""The README's playbook example is a real playbook: it must load and validate."""

from __future__ import annotations

import re
from pathlib import Path

import responder.actions.catalog  # noqa: F401  (register every action)
from responder.playbooks.loader import load_playbook_file
from tests.conftest import ROOT


def test_readme_playbook_example_validates(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    [example] = [b for b in blocks if b.startswith("id: contain-leaked-credential")]
    path = tmp_path / "example.yaml"
    path.write_text(example)
    playbook = load_playbook_file(path)
    assert [s.id for s in playbook.steps] == [
        "evidence",
        "approve",
        "deactivate",
        "notify",
        "acknowledge",
    ]
    assert playbook.requires_evidence
    assert playbook.guards.actions["aws.iam.deactivate_access_key"].per_hour == 5

"""The README's playbook example is a real playbook: it must load and validate."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import responder.actions.catalog  # noqa: F401  (register every action)
from responder.events.normalize import FORMATS, Context, convert
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


def test_readme_lists_every_report_format_with_the_event_types_it_produces() -> None:
    """The "Tool reports" table: a row per accepted format, naming each event type it makes."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Tool reports", 1)[1].split("\n## ", 1)[0]
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `([a-z0-9-]+)` \|[^|]*\| ([^|]*) \|", section, flags=re.M)
    }
    assert set(rows) == set(FORMATS)
    context = Context(asset="fraud-scorer", time=datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    for name in set(FORMATS) - {"cloudevents", "securityevent"}:  # "whatever the data is"
        for path in (ROOT / "tests" / "fixtures" / "reports" / name).iterdir():
            outputs = convert(io.BytesIO(path.read_bytes()), name, context)
            types = {o["type"] for o in outputs if isinstance(o, dict)}
            missing = {t for t in types if f"`{t}`" not in rows[name]}
            assert not missing, f"README row {name} does not name {missing} ({path.name})"

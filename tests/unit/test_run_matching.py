"""The run starter remembers which playbooks answer a change by the change kind and the fields
their `on:` conditions read (issue 13): what it answers is always what `PlaybookSet.matching`
answers, for the shipped playbooks and for conditions on nested, missing and numeric fields."""

from __future__ import annotations

import tempfile
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import responder.actions.catalog  # noqa: F401  (register every action)
from responder.incidents.model import IncidentChange
from responder.playbooks.loader import PlaybookSet, load_playbooks
from responder.playbooks.start_sql import RunStarter
from responder.playbooks.trigger import incident_view

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 25, tzinfo=UTC)
KINDS = ["credential_compromise", "model_vulnerability", "vulnerable_dependency", "adversarial_attack",
         "data_poisoning", "other"]  # fmt: skip
EXTRA = {
    "by-group": """
        id: by-group
        title: Reads a nested field and a count
        on: {group.resource.id|startswith: "AKIA", event_count|gte: 3, change: [opened, updated]}
        steps: [{id: tell, action: slack.notify, with: {text: x}}]
    """,
    "by-status": """
        id: by-status
        title: Reads the previous status, which a new incident lacks
        on: {previous_status: [resolved, null], severity|lt: high, change: [opened, reopened]}
        steps: [{id: tell, action: slack.notify, with: {text: x}}]
    """,
}


def extra_playbooks() -> PlaybookSet:
    directory = Path(tempfile.mkdtemp(prefix="responder-matching-"))
    for name, text in EXTRA.items():
        (directory / f"{name}.yaml").write_text(textwrap.dedent(text))
    return load_playbooks(directory)


SETS = [load_playbooks(ROOT / "playbooks"), extra_playbooks()]


changes = st.builds(
    lambda kind, severity, change, count, key, rule: IncidentChange(
        change=change,
        version=count,
        incident_id="inc-1",
        rule=rule,
        kind=kind,
        title="t",
        severity=severity,
        group={"resource.id": key} if key else {},
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=count),
        event_count=count,
    ),
    st.sampled_from(KINDS),
    st.sampled_from(["info", "low", "medium", "high", "critical"]),
    st.sampled_from(["opened", "updated", "escalated", "resolved"]),
    st.integers(1, 5),
    st.sampled_from(["", "AKIA1", "ASIA2"]),
    st.sampled_from(["leaked-key-then-used", "other-rule"]),
)


@given(st.lists(st.tuples(changes, st.sampled_from([None, "open", "resolved"])), max_size=30))
def test_remembered_matching_is_the_playbook_sets(cases: list[tuple[Any, str | None]]) -> None:
    for playbooks in SETS:
        starter = RunStarter(playbooks)
        for change, previous in cases * 2:  # the second pass answers from memory
            status = "open" if previous is None else previous
            trigger, _, found = starter._matching(change, previous, status)
            view = incident_view(change, previous_status=previous, status=status)
            assert [p.id for p in found] == [p.id for p in playbooks.matching(view, trigger)]


def test_some_cases_match_and_some_do_not() -> None:
    """The comparison above is not vacuous: both sets start runs for some changes only."""
    opened = IncidentChange(
        change="opened", version=3, incident_id="i", rule="leaked-key-then-used",
        kind="credential_compromise",
        title="t", severity="low", group={"resource.id": "AKIA1"}, first_seen=T0, last_seen=T0,
        event_count=3,
    )  # fmt: skip
    for playbooks in SETS:
        starter = RunStarter(playbooks)
        assert starter._matching(opened, None, "open")[2]
        assert not starter._matching(opened.model_copy(update={"change": "resolved"}), "x", "open")[
            2
        ]

"""The incident facts declared once: statuses, the reopen rule, edits and the change fields."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from responder.correlation.change import Change
from responder.events.schema import rfc3339
from responder.incidents.model import (
    CLOSED,
    IDENTITY_FIELDS,
    PROGRESS_FIELDS,
    ChangeKind,
    IncidentChange,
    IncidentEdit,
    IncidentStatus,
    reopens,
)


def test_statuses_and_the_closed_ones() -> None:
    """Four statuses; resolved and false positive are the closed ones."""
    assert [s.value for s in IncidentStatus] == [
        "open",
        "acknowledged",
        "resolved",
        "false_positive",
    ]
    assert {"resolved", "false_positive"} == CLOSED


@pytest.mark.parametrize(
    ("status", "change", "expected"),
    [
        ("resolved", "updated", True),
        ("false_positive", "escalated", True),
        ("false_positive", "opened", True),
        ("resolved", "resolved", False),
        ("open", "updated", False),
        ("acknowledged", "escalated", False),
        (None, "opened", False),
    ],
)
def test_reopen_rule(status: str | None, change: ChangeKind, expected: bool) -> None:
    """A change reopens a closed incident unless it resolves it; a new incident never reopens."""
    assert reopens(status, change) is expected


def test_edit_refuses_unknown_statuses_and_fields() -> None:
    """An edit takes only the known statuses and the four editable fields."""
    assert IncidentEdit(status="acknowledged").status is IncidentStatus.acknowledged
    with pytest.raises(ValidationError):
        IncidentEdit(status="closed")
    with pytest.raises(ValidationError):
        IncidentEdit.model_validate({"title": "x"})


def test_change_fields_are_the_wire_fields() -> None:
    """The engine's Change carries every wire field except the ones it always sets itself."""
    carried = {f.name for f in fields(Change)}
    assert carried | {"status", "schema_version"} == set(IncidentChange.model_fields)
    assert set(IDENTITY_FIELDS) | set(PROGRESS_FIELDS) <= carried


def test_rfc3339_takes_naive_times_as_utc() -> None:
    """SQLite's naive datetimes format with the offset they lost (Z)."""
    naive = datetime(2026, 11, 25, 9, 0)
    assert rfc3339(naive) == "2026-11-25T09:00:00Z"
    assert rfc3339(naive.replace(tzinfo=UTC)) == "2026-11-25T09:00:00Z"

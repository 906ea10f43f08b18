"""Bulk writes (`storage.bulk`) on SQLite and PostgreSQL: COPY, `UPDATE ... FROM
json_to_recordset` and IN lists sent as one JSON document store and find exactly what
SQLAlchemy's own statements would, hostile text included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from responder.assets.blast_store import IncidentBlastRadius
from responder.incidents.store import Incident
from responder.storage.bulk import among, insert_rows, table_of, update_rows

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=UTC)
HOSTILE = [
    'quote " and \\ backslash',
    "tab\tnew\nline\rreturn",
    "braces {a,b} and commas, ,",
    "unicode é 漢字 \u2028 🙂",
    "\\N looks like COPY's null",
    "'single' -- not a comment; DROP TABLE x",
    "",
]


class Colour(StrEnum):
    red = "red"


def radii(*ids: str) -> list[dict[str, Any]]:
    return [
        {
            "incident_id": i,
            "radius": {"roots": [i, *HOSTILE], "n": n, "none": None},
            "updated_at": AT,
        }
        for n, i in enumerate(ids)
    ]


def test_inserted_rows_read_back_exactly(db: Engine) -> None:
    ids = [*HOSTILE[:-1], "plain"]
    with Session(db) as session, session.begin():
        insert_rows(session, table_of(IncidentBlastRadius), radii(*ids))
    table = table_of(IncidentBlastRadius)
    with Session(db) as session:
        found = {
            r.incident_id: (r.radius, r.updated_at)
            for r in session.connection().execute(select(table))
        }
    assert set(found) == set(ids)
    for row in radii(*ids):
        radius, updated_at = found[row["incident_id"]]
        assert radius == row["radius"]
        assert updated_at.replace(tzinfo=updated_at.tzinfo or UTC) == AT


def test_updated_rows_take_only_their_own_values(db: Engine) -> None:
    table = table_of(IncidentBlastRadius)
    with Session(db) as session, session.begin():
        insert_rows(session, table, radii("a", "b", "c"))
    later = AT + timedelta(hours=1)
    with Session(db) as session, session.begin():
        update_rows(
            session,
            table,
            "incident_id",
            [
                {"incident_id": "a", "radius": {"text": HOSTILE}, "updated_at": later},
                {"incident_id": "c", "radius": {"colour": Colour.red}, "updated_at": later},
            ],
        )
    with Session(db) as session:
        found = {r.incident_id: r.radius for r in session.connection().execute(select(table))}
    assert found["a"] == {"text": HOSTILE}
    assert found["b"] == radii("a", "b")[1]["radius"]  # untouched
    assert found["c"] == {"colour": "red"}


def test_among_finds_every_listed_key_and_no_other(db: Engine) -> None:
    table = table_of(Incident)
    rows: list[dict[str, Any]] = [
        {
            "id": key,
            "rule": "r",
            "kind": Colour.red,  # an enum is written as its value, as SQLAlchemy writes it
            "title": "t",
            "severity": "high",
            "status": "open",
            "group": {},
            "first_seen": AT,
            "last_seen": AT,
            "event_count": 1,
            "assignee": None,
            "reportable_category": None,
            "reportable_since": None,
            "event_ids": [],
            "version": 1,
            "comments": [],
            "created_at": AT,
            "updated_at": AT,
            "acknowledged_at": None,
            "resolved_at": None,
        }
        for key in [*HOSTILE[:-1], "other"]
    ]
    with Session(db) as session, session.begin():
        insert_rows(session, table, rows)
    with Session(db) as session:
        wanted = [*HOSTILE[:-1], "missing"]
        found = session.connection().execute(
            select(table.c.id, table.c.kind).where(among(session, table.c.id, wanted))
        )
        got = dict(found.all())
    assert set(got) == set(HOSTILE[:-1])
    assert set(got.values()) == {"red"}


def test_json_columns_read_back_as_written_through_column_loads(db: Engine) -> None:
    """The engine reads JSON columns with `column_loads` (orjson where it reads the same), and
    what the standard library alone would read comes back: big integers, NaN, lone surrogates."""
    from responder.storage.database import column_loads

    bodies = [
        {"n": 2**70, "f": 0.1, "s": "é 漢字", "none": None},
        {"digits": "12345678901234567890", "neg": -(2**63) - 1},
        {"surrogate": "\ud800", "list": [1, 2.5, True]},
    ]
    rows = [
        {"incident_id": f"i{n}", "radius": body, "updated_at": AT} for n, body in enumerate(bodies)
    ]
    with Session(db) as session:
        insert_rows(session, table_of(IncidentBlastRadius), rows)
        session.commit()
        table = table_of(IncidentBlastRadius)
        found = session.connection().execute(select(table.c.radius).order_by(table.c.incident_id))
        assert [row.radius for row in found] == bodies
    assert db.dialect._json_deserializer is column_loads

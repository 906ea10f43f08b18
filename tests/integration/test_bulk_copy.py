"""`storage.bulk.insert_rows` stores the same rows whether the compiled path formats them for
COPY or the driver does (on SQLite both are executemany: the same rows too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    select,
)
from sqlmodel import Session

from responder.storage import bulk

T0 = datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=UTC)

ROWS: list[dict[str, Any]] = [
    {
        "id": i,
        "name": name,
        "big": big,
        "flag": flag,
        "ratio": ratio,
        "at": at,
        "body": body,
    }
    for i, (name, big, flag, ratio, at, body) in enumerate(
        [
            ("plain", 1, True, 0.5, T0, {"a": 1, "b": [1.5, None, "x"], "é": {"n": 2**63}}),
            ("tab\tnew\nline\\ \x08\x0b\x0c\r", -(2**63), False, -0.0, T0, {"k": '\x01\\"\n'}),
            ("😀 non-ASCII ü", 2**63 - 1, None, 1e300, None, None),
            ("", None, True, None, T0 + timedelta(microseconds=1), [1, {"z": 1e-7}]),
            (
                None,
                0,
                False,
                3.0,
                datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
                {"deep": [[[{"x": "y"}]]]},
            ),
        ]
    )
]


def table() -> Table:
    return Table(
        "bulk_copy_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", Text),
        Column("big", BigInteger),
        Column("flag", Boolean),
        Column("ratio", Float),
        Column("at", DateTime(timezone=True)),
        Column("body", JSON),
    )


def stored(db: Engine, probe: Table) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return [tuple(row) for row in conn.execute(select(probe).order_by(probe.c.id))]


def test_compiled_and_driver_rows_read_back_the_same(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("responder_native", exc_type=ImportError)
    probe = table()
    probe.metadata.create_all(db)
    with Session(db) as session, session.begin():
        bulk.insert_rows(session, probe, ROWS)
    compiled = stored(db, probe)
    with db.begin() as conn:
        conn.execute(probe.delete())
    monkeypatch.setattr(bulk, "responder_native", None)
    with Session(db) as session, session.begin():
        bulk.insert_rows(session, probe, ROWS)
    assert compiled == stored(db, probe)
    names = [row[1] for row in compiled]
    assert names == [row["name"] for row in ROWS]  # control characters and all, as given
    assert [row[6] for row in compiled] == [row["body"] for row in ROWS]
    if db.dialect.name == "postgresql":  # (SQLite keeps no offset)
        assert compiled[4][5] == ROWS[4]["at"]  # the offset kept: the same instant


def test_a_row_the_compiled_path_refuses_is_written_by_the_driver(db: Engine) -> None:
    probe = table()
    probe.metadata.create_all(db)
    rows = [{**ROWS[0], "id": 1}, {**ROWS[0], "id": 2, "body": {"pair": (1, 2)}}]  # a tuple
    with Session(db) as session, session.begin():
        bulk.insert_rows(session, probe, rows)
    assert [row[6] for row in stored(db, probe)] == [ROWS[0]["body"], {"pair": [1, 2]}]

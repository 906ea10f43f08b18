"""`storage.bulk.written_meanwhile`: which failures mean "another transaction wrote these rows
first" (read again and store the rest) rather than a bad batch."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from responder.storage.bulk import StaleRows, written_meanwhile


def sqlite_error(statement: str) -> IntegrityError:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT NOT NULL)"))
        conn.execute(text("INSERT INTO t VALUES ('a', 'x')"))
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        conn.execute(text(statement))
    return caught.value


def test_a_key_inserted_first_elsewhere_or_stale_rows_were_written_meanwhile() -> None:
    assert written_meanwhile(sqlite_error("INSERT INTO t VALUES ('a', 'y')"))
    assert written_meanwhile(StaleRows("1 of 2 incidents rows were newer"))


def test_other_failures_are_not() -> None:
    assert not written_meanwhile(sqlite_error("INSERT INTO t VALUES ('b', NULL)"))
    assert not written_meanwhile(ValueError("a value PostgreSQL refuses"))

"""Many rows in one go, inside the caller's transaction: COPY on PostgreSQL, executemany elsewhere.

The sink writes thousands of rows a transaction (incidents, evidence, audit records, runs).
Measured on the local PostgreSQL (2,000 evidence rows a transaction, psycopg 3, 2-core machine
shared): executemany (psycopg's pipeline mode) 38 µs a row of wall time and 16 µs of client CPU;
a multi-row `insert().values([...])` 300 / 150 (compiling the statement); COPY 9 / 4. Updates
of many rows on PostgreSQL are one statement, `UPDATE ... FROM json_to_recordset(document)`
(2,000 rows: ~2 µs of client CPU a row; `unnest` of one array a column cost more, psycopg
escaping each text array element with a regular expression). SQLite runs in this process: its
executemany is a loop in C.

Values are written as SQLAlchemy would write them: JSON columns through the engine's JSON
serializer (`database.column_json`), other values adapted by the driver.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any

import orjson
import psycopg
from psycopg import sql
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from responder.storage.database import column_json

try:
    import responder_native
except ImportError:  # not built: the driver formats COPY's rows
    responder_native = None  # type: ignore[assignment]


def table_of(model: type[Any]) -> Table:
    """The table a SQLModel class maps (its `__table__`, which the type stubs do not declare)."""
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} maps no table")
    return table


def among(session: Session, column: ColumnElement[Any], values: Iterable[Any]) -> Any:
    """`column IN values`, the values sent as one JSON document on PostgreSQL: a statement with
    thousands of placeholders is rendered by SQLAlchemy and parsed again by psycopg every time
    (~0.3 ms per thousand values measured here), a JSON array is one parameter."""
    values = list(values)
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    document = cast(bindparam(None, _document(values), type_=Text), JSON)
    return column.in_(select(func.json_array_elements_text(document)))


def insert_rows(session: Session, table: Table, rows: Iterable[Mapping[str, Any]]) -> None:
    """INSERT `rows` (each with the same keys, the columns to write) into `table`.

    On PostgreSQL with COPY; its rows are formatted in one compiled call where
    `responder-native` is built, the connection is UTF-8 and it takes every value (plain JSON in the JSON columns; text,
    integers, booleans, finite floats, datetimes and None elsewhere), else by the driver row by
    row as SQLAlchemy would write them (a property test holds the two to the same rows)."""
    connection = session.connection()
    listed = list(rows)
    if not listed:
        return
    if not _copies(connection):
        connection.execute(insert(table), listed)
        return
    names = list(listed[0])
    json_columns = [isinstance(table.c[n].type, JSON) for n in names]
    statement = _copy_statement(table.name, tuple(names))
    encoded = None
    if responder_native is not None and copies_utf8(session):
        encoded = responder_native.copy_rows(listed, names, json_columns)
    with _driver(session).cursor() as cursor, cursor.copy(statement) as copy:
        if encoded is not None:
            copy.write(encoded)
            return
        json_at = [i for i, is_json in enumerate(json_columns) if is_json]
        for row in listed:
            values = [row[n] for n in names]  # the driver adapts them as SQLAlchemy would
            for i in json_at:  # what SQLAlchemy's JSON type does before the driver
                values[i] = column_json(values[i])
            copy.write_row(values)


def copies_utf8(session: Session) -> bool:
    """Whether `insert_rows` writes with COPY here, on a UTF-8 connection: rows may then be
    sent as the UTF-8 bytes the compiled path writes (`copy_encoded`); the driver encodes
    text in the connection's encoding, whatever it is."""
    return _copies(session.connection()) and _driver(session).info.encoding == "utf-8"


def copy_encoded(session: Session, table: Table, names: Sequence[str], text: bytes) -> None:
    """COPY rows already in COPY's text format, UTF-8 (tab-separated `names`, a line each)
    into `table` (only where `copies_utf8`): the audit chain's compiled path writes them so."""
    statement = _copy_statement(table.name, tuple(names))
    with _driver(session).cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(text)


@functools.lru_cache(maxsize=64)
def _copy_statement(table: str, names: tuple[str, ...]) -> bytes:
    """`COPY table (names) FROM STDIN`, composed once per table and columns (psycopg composes
    a `sql.Composed` again on every execution: a few hundred µs a batch of small COPYs).
    Identifiers are quoted without a connection, as for any UTF-8 or ASCII one."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    return statement.as_bytes(None)


class StaleRows(RuntimeError):
    """An `update_rows(..., newer=)` found a stored row as new as the one it was to write:
    another transaction wrote it since this one read it (two sinks on one partition across a
    rebalance). Nothing of the caller's transaction may be kept."""


def written_meanwhile(exc: BaseException) -> bool:
    """Whether `exc` says another transaction wrote some of these rows since this one read
    them: `StaleRows`, or a key inserted first by another (a unique violation, raised by the
    driver under COPY, wrapped by SQLAlchemy elsewhere). Reading again and writing what is
    still missing is then the remedy, not a failure."""
    if isinstance(exc, StaleRows):
        return True
    driver = getattr(exc, "orig", exc)
    if isinstance(driver, psycopg.errors.UniqueViolation):
        return True
    return isinstance(driver, sqlite3.IntegrityError) and "UNIQUE constraint" in str(driver)


def update_rows(
    session: Session,
    table: Table,
    key: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    newer: str | None = None,
) -> None:
    """UPDATE the rows of `table` whose `key` column equals each row's `key` value, setting the
    other columns each row holds (every row the same columns; numbers finite).

    `newer`: a column that only grows (a version); a stored row whose value is not below the
    row's is left alone, and then `StaleRows` is raised. PostgreSQL checks the condition again
    on the committed row when the statement waited for another transaction's lock on it."""
    if not rows:
        return
    connection = session.connection()
    names = [n for n in rows[0] if n != key]
    if not _copies(connection):
        marker = f"_{key}_match"
        statement = update(table).where(table.c[key] == bindparam(marker))
        if newer is not None:
            statement = statement.where(table.c[newer] < bindparam(f"_{newer}_below"))
        params = [
            {
                marker: r[key],
                **({f"_{newer}_below": r[newer]} if newer is not None else {}),
                **{n: r[n] for n in names},
            }
            for r in rows
        ]
        updated = connection.execute(statement, params).rowcount
    else:
        updated = _update_from_document(session, table, key, names, rows, newer)
    if newer is not None and updated != len(rows):
        raise StaleRows(f"{len(rows) - updated} of {len(rows)} {table.name} rows were newer")


def _update_from_document(
    session: Session,
    table: Table,
    key: str,
    names: list[str],
    rows: Sequence[Mapping[str, Any]],
    newer: str | None,
) -> int:
    """`update_rows` on PostgreSQL: one `UPDATE ... FROM json_to_recordset`; the rows it
    updated."""
    connection = session.connection()
    columns = [key, *names]
    encoded = {n for n in columns if isinstance(table.c[n].type, JSON)}  # JSON text in the doc
    document = _document(
        [{n: column_json(r[n]) if n in encoded else r[n] for n in columns} for r in rows]
    )
    dialect = connection.dialect

    def declared(name: str) -> sql.Composable:
        column_type = "TEXT" if name in encoded else table.c[name].type.compile(dialect=dialect)
        return sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(column_type))

    def value(name: str) -> sql.Composable:
        template = "CAST(u.{} AS JSON)" if name in encoded else "u.{}"
        return sql.SQL(template).format(sql.Identifier(name))

    guard: sql.Composable = sql.SQL("")
    if newer is not None:
        guard = sql.SQL(" AND {t}.{n} < u.{n}").format(
            t=sql.Identifier(table.name), n=sql.Identifier(newer)
        )
    query = sql.SQL(
        "UPDATE {t} SET {sets} FROM json_to_recordset(CAST(%s AS JSON)) AS u({declared}) "
        "WHERE {t}.{k} = u.{k}{guard}"
    ).format(
        t=sql.Identifier(table.name),
        sets=sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(n), value(n)) for n in names
        ),
        declared=sql.SQL(", ").join(map(declared, columns)),
        k=sql.Identifier(key),
        guard=guard,
    )
    with _driver(session).cursor() as cursor:
        cursor.execute(query, [document])
        return int(cursor.rowcount)


def _document(value: Any) -> str:
    """One JSON document (datetimes in RFC 3339, enums as their values)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is one: an integer beyond 64 bits, ...
        return json.dumps(value, default=_isoformat)


def _isoformat(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _copies(connection: Connection) -> bool:
    """PostgreSQL through psycopg 3 (COPY and the statements below are written for it)."""
    return connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg"


def _driver(session: Session) -> Any:
    """The psycopg connection under the session's, in its transaction."""
    driver = session.connection().connection.driver_connection
    assert driver is not None, "no open database connection"
    return driver

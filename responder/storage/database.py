"""Database engines and schema migrations (Alembic), for SQLite and PostgreSQL alike.

SQLite gets WAL and `BEGIN IMMEDIATE` transactions so a writer takes the write lock before it
reads (the audit chain appends read-then-write). `upgrade` applies the Alembic migrations that
ship inside the package. JSON columns are written by `column_json` (orjson where it writes what
the standard library would mean) and read by `column_loads` (orjson where it reads what the
standard library would).
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import Any, TypeVar

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event
from sqlmodel import Session, SQLModel, col, create_engine, select

# anything orjson would write in its own way (datetimes, dataclasses, subclasses of str, int,
# dict, list such as a str enum) goes to the standard library instead
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def column_json(value: Any) -> str:
    """The text of a JSON column: the same JSON value as `json.dumps(value)`, faster.

    orjson refuses integers beyond 64 bits, keys that are not strings, lone surrogates and the
    types above, and writes NaN and infinities as `null`: those values take the standard
    library's path, so no value is ever changed on the way in (PostgreSQL refuses NaN there, as
    before). A text holding `null` is read back and compared with `value` (both in C, a few
    times cheaper than the standard library's writer): a NaN that became `null` makes them
    differ (NaN equals neither None nor itself), and so does a tuple, which reads back a list.
    """
    try:
        text = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value)
    if b"null" in text and orjson.loads(text) != value:
        return json.dumps(value)
    return text.decode()


# a run of digits orjson may read as a float (an integer past 64 bits): the standard library's
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def column_loads(text: str | bytes) -> Any:
    """A JSON column's value read back: what `json.loads(text)` gives, faster.

    orjson refuses NaN, infinities, lone surrogates and numbers past a float's range, which the
    standard library reads (a column written before `column_json` existed may hold them), and
    reads an integer past 64 bits as a float: such texts (any run of 19 digits, even inside a
    string) take the standard library's path. A property test holds the two to the same values.
    """
    try:
        raw = text.encode() if isinstance(text, str) else text  # bytes: the driver's
    except UnicodeEncodeError:  # a lone surrogate in the text itself
        return json.loads(text)
    if _LONG_DIGITS.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            json_serializer=column_json,
            json_deserializer=column_loads,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        _sqlite_transactions(engine)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        json_serializer=column_json,
        json_deserializer=column_loads,
    )


def _sqlite_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("responder.storage") / "migrations"))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


class SchemaNotCurrent(ValueError):
    """The database is not at the revision this code writes and reads."""


def require_current(engine: Engine) -> None:
    """`SchemaNotCurrent` unless the database is at this code's head revision: a worker started
    on an older schema would fail every write, and an older worker on a newer one would read
    rows it does not understand (runs count their evidence since 0015, say)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config(engine))
    head, at = scripts.get_current_head(), current_revision(engine)
    if at == head:
        return
    known = at is None or any(rev.revision == at for rev in scripts.walk_revisions())
    if not known:
        raise SchemaNotCurrent(
            f"the database is at revision {at}, newer than this responder knows (it needs "
            f"{head}): run the release that migrated it"
        )
    raise SchemaNotCurrent(
        f"the database is at revision {at or 'none'}, this responder needs {head}: stop every "
        "worker of the older release, run `responder db upgrade`, then start them"
    )


M = TypeVar("M", bound=SQLModel)


def by_id_or_prefix(session: Session, model: type[M], key: str) -> M | None:
    """A row by its full string id or by a unique prefix of it (the CLI shows short ids)."""
    row = session.get(model, key)
    if row is not None:
        return row
    column = col(model.id)  # type: ignore[attr-defined]
    found = session.exec(select(model).where(column.startswith(key, autoescape=True)).limit(2))
    rows = found.all()
    return rows[0] if len(rows) == 1 else None

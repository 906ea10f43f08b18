"""`audit.store.append` stores the same chain through the compiled path and the Python one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from responder.audit import native
from responder.audit.chain import ChainKey
from responder.audit.store import AuditRecord, Keyring, append, use_keys, verify_chain
from responder.storage.database import make_engine, upgrade

T0 = datetime(2026, 11, 25, 9, 0, 0, 654321, tzinfo=UTC)

ENTRIES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("rule:r1", "incident.opened", "inc-1", {"version": 1, "events": ["unit:e1"], "n": None}),
    (
        "analyst:al\tx",
        "incident.updated",
        "inc-\\2\n",
        {"z": 1.25, "a": [True, 2**63 + 5, {"é": 'x\x01"\\'}], "password": "hunter2-secret"},
    ),
    ("playbook:p", "run.created", "run-1", {"token": "xoxb-1234567890-abcdefghij", "m": -0.0}),
]


def stored(db: Engine) -> list[AuditRecord]:
    with Session(db) as session:
        return list(session.exec(select(AuditRecord).order_by(col(AuditRecord.seq))))


def test_both_paths_store_the_same_records_and_the_chain_verifies(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys(db, Keyring(ChainKey("k1", b"a chain key")))
    compiled: list[bool] = []
    chained = native.chained

    def spied(*args: Any, **kwargs: Any) -> native.Chained | None:
        answer = chained(*args, **kwargs)
        compiled.append(answer is not None)
        return answer

    monkeypatch.setattr(native, "chained", spied)
    with Session(db) as session, session.begin():
        assert append(session, ENTRIES, at=T0) == 3
    monkeypatch.setattr(native, "responder_native", None)  # the Python path
    with Session(db) as session, session.begin():
        assert append(session, ENTRIES, at=T0) == 6
    assert compiled == [True, False]
    rows = stored(db)
    with Session(db) as session:
        assert verify_chain(session) == (6, None)
    first, second = rows[:3], rows[3:]
    for a, b in zip(first, second, strict=True):
        assert (a.actor, a.action, a.subject, a.key_id) == (b.actor, b.action, b.subject, "k1")
        assert a.data == b.data and list(a.data) == list(b.data)  # same keys, same order
        assert a.at.replace(tzinfo=None) == b.at.replace(tzinfo=None) == T0.replace(tzinfo=None)
    assert first[1].data["password"] == "***" and first[2].data["token"] == "***"  # masked
    assert first[1].data["a"][1] == 2**63 + 5 and first[1].data["z"] == 1.25
    assert list(first[1].data) == ["z", "a", "password"]


def test_a_batch_the_compiled_path_refuses_is_appended_by_python(db: Engine) -> None:
    entries: list[tuple[str, str, str, dict[str, Any]]] = [
        ("rule:r", "incident.opened", "inc-1", {"v": 1}),
        ("rule:r", "incident.updated", "inc-1", {"when": T0, "pair": (1, 2)}),  # not plain
        ("rule:r", "incident.updated", "inc-1", {"big": 2**70}),  # past 64 bits: json's text
    ]
    with Session(db) as session, session.begin():
        append(session, entries, at=T0)
    rows = stored(db)
    assert [r.data for r in rows] == [{"v": 1}, {"when": str(T0), "pair": [1, 2]}, {"big": 2**70}]
    with Session(db) as session:
        assert verify_chain(session) == (3, None)


def test_a_connection_that_is_not_utf8_gets_the_drivers_encoding(pg_schema_url: str) -> None:
    """The compiled rows are UTF-8 bytes: on a connection in another encoding (PostgreSQL's
    client_encoding) the driver writes the rows (the hashes may still be compiled)."""
    db = make_engine(pg_schema_url)
    upgrade(db)
    use_keys(db, Keyring(ChainKey("k1", b"a chain key")))
    with Session(db) as session, session.begin():
        session.execute(text("SET LOCAL client_encoding TO 'LATIN1'"))
        append(session, [("analyst:é", "incident.updated", "inc-é", {"note": "café", "é": 1})])
    [row] = stored(db)
    assert (row.actor, row.subject, row.data) == ("analyst:é", "inc-é", {"note": "café", "é": 1})
    with Session(db) as session:
        assert verify_chain(session) == (1, None)
    db.dispose()

"""The SQL store on SQLite and PostgreSQL: idempotent incident apply, queries, the audit chain.

Every test taking `db` runs twice (see `tests/conftest.py`): on an embedded SQLite file and on a
fresh PostgreSQL schema, both migrated with Alembic.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Engine, bindparam, func, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from responder import bootstrap
from responder.audit.chain import GENESIS
from responder.audit.store import AuditRecord, append, verify_chain
from responder.cli import app
from responder.incidents.model import IncidentChange
from responder.incidents.store import (
    Applied,
    Incident,
    IncidentEvent,
    apply_changes,
    get_incident,
    incident_events,
    list_incidents,
)
from responder.settings import Settings, merged
from responder.storage.bulk import StaleRows, table_of, update_rows
from responder.storage.database import (
    SchemaNotCurrent,
    alembic_config,
    current_revision,
    make_engine,
    upgrade,
)
from tests.support.tamper import allow_tampering

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
RULE = "leaked-key-then-used"
INC = "3f2a9c1e-0000-5000-8000-000000000001"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body(
    event_id: str,
    minutes: float,
    *,
    source: str = "cloudtrail",
    type: str = "key.used",
    severity: str = "medium",
) -> dict[str, Any]:
    """An event as the stream carries it inside an IncidentChange (SecurityEvent JSON)."""
    return {
        "id": event_id,
        "source": source,
        "type": type,
        "time": rfc3339(at(minutes)),
        "severity": severity,
        "title": f"{type} {event_id}",
        "resource": {"kind": "api_key", "id": "AKIAEXAMPLE"},
        "attributes": {"n": 1},
        "labels": {"env": "prod"},
        "schema_version": "1",
    }


LEAK = body("gl-1", 0, source="gitleaks", type="secret.leaked", severity="high")
USE1 = body("ct-1", 5)
USE2 = body("ct-2", 9)
USE3 = body("ct-3", 12, severity="low")


def change(
    version: int,
    events: list[dict[str, Any]],
    *,
    incident_id: str = INC,
    kind: str = "opened",
    severity: str = "high",
    first: float = 0,
    last: float = 5,
    count: int = 2,
    rule: str = RULE,
) -> IncidentChange:
    return IncidentChange(
        change=kind,
        version=version,
        incident_id=incident_id,
        rule=rule,
        kind="credential_compromise",
        title="Leaked key AKIAEXAMPLE used after exposure",
        severity=severity,
        group={"resource.id": "AKIAEXAMPLE"},
        first_seen=at(first),
        last_seen=at(last),
        event_count=count,
        events=events,
    )


OPENED = change(1, [LEAK, USE1])
ESCALATED = change(2, [USE2], kind="escalated", severity="critical", last=9, count=3)


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def apply(db: Engine, changes: list[IncidentChange]) -> int:
    with Session(db) as s, s.begin():
        return apply_changes(s, changes)


def audit(db: Engine) -> list[AuditRecord]:
    with Session(db) as s:
        return list(s.exec(select(AuditRecord).order_by(col(AuditRecord.seq))).all())


def evidence(db: Engine, incident_id: str = INC) -> list[IncidentEvent]:
    with Session(db) as s:
        return incident_events(s, incident_id)


def incident(db: Engine, incident_id: str = INC) -> Incident:
    with Session(db) as s:
        row = s.get(Incident, incident_id)
        assert row is not None
        return row


def verify(db: Engine) -> tuple[int, Any]:
    with Session(db) as s:
        return verify_chain(s)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> CliRunner:
    monkeypatch.delenv("RESPONDER_LOG_FORMAT", raising=False)
    monkeypatch.setenv("RESPONDER_LOG_LEVEL", "WARNING")
    return CliRunner()


# --- apply_changes ----------------------------------------------------------------------------


def test_apply_creates_incident_evidence_and_audit(db: Engine) -> None:
    assert apply(db, [OPENED]) == 1

    row = incident(db)
    assert row.rule == RULE
    assert row.kind == "credential_compromise"
    assert row.severity == "high"
    assert row.status == "open"
    assert row.group == {"resource.id": "AKIAEXAMPLE"}
    assert utc(row.first_seen) == at(0)
    assert utc(row.last_seen) == at(5)
    assert row.event_count == 2
    assert row.version == 1
    assert row.event_ids == [
        {"source": "gitleaks", "id": "gl-1"},
        {"source": "cloudtrail", "id": "ct-1"},
    ]

    events = evidence(db)
    assert [(e.source, e.event_id, e.position) for e in events] == [
        ("gitleaks", "gl-1", 0),
        ("cloudtrail", "ct-1", 1),
    ]
    assert events[0].type == "secret.leaked"
    assert events[0].severity == "high"
    assert utc(events[1].time) == at(5)
    assert events[0].body == LEAK  # full body as received

    records = audit(db)
    assert len(records) == 1
    record = records[0]
    assert record.seq == 1
    assert record.prev_hash == GENESIS
    assert record.actor == f"rule:{RULE}"
    assert record.action == "incident.opened"
    assert record.subject == INC
    assert record.data["version"] == 1
    assert record.data["severity"] == "high"
    assert record.data["event_count"] == 2
    assert record.data["events"] == row.event_ids
    assert verify(db) == (1, None)


def test_one_audit_record_per_change_in_batch_order(db: Engine) -> None:
    other = change(1, [body("x-1", 1)], incident_id="other-incident", rule="key-used-from-many-ips")
    assert apply(db, [OPENED, other, ESCALATED]) == 3
    records = audit(db)
    assert [(r.seq, r.actor, r.action, r.subject) for r in records] == [
        (1, f"rule:{RULE}", "incident.opened", INC),
        (2, "rule:key-used-from-many-ips", "incident.opened", "other-incident"),
        (3, f"rule:{RULE}", "incident.escalated", INC),
    ]
    assert incident(db).version == 2
    assert len(evidence(db)) == 3
    assert verify(db) == (3, None)


def test_applying_the_same_batch_again_changes_nothing(db: Engine) -> None:
    assert apply(db, [OPENED, ESCALATED]) == 2
    before = incident(db)
    audit_before = [(r.seq, r.hash) for r in audit(db)]

    assert apply(db, [OPENED, ESCALATED]) == 0
    assert apply(db, [OPENED]) == 0  # an older version alone is a redelivery too

    after = incident(db)
    assert after.version == before.version == 2
    assert after.severity == "critical"
    assert after.event_ids == before.event_ids
    assert utc(after.updated_at) == utc(before.updated_at)
    assert [(r.seq, r.hash) for r in audit(db)] == audit_before
    assert len(evidence(db)) == 3
    assert verify(db) == (2, None)


def test_a_later_version_updates_the_incident_and_appends_evidence(db: Engine) -> None:
    apply(db, [OPENED])
    assert apply(db, [OPENED, ESCALATED]) == 1  # redelivered v1 skipped, v2 applied

    row = incident(db)
    assert row.version == 2
    assert row.severity == "critical"
    assert utc(row.last_seen) == at(9)
    assert utc(row.first_seen) == at(0)
    assert row.event_count == 3
    assert [r["id"] for r in row.event_ids] == ["gl-1", "ct-1", "ct-2"]
    assert [(e.event_id, e.position) for e in evidence(db)] == [
        ("gl-1", 0),
        ("ct-1", 1),
        ("ct-2", 2),
    ]

    records = audit(db)
    assert [r.action for r in records] == ["incident.opened", "incident.escalated"]
    assert records[1].data["events"] == [{"source": "cloudtrail", "id": "ct-2"}]
    assert records[1].data["severity"] == "critical"
    assert records[1].prev_hash == records[0].hash
    assert verify(db) == (2, None)


def test_events_already_held_are_not_duplicated(db: Engine) -> None:
    apply(db, [OPENED])
    # v2 repeats ct-1 (and the leak) next to the new ct-3
    overlapping = change(2, [USE1, LEAK, USE3], kind="updated", last=12, count=3)
    assert apply(db, [overlapping]) == 1
    assert [(e.event_id, e.position) for e in evidence(db)] == [
        ("gl-1", 0),
        ("ct-1", 1),
        ("ct-3", 2),
    ]
    assert [r["id"] for r in incident(db).event_ids] == ["gl-1", "ct-1", "ct-3"]
    assert audit(db)[-1].data["events"] == [{"source": "cloudtrail", "id": "ct-3"}]


def test_an_incident_keeps_its_first_events_as_evidence_and_counts_the_rest(
    db: Engine,
) -> None:
    """Past `max_evidence`, events still count (event_count, last_seen) but are not stored;
    each change's audit record names those it did not keep (once each, whatever the change
    repeats); a change in the same batch as the one that filled it, a redelivery and a repeat
    of a kept event store nothing more."""
    flood = [body(f"f-{i}", 10 + i) for i in range(7)]

    def refs(*names: str) -> list[dict[str, str]]:
        return [{"source": "cloudtrail", "id": name} for name in names]

    with Session(db) as s, s.begin():
        applied = apply_changes(
            s,
            [
                OPENED,  # gl-1, ct-1: 2 of 4
                change(2, [flood[0], USE1, flood[1], flood[2]], kind="updated", last=12, count=5),
                change(3, [*flood[3:], flood[3]], kind="updated", last=16, count=9),
            ],
            max_evidence=4,
        )
    assert applied == 3
    assert [e.event_id for e in evidence(db)] == ["gl-1", "ct-1", "f-0", "f-1"]
    assert [e.position for e in evidence(db)] == [0, 1, 2, 3]
    row = incident(db)
    assert [r["id"] for r in row.event_ids] == ["gl-1", "ct-1", "f-0", "f-1"]
    assert (row.event_count, utc(row.last_seen), row.version) == (9, at(16), 3)
    records = [r.data for r in audit(db) if r.action.startswith("incident.")]
    assert [r.get("not_kept") for r in records] == [  # ct-1 is held; f-3 is repeated
        None,
        refs("f-2"),
        refs("f-3", "f-4", "f-5", "f-6"),
    ]
    assert [len(r["events"]) for r in records] == [2, 2, 0]

    with Session(db) as s, s.begin():  # a redelivery, then a kept event again and a new one
        again = change(4, [LEAK, body("f-9", 30)], kind="updated", last=30, count=10)
        assert apply_changes(s, [change(3, flood[3:], kind="updated")], max_evidence=4) == 0
        assert apply_changes(s, [again], max_evidence=4) == 1
    assert len(evidence(db)) == 4
    assert audit(db)[-1].data["not_kept"] == refs("f-9") and audit(db)[-1].data["events"] == []
    assert incident(db).event_count == 10


def test_a_version_gap_is_still_applied(db: Engine) -> None:
    # at-least-once with compaction may skip versions: the newer state wins
    apply(db, [OPENED])
    assert apply(db, [change(5, [USE3], kind="updated", last=12, count=3)]) == 1
    assert incident(db).version == 5
    assert apply(db, [ESCALATED]) == 0  # v2 arrives late: older than what we hold


# --- queries ----------------------------------------------------------------------------------


def seed_three(db: Engine) -> None:
    apply(
        db,
        [
            change(1, [body("a", 0)], incident_id="abc-111", severity="high", first=0),
            change(1, [body("b", 10)], incident_id="abd-222", severity="critical", first=10),
            change(1, [body("c", 20)], incident_id="xyz-333", severity="high", first=20),
        ],
    )
    with Session(db) as s, s.begin():
        row = s.get(Incident, "abd-222")
        assert row is not None
        row.status = "acknowledged"


def test_list_incidents_filters_and_orders_newest_first(db: Engine) -> None:
    seed_three(db)
    with Session(db) as s:
        assert [r.id for r in list_incidents(s)] == ["xyz-333", "abd-222", "abc-111"]
        assert [r.id for r in list_incidents(s, status="open")] == ["xyz-333", "abc-111"]
        assert [r.id for r in list_incidents(s, status="acknowledged")] == ["abd-222"]
        assert [r.id for r in list_incidents(s, severity="high")] == ["xyz-333", "abc-111"]
        assert [r.id for r in list_incidents(s, severity="critical")] == ["abd-222"]
        assert list_incidents(s, status="open", severity="critical") == []
        assert list_incidents(s, status="resolved") == []
        assert [r.id for r in list_incidents(s, limit=1)] == ["xyz-333"]
        assert [r.id for r in list_incidents(s, status="open", limit=1)] == ["xyz-333"]


def test_get_incident_by_id_or_unique_prefix(db: Engine) -> None:
    seed_three(db)
    with Session(db) as s:
        assert get_incident(s, "abc-111") is not None
        assert get_incident(s, "abc-111").id == "abc-111"  # type: ignore[union-attr]
        found = get_incident(s, "abc")
        assert found is not None
        assert found.id == "abc-111"
        found = get_incident(s, "x")
        assert found is not None
        assert found.id == "xyz-333"
        assert get_incident(s, "ab") is None  # ambiguous
        assert get_incident(s, "nope") is None
        assert get_incident(s, "abc-1111") is None


# --- audit chain in SQL -----------------------------------------------------------------------


def tamper_data(db: Engine, seq: int, data: dict[str, Any]) -> None:
    """Rewrite one audit record's data behind the store's back."""
    update = text("UPDATE audit_log SET data = :data WHERE seq = :seq").bindparams(
        bindparam("data", type_=JSON)
    )
    with pytest.raises(DBAPIError, match="append-only"), db.begin() as conn:
        conn.execute(update, {"data": data, "seq": seq})
    with pytest.raises(DBAPIError, match="append-only"), db.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = :seq"), {"seq": seq})
    assert verify(db)[1] is None  # both refused, on SQLite and PostgreSQL: nothing changed
    allow_tampering(db)
    with db.begin() as conn:
        assert conn.execute(update, {"data": data, "seq": seq}).rowcount == 1


def test_verify_chain_names_the_first_tampered_record(db: Engine) -> None:
    apply(db, [OPENED, ESCALATED, change(1, [body("z", 1)], incident_id="other")])
    assert verify(db) == (3, None)
    original = audit(db)[1].data

    tamper_data(db, 2, {**original, "severity": "low"})

    count, broken = verify(db)
    assert broken is not None
    assert broken.seq == 2
    assert count == 2
    assert "hash does not match" in broken.reason


def test_verify_chain_names_a_deleted_record(db: Engine) -> None:
    with Session(db) as s, s.begin():
        append(s, [("user:a", "test.x", f"s{i}", {"i": i}) for i in range(5)])
    allow_tampering(db)
    with db.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    count, broken = verify(db)
    assert count == 3
    assert broken is not None
    assert broken.seq == 4
    assert "sequence gap: expected 3" in broken.reason


def test_audit_verify_command(
    db: Engine, db_url: str, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    apply(db, [OPENED, ESCALATED])

    ok = cli.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "OK: 2 audit records, hash chain intact" in ok.stdout

    tamper_data(db, 1, {"forged": True})

    bad = cli.invoke(app, ["audit", "verify"])
    assert bad.exit_code == 1, bad.output
    assert "BROKEN at record 1" in bad.stdout
    assert "hash does not match" in bad.stdout
    assert "OK:" not in bad.stdout


def test_audit_verify_on_an_empty_log(
    db: Engine, db_url: str, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    result = cli.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "OK: 0 audit records" in result.stdout


def test_concurrent_appenders_keep_one_chain(db: Engine) -> None:
    threads, per_thread, batch = 2, 50, 2
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(0, per_thread, batch):
                with Session(db) as s, s.begin():
                    append(
                        s,
                        [
                            (f"thread:{n}", "test.append", f"t{n}-{j:03d}", {"n": n, "j": j})
                            for j in range(i, i + batch)
                        ],
                    )
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers)
    assert errors == []

    assert verify(db) == (threads * per_thread, None)
    records = audit(db)
    assert [r.seq for r in records] == list(range(1, threads * per_thread + 1))
    with Session(db) as s:
        distinct = s.exec(select(func.count(func.distinct(AuditRecord.seq)))).one()
    assert distinct == threads * per_thread
    for n in range(threads):
        mine = [r for r in records if r.actor == f"thread:{n}"]
        assert [r.data["j"] for r in mine] == list(range(per_thread))  # each writer in order
        # a transaction's records are contiguous: nobody slipped in between
        for first, second in zip(mine[::batch], mine[1::batch], strict=True):
            assert second.seq == first.seq + 1


# --- migrations -------------------------------------------------------------------------------


def test_db_upgrade_command_on_a_fresh_database(
    db_url: str, cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    engine = make_engine(db_url)
    try:
        head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        assert head is not None
        assert current_revision(engine) is None

        result = cli.invoke(app, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert f"database at revision {head}" in result.stdout
        assert current_revision(engine) == head
        tables = set(inspect(engine).get_table_names())
        assert {"incidents", "incident_events", "audit_log", "alembic_version"} <= tables

        again = cli.invoke(app, ["db", "upgrade"])  # idempotent
        assert again.exit_code == 0, again.output
        assert f"database at revision {head}" in again.stdout
    finally:
        engine.dispose()
    if db_url.startswith("sqlite"):
        assert (tmp_path / "responder.db").is_file()


def test_a_worker_refuses_a_database_at_another_revision(
    pg_schema_url: str, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL (not migrated on first use) a worker started on an older schema would fail
    every write, an older worker on a newer one misread it: both refuse to start, saying what to
    do; at the head revision the database is taken."""
    monkeypatch.setenv("RESPONDER_DATABASE__URL", pg_schema_url)
    engine = make_engine(pg_schema_url)
    try:
        upgrade(engine, "0014")
        older = cli.invoke(app, ["worker", "--stages", "sink", "--processes", "1"])
        assert older.exit_code != 0
        assert "at revision 0014, this responder needs" in older.output
        assert "responder db upgrade" in older.output
        listed = subprocess.run(  # any other command: one line, no traceback
            [sys.executable, "-m", "responder", "incidents", "list"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "RESPONDER_DATABASE__URL": pg_schema_url},
        )
        assert listed.returncode == 1 and "Traceback" not in listed.stderr
        assert listed.stderr.startswith("Error: the database is at revision 0014")
        upgrade(engine)
        settings = merged(Settings(), {"database": {"url": pg_schema_url}})
        bootstrap.database(settings).dispose()  # current: taken
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        newer = cli.invoke(app, ["worker", "--stages", "sink", "--processes", "1"])
        assert newer.exit_code != 0 and "newer than this responder knows" in newer.output
        with pytest.raises(SchemaNotCurrent):
            bootstrap.database(settings)
        assert current_revision(engine) == "9999"  # nothing was changed by the refusals
    finally:
        engine.dispose()


def test_an_anchor_detects_deleted_newest_records(
    db: Engine, db_url: str, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain alone cannot see its tail cut off; a head written down elsewhere can."""
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    apply(db, [OPENED, ESCALATED])
    anchor = cli.invoke(app, ["audit", "head"]).stdout.strip()
    assert anchor.startswith("2:") and len(anchor) == 2 + 64
    held = cli.invoke(app, ["audit", "verify", "--anchor", anchor])
    assert held.exit_code == 0 and "anchor holds" in held.stdout

    allow_tampering(db)
    with db.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    assert cli.invoke(app, ["audit", "verify"]).exit_code == 0  # the chain alone is fooled
    cut = cli.invoke(app, ["audit", "verify", "--anchor", anchor])
    assert cut.exit_code == 1
    assert "record 2 is gone: the log was truncated" in cut.stdout
    bad = cli.invoke(app, ["audit", "verify", "--anchor", "2:nothex"])
    assert bad.exit_code == 1 and "SEQ:HASH" in bad.output


def test_incident_rows_leave_room_for_their_next_version_on_postgresql(
    pg_schema_url: str,
) -> None:
    """Updated incident rows stay on their page (HOT: no index entry per version): the table's
    fillfactor is 70 on PostgreSQL, and a downgrade puts the default back."""
    engine = make_engine(pg_schema_url)
    options = "SELECT reloptions FROM pg_class WHERE oid = 'incidents'::regclass"
    try:
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql(options).scalar() == ["fillfactor=70"]
        command.downgrade(alembic_config(engine), "0013")
        with engine.connect() as conn:
            assert conn.exec_driver_sql(options).scalar() is None
    finally:
        engine.dispose()


# --- two sinks on one incident ----------------------------------------------------------------


def test_an_update_of_an_incident_stored_newer_meanwhile_is_refused(db: Engine) -> None:
    """`update_rows(..., newer="version")` writes a row only over an older version; a stored
    row as new or newer raises (the sink then stores change by change, reading again)."""
    apply(db, [OPENED, ESCALATED])
    table = table_of(Incident)
    stale = [{"id": INC, "version": 2, "title": "x"}]
    with (
        Session(db) as s,
        s.begin(),
        pytest.raises(StaleRows, match="1 of 1 incidents rows were newer"),
    ):
        update_rows(s, table, "id", stale, newer="version")
    with Session(db) as s, s.begin():
        update_rows(s, table, "id", [{"id": INC, "version": 3, "title": "y"}], newer="version")
    assert (incident(db).version, incident(db).title) == (3, "y")


def test_a_change_two_sinks_store_at_once_is_applied_and_audited_once(
    pg_schema_url: str,
) -> None:
    """Across a rebalance the old owner of a partition may still be storing a batch that the
    new one stores too. The second reads the incident before the first commits, then waits for
    the first's lock on the row; it must not write the change again nor audit it twice (here a
    change with no new evidence, whose rows would not collide)."""
    engine = make_engine(pg_schema_url)
    upgrade(engine)
    try:
        apply(engine, [OPENED])
        again = change(2, [], kind="updated", last=9, count=2)  # nothing new to insert
        holding, release = threading.Event(), threading.Event()
        outcome: list[str] = []

        def hold(session: Session, applied: list[Applied]) -> None:  # the first sink, writes done
            holding.set()
            release.wait(30)

        def first() -> None:
            with Session(engine) as s, s.begin():
                apply_changes(s, [again], hold)

        pid: list[int] = []

        def second() -> None:
            try:
                with Session(engine) as s, s.begin():
                    pid.append(s.execute(text("SELECT pg_backend_pid()")).scalar_one())
                    apply_changes(s, [again])
                outcome.append("stored")
            except StaleRows:
                outcome.append("refused")

        one = threading.Thread(target=first)
        one.start()
        two = threading.Thread(target=second)
        try:
            assert holding.wait(30)
            two.start()
            # the second has read version 1 and waits on the first's row lock
            assert waits_on_a_lock(engine, pid, 30)
        finally:
            release.set()
            one.join(30)
            if two.ident is not None:
                two.join(30)
        assert outcome == ["refused"]
        updates = [a for a in audit(engine) if a.action == "incident.updated"]
        assert [a.data["version"] for a in updates] == [2]
        assert incident(engine).version == 2
        assert apply(engine, [again]) == 0  # stored again change by change: already there
    finally:
        engine.dispose()


def waits_on_a_lock(engine: Engine, pid: list[int], within_s: float) -> bool:
    """Whether the session `pid` (once known) waits on a lock another holds, within
    `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if pid:
            with engine.connect() as conn:
                blocked = text("SELECT cardinality(pg_blocking_pids(:pid)) > 0")
                if conn.execute(blocked, {"pid": pid[0]}).scalar():
                    return True
        time.sleep(0.02)
    return False

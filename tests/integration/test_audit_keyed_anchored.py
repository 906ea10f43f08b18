"""An audit trail a database writer cannot rewrite (issue 8, item 5), on SQLite and PostgreSQL:
records are HMAC'd with a key the database never holds, so appended or re-chained records made
with plain INSERTs are named by `audit verify`; anchors of the head, in a file and on a real
Kafka topic, catch truncation and re-chaining; a database that does not exist is refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session
from typer.testing import CliRunner, Result

from responder.audit.anchors import Anchor
from responder.audit.chain import GENESIS, ChainKey, Entry, canonical, link
from responder.audit.store import Keyring, append, head, use_keys
from responder.cli import app
from responder.settings import AuditSettings, KafkaSettings
from responder.streams.anchors import AnchorStage, read_topic
from tests.support.tamper import allow_tampering

pytestmark = pytest.mark.integration

KEY = "test-chain-key-0123456789abcdefghijklmnop"
T = TypeVar("T")


@pytest.fixture
def keyed(
    db: Engine,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> Engine:
    """The test's database with the chain key in use, and the CLI's environment pointing at
    it with the same key and an anchor file."""
    use_keys(db, Keyring(ChainKey("k1", KEY.encode())))
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    monkeypatch.setenv("RESPONDER_AUDIT__KEY", KEY)
    monkeypatch.setenv("RESPONDER_AUDIT__ANCHOR_FILE", str(tmp_path / "anchors.jsonl"))
    return db


def write(db: Engine, n: int, start: int = 0) -> None:
    with Session(db) as session, session.begin():
        append(
            session,
            [("analyst:alice", "note", f"inc-{i}", {"i": i}) for i in range(start, start + n)],
        )


def verify(*extra: str) -> Result:
    return CliRunner().invoke(app, ["audit", "verify", *extra])


def flat(result: Result) -> str:
    return " ".join(result.output.split())


def insert_raw(db: Engine, entry: Entry, prev: str, digest: str, key_id: str | None) -> None:
    """What a database writer without the key can do: a plain INSERT."""
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (seq, at, actor, action, subject, data, prev_hash, hash,"
                " key_id) VALUES (:seq, :at, :actor, :action, :subject, :data, :prev, :hash,"
                " :key_id)"
            ),
            {"seq": entry.seq, "at": entry.at, "actor": entry.actor, "action": entry.action,
             "subject": entry.subject, "data": json.dumps(entry.data), "prev": prev,
             "hash": digest, "key_id": key_id},
        )  # fmt: skip


def forged_entry(seq: int) -> Entry:
    return Entry(seq, datetime.now(UTC), "analyst:mallory", "kill_switch.off", "switch", {})


def test_keyed_records_verify_and_carry_their_key_id(keyed: Engine) -> None:
    write(keyed, 5)
    result = verify()
    assert result.exit_code == 0, result.output
    assert "OK: 5 audit records, hash chain intact" in flat(result)
    assert "unkeyed" not in result.output
    with keyed.connect() as conn:
        assert {row[0] for row in conn.execute(text("SELECT key_id FROM audit_log"))} == {"k1"}


def test_a_record_appended_with_a_plain_insert_is_detected(keyed: Engine) -> None:
    """Without the key the writer can only compute the old unkeyed hash, or guess."""
    write(keyed, 3)
    top = head_of(keyed)
    forged = forged_entry(top[0] + 1)
    insert_raw(keyed, forged, top[1], link(top[1], forged), None)  # legacy-shaped
    result = verify()
    assert result.exit_code == 1
    assert "BROKEN at record 4: an unkeyed record after keyed ones" in flat(result)


def test_a_record_claiming_the_key_id_without_the_key_is_detected(keyed: Engine) -> None:
    write(keyed, 3)
    top = head_of(keyed)
    forged = forged_entry(top[0] + 1)
    guess = hashlib.sha256((top[1] + canonical(forged)).encode()).hexdigest()
    insert_raw(keyed, forged, top[1], guess, "k1")
    result = verify()
    assert result.exit_code == 1
    assert "BROKEN at record 4: hash does not match the record's content" in flat(result)


def test_a_rechained_log_is_detected_by_its_anchor(keyed: Engine, tmp_path: Path) -> None:
    """A database owner drops the triggers, deletes everything and writes a chain of their own
    (unkeyed: it verifies as a legacy chain); the anchor taken earlier no longer holds."""
    write(keyed, 4)
    stage = AnchorStage(
        keyed,
        AuditSettings(anchor_topic=None, anchor_file=tmp_path / "anchors.jsonl"),
        KafkaSettings(),
    )
    anchored = run(stage.anchor_once())
    assert anchored is not None and anchored.seq == 4
    allow_tampering(keyed)
    with keyed.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))
    prev = GENESIS
    for seq in range(1, 5):
        forged = forged_entry(seq)
        digest = link(prev, forged)
        insert_raw(keyed, forged, prev, digest, None)
        prev = digest
    result = verify()
    assert result.exit_code == 1
    assert "record 4 no longer has the anchored hash: the chain was re-chained" in flat(result)


def test_truncation_after_an_anchor_is_detected(keyed: Engine, tmp_path: Path) -> None:
    write(keyed, 6)
    stage = AnchorStage(
        keyed,
        AuditSettings(anchor_topic=None, anchor_file=tmp_path / "anchors.jsonl"),
        KafkaSettings(),
    )
    assert run(stage.anchor_once()) is not None
    assert run(stage.anchor_once()) is None  # the head did not move: nothing new to anchor
    write(keyed, 2, start=6)
    ok = verify()
    assert ok.exit_code == 0, ok.output
    assert "newest at record 6; 2 records after it are not anchored yet" in flat(ok)
    allow_tampering(keyed)
    with keyed.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq >= 5"))
    result = verify()
    assert result.exit_code == 1
    assert "record 6 is gone: the log was truncated after the anchor was taken" in flat(result)


def test_garbage_in_the_anchor_file_is_counted_not_trusted(keyed: Engine, tmp_path: Path) -> None:
    write(keyed, 2)
    (tmp_path / "anchors.jsonl").write_text('not json\n{"seq": 1, "hash": "zz", "at": "x"}\n')
    result = verify()
    assert result.exit_code == 0, result.output
    assert "0 checked, none written yet; 2 entries were not anchors" in flat(result)


def test_unkeyed_legacy_records_verify_with_a_note(
    db: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    """Records from before keys (or a deployment without one) still verify, and say so."""
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    write(db, 3)  # no keys for this engine: legacy SHA-256
    monkeypatch.setenv("RESPONDER_AUDIT__KEY", KEY)
    use_keys(db, Keyring(ChainKey("k1", KEY.encode())))
    write(db, 2, start=3)
    result = verify()
    assert result.exit_code == 0, result.output
    assert "OK: 5 audit records" in flat(result)
    assert "note: 3 records are unkeyed (legacy SHA-256)" in flat(result)


def test_rotated_keys_keep_verifying_old_records(
    db: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    old, new = "old-key-" + "x" * 32, "new-key-" + "y" * 32
    use_keys(db, Keyring(ChainKey("k1", old.encode())))
    write(db, 2)
    use_keys(db, Keyring(ChainKey("k2", new.encode()), (ChainKey("k1", old.encode()),)))
    write(db, 2, start=2)
    monkeypatch.setenv("RESPONDER_AUDIT__KEY", new)
    monkeypatch.setenv("RESPONDER_AUDIT__KEY_ID", "k2")
    assert verify().exit_code == 1  # k1 is unknown to this verifier
    assert "hashed with chain key 'k1', which is not configured" in flat(verify())
    monkeypatch.setenv("RESPONDER_AUDIT__OLD_KEYS", json.dumps({"k1": old}))
    assert verify().exit_code == 0


def test_verify_refuses_a_database_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    missing = tmp_path / "typo.db"
    monkeypatch.setenv("RESPONDER_DATABASE__URL", f"sqlite:///{missing}")
    result = verify()
    assert result.exit_code == 1
    assert "no database at" in flat(result) and "nothing to verify" in flat(result)
    assert not missing.exists()  # and none was created
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    monkeypatch.setenv("RESPONDER_DATABASE__URL", f"sqlite:///{empty}")
    result = verify()
    assert result.exit_code == 1
    assert "no audit log" in flat(result)


@pytest.fixture
def kafka(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka_bootstrap)


def test_the_worker_anchors_to_kafka_and_verify_reads_them(
    keyed: Engine, kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"responder.audit-anchors-test-{uuid.uuid4().hex[:8]}"
    write(keyed, 3)
    stage = AnchorStage(keyed, AuditSettings(anchor_topic=topic), kafka)

    async def anchor_twice() -> tuple[Anchor | None, Anchor | None]:
        await stage.start()
        try:
            first = await stage.anchor_once()
            write(keyed, 2, start=3)
            return first, await stage.anchor_once()
        finally:
            await stage.stop()

    first, second = run(anchor_twice())
    assert first is not None and second is not None
    anchors, skipped = run(read_topic(kafka, topic))
    assert [(a.seq, a.hash) for a in anchors] == [(3, first.hash), (5, second.hash)]
    assert skipped == 0
    monkeypatch.setenv("RESPONDER_AUDIT__ANCHOR_TOPIC", topic)
    monkeypatch.setenv("RESPONDER_KAFKA__BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.delenv("RESPONDER_AUDIT__ANCHOR_FILE")
    result = verify("--kafka-anchors")
    assert result.exit_code == 0, result.output
    assert f"anchors ({topic}): 2 checked, newest at record 5" in flat(result)
    allow_tampering(keyed)
    with keyed.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 5"))
    result = verify("--kafka-anchors")
    assert result.exit_code == 1
    assert "record 5 is gone: the log was truncated" in flat(result)


def head_of(db: Engine) -> tuple[int, str]:
    with Session(db) as session:
        top = head(session)
    assert top is not None
    return top


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)

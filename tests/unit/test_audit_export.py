"""Signed audit exports, offline: an export verifies with the signer's public key, and a record
edited, removed, reordered or appended afterwards is each detected, as is a forged signature."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from responder.audit import export as X
from responder.audit.chain import GENESIS, Entry, link

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
KEY, PUBLIC = X.generate_key()


def chain(n: int, start: int = 1) -> list[tuple[Entry, str, str]]:
    """Records `start`..`start + n - 1` of a chain (the part before `start` is made and left
    out, as an export `--since` leaves it out)."""
    out: list[tuple[Entry, str, str]] = []
    prev = GENESIS
    for seq in range(1, start + n):
        entry = Entry(
            seq=seq,
            at=T0 + timedelta(seconds=seq),
            actor="rule:r",
            action="incident.opened",
            subject=f"inc-{seq}",
            data={"version": seq, "title": "Ünïcode ✓"},
        )
        digest = link(prev, entry)
        if seq >= start:
            out.append((entry, prev, digest))
        prev = digest
    return out


def exported(n: int = 5, start: int = 3, key: bytes = KEY) -> list[str]:
    return list(
        X.export_lines(
            chain(n, start),
            key=X.load_private_key(key),
            exported_at=T0 + timedelta(days=1),
            since=T0 + timedelta(seconds=start),
        )
    )


def check(lines: list[str], public: bytes = PUBLIC) -> X.ExportCheck:
    return X.verify_export(lines, X.load_public_key(public))


def test_an_export_verifies_with_the_signers_public_key() -> None:
    """Records with their chain, then a signature over the statement of the head."""
    lines = exported()
    result = check(lines)
    assert result.ok, result.problems
    assert result.count == 5
    statement = json.loads(lines[-1])["signature"]["statement"]
    assert statement["first_seq"] == 3 and statement["count"] == 5
    assert statement["head"] == {"seq": 7, "hash": json.loads(lines[-2])["hash"]}
    assert statement["anchor"] == json.loads(lines[0])["prev_hash"] != GENESIS


def test_an_edited_record_is_detected() -> None:
    """Changing a record's content breaks its hash."""
    lines = exported()
    record = json.loads(lines[2])
    record["data"]["title"] = "nothing happened"
    lines[2] = json.dumps(record)
    result = check(lines)
    assert result.problems == ["record 5: its hash does not match its content (edited)"]


def test_an_edited_record_with_recomputed_hashes_is_detected() -> None:
    """Rehashing the rest of the export after an edit no longer reaches the signed head."""
    lines = exported()
    records = [json.loads(line) for line in lines[:-1]]
    records[2]["data"]["title"] = "nothing happened"
    for i in range(2, len(records)):
        if i > 2:
            records[i]["prev_hash"] = records[i - 1]["hash"]
        entry = X._entry(records[i])
        records[i]["hash"] = link(records[i]["prev_hash"], entry)
    result = check([json.dumps(r) for r in records] + lines[-1:])
    assert len(result.problems) == 1
    assert result.problems[0].startswith("the last record is {'seq': 7")


def test_a_removed_record_is_detected() -> None:
    """A record taken out of the middle leaves a gap and a broken link."""
    lines = exported()
    del lines[2]
    result = check(lines)
    assert result.problems == [
        "record 6: follows record 4 (removed or reordered records)",
        "record 6: does not link to the record before it",
        "4 records, the signed statement says 5",
    ]


def test_removed_first_and_last_records_are_detected() -> None:
    """The signed first record and head catch removals at either end."""
    first = check(exported()[1:])
    assert "record 4: the export was signed starting at record 3" in first.problems
    assert "record 4: does not link to the signed anchor" in first.problems
    lines = exported()
    last = check(lines[:-2] + lines[-1:])
    assert any(p.startswith("the last record is {'seq': 6") for p in last.problems)


def test_reordered_records_are_detected() -> None:
    """Two records swapped are out of sequence and out of chain."""
    lines = exported()
    lines[1], lines[2] = lines[2], lines[1]
    result = check(lines)
    assert "record 5: follows record 3 (removed or reordered records)" in result.problems
    assert "record 4: follows record 5 (removed or reordered records)" in result.problems
    assert not result.ok


def test_an_appended_record_is_detected() -> None:
    """A record added after the signed head, even one correctly chained, is refused."""
    lines = exported()
    last = json.loads(lines[-2])
    entry = Entry(8, T0 + timedelta(seconds=8), "analyst:mallory", "incident.update", "inc-8", {})
    extra = X.record_json(entry, last["hash"], link(last["hash"], entry))
    result = check([*lines[:-1], json.dumps(extra), lines[-1]])
    assert result.problems == [
        f"the last record is {{'seq': 8, 'hash': '{extra['hash']}'}}, the signed head is "
        f"{{'seq': 7, 'hash': '{last['hash']}'}} (records removed from or appended to the end)",
        "6 records, the signed statement says 5",
    ]
    after = check([*lines, json.dumps(extra)])
    assert after.problems == ["line 7: a record after the signature"]


def test_a_statement_changed_to_fit_is_refused_by_the_signature() -> None:
    """Moving the signed head to cover an edit invalidates the signature."""
    lines = exported()
    signature = json.loads(lines[-1])
    signature["signature"]["statement"]["count"] = 4
    result = check([*lines[:-2], json.dumps(signature)])
    assert any("signature does not verify" in p for p in result.problems)


def test_another_key_does_not_verify() -> None:
    """An export signed by someone else's key fails with ours."""
    other, _ = X.generate_key()
    result = check(exported(key=other))
    assert result.problems == [
        "the signature does not verify with this public key: the export was altered or "
        "signed by another key"
    ]


def test_an_export_without_its_signature_is_incomplete() -> None:
    """A truncated export (no signature line) does not verify."""
    assert check(exported()[:-1]).problems == ["no signature line: the export is incomplete"]


def test_an_empty_export_is_signed_too() -> None:
    """No records since the given time: the statement says so and verifies."""
    lines = list(X.export_lines([], key=X.load_private_key(KEY), exported_at=T0))
    result = check(lines)
    assert result.ok and result.count == 0 and result.head is None


def test_keys_are_ed25519_pem_and_may_be_encrypted() -> None:
    """An encrypted private key needs its passphrase; other key types are refused."""
    private, public = X.generate_key(b"correct horse")
    assert X.load_private_key(private, b"correct horse")
    with pytest.raises(X.BadKey):
        X.load_private_key(private, b"wrong")
    with pytest.raises(X.BadKey):
        X.load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    assert len(X.key_sha256(X.load_public_key(public))) == 64

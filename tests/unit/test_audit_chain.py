"""The audit chain's arithmetic: a chain verifies; any change, deletion or reordering is named."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from responder.audit.chain import GENESIS, Entry, canonical, hashed_fields, link, verify

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

Record = tuple[Entry, str, str]


def entries(n: int) -> list[Entry]:
    return [
        Entry(
            seq=i,
            at=T0 + timedelta(seconds=i, microseconds=i),
            actor=f"rule:r{i % 3}",
            action="incident.opened" if i % 2 else "incident.updated",
            subject=f"inc-{i:04d}",
            data={"version": i, "events": [{"source": "unit", "id": f"e{i}"}], "n": None},
        )
        for i in range(1, n + 1)
    ]


def chain(items: list[Entry]) -> list[Record]:
    """(entry, prev_hash, hash) triples as `responder.audit.store.append` writes them."""
    out: list[Record] = []
    prev = GENESIS
    for entry in items:
        digest = link(prev, entry)
        out.append((entry, prev, digest))
        prev = digest
    return out


def with_entry(records: list[Record], index: int, **changes: Any) -> list[Record]:
    """A copy where the entry at `index` is changed but its stored hashes are not."""
    copy = list(records)
    entry, prev, digest = copy[index]
    copy[index] = (dataclasses.replace(entry, **changes), prev, digest)
    return copy


def test_a_chain_verifies_and_counts_every_record() -> None:
    records = chain(entries(10))
    assert verify(records) == (10, None)
    assert verify(iter(records)) == (10, None)  # a one-pass iterator is enough


def test_an_empty_chain_verifies() -> None:
    assert verify([]) == (0, None)


def test_first_record_links_to_genesis() -> None:
    records = chain(entries(3))
    assert GENESIS == "0" * 64
    assert records[0][1] == GENESIS
    assert records[0][2] == link(GENESIS, records[0][0])
    # every later record links to the hash of the one before it
    assert records[1][1] == records[0][2]
    assert records[2][1] == records[1][2]


def test_first_record_not_linked_to_genesis_is_named() -> None:
    first = entries(1)[0]
    other_prev = "f" * 64
    count, broken = verify([(first, other_prev, link(other_prev, first))])
    assert count == 1
    assert broken is not None
    assert broken.seq == 1
    assert "prev_hash" in broken.reason


def test_chain_must_start_at_seq_1() -> None:
    # a chain rebuilt from seq 2 (head cut off, then re-hashed from GENESIS) is still caught
    records = chain([dataclasses.replace(e, seq=e.seq + 1) for e in entries(3)])
    count, broken = verify(records)
    assert count == 1
    assert broken is not None
    assert broken.seq == 2
    assert broken.reason == "sequence gap: expected 1"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor", "rule:someone-else"),
        ("action", "incident.resolved"),
        ("subject", "inc-9999"),
        ("data", {"version": 5, "events": [{"source": "unit", "id": "e5"}], "n": None, "x": 1}),
        ("data", {"version": 5, "events": [{"source": "unit", "id": "FORGED"}], "n": None}),
        ("data", {}),
        ("at", T0 + timedelta(seconds=5, microseconds=6)),  # one microsecond later
        ("at", T0 + timedelta(days=-1)),
    ],
)
def test_changing_a_field_of_a_middle_record_names_it(field: str, value: Any) -> None:
    records = chain(entries(9))
    tampered = with_entry(records, 4, **{field: value})  # seq 5
    count, broken = verify(tampered)
    assert broken is not None
    assert broken.seq == 5
    assert count == 5
    assert broken.reason == "hash does not match the record's content"


def test_changing_seq_of_a_middle_record_names_it() -> None:
    records = chain(entries(5))
    tampered = with_entry(records, 2, seq=7)
    _, broken = verify(tampered)
    assert broken is not None
    assert broken.seq == 7
    assert "sequence gap: expected 3" in broken.reason


def test_rehashing_a_changed_record_is_caught_at_the_next_link() -> None:
    records = chain(entries(6))
    entry, prev, _ = records[2]
    forged = dataclasses.replace(entry, actor="user:mallory")
    records[2] = (forged, prev, link(prev, forged))  # self-consistent, but the next link breaks
    count, broken = verify(records)
    assert broken is not None
    assert broken.seq == 4
    assert count == 4
    assert "prev_hash" in broken.reason


def test_changing_a_stored_hash_is_named() -> None:
    records = chain(entries(4))
    entry, prev, _ = records[1]
    records[1] = (entry, prev, "a" * 64)
    _, broken = verify(records)
    assert broken is not None
    assert broken.seq == 2
    assert broken.reason == "hash does not match the record's content"


@pytest.mark.parametrize("index", [0, 3, 7])
def test_deleting_a_record_names_the_gap(index: int) -> None:
    records = chain(entries(9))
    del records[index]
    count, broken = verify(records)
    assert broken is not None
    deleted_seq = index + 1
    assert broken.seq == deleted_seq + 1  # the record after the hole
    assert broken.reason == f"sequence gap: expected {deleted_seq}"
    assert count == index + 1


def test_deleting_and_renumbering_is_caught_by_the_hashes() -> None:
    records = chain(entries(6))
    del records[2]  # seq 3
    renumbered = [
        (dataclasses.replace(e, seq=i), prev, digest)
        for i, (e, prev, digest) in enumerate(records, start=1)
    ]
    _, broken = verify(renumbered)
    assert broken is not None
    assert broken.seq == 3


def test_reordering_two_records_is_named() -> None:
    records = chain(entries(8))
    records[3], records[4] = records[4], records[3]  # seq 4 and 5 swapped
    count, broken = verify(records)
    assert broken is not None
    assert broken.seq == 5
    assert broken.reason == "sequence gap: expected 4"
    assert count == 4


def test_reordering_contents_under_the_original_seqs_is_named() -> None:
    # swap what records 4 and 5 say but keep seq numbers and stored hashes in place
    records = chain(entries(8))
    e4, p4, h4 = records[3]
    e5, p5, h5 = records[4]
    records[3] = (dataclasses.replace(e5, seq=4), p4, h4)
    records[4] = (dataclasses.replace(e4, seq=5), p5, h5)
    _, broken = verify(records)
    assert broken is not None
    assert broken.seq == 4
    assert broken.reason == "hash does not match the record's content"


def test_hash_depends_on_prev_hash() -> None:
    entry = entries(1)[0]
    assert link(GENESIS, entry) != link("1" * 64, entry)
    assert len(link(GENESIS, entry)) == 64


def test_canonical_form_is_independent_of_key_order_and_timezone() -> None:
    # the database may return JSON keys in another order and times in another zone
    entry = entries(1)[0]
    reordered = dataclasses.replace(entry, data=dict(reversed(list(entry.data.items()))))
    shifted = dataclasses.replace(entry, at=entry.at.astimezone(timezone(timedelta(hours=5))))
    assert canonical(reordered) == canonical(entry)
    assert canonical(shifted) == canonical(entry)
    assert link(GENESIS, shifted) == link(GENESIS, entry)
    # but the instant itself is hashed with microseconds
    assert entry.at.astimezone(UTC).isoformat(timespec="microseconds") in canonical(entry)


def reference_canonical(entry: Entry) -> str:
    """The canonical form as the chain has always written it (the standard library)."""
    return json.dumps(
        hashed_fields(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


plain_text = st.text(
    st.characters(codec=None, exclude_categories=()) | st.sampled_from('\x00\x1f\x7f\u2028"\\\n')
)
plain_json = st.recursive(
    st.none() | st.booleans() | st.integers() | plain_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(plain_text, inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(plain_text, plain_json, max_size=6), plain_text, st.integers(1, 2**40))
@example({"big": 2**70, "f": 1e16, "when": T0}, "x", 1)  # json's path: orjson differs or refuses
@example({"lone": "\ud800"}, "s", 2)
def test_the_canonical_form_is_the_standard_librarys_byte_for_byte(
    data: dict[str, Any], subject: str, seq: int
) -> None:
    """Records hashed before the fast path still verify, and new ones hash the same text."""
    entry = Entry(seq, T0, "rule:r", "incident.opened", subject, data)
    assert canonical(entry) == reference_canonical(entry)

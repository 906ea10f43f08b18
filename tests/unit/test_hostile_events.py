"""Hostile events: what the validator refuses so later stages never fail on an accepted event.

One contract, three implementations: the model (`parse_event`, used by replay), the worker's
fast path (`parse_event_doc`) and the whole ingest handling of a record (`IngestBatch`). The
property test at the end holds them to the same verdict on hostile input.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responder.correlation.engine import route
from responder.correlation.replay import replay
from responder.correlation.rules import RuleSet
from responder.events.fast import ParsedEvent, parse_event_doc
from responder.events.limits import LATEST_TS
from responder.events.schema import MAX_EVENT_BYTES, Rejection, event_to_dict, parse_event
from responder.streams.ingest_batch import DeadLetter, IngestBatch
from responder.streams.records import decode
from tests.support.builders import rule
from tests.support.hostile import hostile_events

RULES = RuleSet(
    [
        rule(id="every", match={"type|exists": True}, group_by=["resource.id"], window="1h"),
        rule(
            id="by-value",
            match={"type|exists": True},
            group_by=["attributes.g"],
            window="1h",
            correlation={"type": "value_count", "condition": {"field": "attributes.n", "gte": 2}},
        ),
    ]
)


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "e-1",
        "source": "scanner",
        "type": "secret.leaked",
        "time": "2026-11-25T09:00:00Z",
        "severity": "high",
        "title": "a title",
        "resource": {"kind": "api_key", "id": "AKIA1"},
        "attributes": {"n": 1},
    }
    base.update(overrides)
    return base


def raw(**overrides: Any) -> bytes:
    return json.dumps(doc(**overrides)).encode()


def with_number(token: str) -> bytes:
    """An event whose attribute `n` is the JSON number `token`, written as it is."""
    return raw(attributes={"n": "NUMBER"}).replace(b'"NUMBER"', token.encode())


def verdicts(data: bytes) -> tuple[Rejection | ParsedEvent, list[DeadLetter]]:
    """The model's verdict, checked to be the fast path's and the ingest batch's too."""
    slow = parse_event(data)
    fast = parse_event_doc(data)
    dead = IngestBatch(RULES, 4).handle([data]).dead
    if isinstance(slow, Rejection):
        assert fast == slow
        assert dead == [DeadLetter(0, slow.reason, slow.detail)]
        return slow, dead
    assert isinstance(fast, tuple)
    assert fast[0] == event_to_dict(slow)
    assert dead == []
    return fast, dead


def refused(data: bytes) -> Rejection:
    verdict, _ = verdicts(data)
    assert isinstance(verdict, Rejection), f"accepted: {data[:200]!r}"
    return verdict


def accepted(data: bytes) -> ParsedEvent:
    verdict, _ = verdicts(data)
    assert isinstance(verdict, tuple), verdict
    return verdict


# --- integers orjson cannot write ------------------------------------------------------------


@pytest.mark.parametrize("token", ["18446744073709551616", "-9223372036854775809", "9" * 40])
def test_integers_beyond_64_bits_are_refused(token: str) -> None:
    """An integer orjson cannot serialize is a rejection, not a crash in routing."""
    reason = refused(with_number(token)).reason
    assert "attributes" in reason and "64-bit range" in reason


@pytest.mark.parametrize("token", ["18446744073709551615", "-9223372036854775808"])
def test_64_bit_boundary_integers_travel(token: str) -> None:
    """The unsigned maximum and the signed minimum are valid and reach the correlation topic."""
    parsed = accepted(with_number(token))
    assert orjson.loads(parsed[2])["attributes"]["n"] == int(token)


def test_huge_integer_in_actor_extras_is_refused() -> None:
    """Actor extras are free-form too: the same limits hold there."""
    data = raw(actor={"id": "u", "count": 2**64})
    assert "actor" in refused(data).reason


# --- non-finite numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["1e999", "-1e999", "1E400", "NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused_by_both_paths(token: str) -> None:
    """`1e999` overflows to infinity; fast path and model both refuse it (they used to differ)."""
    assert "finite number" in refused(with_number(token)).reason


def test_large_and_tiny_finite_numbers_are_fine() -> None:
    """1e308 and an underflow to 0.0 are ordinary floats."""
    assert orjson.loads(accepted(with_number("1e308"))[2])["attributes"]["n"] == 1e308
    assert orjson.loads(accepted(with_number("1e-400"))[2])["attributes"]["n"] == 0.0


def test_explicit_null_attributes_are_kept() -> None:
    """A null attribute is a value (it only takes the model path)."""
    assert accepted(raw(attributes={"n": None}))[0]["attributes"] == {"n": None}


# --- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "time",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59.5Z"],
)
def test_times_that_overflow_in_utc_or_as_epoch_are_refused(time: str) -> None:
    """Year 1 or 9999 with an offset used to make `parse_event` raise; now it is a reason."""
    assert "time" in refused(raw(time=time)).reason


def test_the_extreme_valid_times_survive_the_epoch_round_trip() -> None:
    """The first and last whole seconds of the range travel and convert back."""
    for time in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00-01:00"):
        parsed = accepted(raw(time=time))
        assert datetime.fromtimestamp(parsed[1], UTC).year in (1, 9999)
    assert accepted(raw(time="9999-12-31T23:59:59Z"))[1] == LATEST_TS


@pytest.mark.parametrize(
    "time",
    [
        1764061200,
        1764061200.5,
        "1764061200",
        "2026-11-25T09:00Z",
        "2026-11-25 09:00:00Z",
        "2026-11-25T09:00:00+0100",
        "2026-11-25T09:00:00",
        None,
    ],
)
def test_time_must_be_an_rfc3339_string_with_offset(time: object) -> None:
    """Epoch numbers, numeric strings and non-RFC 3339 shapes are refused, saying why."""
    reason = refused(raw(time=time)).reason
    assert "time" in reason
    assert "RFC 3339" in reason or "required" in reason


def test_rfc3339_variants_are_accepted() -> None:
    """Lower-case t/z, nanosecond fractions and -00:00 are RFC 3339."""
    for time in (
        "2026-11-25t09:00:00z",
        "2026-11-25T09:00:00.123456789Z",
        "2026-11-25T09:00:00-00:00",
    ):
        assert accepted(raw(time=time))[0]["time"].startswith("2026-11-25T09:00:00")


# --- duplicate keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b'{"id": "a", ' + raw()[1:],
        raw(resource={"kind": "k", "id": "RESOURCE"}).replace(b'"RESOURCE"', b'"r1", "id": "r2"'),
        raw(attributes={"n": "X"}).replace(b'"X"', b'{"k": 1, "k": 2}'),
        raw(attributes={"n": "X"}).replace(b'"X"', b'{"k": 1, "\\u006b": 2}'),
    ],
    ids=["top-level", "nested", "in-attributes", "escaped"],
)
def test_duplicate_keys_are_refused(data: bytes) -> None:
    """Parsers disagree on which duplicate wins, so none does."""
    assert "duplicate key" in refused(data).reason


def test_escaped_quote_does_not_hide_a_duplicate_key() -> None:
    """The fast path counts quotes; an escaped quote plus a duplicate must not cancel out."""
    data = b'{"title": "t", ' + raw(attributes={"s": "X"}).replace(b'"X"', b'"\\u0022\\u0022"')[1:]
    assert "duplicate key" in refused(data).reason


# --- text --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    ["two\nlines", "cr\rhere", "\x1b[31mred", "bell\x07", "c1\x85x", "a\u2028b", "a\u2029b"],
)
def test_titles_are_one_line_without_control_characters(title: str) -> None:
    """A title is one line: newlines, escapes and other control characters are refused."""
    assert "title" in refused(raw(title=title)).reason


def test_markup_in_titles_is_text_not_an_error() -> None:
    """Rich markup is ordinary text at the edge (the CLI escapes it on display)."""
    assert accepted(raw(title="[/oops] [link=https://x]y[/link]"))[0]["title"].startswith("[/")


@pytest.mark.parametrize("where", ["id", "source", "resource", "attributes", "labels", "actor"])
def test_nul_characters_are_refused_anywhere(where: str) -> None:
    """PostgreSQL cannot store NUL: an event holding one is refused at the edge."""
    values: dict[str, Any] = {
        "id": "a\x00b",
        "source": "a\x00b",
        "resource": {"kind": "k", "id": "a\x00b"},
        "attributes": {"nested": ["ok", {"deep": "a\x00b"}]},
        "labels": {"env": "a\x00b"},
        "actor": {"id": "a", "ua": "a\x00b"},
    }
    assert "NUL" in refused(raw(**{where: values[where]})).reason


def test_escaped_backslash_u0000_is_not_nul() -> None:
    """`\\\\u0000` is a backslash and five letters, which is fine."""
    data = raw(attributes={"s": "X"}).replace(b'"X"', b'"\\\\u0000"')
    assert accepted(data)[0]["attributes"]["s"] == "\\u0000"


# --- size and depth ----------------------------------------------------------------------------


def test_event_that_grows_over_the_limit_once_normalized_is_refused() -> None:
    """`1e9` is 3 bytes sent and 12 written: the normalized body must fit the limit too."""
    data = with_number("[" + ",".join(["1e9"] * 100_000) + "]")
    assert len(data) < MAX_EVENT_BYTES
    assert "too large once normalized" in refused(data).reason


def test_deep_nesting_is_refused_as_invalid_json() -> None:
    """The JSON parser's depth limit holds on both paths."""
    assert refused(with_number("[" * 5000 + "]" * 5000)).reason == "invalid JSON"


# --- replay ------------------------------------------------------------------------------------


def test_replay_reports_hostile_lines_with_their_numbers_and_goes_on() -> None:
    """Replay used to end in a traceback on these lines; now each is a numbered rejection."""
    lines = [
        raw(id="ok-1"),
        with_number("18446744073709551616"),
        raw(time="0001-01-01T00:00:00+01:00"),
        raw(time="9999-12-31T23:59:59-01:00"),
        with_number("1e999"),
        b'{"id": "x", ' + raw()[1:],
        raw(id="ok-2", time="2026-11-25T09:01:00Z"),
    ]
    result = replay(lines, RULES)
    assert [number for number, _ in result.rejected] == [2, 3, 4, 5, 6]
    assert result.read == 7
    assert sum(len(i.events) for i in result.incidents if i.rule == "every") == 2


# --- the differential property -----------------------------------------------------------------


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_events())
def test_model_fast_path_ingest_and_replay_agree_on_hostile_input(data: bytes) -> None:
    """Same verdict everywhere; an accepted event reaches the correlation topic intact."""
    slow = parse_event(data)
    fast = parse_event_doc(data)
    outcome = IngestBatch(RULES, 4).handle([data])
    replayed = replay([data], RULES)
    assert outcome.redone is None  # the validator left nothing for the fallback to catch
    if isinstance(slow, Rejection):
        assert fast == slow
        assert outcome.dead == [DeadLetter(0, slow.reason, slow.detail)]
        assert outcome.messages == {}
        assert replayed.rejected == [(1, slow.reason)]
        return
    expected = event_to_dict(slow)
    assert isinstance(fast, tuple)
    doc, time, body = fast
    assert (doc, time) == (expected, slow.time.timestamp())
    assert orjson.loads(body) == expected
    assert outcome.dead == [] and replayed.rejected == []
    records = [r for values in outcome.messages.values() for v in values for r in decode(v)]
    assert len(records) == outcome.records == len(route(RULES, expected))
    for _, event in records:
        assert event.raw is not None and orjson.loads(event.raw) == expected
        assert event.time == time
        datetime.fromtimestamp(event.time, UTC)  # the correlation stage's conversion holds


def test_replay_reports_a_line_the_engine_fails_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: an engine error on one line is that line's rejection, not a traceback."""
    from responder.correlation.engine import Correlator

    real = Correlator.process

    def process(self: Correlator, doc: dict[str, Any], time: float, lineage: Any = None) -> Any:
        if doc["id"] == "boom":
            raise KeyError("group")
        return real(self, doc, time, lineage)

    monkeypatch.setattr(Correlator, "process", process)
    result = replay([raw(id="a"), raw(id="boom"), raw(id="c")], RULES)
    assert result.rejected == [(2, "replay failed: KeyError: 'group'")]
    assert result.read == 3 and result.incidents


# --- bounded fuzzing -----------------------------------------------------------------------------

VALID_LINE = raw(actor={"id": "u", "ip": "203.0.113.7"}, labels={"env": "prod"})


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A valid event line with random bytes flipped, cut, inserted or repeated."""
    data = bytearray(VALID_LINE)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        if action == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 20))]
        elif action == "insert":
            data[at:at] = draw(st.binary(max_size=8))
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 30))]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.one_of(mutated_lines(), st.binary(max_size=200)))
def test_mutated_bytes_never_raise_and_get_one_verdict(data: bytes) -> None:
    """Arbitrary bytes: the model, the fast path and the ingest batch agree, and none raises."""
    verdicts(data)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.one_of(hostile_events(), mutated_lines()), min_size=1, max_size=8))
def test_a_batch_dead_letters_exactly_the_records_the_model_refuses(batch: list[bytes]) -> None:
    """Mixed batches: the refused records are dead-lettered by position, the rest routed."""
    outcome = IngestBatch(RULES, 4).handle(batch)
    refused_at = [i for i, data in enumerate(batch) if isinstance(parse_event(data), Rejection)]
    assert [d.index for d in outcome.dead] == refused_at
    accepted_docs = [
        event_to_dict(e) for e in map(parse_event, batch) if not isinstance(e, Rejection)
    ]
    assert outcome.records == sum(len(route(RULES, doc)) for doc in accepted_docs)

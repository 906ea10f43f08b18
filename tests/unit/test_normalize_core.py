"""The rules every converter shares: ids, times, bounds, secrets, detection, and clean rejections."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responder.events.normalize import FORMATS, Context, Rejected, convert, detect, run
from responder.events.normalize.core import (
    MAX_ITEMS,
    MAX_KEYS,
    MAX_TEXT,
    Draft,
    Skipped,
    bounded,
    finish,
    parse_time,
    stable_id,
)
from responder.events.normalize.reading import walk
from responder.events.normalize.secret import redacted, scrub
from responder.events.schema import SecurityEvent, parse_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reports"
WHEN = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CONTEXT = Context(labels={"env": "prod"}, asset="fraud-scorer", time=WHEN)

# one fixture per format: what `--format auto` must recognise
SAMPLES = {
    "trivy": "trivy/trivy.scan1.json",
    "grype": "grype/grype.json",
    "osv-scanner": "osv-scanner/osv-scanner.json",
    "pip-audit": "pip-audit/pip-audit.json",
    "sarif": "sarif/bandit.scan1.sarif",
    "bandit": "bandit/bandit.scan1.json",
    "gitleaks": "gitleaks/gitleaks.json",
    "trufflehog": "trufflehog/trufflehog.jsonl",
    "detect-secrets": "detect-secrets/detect-secrets.json",
    "modelscan": "modelscan/modelscan.json",
    "picklescan": "picklescan/picklescan.txt",
    "falco": "falco/falco.jsonl",
    "cloudtrail": "cloudtrail/cloudtrail.json",
    "k8s-audit": "k8s-audit/k8s-audit.jsonl",
    "presidio": "presidio/presidio.jsonl",
    "evidently": "evidently/evidently.json",
    "great-expectations": "great-expectations/great-expectations.json",
    "garak": "garak/garak.report.jsonl",
    "cloudevents": "cloudevents/cloudevents.json",
    "ocsf": "ocsf/ocsf.json",
    "securityevent": "securityevent/securityevent.jsonl",
}


def draft(**fields: Any) -> Draft:
    base: dict[str, Any] = {
        "key": ("target", "rule"),
        "type": "vulnerability.found",
        "severity": "high",
        "title": "a finding",
        "resource": {"kind": "image", "id": "img"},
        "time": WHEN,
    }
    base.update(fields)
    return Draft(**base)


def test_every_format_has_a_sample_fixture() -> None:
    """Each registered format is exercised by a fixture in tests/fixtures/reports."""
    assert set(SAMPLES) == set(FORMATS)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_auto_detects_each_format_from_its_first_bytes(name: str) -> None:
    """`--format auto` picks the right converter for every sample report."""
    head = (FIXTURES / SAMPLES[name]).read_bytes()[:65536]
    found = detect(head)
    assert found is not None and found.name == name


def test_unknown_report_is_one_clean_rejection() -> None:
    """Bytes no format recognises give one rejection naming the formats."""
    [out] = list(convert(io.BytesIO(b"hello, world\n")))
    assert isinstance(out, Rejected) and out.reason == "unknown report format"
    assert "trivy" in out.detail[0]


def test_unknown_format_name_is_rejected() -> None:
    """A misspelt --format is a rejection, not an exception."""
    [out] = list(convert(io.BytesIO(b"{}"), "trivvy"))
    assert isinstance(out, Rejected) and "trivvy" in out.reason


def test_stable_id_depends_on_source_and_parts_only() -> None:
    """Ids are a function of tool and finding: equal inputs, equal ids; any change, a new id."""
    assert stable_id("trivy", "img", "CVE-1") == stable_id("trivy", "img", "CVE-1")
    assert stable_id("trivy", "img", "CVE-1") != stable_id("grype", "img", "CVE-1")
    assert stable_id("trivy", "img", "CVE-1") != stable_id("trivy", "img", "CVE-2")


def test_tool_names_become_safe_sources() -> None:
    """A tool's self-reported name is cut to a short, plain source name."""
    from responder.events.normalize.core import slug

    assert slug("Semgrep OSS", "sarif") == "semgrep-oss"
    assert slug("  ", "sarif") == "sarif"
    assert len(slug("x/../<script>" * 20, "sarif")) <= 64
    assert set(slug("Evil\nName\u0000!", "s")) <= set("abcdefghijklmnopqrstuvwxyz0123456789._-")


def test_finish_makes_a_valid_event_with_the_callers_labels_and_asset() -> None:
    """A draft becomes a SecurityEvent dict: id hashed, labels merged (caller wins), asset kept."""
    event = finish(draft(labels={"env": "dev", "team": "ml"}), CONTEXT, "trivy")
    assert isinstance(event, dict)
    assert event["id"] == stable_id("trivy", "target", "rule")
    assert event["labels"] == {"env": "prod", "team": "ml"}
    assert event["attributes"]["asset"] == "fraud-scorer"
    assert event["time"] == "2026-11-25T09:00:00Z"
    assert isinstance(parse_event(orjson.dumps(event)), SecurityEvent)


def test_time_falls_back_to_the_callers_and_says_so() -> None:
    """No time in the report: the caller's time, marked `time_source: caller`."""
    event = finish(draft(time=None), CONTEXT, "pip-audit")
    assert isinstance(event, dict)
    assert event["time"] == "2026-11-25T09:00:00Z"
    assert event["attributes"]["time_source"] == "caller"


def test_no_time_anywhere_is_a_rejection_not_the_wall_clock() -> None:
    """Without a report time or a caller's time the finding is rejected."""
    out = finish(draft(time=None), Context(), "pip-audit")
    assert isinstance(out, Rejected) and out.reason.startswith("no time")


def test_times_with_offsets_are_kept_naive_times_only_when_documented_utc() -> None:
    """RFC 3339 with nanoseconds parses; a naive time is None unless the format says UTC."""
    assert parse_time("2026-11-25T08:45:12.482913845Z") == datetime(
        2026, 11, 25, 8, 45, 12, 482913, tzinfo=UTC
    )
    assert parse_time("2026-11-25T09:51:46.428521") is None
    assert parse_time("2026-11-25T09:51:46.428521", naive_is_utc=True) == datetime(
        2026, 11, 25, 9, 51, 46, 428521, tzinfo=UTC
    )
    assert parse_time("yesterday") is None
    assert parse_time(1795598411) is None


def test_attributes_are_bounded() -> None:
    """Long strings, many keys, long lists and deep nesting are cut."""
    big = {
        "text": "x" * (MAX_TEXT + 10),
        "many": {f"k{i}": i for i in range(MAX_KEYS + 5)},
        "list": list(range(MAX_ITEMS + 5)),
        "deep": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}},
    }
    out = bounded(big)
    assert len(out["text"]) < MAX_TEXT + 40 and out["text"].endswith("[+10 chars]")
    assert len(out["many"]) == MAX_KEYS + 1
    assert len(out["list"]) == MAX_ITEMS + 1
    assert "nested too deep" in str(out["deep"])


def test_secrets_are_scrubbed_from_every_string_keys_included() -> None:
    """A secret echoed anywhere in a draft leaves only its redacted form."""
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    event = finish(
        draft(
            title=f"found {secret}",
            attributes={"note": f"value={secret}", secret: "as a key"},
            secrets=(secret,),
        ),
        CONTEXT,
        "gitleaks",
    )
    assert isinstance(event, dict)
    assert secret not in orjson.dumps(event).decode()
    assert redacted(secret) in event["title"]
    assert scrub({"a": ["x"]}, ["ab"]) == {"a": ["x"]}


def test_walk_builds_only_the_asked_paths() -> None:
    """The streaming reader yields the items and kept scalars, nothing else."""
    doc = b'{"A": 1, "Big": {"x": [1, 2]}, "Items": [{"n": 1}, {"n": 2}], "B": "b"}'
    found = list(walk(io.BytesIO(doc), ("Items.item",), ("A", "B")))
    assert found == [("A", 1), ("Items.item", {"n": 1}), ("Items.item", {"n": 2}), ("B", "b")]


def test_malformed_json_midway_keeps_the_events_before_it() -> None:
    """A report cut off midway yields the findings read so far and one rejection."""
    raw = (FIXTURES / SAMPLES["trivy"]).read_bytes()
    cut = raw[: raw.index(b"CVE-2024-56201")]
    outputs = list(convert(io.BytesIO(cut), "trivy", CONTEXT))
    assert sum(isinstance(o, dict) for o in outputs) == 4
    assert isinstance(outputs[-1], Rejected) and outputs[-1].reason == "unreadable trivy report"
    assert "CVE" not in outputs[-1].detail[0]  # the parser's message, not the input


# --- arbitrary input never raises ----------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)


def _check(outputs: list[Any]) -> None:
    for out in outputs:
        if isinstance(out, dict):
            assert isinstance(parse_event(orjson.dumps(out)), SecurityEvent)
        else:
            assert isinstance(out, Rejected | Skipped)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(value=json_values, lines=st.booleans())
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_arbitrary_json_is_converted_or_cleanly_rejected(
    name: str, value: Any, lines: bool
) -> None:
    """Any JSON document (or JSON Lines) fed to any converter yields events or rejections only."""
    raw = orjson.dumps(value)
    if lines:
        raw = raw + b"\n" + raw + b"\n"
    _check(list(run(FORMATS[name], io.BytesIO(raw), CONTEXT)))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            found += _paths(v, (*prefix, i))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _documents(name: str) -> tuple[list[Any], bool]:
    raw = (FIXTURES / SAMPLES[name]).read_bytes()
    try:
        return [orjson.loads(raw)], False
    except orjson.JSONDecodeError:
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()], True


MUTABLE = sorted(n for n in FORMATS if n != "picklescan")


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data(), replacement=json_values)
@pytest.mark.parametrize("name", MUTABLE)
def test_a_fixture_with_any_part_replaced_never_raises(
    name: str, data: st.DataObject, replacement: Any
) -> None:
    """Each real report, with any field or subtree swapped for arbitrary JSON, converts cleanly."""
    documents, is_lines = _documents(name)
    index = data.draw(st.integers(0, len(documents) - 1))
    path = data.draw(st.sampled_from(_paths(documents[index])))
    documents[index] = _replace(documents[index], path, replacement)
    raw = b"\n".join(orjson.dumps(d) for d in documents) if is_lines else orjson.dumps(documents[0])
    _check(list(run(FORMATS[name], io.BytesIO(raw), CONTEXT)))


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=300))
def test_arbitrary_text_through_the_text_format_never_raises(text: str) -> None:
    """picklescan output is text: any text yields events, skips or rejections."""
    _check(list(run(FORMATS["picklescan"], io.BytesIO(text.encode()), CONTEXT)))


@settings(max_examples=40, deadline=None)
@given(raw=st.binary(max_size=200))
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_arbitrary_bytes_never_raise(name: str, raw: bytes) -> None:
    """Not even valid UTF-8 or JSON: still only clean rejections."""
    _check(list(run(FORMATS[name], io.BytesIO(raw), CONTEXT)))


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"SchemaVersion": 2, "ArtifactName": "x", "Results": [{"Vulnerabilities": ['
        + b"[" * 100_000,
    ],
    ids=["deep-list", "deep-object", "deep-inside-an-item"],
)
@pytest.mark.parametrize("name", ["trivy", "gitleaks", "cloudtrail", "ocsf", "sarif"])
def test_deep_nesting_is_refused_in_bounded_memory(name: str, raw: bytes) -> None:
    """A small report nested 100,000 levels deep is one rejection, not gigabytes of paths."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outputs = list(run(FORMATS[name], io.BytesIO(raw), CONTEXT))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert all(isinstance(o, Rejected) for o in outputs)
    assert grown_mb < 200


def test_a_report_that_mentions_specversion_is_not_a_cloudevent() -> None:
    """Detection looks at the shape, not at a word: a Trivy report quoting it stays Trivy."""
    raw = (
        (FIXTURES / SAMPLES["trivy"])
        .read_bytes()
        .replace(b"xz: malicious code", b'xz: \\"specversion\\": \\"1.0\\" malicious code', 1)
    )
    found = detect(raw[:65536])
    assert found is not None and found.name == "trivy"

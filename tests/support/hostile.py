"""Hypothesis strategies for hostile SecurityEvent documents, as the raw bytes a producer sends.

A valid event is drawn first, then up to three hostile changes are made to it, some on the
JSON text itself (a literal `1e999`, a duplicate key, an escape, deep nesting), because
`json.dumps` cannot write those. Most results are invalid; some stay valid (markup, 64-bit
boundary integers, `1e308`, year 1 in UTC), and those must travel through everything.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from responder.events.schema import MAX_EVENT_BYTES

_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12).filter(
    lambda t: t.strip() != ""
)

NUMBERS = [
    "1e999",
    "-1e999",
    "1E400",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e308",
    "1e-400",
    "-0",
    "-0.0",
    "18446744073709551615",  # 2**64 - 1: the largest integer orjson writes
    "18446744073709551616",
    "-9223372036854775808",  # -2**63: the smallest
    "-9223372036854775809",
    "1" * 400,
    "1" * 400 + ".5",
    "1" * 5000,
]
TIMES: list[Any] = [
    "0001-01-01T00:00:00+01:00",  # UTC conversion overflows
    "0001-01-01T00:00:00-01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.5Z",
    "9999-12-31T23:59:59.000001Z",
    "2026-11-25T09:00:00.123456789Z",
    "2026-11-25t09:00:00z",
    "2026-11-25T09:00:00-00:00",
    "2026-11-25T09:00:00+23:59",
    "2026-11-25T09:00:00+24:00",
    "2026-11-25T09:00Z",  # no seconds
    "2026-11-25 09:00:00Z",
    "2026-11-25T09:00:00+0100",
    "2026-11-25T09:00:00",  # naive
    "2026-02-30T09:00:00Z",
    "1764061200",
    "1764061200.5",
    1764061200,
    1764061200.5,
    None,
    True,
]
TEXTS = [
    "[/oops]",
    "[link=https://evil.example]click[/link]",
    "[bold red]alert",
    "\\",
    "two\nlines",
    "tab\there",
    "\x1b[31mred\x1b[0m",
    "\x1b]8;;https://evil.example\x07link\x1b]8;;\x07",
    "bell\x07",
    "nul\x00byte",
    "c1\x85next\x9bline",
    "line\u2028separator",
    "para\u2029graph",
    "bidi\u202egnp.exe",
    "zero\u200bwidth",
    "emoji 🙂 :warning:",
    "  padded  ",
    "",
    " ",
    "x" * 513,
    "x" * 1025,
]
# Raw JSON values, written into the text as they are.
RAW_VALUES = [
    '"a\\u0022b"',  # an escaped quote
    '"\\u0000"',  # NUL
    '"\\\\u0000"',  # a backslash and the letters u0000: not NUL
    '"\\u001b[31m"',
    '"\\ud83d\\ude42"',  # a surrogate pair: one emoji
    '"\\ud800"',  # a lone surrogate
    '{"k": 1, "k": 2}',  # duplicate keys, nested
    '{"k": 1, "\\u006b": 2}',  # the same key, once escaped
    '{"a": {"b": 1, "b": 1}}',
    "[" * 150 + "]" * 150,
    "[" * 199 + "]" * 199,
    "[" * 200 + "]" * 200,
    "[" * 5000 + "]" * 5000,
    '{"a":' * 180 + "1" + "}" * 180,
]
TOP_LEVEL_DUPLICATES = ['"id": "other"', '"severity": "info"', '"title": "t"', '"x": 1']
SENTINEL = "\x01sentinel-{}\x01"


def _inflating_array() -> str:
    """Under 1 MiB as sent, over 1 MiB once orjson writes each `1e9` as `1000000000.0`."""
    return "[" + ",".join(["1e9"] * 100_000) + "]"


@st.composite
def base_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": draw(_text),
        "source": draw(_text),
        "type": draw(st.sampled_from(["key.used", "a.b.c", "model.unsafe_file"])),
        "time": draw(st.sampled_from(["2026-11-25T09:00:00Z", "2026-11-25T10:30:00+01:30"])),
        "severity": draw(st.sampled_from(["info", "low", "medium", "high", "critical"])),
        "title": draw(_text),
        "resource": {"kind": draw(_text), "id": draw(_text)},
        "attributes": {"g": draw(_text), "n": draw(st.integers(-(2**70), 2**70))},
    }
    if draw(st.booleans()):
        doc["actor"] = {"id": draw(_text), "ip": "203.0.113.7", "ua": draw(_text)}
    if draw(st.booleans()):
        doc["labels"] = {"env": draw(_text)}
    return doc


@st.composite
def hostile_events(draw: st.DrawFn) -> bytes:
    """The bytes of one event document with up to three hostile changes."""
    doc = draw(base_documents())
    raw_values: dict[str, str] = {}

    def raw_value(text: str) -> str:
        sentinel = SENTINEL.format(len(raw_values))
        raw_values[sentinel] = text
        return sentinel

    prefix = ""
    for _ in range(draw(st.integers(0, 3))):
        change = draw(  # the costly `size` change (documents near 1 MiB) is the rarest
            st.sampled_from(
                ["number", "time", "text", "raw", "duplicate", "markup-resource"] * 2 + ["size"]
            )
        )
        if change == "number":
            doc["attributes"][draw(st.sampled_from(["n", "m"]))] = raw_value(
                draw(st.sampled_from(NUMBERS))
            )
        elif change == "time":
            doc["time"] = draw(st.sampled_from(TIMES))
        elif change in ("text", "markup-resource"):
            where = draw(
                st.sampled_from(
                    ["title", "id", "source", "resource.id", "attributes.g", "labels.env", "actor"]
                )
            )
            text = draw(st.sampled_from(TEXTS))
            if where == "actor":
                doc["actor"] = {"id": "a", "ua": text}
            elif "." in where:
                outer, inner = where.split(".")
                doc.setdefault(outer, {})[inner] = text
            else:
                doc[where] = text
        elif change == "raw":
            doc["attributes"][draw(st.sampled_from(["g", "r"]))] = raw_value(
                draw(st.sampled_from(RAW_VALUES))
            )
        elif change == "duplicate":
            prefix = draw(st.sampled_from(TOP_LEVEL_DUPLICATES)) + ", "
        elif change == "size":
            size = draw(st.sampled_from(["blob", "limit", "over", "inflate"]))
            if size == "inflate":
                doc["attributes"]["big"] = raw_value(_inflating_array())
            else:
                base = len(json.dumps(doc).encode())
                room = MAX_EVENT_BYTES - base - len('"blob": "", ') - 64
                length = {"blob": 5000, "limit": room, "over": room + 200}[size]
                doc["attributes"]["blob"] = "x" * max(length, 0)
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    for sentinel, value in raw_values.items():
        text = text.replace(json.dumps(sentinel, ensure_ascii=False), value)
        text = text.replace(json.dumps(sentinel), value)
    if prefix:
        text = "{" + prefix + text[1:]
    return text.encode("utf-8", errors="surrogatepass")

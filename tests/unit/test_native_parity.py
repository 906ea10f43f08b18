"""The compiled ingest path (`responder_native`) against the Python reference, byte for byte.

`IngestBatch(..., native=True)` must hand back exactly the `IngestOutcome` of
`IngestBatch(..., native=False)` (messages, dead letters, record count) for any batch and any
rule set: the compiled path takes only what it is certain of and gives the rest back to Python
(`add_raw` answers -1). So every divergence found here is a bug in what it accepts or in how it
normalizes, serializes or routes. The documents are written as raw JSON text (key order,
whitespace, escapes, number spellings, duplicate keys, broken bytes), because that is what the
two parsers disagree on if anything.

Without the compiled module the file is skipped, unless RESPONDER_REQUIRE_NATIVE=1 (then the
import fails loudly). Long hunts: HYPOTHESIS_PROFILE=fuzz.
"""

from __future__ import annotations

import calendar
import json
import math
import os
import random
import re
import struct
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import Phase, assume, event, example, given, settings
from hypothesis import strategies as st

if os.environ.get("RESPONDER_REQUIRE_NATIVE") == "1":
    import responder_native
else:
    responder_native = pytest.importorskip("responder_native", exc_type=ImportError)

from responder.assets.lineage import GraphSnapshot
from responder.correlation.match import MISSING
from responder.correlation.rules import Rule, RuleSet, load_rules
from responder.correlation.window import WindowEvent
from responder.events.fast import parse_event_doc
from responder.events.schema import Rejection
from responder.streams import records
from responder.streams.ingest_batch import IngestBatch, IngestOutcome
from responder.streams.native import NativePanic, NativeRouter, python_only
from responder.streams.native import read as compiled_read
from responder.streams.records import Router, read
from tests.unit.test_assets_graph import CHAMPION, DS_CB, DS_TX, sample_graph

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = load_rules(ROOT / "rules")

# -- raw JSON text, written the many ways a producer may write it ----------------------------


class Raw(str):
    """JSON text written as it is (a number spelling, a broken escape, a whole sub-document)."""


@dataclass(frozen=True)
class Obj:
    """A JSON object as written: its pairs in order, duplicates allowed."""

    pairs: tuple[tuple[str, Any], ...]


SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
BLANKS = ["", " ", "  ", "\n", "\t", "\r\n", " \n\t "]


def _u(code: int, upper: bool) -> str:
    return f"\\u{code:04X}" if upper else f"\\u{code:04x}"


class Writer:
    """Writes a value as JSON; `seed` None: compactly, else with random blanks and escapes."""

    def __init__(self, seed: int | None) -> None:
        self.rnd = None if seed is None else random.Random(seed)

    def blank(self) -> str:
        if self.rnd is None or self.rnd.random() < 0.6:
            return ""
        return self.rnd.choice(BLANKS)

    def string(self, s: str) -> str:
        rnd = self.rnd
        if rnd is None:
            return json.dumps(s, ensure_ascii=False)
        mode = rnd.random()
        if mode < 0.3:
            return json.dumps(s, ensure_ascii=False)
        if mode < 0.45:
            return json.dumps(s)  # \uXXXX for all non-ASCII, surrogate pairs
        out = ['"']
        for c in s:
            code = ord(c)
            must = c in '"\\' or code < 0x20 or 0xD800 <= code <= 0xDFFF
            r = rnd.random()
            if not must and r < 0.6:
                out.append(c)
            elif c in SHORT_ESCAPES and r < 0.85:
                out.append(SHORT_ESCAPES[c])
            elif code > 0xFFFF:
                code -= 0x10000
                upper = rnd.random() < 0.5
                out.append(_u(0xD800 + (code >> 10), upper) + _u(0xDC00 + (code & 0x3FF), upper))
            else:
                out.append(_u(code, rnd.random() < 0.5))
        out.append('"')
        return "".join(out)

    def number(self, value: float) -> str:
        text = repr(value)
        if self.rnd is not None and self.rnd.random() < 0.3:
            text = text.replace("e+", "E").replace("e-", "E-")
        return text

    def write(self, value: Any) -> str:
        b = self.blank
        if isinstance(value, Raw):
            return str(value)
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return self.number(value)
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, dict):
            value = Obj(tuple(value.items()))
        if isinstance(value, Obj):
            items = [
                f"{b()}{self.string(k)}{b()}:{b()}{self.write(v)}{b()}" for k, v in value.pairs
            ]
            return "{" + ",".join(items) + (b() if not items else "") + "}"
        if isinstance(value, list | tuple):
            items = [f"{b()}{self.write(v)}{b()}" for v in value]
            return "[" + ",".join(items) + (b() if not items else "") + "]"
        raise TypeError(type(value))


def dump(value: Any, seed: int | None = None) -> bytes:
    text = Writer(seed).write(value)
    if seed is not None:
        text = Writer(seed + 1).blank() + text + Writer(seed + 2).blank()
    return text.encode("utf-8", errors="surrogatepass")


def budget(examples: int) -> int:
    """`examples` under the ci profile (100 by default), scaled up with the profile's own
    (HYPOTHESIS_PROFILE=fuzz runs 200 times as many)."""
    return max(examples, examples * settings().max_examples // 100)


def chance(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in `one_in` draws (Hypothesis favours the ends of an integer range, so
    the test for rare cases sits in the middle of a wide one)."""
    return 5000 <= draw(st.integers(0, 9999)) < 5000 + 10000 // one_in


# -- the pieces of an event ---------------------------------------------------------------------
#
# Most documents are valid and plain (what the compiled path is for): their values come from
# small pools the rules below also use, so events match rules. One in four is hostile: some of
# its fields are drawn from the strategies of what either path may refuse or read differently.

POOL_STR = [
    "alpha",
    "beta",
    "a",
    "ab",
    "prod",
    "10.0.0.1",
    "203.0.113.7",
    "x.y",
    "caf\u00e9",
    "\U0001f600",
    "model-serving",
    "k8s-audit",
    "mlflow",
]
POOL_NUM = [
    0,
    1,
    2,
    7,
    -1,
    0.5,
    1.5,
    1.0,
    2.0,
    2**53 + 1,
    9007199254740992.0,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
    1e16,
    1e-7,
    5e-324,
]
WORDS = [
    *POOL_STR,
    "ba",
    "dev",
    "fraud-api",
    "mlflow",
    "responder",
    "failed",
    "champion",
    "model",
    "endpoint",
    "image",
    "dataset",
    "a\u2028b",
    "a\nb",
    "tab\there",
    'q"uote',
    "back\\slash",
    "sl/ash",
    "\x1b[31mred\x1b[0m",
    "zero\u200bwidth",
    "\ufeffbom",
    "\u00e9\u00e8",
    "\U0010ffff",
    "\uffff",
]
TRICKY = [
    " padded",
    "padded ",
    "\tx",
    "x\n",
    "\u00a0x",
    "x\u3000",
    "x\u2028",
    "\u2029x",
    "\x85x",
    "x\x7f",
    "\x1bx",
    "a\x00b",
    "\u180e",
    "nullable",  # `null` in the body: Python asks the model
    "",
    " ",
    "x" * 512,
    "x" * 513,
    "\u00e9" * 512,
    "\u00e9" * 513,
    "\U0001f600" * 512,
    "\U0001f600" * 513,
]
LONG_TITLES = ["t" * 1024, "t" * 1025, "\u00e9" * 1024, "\U0001f600" * 1024, "\U0001f600" * 1025]


def _edged(text: str) -> bool:
    def odd(c: str) -> bool:
        return c.isspace() or unicodedata.category(c) in ("Cc", "Zs", "Zl", "Zp")

    return not text or odd(text[0]) or odd(text[-1])


_free_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=10)
_solid = st.characters(categories=["L", "N", "P", "S"])
_clean_free_text = st.one_of(
    _solid,
    st.builds(
        lambda a, m, z: a + m + z,
        _solid,
        st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
        _solid,
    ),
).filter(lambda t: "null" not in t)
clean_texts = st.one_of(st.sampled_from(WORDS), st.sampled_from(POOL_STR), _clean_free_text)
any_texts = st.one_of(clean_texts, st.sampled_from(TRICKY), _free_text)

TAKEN_SPELLINGS = [
    "1E5",
    "1e5",
    "1E+2",
    "1e-7",
    "2.5E-3",
    "1.0",
    "10E-1",
    "0.0",
    "0e5",
    "1e-400",
    "1e308",
    "9.2233720368547748e18",
    "1.00000000000000000000000001",
    "4.9406564584124654e-324",
    "2.4703282292062327e-324",
    "0." + "0" * 400 + "1",
    "1" + "0" * 400 + "e-400",
]
REFUSED_SPELLINGS = [
    "-0",
    "-0.0",
    "-0e1",
    "1e400",
    "-1e400",
    "-1e-400",
    "NaN",
    "Infinity",
    "9223372036854775807.0",
    "1e19",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890",
]
NUMBER_SPELLINGS = TAKEN_SPELLINGS + REFUSED_SPELLINGS
INT_EDGES = [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**70, -(2**70)]
RAW_VALUES = [
    '"\\ud800"',  # a lone surrogate
    '"\\ud83d\\u0041"',
    '"\\uDBFF\\uDFFF"',
    '"\\u0000"',
    '"a\\u0022b"',
    '"\\\\u0000"',  # a backslash, then the letters u0000: no NUL
    '"\\u00e9\\/\\u2028"',
    "null",
    '{"k": 1, "k": 2}',
    '{"k": 1, "\\u006b": 2}',
    "[" * 127 + "]" * 127,
    "[" * 129 + "]" * 129,
    '{"a":' * 130 + "1" + "}" * 130,
]

clean_ints = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.integers(-3, 20),
    st.sampled_from(INT_EDGES[:3] + INT_EDGES[4:5]),
)
clean_floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: f != 0 or math.copysign(1, f) > 0
)
clean_scalars = st.one_of(
    st.sampled_from(POOL_STR),
    st.sampled_from(POOL_NUM),
    clean_texts,
    clean_ints,
    clean_floats,
    st.booleans(),
    st.sampled_from(TAKEN_SPELLINGS).map(Raw),
)
hostile_scalars = st.one_of(
    any_texts,
    st.integers(),
    st.sampled_from(INT_EDGES),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just(-0.0),
    st.none(),
    st.sampled_from(REFUSED_SPELLINGS + RAW_VALUES).map(Raw),
)
INNER_KEYS = ["b", "deep", "check", "x", "a.b", ""]


def _trees(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=8,
    )


clean_values = _trees(clean_scalars, st.sampled_from(INNER_KEYS) | _clean_free_text)
hostile_values = _trees(
    st.one_of(clean_scalars, hostile_scalars), st.sampled_from(INNER_KEYS + TRICKY[:6]) | _free_text
)


def offsets(hours: int, minutes: int) -> st.SearchStrategy[str]:
    """`±HH:MM` offsets up to these values."""
    return st.builds(
        lambda sign, h, m: f"{sign}{h:02}:{m:02}",
        st.sampled_from("+-"),
        st.integers(0, hours),
        st.integers(0, minutes),
    )


@st.composite
def clean_times(draw: st.DrawFn) -> str:
    """Valid RFC 3339 times of the years the compiled path takes, every offset and fraction."""
    year = draw(st.one_of(st.integers(1700, 2200), st.sampled_from([1700, 1970, 2024, 2026, 2200])))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, calendar.monthrange(year, month)[1]))
    if chance(draw, 10):
        month, day = 2, 29 if calendar.isleap(year) else 28
    clock = draw(st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)))
    fraction = draw(st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=9)))
    zone = draw(
        st.one_of(
            st.just("Z"),
            st.sampled_from(["+00:00", "-00:00", "+23:59", "-23:59", "+05:30", "-08:00"]),
            offsets(23, 59),
        )
    )
    text = f"{year:04}-{month:02}-{day:02}T{clock[0]:02}:{clock[1]:02}:{clock[2]:02}"
    return text + ("." + fraction if fraction else "") + zone


@st.composite
def hostile_times(draw: st.DrawFn) -> Any:
    """RFC 3339 texts around every edge the two paths could read differently, and junk."""
    if chance(draw, 8):
        return draw(
            st.sampled_from(
                [
                    "2026-11-25T09:00Z",
                    "2026-11-25 09:00:00Z",
                    "2026-11-25T09:00:00+0100",
                    "2026-11-25T09:00:00",
                    "2026-11-25T09:00:00.Z",
                    " 2026-11-25T09:00:00Z",
                    "2026-11-25T09:00:00Z ",
                    "+2026-11-25T09:00:00Z",
                    "\uff12\uff10\uff12\uff16-11-25T09:00:00Z",
                    "2026-11-25T09:00:00.1234567891Z",
                    "1764061200",
                    1764061200,
                    1764061200.5,
                    None,
                    True,
                ]
            )
        )
    year = draw(
        st.one_of(
            st.sampled_from([1, 1699, 1700, 1701, 1970, 2000, 2024, 2199, 2200, 2201, 9999]),
            st.integers(1690, 2210),
            st.integers(0, 9999),
        )
    )
    month = draw(st.one_of(st.integers(1, 12), st.sampled_from([0, 2, 13])))
    day = draw(st.one_of(st.integers(1, 28), st.sampled_from([0, 29, 30, 31, 32])))
    hour = draw(st.one_of(st.integers(0, 23), st.sampled_from([0, 23, 24])))
    minute = draw(st.one_of(st.integers(0, 59), st.sampled_from([0, 59, 60])))
    second = draw(st.one_of(st.integers(0, 59), st.sampled_from([0, 59, 60])))
    fraction = draw(st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=10)))
    sep = draw(st.sampled_from("TTTt"))
    zone = draw(
        st.one_of(
            st.sampled_from(
                ["Z", "Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+24:00", "-24:00"]
            ),
            offsets(24, 60),
        )
    )
    text = f"{year:04}-{month:02}-{day:02}{sep}{hour:02}:{minute:02}:{second:02}"
    return text + ("." + fraction if fraction else "") + zone


TYPES = ["key.used", "auth.anomaly", "secret.leaked", "a.b", "a.b.c", "x_1.y2"]
BAD_TYPES = [
    "Bad.Type",
    "nodot",
    "a..b",
    "a.b ",
    " a.b",
    "a.b\n",
    "a.b-c",
    "a." + "b" * 127,
    "a." + "b" * 126,
    5,
]
SEVERITIES = ["info", "low", "medium", "high", "critical"]
ATTRIBUTE_KEYS = [
    "user",
    "count",
    "ratio",
    "tags",
    "nested",
    "flag",
    "a.b",
    "a",
    "app.kubernetes.io/name",
    "release",
]
LABEL_KEYS = ["env", "component", "app.kubernetes.io/name", "app", ""]
pooled = st.one_of(st.sampled_from(POOL_STR), st.sampled_from(POOL_NUM), st.booleans())


def _attribute_value(key: str) -> st.SearchStrategy[Any]:
    """Values rules can match and group on: the pools, lists and objects of them, anything."""
    if key in ("nested", "a", "release"):
        shaped: st.SearchStrategy[Any] = st.dictionaries(
            st.sampled_from(INNER_KEYS), st.one_of(pooled, clean_values), max_size=3
        )
    elif key == "tags":
        shaped = st.lists(pooled, max_size=4)
    else:
        shaped = pooled
    return st.one_of(shaped, shaped, shaped, clean_values)


@st.composite
def clean_attributes(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(
        st.lists(st.sampled_from(ATTRIBUTE_KEYS) | _clean_free_text, unique=True, max_size=6)
    )
    return {k: draw(_attribute_value(k)) for k in keys}


@st.composite
def hostile_attributes(draw: st.DrawFn) -> Any:
    if chance(draw, 6):
        return draw(st.sampled_from([[], None, "x", 1, Obj((("a", 1), ("a", 2))), {"k": None}]))
    keys = draw(
        st.lists(st.sampled_from(ATTRIBUTE_KEYS + TRICKY[:6]) | _free_text, unique=True, max_size=5)
    )
    return {k: draw(hostile_values) for k in keys}


clean_labels = st.dictionaries(
    st.sampled_from(LABEL_KEYS) | _clean_free_text, clean_texts, max_size=3
)
hostile_labels = st.one_of(
    st.sampled_from(
        [[], None, "x", {"env": 1}, {"env": None}, {" env": "p"}, {"env": " p"}, {"env": ""}]
    ),
    st.dictionaries(st.sampled_from(LABEL_KEYS + TRICKY[:6]), any_texts, max_size=3),
)


@st.composite
def clean_actors(draw: st.DrawFn) -> Any:
    pairs: dict[str, Any] = {}
    for key in draw(
        st.lists(st.sampled_from(["id", "ip", "ua", "account", "x.y"]), unique=True, max_size=4)
    ):
        if key in ("id", "ip"):
            pairs[key] = draw(st.one_of(st.sampled_from(POOL_STR), clean_texts, st.none()))
        else:
            pairs[key] = draw(st.one_of(pooled, clean_values, st.none()))
    return pairs


hostile_actors = st.one_of(
    st.none(),
    st.sampled_from(
        [
            [],
            "a",
            {"id": 5},
            {"ip": ["a"]},
            {"id": None, "ip": None},
            {" ua": "x"},
            {"ua ": 1},
            {"id": " a"},
        ]
    ),
    st.dictionaries(
        st.sampled_from(["id", "ip", "ua", " sp", "\u3000"]), hostile_values, max_size=3
    ),
)

KINDS = ("model", "endpoint", "image", "dataset", "key")


@st.composite
def clean_resources(draw: st.DrawFn, kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": draw(st.one_of(st.sampled_from(kinds), clean_texts)),
        "id": draw(st.one_of(st.sampled_from(POOL_STR), clean_texts)),
    }
    for key in ("name", "version", "uri"):
        if draw(st.booleans()):
            out[key] = draw(
                st.one_of(st.sampled_from(POOL_STR), clean_texts, st.none(), st.just(""))
            )
    if draw(st.booleans()):
        out = {k: out[k] for k in draw(st.permutations(list(out)))}
    return out


hostile_resources = st.one_of(
    st.sampled_from(
        [None, [], {"kind": "model"}, {"kind": "m", "id": "r", "x": 1}, {"kind": "m", "id": ""}]
    ),
    st.fixed_dictionaries(
        {"kind": any_texts, "id": any_texts},
        optional={"name": hostile_scalars, "version": any_texts, "uri": st.none()},
    ),
)


@st.composite
def documents(
    draw: st.DrawFn,
    types: list[str] = TYPES,
    resources: st.SearchStrategy[Any] | None = None,
    attributes: st.SearchStrategy[Any] | None = None,
) -> Obj:
    """An event document, its fields in any order: valid three times in four."""
    hostile = chance(draw, 3)

    def pick(clean: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
        if hostile and chance(draw, 3):
            return draw(bad)
        return draw(clean)

    fields: dict[str, Any] = {
        "id": pick(clean_texts, any_texts),
        "source": pick(clean_texts, any_texts),
        "type": pick(st.sampled_from(types), st.sampled_from(BAD_TYPES)),
        "time": pick(clean_times(), hostile_times()),
        "severity": pick(
            st.sampled_from(SEVERITIES), st.sampled_from(["High", " high", "urgent", "", 1, None])
        ),
        "title": pick(clean_texts, st.one_of(any_texts, st.sampled_from(LONG_TITLES))),
        "resource": pick(
            resources if resources is not None else clean_resources(), hostile_resources
        ),
    }
    if draw(st.booleans()):
        fields["actor"] = pick(st.one_of(clean_actors(), st.none(), st.just({})), hostile_actors)
    if not chance(draw, 4):
        fields["attributes"] = pick(
            attributes if attributes is not None else clean_attributes(), hostile_attributes()
        )
    if draw(st.booleans()):
        fields["labels"] = pick(clean_labels, hostile_labels)
    if draw(st.booleans()):
        fields["schema_version"] = pick(st.just("1"), st.sampled_from(["2", 1, None, " 1", "1 "]))
    if hostile and chance(draw, 6):
        fields[draw(st.sampled_from(["extra", "lineage", "Id", ""]))] = draw(hostile_values)
    if hostile and chance(draw, 6):
        del fields[draw(st.sampled_from(sorted(fields)))]
    order = list(fields)
    if draw(st.booleans()):
        order = draw(st.permutations(order))
    pairs = [(k, fields[k]) for k in order]
    if hostile and pairs and chance(draw, 4):  # a key twice, at the top or below
        i = draw(st.integers(0, len(pairs) - 1))
        key, value = pairs[i]
        if isinstance(value, dict) and value and draw(st.booleans()):
            inner = list(value.items())
            j = draw(st.integers(0, len(inner) - 1))
            inner.insert(draw(st.integers(0, len(inner))), (inner[j][0], draw(pooled)))
            pairs[i] = (key, Obj(tuple(inner)))
        else:
            again = draw(st.sampled_from([value, "other"]))
            pairs.insert(draw(st.integers(0, len(pairs))), (key, again))
    return Obj(tuple(pairs))


def _mutate(raw: bytes, how: int, at: int) -> bytes:
    at %= len(raw) + 1
    return [
        lambda: b"\xef\xbb\xbf" + raw,  # BOM
        lambda: raw + b" x",  # trailing garbage
        lambda: raw + b"{}",
        lambda: raw[:at],  # cut short
        lambda: raw[:at] + b"\xff" + raw[at:],  # invalid UTF-8
        lambda: raw[:at] + b"\xed\xa0\x80" + raw[at:],  # an encoded surrogate
        lambda: raw[:at] + b"\xc3" + raw[at:],  # a cut sequence
        lambda: b"\x00" + raw,
        lambda: raw.replace(b"{", b"[", 1),
    ][how]()


@st.composite
def raw_events(draw: st.DrawFn, docs: st.SearchStrategy[Obj] | None = None) -> bytes:
    """One document's bytes: compact, or with random blanks and escapes; rarely broken."""
    doc = draw(docs if docs is not None else documents())
    seed = draw(st.one_of(st.none(), st.integers(0, 2**32 - 1)))
    raw = dump(doc, seed)
    if chance(draw, 30):
        raw = _mutate(raw, draw(st.integers(0, 8)), draw(st.integers(0, 10**6)))
    return raw


# -- the comparisons ----------------------------------------------------------------------------


def _python_parse(raw: bytes) -> tuple[bytes, float] | Rejection:
    parsed = parse_event_doc(raw)
    if isinstance(parsed, Rejection):
        return parsed
    _, time, body = parsed
    return body, time


def assert_parse_parity(raw: bytes) -> bool:
    """What the compiled parser takes, Python takes the same way. True: the compiled path took it."""
    native = responder_native.parse_event(raw)
    if native is None:
        return False
    python = _python_parse(raw)
    assert not isinstance(python, Rejection), (raw, native, python)
    assert native == python, (raw, native, python)
    return True


Batch = tuple[Sequence[bytes | None], Sequence[int] | None, Sequence[int], bool]
"""(values, their input partitions, the held input partitions, announce)"""


def handle_both(
    rules: RuleSet,
    partitions: int,
    batches: list[Batch],
    assets: GraphSnapshot | None = None,
) -> list[IngestOutcome]:
    """Each batch handled by both paths (each keeping its IngestBatch from batch to batch);
    asserts the outcomes agree and returns the native ones."""
    native = IngestBatch(rules, partitions, assets, native=True)
    python = IngestBatch(rules, partitions, assets, native=False)
    # a rule only Python evaluates that can match every type: the Python router for all
    whole = any(rules.rules[r].indexed_types is None for r in python_only(rules))
    assert isinstance(native.router, NativeRouter) is not whole
    assert isinstance(python.router, Router)
    outcomes = []
    for values, inputs, held, announce in batches:
        ours = native.handle(values, inputs, held=held, announce=announce)
        theirs = python.handle(values, inputs, held=held, announce=announce)
        assert_same_outcome(ours, theirs, values)
        outcomes.append(ours)
    return outcomes


def assert_same_outcome(native: IngestOutcome, python: IngestOutcome, values: Any = None) -> None:
    assert native.dead == python.dead, values
    assert native.records == python.records, values
    assert sorted(native.messages) == sorted(python.messages), values
    for partition, messages in python.messages.items():
        ours = native.messages[partition]
        if ours != messages:  # the decoded forms first: a readable difference
            assert [_decoded(m) for m in ours] == [_decoded(m) for m in messages], values
        assert ours == messages, values
    assert (native.redone is None) == (python.redone is None), (native.redone, python.redone)


def _decoded(message: bytes) -> Any:
    size = struct.unpack_from(">I", message, 4)[0]
    return orjson.loads(message[8 : 8 + size]), message[8 + size :]


def took_natively(rules: RuleSet, raw: bytes, lineage: bool = False) -> int:
    """What the compiled router answers for one raw event (-1: Python's to take)."""
    router = NativeRouter(rules, 3)
    if lineage:
        router.lineage = GraphSnapshot(sample_graph()).index
    return router.add_raw(raw, 0)


# -- floats -------------------------------------------------------------------------------------

FLOAT_BOUNDARIES = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    1e-5,
    9.999999999999999e-6,
    1.0000000000000002e-5,
    1e-6,
    1e-7,
    1e15,
    9.999999999999998e15,
    1e16,
    1.0000000000000002e16,
    123456789012345.6,
    1234567890123456.8,
    2.0**53,
    2.0**63,
    2.0**64,
    1e22,
    1e23,
    1.7976931348623157e308,
    2.2250738585072014e-308,
    2.225073858507201e-308,
    5e-324,
    1e-323,
    0.30000000000000004,
    1764061200.123456,
    -8520336000.0,
]


@pytest.mark.parametrize("value", FLOAT_BOUNDARIES + [-f for f in FLOAT_BOUNDARIES])
def test_float_json_writes_the_boundaries_as_orjson(value: float) -> None:
    assert responder_native.float_json(value) == orjson.dumps(value)


@settings(max_examples=budget(3000))
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(0, 2**64 - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0]),
        st.builds(lambda m, e: m * 10.0**e, st.integers(-(10**17), 10**17), st.integers(-25, 25)),
    )
)
def test_float_json_writes_any_finite_float_as_orjson(value: float) -> None:
    assume(math.isfinite(value))
    assert responder_native.float_json(value) == orjson.dumps(value)


def test_float_json_refuses_non_finite_numbers() -> None:
    for value in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError):
            responder_native.float_json(value)


# -- one event ----------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "id": "e1",
    "source": "scanner",
    "type": "key.used",
    "time": "2026-11-25T09:00:00Z",
    "severity": "high",
    "title": "Key used",
    "resource": {"kind": "key", "id": "AKIA1"},
}


def ev(**changes: Any) -> bytes:
    doc = {**BASE, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not _GONE}).encode()


_GONE = object()

# Valid documents the compiled path is meant to take (the common case): it must, and the same.
TAKEN = [
    ev(),
    ev(time="2026-11-25T09:00:00.123456789+05:30"),
    ev(time="2024-02-29T23:59:59Z"),
    ev(time="2026-11-25T09:00:00-00:00"),
    ev(time="2026-11-25T09:00:00+23:59"),
    ev(time="2026-11-25T09:00:00.1Z"),
    ev(time="1700-01-01T00:00:00Z"),
    ev(time="2200-12-31T23:59:59.999999Z"),
    ev(time="1700-01-01T23:00:00+23:00"),
    ev(attributes={"n": 2**64 - 1, "m": -(2**63), "f": 0.5, "g": 1e16, "h": [1, {"x": True}]}),
    ev(attributes={"s": 'caf\u00e9 \U0001f600 \u2028 \x7f \x1b[31m q"uote back\\slash'}),
    ev(attributes={"app.kubernetes.io/name": "x", "a.b": 1, "a": {"b": 2}}),
    ev(actor={}),
    ev(actor={"ip": "10.0.0.1", "id": "u", "ua": "curl", "x": None}),
    ev(resource={"id": "r", "kind": "k", "name": None, "version": "1"}),
    ev(labels={"app.kubernetes.io/name": "api", "env": "prod"}),
    ev(schema_version="1"),
    ev(title="\u00e9" * 1024),
    ev(id="\U0001f600" * 512),
    b'{"title":"t","severity":"low","time":"2026-11-25T09:00:00Z","type":"a.b","source":"s",'
    b'"id":"i","labels":{"x":"y"},"schema_version":"1","resource":{"id":"r","kind":"k"}}',
    b' {\n "id" : "\\u00e9\\/" ,\t"source":"s","type":"a.b","time":"2026-11-25T09:00:00Z",'
    b'"severity":"info","title":"\\ud83d\\ude00","resource":{"kind":"k","id":"r"}}\r\n',
    ev(attributes={"x": 1}).replace(b'{"x": 1}', b'{"x": 1E5, "y": 1.0, "z": 1e-7, "w": 0e5}'),
]

# Documents either path may refuse or take: the two must agree wherever the compiled one takes.
EDGES: list[bytes] = [
    ev(time="2026-11-25t09:00:00z"),
    ev(time="2024-02-30T00:00:00Z"),
    ev(time="2023-02-29T00:00:00Z"),
    ev(time="2026-11-25T09:00:60Z"),
    ev(time="2026-11-25T24:00:00Z"),
    ev(time="2026-11-25T09:00:00+24:00"),
    ev(time="1699-12-31T23:59:59Z"),
    ev(time="1700-01-01T00:00:00+00:01"),
    ev(time="2200-12-31T23:59:59-00:01"),
    ev(time="0001-01-01T00:00:00Z"),
    ev(time="0001-01-01T00:00:00+01:00"),
    ev(time="9999-12-31T23:59:59Z"),
    ev(time="9999-12-31T23:59:59.5Z"),
    ev(time="2026-11-25T09:00:00.1234567891Z"),
    ev(time="2026-11-25T09:00:00.Z"),
    ev(attributes={"x": 2**64}),
    ev(attributes={"x": -(2**63) - 1}),
    ev(id=" padded"),
    ev(id="padded\u3000"),
    ev(title="two\nlines"),
    ev(title="a\u2028b"),
    ev(title="c1\x85"),
    ev(title="t" * 1025),
    ev(id="x" * 513),
    ev(actor=None),
    ev(actor={"id": 5}),
    ev(actor={" ua": "x"}),
    ev(resource={"kind": "k", "id": "r", "name": " n"}),
    ev(labels={"env": 1}),
    ev(labels={"env": " prod"}),
    ev(labels={" env": "prod"}),
    ev(attributes={" k": 1}),
    ev(attributes={"k": None}),
    ev(attributes=None),
    ev(schema_version="2"),
    ev(schema_version=1),
    ev(schema_version=None),
    ev(severity="High"),
    ev(severity=" high"),
    ev(type="key.used "),
    ev(extra=1),
    ev(title="nullable"),
    ev(resource=_GONE),
    ev(attributes={"x": "\ud800"}),
    b"\xef\xbb\xbf" + ev(),
    ev() + b" x",
    ev() + b"\n\t ",
    ev()[:-1],
    ev().replace(b'"e1"', b'"e\xff1"'),
    ev().replace(b'"e1"', b'"e\xed\xa0\x801"'),
    ev().replace(b'"e1"', b'"e\\u00001"'),
    ev().replace(b'"e1"', b'"e\\u00221"'),
    ev().replace(b'"e1"', b'"e\\\\u00001"'),
    b'{"id": "e1", "id": "e1", ' + ev()[1:].replace(b'"id": "e1", ', b""),
    b'{"id": "e2", ' + ev()[1:],
    ev(attributes={"k": 1}).replace(b'{"k": 1}', b'{"k": 1, "\\u006b": 2}'),
    ev(attributes={"k": 1}).replace(b'{"k": 1}', b'{"a": {"b": 1, "b": 1}}'),
    ev(resource={"kind": "k", "id": "r"}).replace(b'"id": "r"}', b'"id": "r", "kind": "k"}'),
    ev(actor={"id": "a"}).replace(b'{"id": "a"}', b'{"id": "a", "id": "a"}'),
    ev(attributes={"k": 1}).replace(
        b'{"k": 1}', b"{" + b",".join(b'"k%d": %d' % (i, i) for i in range(30)) + b', "k3": 0}'
    ),
    *(ev(attributes={"k": 1}).replace(b"1}", lit.encode() + b"}") for lit in NUMBER_SPELLINGS),
    *(ev(attributes={"k": 1}).replace(b"1}", lit.encode() + b"}") for lit in RAW_VALUES),
    b"[]",
    b"null",
    b"",
    b"{}",
]


@pytest.mark.parametrize("raw", TAKEN, ids=range(len(TAKEN)))
def test_the_compiled_parser_takes_the_common_case_as_python_does(raw: bytes) -> None:
    assert assert_parse_parity(raw), f"the compiled parser gave back a plain event: {raw!r}"


@pytest.mark.parametrize("raw", EDGES, ids=range(len(EDGES)))
def test_the_compiled_parser_agrees_on_edge_documents(raw: bytes) -> None:
    assert_parse_parity(raw)


@settings(max_examples=budget(1000))
@given(raw_events())
def test_the_compiled_parser_agrees_with_the_fast_path(raw: bytes) -> None:
    took = assert_parse_parity(raw)
    event("compiled parser took it" if took else "Python's to decide")


# -- rules --------------------------------------------------------------------------------------

CONDITION_PATHS = [
    "source",
    "id",
    "severity",
    "title",
    "time",
    "type",
    "schema_version",
    "resource.kind",
    "resource.id",
    "resource.name",
    "actor.ip",
    "actor.id",
    "actor.ua",
    "attributes.user",
    "attributes.count",
    "attributes.ratio",
    "attributes.tags",
    "attributes.flag",
    "attributes.nested",
    "attributes.nested.deep",
    "attributes.a.b",
    "attributes.app.kubernetes.io/name",
    "attributes.release.check",
    "attributes.missing",
    "labels.env",
    "labels.app.kubernetes.io/name",
    "labels",
    "lineage.alias",
]
GROUP_PATHS = [
    *CONDITION_PATHS[:-1],
    "attributes",
    "resource",
    "actor",
    "attributes.nested.x",
    "attributes.a.b.",
    "labels.app",
]
WIDE_NUMBERS = [-0.0, 1e300, 1e-300, 0.30000000000000004, 2**64, 2**70, -(2**70), -(2**63) - 1]
number_values = st.one_of(st.sampled_from(POOL_NUM), st.sampled_from(POOL_NUM), clean_floats)
string_values = st.one_of(
    st.sampled_from(POOL_STR),
    st.sampled_from(POOL_STR),
    st.sampled_from(["", "al", "ha", "a.b", "\u00e9", "1"]),
    clean_texts,
)
eq_values = st.one_of(string_values, number_values, st.booleans())
ALWAYS_THERE = [
    "resource.id",
    "resource.kind",
    "source",
    "severity",
    "type",
    "id",
    "time",
    "resource",
]


@st.composite
def conditions(draw: st.DrawFn) -> tuple[str, Any]:
    """One `match` entry: its value what events hold, now and then one only Python evaluates
    (`re`, a number beyond 64 bits, null)."""
    path = draw(st.sampled_from(ALWAYS_THERE + CONDITION_PATHS))
    modifier = draw(
        st.sampled_from(
            ["eq", "", "contains", "startswith", "endswith", "gt", "gte", "lt", "lte", "exists"]
        )
    )
    if chance(draw, 25):
        modifier = "re"
    values: st.SearchStrategy[Any] = {
        "exists": st.booleans(),
        "re": st.sampled_from(["^al", "a.*b", "prod$"]),
        "startswith": string_values,
        "endswith": string_values,
        "contains": eq_values,
        "eq": eq_values,
        "": eq_values,
    }.get(modifier, number_values)
    if modifier not in ("exists", "re", "startswith", "endswith") and chance(draw, 15):
        values = st.sampled_from(WIDE_NUMBERS + ([None] if modifier in ("eq", "") else []))
    several = chance(draw, 4)
    value = draw(st.lists(values, min_size=1, max_size=3) if several else values)
    return (f"{path}|{modifier}" if modifier else path), value


CORRELATIONS = [
    None,
    None,
    {"type": "event_count", "condition": {"gte": 2}},
    *(
        {"type": "value_count", "condition": {"field": field, "gte": 2}}
        for field in (
            "actor.ip",
            "attributes.user",
            "attributes.nested",
            "attributes.app.kubernetes.io/name",
            "attributes.ratio",
            "attributes.tags",
            "resource",
            "attributes..x",
        )
    ),
]


@st.composite
def rules(draw: st.DrawFn, index: int, types: list[str]) -> Rule:
    match: dict[str, Any] = {}
    shape = draw(st.integers(0, 3))
    if shape == 1:
        match["type"] = draw(st.sampled_from(types))
    elif shape == 2:
        match["type"] = draw(st.lists(st.sampled_from(types), min_size=1, max_size=3, unique=True))
    for key, value in draw(st.lists(conditions(), max_size=draw(st.sampled_from([0, 1, 1, 2, 3])))):
        match.setdefault(key, value)
    if not match:
        match["type|startswith"] = draw(st.sampled_from(["a", "key", "x"]))
    group_paths = st.sampled_from(ALWAYS_THERE + GROUP_PATHS)
    if chance(draw, 15):
        group_paths = st.sampled_from(["lineage.model", "lineage.dataset", "resource.id"])
    spec: dict[str, Any] = {
        "id": f"r{index}{draw(st.sampled_from(['', '.a', '-b', '_c']))}",
        "title": "t",
        "match": match,
        "group_by": draw(st.lists(group_paths, min_size=1, max_size=3)),
        "window": "5m",
        "incident": {"kind": "k"},
        "enabled": not chance(draw, 10),
    }
    correlation = draw(st.sampled_from(CORRELATIONS))
    if correlation is not None:
        spec["correlation"] = correlation
    return Rule.model_validate(spec)


RULE_TYPES = ["key.used", "a.b", "x_1.y2"]


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    return RuleSet([draw(rules(i, RULE_TYPES)) for i in range(draw(st.integers(1, 5)))])


@st.composite
def batches(draw: st.DrawFn, events: st.SearchStrategy[bytes]) -> Batch:
    """Events, tombstones and junk; their input partitions, the held ones, announce or not."""
    values = draw(
        st.lists(
            st.one_of(
                events, events, events, events, st.none(), st.sampled_from([b"", b"{bad", b"[]"])
            ),
            min_size=1,
            max_size=8,
        )
    )
    inputs = None
    if draw(st.booleans()):
        inputs = draw(st.lists(st.integers(0, 3), min_size=len(values), max_size=len(values)))
    held = draw(st.lists(st.integers(0, 4), max_size=3))
    return values, inputs, held, draw(st.booleans())


def _statistics(
    rules: RuleSet,
    batches: list[Batch],
    outcomes: list[IngestOutcome],
    assets: GraphSnapshot | None = None,
) -> None:
    raws = [v for values, *_ in batches for v in values if v is not None]
    taken = sum(took_natively(rules, v, assets is not None) >= 0 for v in raws)
    event(
        f"events taken by the compiled router: {'none' if not taken else 'some' if taken < len(raws) else 'all'}"
    )
    event(f"records: {'some' if any(o.records for o in outcomes) else 'none'}")


rule_documents = documents(types=RULE_TYPES)


@settings(max_examples=budget(400))
@given(
    rule_sets(),
    st.integers(1, 5),
    st.lists(batches(raw_events(rule_documents)), min_size=1, max_size=2),
)
def test_batches_route_alike_with_random_rules(
    rules: RuleSet, partitions: int, batches: list[Batch]
) -> None:
    outcomes = handle_both(rules, partitions, batches)
    _statistics(rules, batches, outcomes)


SHIPPED_TYPES = sorted({t for r in SHIPPED.rules.values() for t in r.indexed_types or []})
shipped_attributes = st.fixed_dictionaries(
    {},
    optional={
        "repo": st.sampled_from(["org/app", "org/lib"]),
        "file": st.sampled_from([".env", "settings.py"]),
        "failure_rate": st.sampled_from([0.29, 0.3, 0.31, 1, 0, 2**64 - 1, 0.30000000000000004]),
        "release": st.sampled_from([{"check": "failed"}, {"check": "passed"}, {"check": 1}]),
        "alias": st.sampled_from(["champion", "challenger"]),
        "user": clean_values,
        "model_serving": st.sampled_from([True, False, 1]),
        "cwe": st.sampled_from([["CWE-502", "CWE-20"], "CWE-502", ["CWE-20"]]),
        "fixed_version": st.sampled_from(["1.2.3", None, ""]),
        "cvss": st.sampled_from([9, 9.0, 8.9, 10, 9.000000000000002, "9.5"]),
    },
)
shipped_documents = documents(
    types=SHIPPED_TYPES,
    resources=clean_resources(kinds=("endpoint", "image", "model", "dataset", "package")),
    attributes=shipped_attributes,
)


@settings(max_examples=budget(250))
@given(st.integers(1, 5), st.lists(batches(raw_events(shipped_documents)), min_size=1, max_size=2))
def test_batches_route_alike_with_the_shipped_rules(partitions: int, batches: list[Batch]) -> None:
    outcomes = handle_both(SHIPPED, partitions, batches)
    _statistics(SHIPPED, batches, outcomes)


LINEAGE_RULES = RuleSet(
    [
        *SHIPPED.rules.values(),
        Rule.model_validate(
            {
                "id": "champion-attacked",
                "title": "t",
                "match": {"type": "input.adversarial", "lineage.alias|contains": CHAMPION},
                "group_by": ["resource.id"],
                "window": "5m",
                "incident": {"kind": "adversarial_attack"},
            }
        ),
        Rule.model_validate(
            {
                "id": "no-lineage",
                "title": "t",
                "match": {"type": "model.drift", "lineage.model|exists": False},
                "group_by": ["resource.id"],
                "window": "5m",
                "incident": {"kind": "k"},
            }
        ),
    ]
)
graph_resources = st.sampled_from(
    [
        {"kind": "dataset", "id": DS_CB.split(":", 1)[1]},
        {"kind": "dataset", "id": DS_TX.split(":", 1)[1]},
        {"kind": "dataset", "id": "chargebacks"},
        {"kind": "endpoint", "id": "fraud-api"},
        {"kind": "endpoint", "id": "fraud-shadow"},
        {"kind": "model", "id": "fraud-detector", "name": "fraud-detector", "version": "2"},
        {"kind": "model", "id": "m", "name": "churn"},
        {"kind": "image", "id": "fraud-serving:1.4.2"},
        {"kind": "key", "id": "nothing-known"},
    ]
)
lineage_documents = documents(
    types=[*SHIPPED_TYPES, "input.adversarial"], resources=graph_resources
)


@settings(max_examples=budget(100))
@given(
    st.booleans(),
    st.integers(1, 5),
    st.lists(batches(raw_events(lineage_documents)), min_size=1, max_size=2),
)
def test_batches_route_alike_with_lineage(
    with_graph: bool, partitions: int, batches: list[Batch]
) -> None:
    assets = GraphSnapshot(sample_graph()) if with_graph else None
    outcomes = handle_both(LINEAGE_RULES, partitions, batches, assets)
    _statistics(LINEAGE_RULES, batches, outcomes, assets)


# -- targeted batches ---------------------------------------------------------------------------


def rule(
    match: dict[str, Any], group_by: list[str] | None = None, rid: str = "r1", **more: Any
) -> Rule:
    return Rule.model_validate(
        {
            "id": rid,
            "title": "t",
            "match": match,
            "group_by": group_by or ["resource.id"],
            "window": "5m",
            "incident": {"kind": "k"},
            **more,
        }
    )


def test_every_shipped_rule_type_is_routed_natively_and_alike() -> None:
    """Not vacuous: the compiled router takes these (lineage aside) and routes them as Python."""
    values: list[bytes | None] = []
    for i, kind in enumerate(SHIPPED_TYPES):
        values.append(
            ev(
                id=f"e{i}",
                type=kind,
                source="mlflow",
                severity="critical",
                resource={
                    "kind": "endpoint",
                    "id": "fraud-api",
                    "name": "fraud-detector",
                    "version": "2",
                },
                actor={"ip": f"10.0.0.{i}"},
                labels={"env": "prod"},
                attributes={
                    "failure_rate": 0.5,
                    "repo": "org/app",
                    "file": ".env",
                    "release": {"check": "failed"},
                    "alias": "champion",
                },
            )
        )
    taken = [took_natively(SHIPPED, v) for v in values if v is not None]
    assert sum(t > 0 for t in taken) >= len(SHIPPED_TYPES) // 2, taken
    [outcome] = handle_both(SHIPPED, 4, [(values, [0] * len(values), [0, 1], True)])
    assert outcome.records > 0


@pytest.mark.parametrize(
    ("match", "group_by"),
    [
        ({"type": "key.used", "attributes.user|re": "^al"}, None),
        ({"type": "key.used"}, ["lineage.model"]),
        ({"type": "key.used", "attributes.count|gt": 2**70}, None),
        ({"type": "key.used", "attributes.count|eq": None}, None),
        ({"attributes.count|lt": -(2**64)}, None),
    ],
)
def test_what_only_python_evaluates_falls_back(
    match: dict[str, Any], group_by: list[str] | None
) -> None:
    rules = RuleSet([rule(match, group_by)])
    raw = ev(attributes={"user": "alpha", "count": 3})
    assert took_natively(rules, raw) == -1
    handle_both(rules, 3, [([raw, ev(type="auth.anomaly")], None, [], False)])


def test_rules_reading_lineage_fall_back_only_when_there_is_lineage() -> None:
    rules = RuleSet([rule({"type": "key.used", "lineage.alias|exists": False})])
    raw = ev()
    assert took_natively(rules, raw) == 1
    assert took_natively(rules, raw, lineage=True) == -1
    for assets in (None, GraphSnapshot(sample_graph())):
        handle_both(rules, 2, [([raw], [0], [], True)], assets)


NUMERIC_EVENTS = [
    0,
    1,
    -1,
    2,
    7,
    0.5,
    -0.5,
    1.5,
    2**53,
    2**53 + 1,
    9007199254740992.0,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
    1e300,
    5e-324,
    True,
    False,
    "1",
    [1, 2.0, True, "x"],
    {"deep": 1},
]


BOUNDS = [0, 1, 2, 0.5, -0.0, 1.0, 2**53 + 1, 9007199254740992.0, 2**63, 2**64 - 1, -(2**63), 1e300]


@pytest.mark.parametrize(
    ("modifier", "bound"),
    [(m, b) for m in ("eq", "contains", "gt", "gte", "lt", "lte") for b in BOUNDS]
    + [(m, b) for m in ("eq", "contains") for b in (True, False, "x", "1")],
)
def test_numeric_comparisons_route_alike(modifier: str, bound: Any) -> None:
    rules = RuleSet(
        [rule({"type": "key.used", f"attributes.n|{modifier}": bound}, ["attributes.n"])]
    )
    values = [ev(id=f"e{i}", attributes={"n": n}) for i, n in enumerate(NUMERIC_EVENTS)]
    [_outcome] = handle_both(rules, 3, [(values, None, [], False)])
    assert took_natively(rules, values[1]) >= 0


def test_group_values_of_every_json_type_route_alike() -> None:
    rules = RuleSet(
        [
            rule({"type": "key.used"}, ["attributes.v"], rid="one"),
            rule(
                {"type": "key.used"},
                ["attributes.v", "labels.app.kubernetes.io/name", "attributes"],
                rid="two",
            ),
            rule(
                {"type": ["key.used", "a.b"]},
                ["attributes.a.b"],
                rid="dotted",
                correlation={
                    "type": "value_count",
                    "condition": {"field": "attributes.v", "gte": 2},
                },
            ),
            rule({"attributes.v|exists": True}, ["resource"], rid="any-type"),
        ]
    )
    group_values = [
        "x",
        "",
        "caf\u00e9",
        "\U0001f600",
        "a\x01b\u2028",
        'q"\\',
        0,
        1,
        1.0,
        0.5,
        1e16,
        1e-7,
        2**64 - 1,
        True,
        False,
        [1, "a", [2]],
        {"b": {"c": 1}, "a": []},
        {},
    ]
    values = [
        ev(
            id=f"e{i}",
            attributes={"v": v, "a.b": i, "a": {"b": str(i)}},
            labels={"app.kubernetes.io/name": "api"},
        )
        for i, v in enumerate(group_values)
    ]
    [outcome] = handle_both(rules, 5, [(values, list(range(len(values))), [], True)])
    assert outcome.records >= 3 * len(values)
    assert all(took_natively(rules, v) >= 0 for v in values)


def test_dotted_keys_and_nested_keys_resolve_alike() -> None:
    rules = RuleSet(
        [
            rule(
                {"labels.app.kubernetes.io/name": "api"},
                ["labels.app.kubernetes.io/name"],
                rid="label",
            ),
            rule({"attributes.a.b|exists": True}, ["attributes.a.b"], rid="ab"),
            rule({"attributes.a.b.c|exists": True}, ["attributes.a.b.c"], rid="abc"),
        ]
    )
    shapes = [
        {"a.b": 1},
        {"a": {"b": 2}},
        {"a": {"b": 3}, "a.b": 4},
        {"a.b": {"c": 5}},
        {"a": {"b.c": 6}},
        {"a.b.c": 7, "a": {"b": {"c": 8}}},
        {"a": {"b": 9}, "a.b": {"c": 10}},
        {"a": 1, "a.b": 11},
        {"a": [{"b": 1}]},
    ]
    values = [
        ev(id=f"e{i}", attributes=a, labels={"app.kubernetes.io/name": "api", "app": "x"})
        for i, a in enumerate(shapes)
    ]
    handle_both(rules, 2, [(values, None, [], False)])


def test_held_partitions_and_announcements_route_alike() -> None:
    rules = RuleSet([rule({"type": "key.used"})])
    raw = [
        ev(id=f"e{i}", time=f"2026-11-25T09:00:0{i}.5Z", resource={"kind": "key", "id": f"k{i}"})
        for i in range(6)
    ]
    handle_both(
        rules,
        5,
        [
            (raw, [3, 0, 3, 1, 0, 2], [0, 1, 2, 3, 4, 7], True),
            ([], None, [0, 1], True),
            ([None, b"{bad"], [0, 1], [2], True),
            (raw[:2], None, [], True),
            (raw[:2], [0, 0], [], False),
            ([ev(type="a.b")], [2], [], True),  # no records, progress only
        ],
    )


def test_input_partitions_across_kafkas_range_route_alike() -> None:
    rules = RuleSet([rule({"type": "key.used"})])
    handle_both(rules, 3, [([ev(), ev(id="e2")], [0, 2**31 - 1], [2**31 - 1, 0], True)])


def test_rule_strings_orjson_cannot_write_leave_ingest_to_the_python_router() -> None:
    """A rule value with a lone surrogate (Rule.model_validate takes it; YAML files cannot carry
    it) cannot be handed to the compiled router: the batch runs on the Python router instead of
    failing to build."""
    rules = RuleSet([rule({"type": "key.used", "attributes.x": "\ud800"})])
    work = IngestBatch(rules, 3, native=True)
    assert type(work.router) is Router
    python = IngestBatch(rules, 3, native=False)
    assert_same_outcome(work.handle([ev()]), python.handle([ev()]))


def test_messages_cut_at_the_chunk_size_alike() -> None:
    """Events of 100-300 KiB: several messages per partition, cut between events."""
    rules = RuleSet(
        [
            rule({"type": "key.used"}, ["attributes.g"], rid="big"),
            rule({"type": "key.used"}, ["attributes.blob"], rid="blob"),
            rule(
                {"type": "key.used"},
                ["resource.id"],
                rid="small",
                correlation={
                    "type": "value_count",
                    "condition": {"field": "attributes.blob", "gte": 2},
                },
            ),
        ]
    )
    values: list[bytes | None] = []
    for i in range(14):
        blob = chr(0x61 + i % 26) * (100_000 + 15_000 * i) + "\u00e9" * (i * 1000)
        values.append(
            ev(
                id=f"e{i}",
                attributes={"g": i % 3, "blob": blob},
                resource={"kind": "key", "id": f"k{i % 4}"},
            )
        )
    outcomes = handle_both(rules, 2, [(values, [0] * 14, [0], True)])
    assert max(len(v) for v in outcomes[0].messages.values()) > 1
    for messages in outcomes[0].messages.values():
        for message in messages:
            read(message)


def test_a_message_too_large_is_redone_record_by_record_alike() -> None:
    """Five rules grouped on a ~1 MB value: over the correlation topic's limit together."""
    rules = RuleSet(
        [rule({"type": "key.used"}, ["attributes.blob"], rid=f"r{i}") for i in range(6)]
    )
    blob = "x" * 1_000_000
    values: list[bytes | None] = [
        ev(id="small"),
        ev(id="huge", attributes={"blob": blob}),
        None,
        ev(id="again"),
    ]
    [outcome] = handle_both(rules, 1, [(values, [0, 0, 0, 1], [0, 1, 2], True)])
    assert outcome.redone is not None and [d.index for d in outcome.dead] == [1, 2]


@settings(max_examples=budget(200))
@given(st.lists(st.sampled_from(TAKEN + EDGES[:40]), max_size=6), st.integers(1, 5), st.booleans())
@example([TAKEN[0]] * 3, 1, True)
def test_known_documents_in_any_batch_route_alike(
    values: list[bytes], partitions: int, announce: bool
) -> None:
    rules = RuleSet(
        [
            rule({"type": ["key.used", "a.b"]}, ["resource.id"], rid="by-resource"),
            rule({"severity": ["high", "critical"]}, ["source", "attributes.n"], rid="by-source"),
            rule(
                {"actor.ip|exists": True},
                ["resource.kind"],
                rid="ips",
                correlation={"type": "value_count", "condition": {"field": "actor.ip", "gte": 2}},
            ),
        ]
    )
    handle_both(
        rules, partitions, [(list(values), [i % 3 for i in range(len(values))], [0, 5], announce)]
    )


def test_a_too_large_message_is_reported_as_python_reports_it() -> None:
    """An event whose records overflow the topic's limit in two partitions (6 and 8 keys of
    1 MB): Python raises for the message of the partition it used first, and that message's
    size becomes the dead letter's detail. The compiled router must name the same one."""
    blob = "x" * 1_000_000
    rules = RuleSet(
        [rule({"type": "key.used"}, ["attributes.blob"], rid=f"r{i}") for i in range(14)]
    )
    [outcome] = handle_both(
        rules, 2, [([ev(id="huge", attributes={"blob": blob})], None, [], False)]
    )
    assert [d.reason for d in outcome.dead] == ["ingest failed: MessageTooLarge"]


@st.composite
def duplicated(draw: st.DrawFn) -> bytes:
    """A valid document with one key written twice in one of its objects (any size)."""
    where = draw(st.sampled_from(["top", "resource", "actor", "attributes", "labels", "nested"]))
    size = draw(st.integers(1, 30))
    keys = [f"k{i}" for i in range(size)]
    pairs = [(k, draw(pooled) if where != "labels" else "v") for k in keys]
    twice = draw(st.sampled_from(keys))
    again = draw(st.sampled_from(["v", 1, pairs[keys.index(twice)][1]]))
    pairs.insert(draw(st.integers(0, len(pairs))), (twice, again if where != "labels" else "w"))
    inner = Obj(tuple(pairs))
    doc: dict[str, Any] = {**BASE}
    if where == "top":
        top = [(k, v) for k, v in BASE.items()]
        key = draw(st.sampled_from(sorted(BASE)))
        top.insert(draw(st.integers(0, len(top))), (key, BASE[key]))
        return dump(Obj(tuple(top)), draw(st.one_of(st.none(), st.integers(0, 2**32 - 1))))
    if where == "resource":
        doc["resource"] = Obj(
            (("kind", "k"), ("id", "r"), ("kind", "k"))
            if size < 3
            else (("kind", "k"), ("id", "r"), ("name", "n"), ("id", "r"))
        )
    elif where == "actor":
        doc["actor"] = inner
    elif where == "nested":
        doc["attributes"] = {"n": {"deeper": inner}}
    else:
        doc[where] = inner
    return dump(doc, draw(st.one_of(st.none(), st.integers(0, 2**32 - 1))))


@settings(max_examples=budget(300))
@given(duplicated())
def test_a_key_twice_is_never_taken(raw: bytes) -> None:
    """Python refuses duplicate keys (or reads them its own way): the compiled parser must not
    take them, at any object size (it switches from a scan to a set past 12 keys)."""
    assert responder_native.parse_event(raw) is None, raw
    assert_parse_parity(raw)


def test_a_type_listed_twice_routes_twice_alike() -> None:
    rules = RuleSet(
        [
            rule({"type": ["key.used", "key.used", "a.b"]}, rid="twice"),
            rule({"type|startswith": "key"}, ["source"], rid="any"),
            rule({"type": "key.used", "type|eq": "a.b"}, ["type"], rid="residual"),
        ]
    )
    [outcome] = handle_both(rules, 3, [([ev(), ev(id="e2", type="a.b")], [0, 1], [], True)])
    assert outcome.records == 5  # key.used: twice, twice, any, residual; a.b: twice


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_values_in_other_byte_containers_are_handled_alike(kind: type) -> None:
    """The batch is typed bytes, but Python takes a bytearray as it takes bytes (and words its
    own rejection of a memoryview): `NativeRouter.add_raw` hands anything not `bytes` to it."""
    rules = RuleSet([rule({"type": "key.used"})])
    handle_both(rules, 2, [([kind(ev())], [0], [], False)])


@st.composite
def busy_rule_sets(draw: st.DrawFn) -> RuleSet:
    """Rules every valid event matches, grouped apart: records in many partitions."""
    paths = draw(
        st.lists(
            st.sampled_from([*ALWAYS_THERE, "attributes.user", "actor.ip"]), min_size=1, max_size=6
        )
    )
    extra = [draw(rules(len(paths), RULE_TYPES))] if draw(st.booleans()) else []
    return RuleSet(
        [rule({"severity|exists": True}, [p], rid=f"busy{i}") for i, p in enumerate(paths)] + extra
    )


# No shrinking: a divergence here (e.g. which overflowing partition is reported, fixed: the
# compiled router keeps Python's first-use order) takes Hypothesis a minute to shrink;
# test_a_too_large_message_is_reported_as_python_reports_it is its minimal form.
@settings(max_examples=budget(150), phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    busy_rule_sets(),
    st.integers(1, 5),
    st.lists(batches(raw_events(rule_documents)), min_size=1, max_size=2),
    st.sampled_from([400, 800, 1500, 4000]),
)
def test_batches_over_the_message_limit_are_redone_alike(
    rules: RuleSet, partitions: int, batches: list[Batch], limit: int
) -> None:
    """With the correlation topic's limit lowered to a few events, batches are redone record by
    record and the records that overflow it alone become dead letters: the same ones, for the
    same reasons, by both paths."""
    with mock.patch.object(records, "MAX_CORRELATION_MESSAGE", limit):
        outcomes = handle_both(rules, partitions, batches)
    event(f"redone: {'yes' if any(o.redone for o in outcomes) else 'no'}")


JSONISH = [
    b"\\",
    b'"',
    b"0",
    b"9",
    b"-",
    b"+",
    b".",
    b"e",
    b"E",
    b" ",
    b"\t",
    b"\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\\u00",
    b"\\ud83d",
    b"null",
    b"true",
    b"\xc3\xa9",
    b"\xff",
    b"\x00",
    b"\x1f",
    b"\x7f",
    b"Z",
    b"z",
    b"T",
    b"t",
]


@settings(max_examples=budget(600))
@given(
    raw_events(documents(types=RULE_TYPES)),
    st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.sampled_from(JSONISH)),
        min_size=1,
        max_size=2,
    ),
)
def test_the_compiled_parser_agrees_on_edited_bytes(
    raw: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    """A document's bytes, a few characters deleted, replaced or inserted: whatever the
    compiled parser still takes, Python takes the same way."""
    for at, cut, text in edits:
        at %= len(raw) + 1
        raw = raw[:at] + text + raw[at + cut :]
    event("compiled parser took it" if assert_parse_parity(raw) else "Python's to decide")


def test_a_panic_of_the_compiled_path_becomes_an_exception_the_stage_handles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyo3 raises a Rust panic as a BaseException (`PanicException`): the wrapper turns it into
    NativePanic, an Exception, so `IngestBatch.handle` redoes the batch instead of stopping."""

    class PanicException(BaseException):  # pyo3_runtime's, by name
        pass

    class Panicking:
        def __init__(self, real: Any) -> None:
            self.real = real

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

        def add_raw(self, *_: Any) -> int:
            raise PanicException("index out of bounds")

    rules = RuleSet([rule({"type": "key.used"})])
    router = NativeRouter(rules, 2)
    monkeypatch.setattr(router, "core", Panicking(router.core))
    with pytest.raises(NativePanic, match="index out of bounds"):
        router.add_raw(ev(), 0)
    work = IngestBatch(rules, 2)
    assert isinstance(work.router, NativeRouter)
    monkeypatch.setattr(work.router, "core", Panicking(work.router.core))
    outcome = work.handle([ev(), ev(id="e2")])
    assert outcome.redone == "NativePanic: the compiled ingest path panicked: index out of bounds"
    assert [(d.index, d.reason) for d in outcome.dead] == [
        (0, "ingest failed: NativePanic"),
        (1, "ingest failed: NativePanic"),
    ]


# -- reading correlation messages (the correlation stage's side) --------------------------------


def read_alike(value: bytes) -> bool:
    """`native.read` gives what `records.read` gives, or raises what it raises (the compiled
    reader hands back what it does not take). True: the compiled reader took the message."""
    error: Exception | None = None
    try:
        expected = records.read(value)
    except Exception as exc:
        error = exc
    fast = responder_native.read_message(value, WindowEvent, MISSING)
    if error is not None:
        assert fast is None, value
        with pytest.raises(type(error), match=re.escape(str(error))):
            compiled_read(value)
        return False
    assert compiled_read(value) == expected, value
    return fast is not None


@settings(max_examples=budget(200))
@given(rule_sets(), st.integers(1, 5), st.lists(batches(raw_events(rule_documents)), max_size=2))
def test_messages_as_ingest_writes_them_are_read_alike_and_compiled(
    rules: RuleSet, partitions: int, batches: list[Batch]
) -> None:
    work = IngestBatch(rules, partitions, native=False)
    for values, inputs, held, announce in batches:
        outcome = work.handle(values, inputs, held=held, announce=announce)
        for messages in outcome.messages.values():
            for message in messages:
                assert read_alike(message)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    """A correlation message whose header is any shape near the real one."""
    blob = draw(st.binary(max_size=40))
    heads = draw(
        st.lists(
            st.one_of(
                st.tuples(
                    st.integers(-2, 50),
                    st.integers(-2, 50),
                    st.one_of(st.text(max_size=5), json_values),
                    st.text(max_size=5),
                    st.sampled_from(["a.b", 3]),
                    st.one_of(st.integers(0, 4), st.booleans(), st.floats(0, 4)),
                    st.one_of(st.floats(0, 2e9), st.integers(0, 2**40), st.text(max_size=3)),
                ).map(list),
                json_values,
            ),
            max_size=4,
        )
    )
    recs = draw(
        st.lists(
            st.one_of(
                st.tuples(st.text(max_size=6), st.integers(-1, 5)).map(list),
                st.tuples(st.text(max_size=6), st.integers(-1, 5), json_values).map(list),
                st.tuples(json_values, st.integers(0, 3)).map(list),
                json_values,
            ),
            max_size=5,
        )
    )
    header: dict[str, Any] = {"docs": heads, "recs": recs}
    if draw(st.booleans()):
        header["wm"] = draw(
            st.one_of(
                st.lists(
                    st.tuples(
                        st.one_of(st.integers(0, 9), st.booleans()),
                        st.one_of(st.none(), st.floats(0, 2e9), st.integers(0, 9), st.text()),
                    ).map(list),
                    max_size=3,
                ),
                json_values,
            )
        )
    if draw(st.integers(0, 9)) == 0:
        header[draw(st.sampled_from(["docs", "recs", "other"]))] = draw(json_values)
    text = json.dumps(header, separators=(",", ":")).encode()  # integers beyond 64 bits too
    if draw(st.integers(0, 9)) == 0:  # a duplicate key, as orjson (last wins) reads it
        text = text[:-1] + b',"recs":' + json.dumps(recs).encode() + b"}"
    size = len(text) + draw(st.sampled_from([0, 0, 0, -1, 1, 1000]))
    magic = draw(st.sampled_from([b"RSP3", b"RSP3", b"RSP2"]))
    return magic + struct.pack(">I", max(size, 0)) + text + blob


@settings(max_examples=budget(500))
@given(headers())
def test_any_message_is_read_alike(message: bytes) -> None:
    read_alike(message)


def test_the_compiled_reader_shares_an_events_bytes_and_keeps_missing_values() -> None:
    """Two records of one event: the same head; a value_count record carries its value."""
    rules = RuleSet(
        [
            rule({"type": "key.used"}, ["source"], rid="a"),
            rule(
                {"type": "key.used"},
                ["resource.id"],
                rid="b",
                correlation={"type": "value_count", "condition": {"field": "title", "gte": 2}},
            ),
        ]
    )
    outcome = IngestBatch(rules, 1).handle([ev()])
    [message] = outcome.messages[0]
    assert read_alike(message)
    decoded, progress = compiled_read(message)
    assert [key.split("|")[0] for key, _ in decoded] == ["a", "b"]
    (_, first), (_, second) = decoded
    assert first.raw is second.raw and first.value is MISSING and second.value == "Key used"
    assert progress == []

"""Masking's shortcuts change nothing (issue 13): `scrub` searches a record's texts once, joined,
and `mask_text` skips a text the combined pattern does not match; both must give exactly what
applying every pattern to every text gives, on random and on hostile records. The last tests
break the shortcut on purpose and check that this comparison notices."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import SecretStr

from responder.security import redact
from responder.security.redact import (
    REDACTED,
    is_secret_key,
    mask_every_pattern,
    mask_text,
    scrub,
    scrub_each,
)

# Pieces of the shapes the patterns look for, their near misses, and characters that play on
# their edges (word boundaries, quotes, separators, case folding: U+017F folds to `s`, U+212A
# to `k`).
FRAGMENTS = [
    "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "MIIEsecret",
    "eyJhbGciOiJIUzI1NiJ9", ".", "eyJzdWIiOiJhIn0", "https://", "postgres://", "admin:pw@",
    "@", "?token=", "&sig=", "#key=", "code=", "Authorization: ", "Cookie: ", "Set-Cookie:",
    "Bearer ", "Basic ", "abcdefgh12345", "ghp_", "0123456789abcdefghijABCDEFGHIJ0123",
    "github_pat_", "xoxb-", "xapp-1-", "hooks.slack.com/services/", "T000/B000/XXXX",
    "FwoGZXIvYXdz", "IQoJb3JpZ2lu", "hf_", "sk-", "sk_live_", "rk_test_", "glpat-", "npm_",
    "AIza", "ya29.", "password", "pa\u017fsword", "passwd", "pwd", "secret", "\u017fecret",
    "token", "api_key", "apikey", "credentials", "private_key", "\u212aey", "input_value=",
    ", input_type=", "\n", "\r", " ", "\t", '"', "'", ":", "=", "&", ",", "{", "}", "[", "]",
    "_", "-", "/", "x", "AKIAIOSFODNN7EXAMPLE", "ok", "\u0130", "\u00df", "\ud800", "\udfff",
]  # fmt: skip
KEYS = ["id", "title", "note", "token", "api_key", "accessToken", "kid", "Set-Cookie", "url",
        "events", "password_hint", "data", "1"]  # fmt: skip

texts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=10).map("".join),
    st.text(max_size=40),
)
leaves = st.one_of(texts, st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False))
records = st.dictionaries(
    st.sampled_from(KEYS) | texts,
    st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(KEYS) | texts, inner, max_size=3)
        ),
        max_leaves=12,
    ),
    max_size=6,
)


def reference_text(text: str, known: Collection[str] = ()) -> str:
    """Masking by value as documented: every known secret (longest first), then every pattern."""
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return mask_every_pattern(text)


def reference(key: str, value: Any, known: Collection[str] = ()) -> Any:
    """`scrub_value` as documented, with no shortcut."""
    if isinstance(value, SecretStr) or (value is not None and is_secret_key(key)):
        return REDACTED
    if isinstance(value, str):
        return reference_text(value, known)
    if isinstance(value, dict):
        return {
            reference_text(str(k), known): reference(str(k), v, known) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [reference(key, v, known) for v in value]
    return value


HOSTILE: list[dict[str, Any]] = [
    {"title": "leaked", "note": "ghp_0123456789abcdefghijABCDEFGHIJ012345"},
    {"a": "x", "b": "hooks.slack.com/services/T000/B000/XXXXXXXX"},
    {"events": [{"source": "bench", "id": "pa\u017fsword=hunter2xx"}]},
    {"url": "see", "link": "https://user:pw@host/x"},
    {"pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret", "after": "plain"},
    {"nested": {"deep": ["ok", "Bearer abcdefgh123456"]}},
    {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln": 1},
]


@given(records)
@example({"a": "x", "b": "hooks.slack.com/services/T000/B000/XXXXXXXX"})
@example({"t": "pa\u017fsword=hunter2xx", "u": "\u212aey=abcdef"})
@example({"k": "x", "v": "ghp_0123456789abcdefghijABCDEFGHIJ012345"})
@example({"t": "x\ud800y token=abcdef", "k\udc00": "v", "plain": "a\udfff"})
def test_scrub_is_every_pattern_on_every_text(record: dict[str, Any]) -> None:
    """The one joined search and the by-key copy give what masking every text gives."""
    assert scrub(record) == reference("", record)


@given(st.lists(records, max_size=5))
@example([{"a": "x"}, {"b": "hooks.slack.com/services/T000/B000/XXXXXXXX"}, {"c": "y"}])
@example([{"k": "-----BEGIN RSA PRIVATE KEY-----"}, {"k": "abc"}])
@example([{"t": "token="}, {"t": "abcdef"}])  # a secret split across two records is not one
@example([{"plain": "a"}, {"s": "x\ud800y"}])
def test_scrub_each_is_scrub_of_every_record(batch: list[dict[str, Any]]) -> None:
    """One search over a whole batch (the audit append's) masks what a search per record does,
    and only that: texts are joined across records as within one."""
    assert scrub_each(batch) == [reference("", record) for record in batch]


@given(records, st.lists(texts.filter(lambda t: len(t) >= 3), max_size=3))
def test_scrub_with_known_secrets_is_the_same_too(record: dict[str, Any], known: list[str]) -> None:
    assert scrub(record, known) == reference("", record, known)


@given(texts)
@example("hooks.slack.com/services/T000/B000/XXXXXXXX")
@example("pa\u017fsword=hunter2")
@example("pwd=x")
def test_mask_text_is_every_pattern(text: str) -> None:
    """The combined pattern and the length floor skip only texts no pattern changes."""
    assert mask_text(text) == reference_text(text)


def test_a_lone_surrogate_is_masked_as_the_replacement_character() -> None:
    """JSON escapes such as `\\ud800` make texts UTF-8 cannot carry: masking hands back an
    encodable text (RE2, the logs and the databases take UTF-8) instead of failing."""
    assert mask_text("ok \ud800 token=abcdef") == "ok \ufffd token=***"
    assert scrub({"k\udc00": "a\ud800"}) == {"k\ufffd": "a\ufffd"}
    assert mask_text("\ud800").encode("utf-8") == "\ufffd".encode()


def test_the_secrets_the_old_literal_filter_let_through_are_masked() -> None:
    """A hand-kept list of literals guarded the patterns: a Slack webhook path without its
    scheme and a name RE2 case-folds to `password` got past it unmasked."""
    assert mask_text("hooks.slack.com/services/T000/B000/XXXXXXXX") == (
        "hooks.slack.com/services/" + REDACTED
    )
    assert "hunter2" not in mask_text("pa\u017fsword=hunter2")
    assert scrub({"events": [{"id": "pa\u017fsword=hunter2xx"}]}) == {
        "events": [{"id": "pa\u017fsword=" + REDACTED}]
    }


def test_the_comparison_catches_a_scan_that_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the one search to miss (here: it never matches), the records above differ."""

    class Never:
        def search(self, text: str) -> None:
            return None

    monkeypatch.setattr(redact, "_ANY", Never())
    assert [r for r in HOSTILE if scrub(r) != reference("", r)] == HOSTILE


def test_the_comparison_catches_a_join_that_hides_a_word_boundary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Joined with a word character, a token right after another text loses its `\\b` and
    the search misses it: the comparison says so."""
    monkeypatch.setattr(redact, "_JOIN", "x")
    record = HOSTILE[0]
    assert scrub(record) != reference("", record)

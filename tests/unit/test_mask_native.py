"""Records copied with secret keys masked by the compiled path (`responder_native`
`copy_masking_keys`, used by `security.redact.scrub_each` on the audit append) against the Python
reference `_copy_masking_keys`: the same copies (secret keys masked, everything else kept, lists
for tuples) and the same joined texts, or None where it leaves the records to Python.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import SecretStr

from responder.security import redact
from responder.security.redact import (
    _JOIN,
    REDACTED,
    _copy_masking_keys,
    copy_masking_keys,
    is_secret_key,
)

responder_native = pytest.importorskip("responder_native", exc_type=ImportError)


class Level(enum.IntEnum):
    HIGH = 3


class Kind(enum.StrEnum):
    LEAK = "leak"


KEYS = ["id", "token", "api_key", "accessToken", "Set-Cookie", "title", "events", "", "pwd"]
text = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(KEYS)
leaves = (
    text
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.none()
    | st.booleans()
    | st.builds(SecretStr, text)
    | st.just(Level.HIGH)
    | st.just(Kind.LEAK)
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(text, inner, max_size=4)
    ),
    max_leaves=16,
)
records = st.lists(st.dictionaries(text, values, max_size=5), max_size=4)


def nested(depth: int) -> dict[str, Any]:
    """A dict `depth` levels deep."""
    data: dict[str, Any] = {}
    for _ in range(depth):
        data = {"d": data}
    return data


def python(batch: list[dict[str, Any]]) -> tuple[list[Any], str]:
    texts: list[str] = []
    return [_copy_masking_keys("", data, texts) for data in batch], _JOIN.join(texts)


def native(batch: list[Any]) -> tuple[list[Any], str] | None:
    found = responder_native.copy_masking_keys(batch, is_secret_key, SecretStr, REDACTED)
    return None if found is None else (found[0], found[1])


@given(records)
@example([{"token": {"nested": "x"}, "ok": ("a", ["b", {"password": 1}])}])
@example([{"a": SecretStr("s"), "n": None, "api_key": None, "pwd": 0, "title": Kind.LEAK}])
@example([{"x": "é😀\u2028", "level": Level.HIGH}, {}, {"y": [[], {}]}])
def test_the_compiled_copy_is_the_python_copy(batch: list[dict[str, Any]]) -> None:
    found = native(batch)
    assert found is not None  # plain data (str keys, no surrogate): always taken
    copies, joined = found
    expected_copies, expected_joined = python(batch)
    assert joined == expected_joined
    assert copies == expected_copies
    assert [type(c) for c in copies] == [dict] * len(batch)


def test_a_masked_value_is_replaced_whole_and_others_are_kept_as_they_are() -> None:
    level = Level.HIGH
    body = {"note": "hi"}
    copies, joined = copy_masking_keys([{"accessToken": "abc", "level": level, "body": body}])
    assert copies == [{"accessToken": REDACTED, "level": level, "body": {"note": "hi"}}]
    assert copies[0]["level"] is level and copies[0]["body"] is not body  # copied, not shared
    assert joined == "accessToken\nlevel\nbody\nnote\nhi"


@pytest.mark.parametrize(
    "batch",
    [
        [{"t": "x\ud800y"}],  # a lone surrogate: UTF-8 cannot carry it
        [{1: "one"}],  # a key that is not a str: str(k) is Python's
        [{"d": type("D", (dict,), {})(a=1)}],  # a dict subclass
        [{"l": type("L", (list,), {})([1])}],  # a list subclass
        [{"deep": nested(300)}],  # deeper than it goes
    ],
)
def test_what_it_does_not_take_goes_to_python_with_the_same_result(
    batch: list[dict[str, Any]],
) -> None:
    assert native(batch) is None
    assert copy_masking_keys(batch) == python(batch)


def test_without_the_compiled_package_python_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = [{"token": "t", "x": ("a", 1)}]
    compiled = copy_masking_keys(batch)
    monkeypatch.setattr(redact, "responder_native", None)
    assert copy_masking_keys(batch) == compiled == python(batch)

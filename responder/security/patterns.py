"""Regular expressions over untrusted text, in linear time (RE2).

Python's `re` backtracks: `.*\\.pkl$` against a 640 KB field takes minutes. Every pattern an
operator writes that runs on event content (the rules' `re` modifier) is compiled here with RE2
(google-re2), whose run time is linear in the text and whose memory is bounded. RE2 has no
backreferences, lookaround or possessive quantifiers: such a pattern is refused when it is
compiled (`PatternError` with RE2's reason), which the rule loader reports as `file:line`.

Text longer than `MAX_MATCH_CHARS` is matched on its first `MAX_MATCH_CHARS` characters only,
so a pattern anchored at the end (`$`) does not see past the bound.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

MAX_MATCH_CHARS = 65_536  # characters of a value a pattern is matched against
MAX_PATTERN_CHARS = 4_096  # characters of a pattern itself
MAX_PROGRAM_BYTES = 8 << 20  # RE2's memory budget for one compiled pattern


class PatternError(ValueError):
    """A pattern RE2 cannot run in linear time (or at all); the message says why."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the reason goes into PatternError, not to stderr
    options.max_mem = MAX_PROGRAM_BYTES
    return options


@lru_cache(maxsize=4096)
def compile_linear(pattern: str) -> Any:  # re2's compiled pattern (the binding ships no types)
    """The RE2 form of `pattern`; PatternError (a ValueError) when RE2 refuses it."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"pattern is {len(pattern)} characters long (limit {MAX_PATTERN_CHARS})")
    try:
        return re2.compile(pattern, options=_options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"not supported by the linear-time engine (RE2): {reason}") from None


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in the first MAX_MATCH_CHARS characters of `text`."""
    return compile_linear(pattern).search(text[:MAX_MATCH_CHARS]) is not None

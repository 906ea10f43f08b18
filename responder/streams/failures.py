"""How a stage words a failure it did not foresee, for the DLQ headers and the log.

Every stage treats its input as hostile: a record that raises anywhere in its handling goes to
the DLQ with `responder.reason` naming the stage and the exception class and
`responder.detail` holding the exception's message, and the stage goes on with the next one.
"""

from __future__ import annotations

MAX_DETAIL_CHARS = 1000


def failure_reason(stage: str, exc: BaseException) -> str:
    """`ingest failed: OverflowError`."""
    return f"{stage} failed: {type(exc).__name__}"


def failure_detail(exc: BaseException) -> list[str]:
    """`["OverflowError: date value out of range"]`, the message cut at MAX_DETAIL_CHARS."""
    message = str(exc)
    if len(message) > MAX_DETAIL_CHARS:
        message = message[:MAX_DETAIL_CHARS] + "..."
    return [f"{type(exc).__name__}: {message}" if message else type(exc).__name__]

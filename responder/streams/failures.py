"""How a stage words a failure it did not foresee, for the DLQ headers and the log.

Every stage treats its input as hostile: a record that raises anywhere in its handling goes to
the DLQ with `responder.reason` naming the stage and the exception class and
`responder.detail` holding the exception's message, and the stage goes on with the next one.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

MAX_DETAIL_CHARS = 1000
# The DLQ reason of a message without a value (a tombstone): it carries nothing to use
TOMBSTONE = "tombstone: the message has no value"


def failure_reason(stage: str, exc: BaseException) -> str:
    """`ingest failed: OverflowError`."""
    return f"{stage} failed: {type(exc).__name__}"


def failure_detail(exc: BaseException) -> list[str]:
    """`["OverflowError: date value out of range"]`, the message cut at MAX_DETAIL_CHARS."""
    message = str(exc)
    if len(message) > MAX_DETAIL_CHARS:
        message = message[:MAX_DETAIL_CHARS] + "..."
    return [f"{type(exc).__name__}: {message}" if message else type(exc).__name__]


def source_headers(
    topic: str, partition: int, offset: int, reason: str, detail: Sequence[str] = ()
) -> list[tuple[str, bytes]]:
    """The DLQ headers: why a record went there and where it came from."""
    return [
        ("responder.reason", reason.encode()),
        ("responder.detail", orjson.dumps(list(detail))),
        ("responder.source.topic", topic.encode()),
        ("responder.source.partition", str(partition).encode()),
        ("responder.source.offset", str(offset).encode()),
    ]

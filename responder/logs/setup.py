"""structlog setup: JSON lines in production, readable console output in a terminal.

A redaction processor masks secrets by key and by value (`security.redact`) in every event
and its message, so a stray `token=...` in a log call, or a bearer token inside an exception
text, never reaches the output. stdlib logging (aiokafka, faust, alembic, botocore, ...) is
routed through the same renderer and processor. Third-party clients that print credentials,
message texts or request bodies at DEBUG (`CAPPED_LOGGERS`: botocore, boto3, s3transfer,
urllib3, slack_sdk, aiokafka, httpx, httpcore) are held at WARNING whatever the level asked for.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from responder.security.redact import mask_text, scrub_value

NOISY_LOGGERS = ("aiokafka", "kafka", "faust", "mode", "alembic")  # kept at WARNING and above
CAPPED_LOGGERS = (  # their DEBUG/INFO print key ids, message texts, headers or bodies
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "slack_sdk",
    "slack_bolt",
    "aiokafka",
    "httpx",
    "httpcore",
    "mlflow",
)
REPEAT_WINDOW_S = 60.0  # a third-party message repeated within this long is counted, not printed


class RepeatFilter(logging.Filter):
    """Let a third-party logger say the same thing once per `window_s`, with a count.

    During a broker outage aiokafka logs one connection error per client per retry (about
    24,000 lines in 16 s with five stages were seen); the first one says what happened, the
    rest say nothing new. Messages are the same when their logger, level and format string
    are; the next one let through carries `repeated=N`.
    """

    def __init__(self, prefixes: tuple[str, ...], window_s: float = REPEAT_WINDOW_S) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.window_s = window_s
        self.seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        last, suppressed = self.seen.get(key, (float("-inf"), 0))
        if record.created - last < self.window_s:
            self.seen[key] = (last, suppressed + 1)
            return False
        if len(self.seen) > 10_000:  # distinct format strings are few; never grow without bound
            self.seen.clear()
        self.seen[key] = (record.created, 0)
        if suppressed:
            record.msg = f"{record.msg} (repeated {suppressed} times)"
        return True


# What a Kafka client says while it retries something that settles by itself: a new topic's
# leader not yet known everywhere, a leader that moved, a group coordinator not yet elected
# (a fresh broker creates its offsets topic on the first group's request), a group
# rebalancing. The retry succeeds or
# a real error (a timeout) follows, so the user is told nothing they could act on.
SELF_HEALING = (
    "NotLeaderForPartitionError",
    "LeaderNotAvailableError",
    "UnknownTopicOrPartition",
    "GroupCoordinatorNotAvailableError",
)
# aiokafka logs these at error level, then waits and tries again: a failed offset lookup (the
# fetcher), a failed coordinator lookup (the group coordinator, for a retriable error only)
RETRIED_AT_ERROR = ("Failed fetch offsets from", "Group Coordinator Request failed")
# a member's heartbeat answered "rebalance in progress" (another member joined or left: two
# sinks starting side by side): the member rejoins, as the group protocol has it
REJOINING = "because it is rebalancing"


def self_healing(record: logging.LogRecord) -> bool:
    """False for a Kafka client's note that it is retrying a self-healing error."""
    if not record.name.startswith("aiokafka"):
        return True
    message = record.getMessage()
    if message.endswith(REJOINING) and record.levelno < logging.ERROR:
        return False
    if not any(e in message for e in SELF_HEALING):
        return True
    if record.levelno >= logging.ERROR:
        return not message.startswith(RETRIED_AT_ERROR)
    return "retrying" not in message


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask secrets: values under secret-looking keys (at any depth), SecretStr values, and
    secret-shaped text anywhere (the message included, and a traceback's text)."""
    for key, value in list(event_dict.items()):
        if key in ("event", "exception"):
            event_dict[key] = mask_text(value) if isinstance(value, str) else value
        else:
            event_dict[key] = scrub_value(key, value)
    return event_dict


def configure(level: str = "INFO", fmt: str = "auto") -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # JSON lines carry the traceback as text; the console renderer prints it itself
    tracebacks = [structlog.processors.format_exc_info] if as_json else []
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *tracebacks,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    handler.addFilter(self_healing)
    handler.addFilter(RepeatFilter(NOISY_LOGGERS))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in (*NOISY_LOGGERS, *CAPPED_LOGGERS):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

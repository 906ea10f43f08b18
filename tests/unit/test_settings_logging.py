"""Settings from nested RESPONDER_ environment variables; secrets never reach repr or logs."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr, ValidationError

from responder.logs.setup import configure, redact
from responder.security.redact import REDACTED
from responder.settings import KafkaSettings, Settings
from responder.streams.kafka import membership

SECRET = "xoxb-0000-very-secret-value"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("RESPONDER_"):
            monkeypatch.delenv(name)
    return monkeypatch


# --- settings -------------------------------------------------------------------------------


def test_defaults_without_environment(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.database.url == "sqlite:///responder.db"
    assert settings.slack.bot_token is None
    assert settings.rules_dir == Path("rules")


def test_nested_environment_variables(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RESPONDER_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    clean_env.setenv("RESPONDER_KAFKA__PARTITIONS", "12")
    clean_env.setenv("RESPONDER_KAFKA__TOPICS__EVENTS", "acme.events")
    clean_env.setenv("RESPONDER_DATABASE__URL", "postgresql+psycopg://u@db/responder")
    clean_env.setenv("RESPONDER_CORRELATION__COMMIT_INTERVAL_S", "0.25")
    clean_env.setenv("RESPONDER_RULES_DIR", "/etc/responder/rules")
    clean_env.setenv("RESPONDER_LOG_FORMAT", "json")
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.kafka.partitions == 12
    assert settings.kafka.topics.events == "acme.events"
    assert settings.kafka.topics.dlq == "responder.dlq"  # untouched siblings keep defaults
    assert settings.database.url == "postgresql+psycopg://u@db/responder"
    assert settings.correlation.commit_interval_s == 0.25
    assert settings.rules_dir == Path("/etc/responder/rules")
    assert settings.log_format == "json"


def test_invalid_environment_value_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RESPONDER_KAFKA__PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()


def test_slack_token_is_a_secret(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RESPONDER_SLACK__BOT_TOKEN", SECRET)
    clean_env.setenv("RESPONDER_SLACK__SIGNING_SECRET", SECRET + "-signing")
    settings = Settings()
    token = settings.slack.bot_token
    assert isinstance(token, SecretStr)
    assert token.get_secret_value() == SECRET
    assert settings.slack.signing_secret is not None
    assert settings.slack.signing_secret.get_secret_value() == SECRET + "-signing"
    for shown in (repr(token), str(token), repr(settings), str(settings), repr(settings.slack)):
        assert SECRET not in shown
    assert SECRET not in settings.model_dump_json()
    assert SECRET not in json.dumps(settings.model_dump(mode="json"))


# --- redaction ------------------------------------------------------------------------------


def test_redact_masks_secret_keys_and_secret_values() -> None:
    event = {
        "event": "connecting",
        "token": "t-123",
        "password": "hunter2",
        "db_password": "pw",
        "Authorization": "Bearer abc",
        "api_key": "k1",
        "api-key": "k2",
        "client_secret": "cs",
        "credentials": {"user": "a"},
        "whatever": SecretStr("hidden"),
        "user": "alice",
        "count": 3,
        "token_hint": None,
    }
    out = redact(None, "info", event)
    for key in (
        "token",
        "password",
        "db_password",
        "Authorization",
        "api_key",
        "api-key",
        "client_secret",
        "credentials",
        "whatever",
    ):
        assert out[key] == REDACTED, key
    assert out["event"] == "connecting"
    assert out["user"] == "alice"
    assert out["count"] == 3
    assert out["token_hint"] is None  # nothing to hide


def test_redaction_in_the_structlog_chain() -> None:
    with structlog.testing.capture_logs(processors=[redact]) as logs:
        structlog.get_logger("t").info(
            "posting", channel="#ops", token=SECRET, password=SECRET, extra=SecretStr(SECRET)
        )
    assert len(logs) == 1
    entry = logs[0]
    assert entry["token"] == entry["password"] == entry["extra"] == REDACTED
    assert entry["channel"] == "#ops"
    assert SECRET not in repr(entry)


def test_configured_json_logging_never_renders_secrets(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure("INFO", fmt="json")
    log = structlog.get_logger("responder.test")
    log.info(
        "slack posted",
        channel="#secops",
        token=SECRET,
        password=SECRET,
        bot=SecretStr(SECRET),
    )
    log.debug("below the level", token=SECRET)
    logging.getLogger("responder.stdlib").warning("stdlib goes through the same renderer")
    err = capsys.readouterr().err
    assert SECRET not in err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert [line["event"] for line in lines] == [
        "slack posted",
        "stdlib goes through the same renderer",
    ]
    posted, stdlib = lines
    assert posted["token"] == posted["password"] == posted["bot"] == REDACTED
    assert posted["channel"] == "#secops"
    assert posted["level"] == "info"
    assert posted["logger"] == "responder.test"
    assert "timestamp" in posted
    assert stdlib["level"] == "warning"
    assert stdlib["logger"] == "responder.stdlib"


def test_configure_sets_level_and_quiets_noisy_libraries(restore_logging: None) -> None:
    configure("debug", fmt="json")
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("aiokafka").level == logging.WARNING
    configure("ERROR", fmt="console")
    assert logging.getLogger().level == logging.ERROR
    assert logging.getLogger("alembic").level == logging.ERROR


def test_a_third_party_storm_prints_once_per_window(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """A broker outage makes aiokafka repeat one error per retry: the first is printed, the
    rest are counted and the count rides on the next one let through; ours always print."""
    configure("INFO", fmt="json")
    client = logging.getLogger("aiokafka.conn")
    for attempt in range(500):
        client.error("Unable connect to %r", f"127.0.0.1:{attempt}")
    ours = structlog.get_logger("responder.test")
    for _ in range(3):
        ours.warning("stage retrying")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert [line["event"] for line in lines] == [
        "Unable connect to '127.0.0.1:0'",
        "stage retrying",
        "stage retrying",
        "stage retrying",
    ]


def test_retries_that_settle_by_themselves_are_not_shown(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """A fresh topic's leader not yet known to the producer is retried and settles: the user
    sees nothing (the demo printed it); other client warnings still print."""
    configure("INFO", fmt="json")
    sender = logging.getLogger("aiokafka.producer.sender")
    sender.warning(
        "Got error produce response on topic-partition %s, retrying. Error: %s",
        "TopicPartition(topic='t', partition=3)",
        "<class 'aiokafka.errors.NotLeaderForPartitionError'>",
    )
    sender.warning("Got error produce response: %s", "<class 'aiokafka.errors.KafkaTimeoutError'>")
    fetcher = logging.getLogger("aiokafka.consumer.fetcher")  # a fresh topic's offset lookup
    fetcher.error(
        "Failed fetch offsets from %s: %s",
        1,
        "[Error 6] NotLeaderForPartitionError: TopicPartition(topic='t', partition=3)",
    )
    fetcher.error("Failed fetch offsets from %s: %s", 1, "[Error 7] RequestTimedOutError")
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")  # a fresh broker
    coordinator.error(
        "Group Coordinator Request failed: %s", "[Error 15] GroupCoordinatorNotAvailableError"
    )
    coordinator.error(
        "Group Coordinator Request failed: %s", "[Error 30] GroupAuthorizationFailedError"
    )
    # a second member joined (two sinks starting): this one rejoins
    coordinator.warning("Heartbeat failed for group %s because it is rebalancing", "g-sink")
    coordinator.warning(
        "Heartbeat failed for group %s: coordinator (node %s) is either not started or not valid",
        "g-sink",
        1,
    )
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert [line["event"] for line in lines] == [
        "Got error produce response: <class 'aiokafka.errors.KafkaTimeoutError'>",
        "Failed fetch offsets from 1: [Error 7] RequestTimedOutError",
        "Group Coordinator Request failed: [Error 30] GroupAuthorizationFailedError",
        "Heartbeat failed for group g-sink: coordinator (node 1) is either not started or not valid",
    ]


def test_repeat_filter_reports_the_count_after_the_window() -> None:
    """After the window, the message prints again with how many were held back."""
    from responder.logs.setup import RepeatFilter

    repeats = RepeatFilter(("aiokafka",), window_s=10)

    def record(at: float) -> logging.LogRecord:
        made = logging.LogRecord("aiokafka", logging.ERROR, "x", 1, "fetch failed", None, None)
        made.created = at
        return made

    passed = [r for r in (record(0), record(1), record(5), record(11)) if repeats.filter(r)]
    assert [r.getMessage() for r in passed] == ["fetch failed", "fetch failed (repeated 2 times)"]


def test_json_lines_carry_the_traceback(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """`log.exception` in JSON output includes the traceback text, not just the message."""
    configure("INFO", fmt="json")
    try:
        raise ValueError("the database went away")
    except ValueError:
        structlog.get_logger("responder.test").exception("runner tick failed")
    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert "Traceback" in line["exception"]
    assert "ValueError: the database went away" in line["exception"]


def test_stage_consumers_use_static_membership_with_an_instance_id() -> None:
    dynamic = membership(KafkaSettings(), "ingest")
    assert "group_instance_id" not in dynamic
    assert dynamic["session_timeout_ms"] == 10_000 and dynamic["heartbeat_interval_ms"] == 500
    static = membership(KafkaSettings(instance_id="pod-0", session_timeout_s=30), "correlate")
    assert static["group_instance_id"] == "pod-0-correlate"
    assert static["session_timeout_ms"] == 30_000

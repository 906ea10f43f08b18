"""Outages never end a worker: it waits for the broker, says so once, serves when it returns."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.support.harness import (
    EACH_RULE,
    Worker,
    event_json,
    incidents,
    produce,
    topic,
    wait_for,
    worker_env,
    write_rules,
)
from tests.support.tcp_proxy import TcpProxy, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def log_lines(worker: Worker, logger: str) -> list[dict[str, object]]:
    return [
        doc
        for line in worker.log().splitlines()
        if line.startswith("{") and (doc := json.loads(line)).get("logger") == logger
    ]


def test_worker_started_before_the_broker_waits_then_serves(
    kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    """Started while Kafka is unreachable, the worker stays up, logs the outage once (and its
    end once), then serves; SIGTERM then stops it cleanly with exit code 0."""
    port = free_port()
    db = f"sqlite:///{tmp_path / 'w.db'}"
    env = worker_env(f"127.0.0.1:{port}", db, write_rules(tmp_path / "rules", EACH_RULE), unique)
    worker = Worker(env, tmp_path / "worker.log")
    proc = worker.spawn()
    try:
        wait_for(lambda: "Kafka unreachable" in worker.log(), 60)
        # a few backoff rounds (0.5 + 1 + 2 + 4 s) pass without the process giving up
        with pytest.raises(TimeoutError):
            wait_for(lambda: proc.poll() is not None, 8)
        with TcpProxy(port, kafka_bootstrap):
            wait_for(lambda: "worker started" in worker.log(), 90)
            produce(
                kafka_bootstrap,
                topic(unique, "events"),
                [event_json("leak-1", type="secret.leaked", resource="AKIA1")],
            )
            wait_for(lambda: len(incidents(db)) == 1, 60)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
    finally:
        worker.stop()
    assert worker.log().count("Kafka unreachable; retrying until it answers") == 1
    assert worker.log().count("Kafka reachable again") == 1
    assert "a pipeline stage failed" not in worker.log()  # a normal SIGTERM is no failure
    assert (
        len(log_lines(worker, "aiokafka")) <= 5
    )  # repeated client errors are counted, not printed

"""A worker's edges, on the real broker: on fresh topics it says nothing the user could not act
on, it joins only consumer groups under RESPONDER_KAFKA__GROUP_PREFIX, and a SIGTERM stops it
without an error line and with every offset committed (the stage loops commit in the
background, so the stop must drain what is still on its way)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.harness import (
    EACH_RULE,
    Worker,
    caught_up,
    event_json,
    incidents,
    produce,
    topic,
    wait_for,
    worker_env,
    write_rules,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMMIT_GROUPS = ("ingest", "reports", "correlate", "sink", "commands")  # every consuming stage


async def groups_of_client(bootstrap: str, client_prefix: str, unique: str) -> set[str]:
    """The consumer groups that have a member whose client id starts with `client_prefix`,
    among those named with `unique` or `responder...` (the defaults a worker could fall back to;
    described one at a time: aiokafka cannot decode some multi-group answers of this broker)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [group for group, _ in await admin.list_consumer_groups()]
        found: set[str] = set()
        for name in names:
            if unique not in name and not name.startswith("responder"):
                continue
            for described in await admin.describe_consumer_groups([name]):
                # (error_code, group, state, protocol_type, protocol, members); a member is
                # (member_id, client_id, client_host, metadata, assignment)
                for group in described.groups:
                    if any(member[1].startswith(client_prefix) for member in group[5]):
                        found.add(group[1])
        return found
    finally:
        await admin.close()


def complaints(log: str) -> list[str]:
    """Log lines at warning level or above (JSON lines, or anything else a library printed)."""
    found = []
    for line in log.splitlines():
        start = line.find("{")
        try:
            level = json.loads(line[start:]).get("level", "") if start >= 0 else "?"
        except ValueError:
            level = "?"
        if level not in ("debug", "info"):
            found.append(line)
    return found


def test_a_worker_on_fresh_topics_joins_only_its_groups_and_stops_cleanly_on_sigterm(
    kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    rules = write_rules(tmp_path / "rules", EACH_RULE)
    (tmp_path / "playbooks").mkdir()  # none, on purpose (a missing directory is warned about)
    env = worker_env(kafka_bootstrap, db, rules, unique, playbooks_dir=tmp_path / "playbooks")
    env["RESPONDER_KAFKA__CLIENT_ID"] = f"c-{unique}"
    prefix = env["RESPONDER_KAFKA__GROUP_PREFIX"]
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        produce(
            kafka_bootstrap,
            topic(unique, "events"),
            [event_json(f"leak-{i}", type="secret.leaked", resource=f"AKIA{i}") for i in range(6)],
        )
        wait_for(lambda: len(incidents(db)) == 6, 90)
        joined = asyncio.run(groups_of_client(kafka_bootstrap, f"c-{unique}", unique))
        assert joined == {f"{prefix}-{stage}" for stage in COMMIT_GROUPS}

        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(timeout=60) == 0
    finally:
        worker.stop()
    log = worker.log()
    assert log.count('"worker stopped"') == 1
    assert complaints(log) == []  # no NotLeaderForPartition, no failed stage, no CancelledError
    assert "\x1b" not in log  # no terminal control codes (faust's spinner) in a log
    for stage, name in (("ingest", "events"), ("correlate", "correlate"), ("sink", "incidents")):
        assert caught_up(kafka_bootstrap, f"{prefix}-{stage}", topic(unique, name)), stage

"""A worker restarted under its instance id (static group membership) takes its partitions back
at once: it does not wait for the killed process's session to expire."""

from __future__ import annotations

from pathlib import Path

import pytest

from responder.storage.database import make_engine, upgrade
from tests.support.harness import EACH_RULE, Worker, wait_for, worker_env, write_rules

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_killed_worker_restarted_under_its_instance_id_gets_every_partition_back(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, tmp_path: Path, workers: list[Worker]
) -> None:
    """With a 120 s session, a new member would wait for the killed one's session to expire
    before the group could hand out its partitions; the same instance id replaces it."""
    upgrade(make_engine(pg_schema_url))
    env = worker_env(kafka_bootstrap, pg_schema_url, write_rules(tmp_path / "r", EACH_RULE), unique)
    env["RESPONDER_KAFKA__SESSION_TIMEOUT_S"] = "120"
    env["RESPONDER_KAFKA__INSTANCE_ID"] = "worker-a"
    first = Worker(env, tmp_path / "w1.log").start()
    workers.append(first)

    def assigned(worker: Worker) -> list[int] | None:
        found = worker.log_events("correlation partitions assigned")
        return found[-1]["partitions"] if found else None

    wait_for(lambda: assigned(first) == [0, 1, 2, 3], 60)
    first.kill()
    second = Worker(env, tmp_path / "w2.log").start()
    workers.append(second)
    wait_for(lambda: assigned(second) == [0, 1, 2, 3], 60)  # well within the 120 s session

"""A whole responder on loopback for end-to-end tests: a real worker process and the real API
(uvicorn in a thread) on one PostgreSQL schema and per-test topics, with a token per role."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from responder import bootstrap
from responder.service.identity import Role
from responder.settings import Settings, merged
from responder.storage.database import make_engine, upgrade
from tests.support.api import api_settings, issue_tokens, serving
from tests.support.harness import Worker, produce, topic, worker_env

TAMPERED_RULE = """
id: model-tampered
title: Model tampered
match:
  type: model.tampered
group_by: [resource.id]
window: 1h
incident:
  kind: model_tampering
  severity: critical
  title: "{{ event.title }} on {{ group['resource.id'] }}"
"""

QUARANTINE_PLAYBOOK = """
id: quarantine-model
title: Quarantine a tampered model
on: {kind: model_tampering}
mode: automatic
steps:
  - id: approve
    action: approval.request
    with:
      prompt: "Quarantine {{ incident.group['resource.id'] }}?"
      timeout: 1h
  - id: note
    action: incident.update
    if: "{{ steps.approve.output.approved }}"
    with: {comment: "Quarantined by the playbook"}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    url: str
    worker: Worker
    settings: Settings
    engine: Engine
    tokens: dict[Role, str]
    kafka: str
    unique: str
    metrics_port: int

    def send(self, *events: Mapping[str, object]) -> None:
        """Produce events to the worker (from a thread of its own: Playwright's sync API keeps
        an event loop running in the test's thread)."""
        values = [json.dumps(e).encode() for e in events]
        with ThreadPoolExecutor(1) as pool:
            pool.submit(produce, self.kafka, topic(self.unique, "events"), values).result()


@contextmanager
def running_stack(kafka: str, db_url: str, unique: str, tmp: Path) -> Iterator[Stack]:
    """Worker (metrics on a free port) and API (live pages polling every 0.3 s), both up."""
    engine = make_engine(db_url)
    upgrade(engine)
    rules, playbooks = tmp / "rules", tmp / "playbooks"
    rules.mkdir()
    playbooks.mkdir()
    (rules / "tampered.yaml").write_text(TAMPERED_RULE)
    (playbooks / "quarantine.yaml").write_text(QUARANTINE_PLAYBOOK)
    port = free_port()
    env = worker_env(kafka, db_url, rules, unique, partitions=2, playbooks_dir=playbooks)
    env["RESPONDER_METRICS__PORT"] = str(port)
    worker = Worker(env, tmp / "worker.log").start()
    try:
        settings = merged(
            api_settings(db_url, kafka, unique), {"web": {"poll_s": 0.3, "secure_cookie": False}}
        )
        app = bootstrap.api_app(settings, engine=engine)
        with serving(app) as url:
            yield Stack(url, worker, settings, engine, issue_tokens(engine), kafka, unique, port)
    finally:
        worker.stop()
        engine.dispose()

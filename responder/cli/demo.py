"""`responder demo`: the sample scenario end to end on the local Kafka and embedded SQLite.

Starts a real `responder worker` process on fresh demo topics, sends the shipped scenario,
waits until the database holds the incidents the offline replay predicts and the playbook runs
they trigger, prints them with the DLQ'd line and the audit verification, and stops the worker.
Playbooks run with the kill switch on: every run is a dry run (planned and audited, nothing is
touched), since a fresh machine has no Slack, AWS or MLflow to act on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from rich.console import Console
from sqlalchemy import Engine
from sqlmodel import Session

from responder import bootstrap
from responder.audit.store import verify_chain
from responder.cli.incident_view import incidents_table
from responder.cli.send import send_file
from responder.correlation.replay import replay
from responder.correlation.rules import load_rules
from responder.incidents.store import list_incidents
from responder.kafka_clients import client_options
from responder.playbooks.plan import plan_changes
from responder.playbooks.runs import PlaybookRun, list_runs
from responder.playbooks.statuses import ACTIVE
from responder.security.terminal import safe
from responder.settings import Settings, as_environment, merged
from responder.streams.topics import wait_for_broker

SCENARIO = Path(str(files("responder") / "samples" / "scenario.jsonl"))
WAIT_S = 90.0


def demo_settings(base: Settings, run_id: str, workdir: Path) -> tuple[Settings, dict[str, str]]:
    """Fresh topics, groups and database for this run; the same overrides as env for the worker."""
    topics = {
        name: f"{getattr(base.kafka.topics, name)}.demo-{run_id}"
        for name in ("events", "dlq", "correlate", "changelog", "incidents", "commands")
    }
    overrides: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": base.kafka.bootstrap_servers,
            "group_prefix": f"responder-demo-{run_id}",
            "topics": topics,
        },
        "database": {"url": f"sqlite:///{workdir / 'demo.db'}"},
        "rules_dir": str(base.rules_dir.resolve()),
        "correlation": {"commit_interval_s": 0.5},
        "log_format": "json",
        "playbooks": {
            "dir": str(base.playbooks.dir.resolve()),
            "kill_switch": True,
            "poll_s": 0.2,
        },
    }
    return merged(base, overrides), as_environment(overrides)


async def _dlq_reasons(settings: Settings) -> list[str]:
    consumer = AIOKafkaConsumer(
        settings.kafka.topics.dlq,
        **client_options(settings.kafka),
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=2000)
        return [
            dict(m.headers).get("responder.reason", b"?").decode()
            for msgs in batch.values()
            for m in msgs
        ]
    finally:
        await consumer.stop()


def run_demo(base: Settings, out: Console, err: Console) -> int:
    workdir = Path(".responder").resolve()
    workdir.mkdir(exist_ok=True)
    (workdir / "demo.db").unlink(missing_ok=True)
    run_id = time.strftime("%Y%m%d%H%M%S")
    settings, env = demo_settings(base, run_id, workdir)
    asyncio.run(wait_for_broker(settings.kafka, timeout_s=30))
    expected = replay(SCENARIO.read_bytes().splitlines(), load_rules(settings.rules_dir))
    want = sorted(len(i.events) for i in expected.incidents)
    planned = [
        run
        for incident in expected.incidents
        for run in plan_changes(incident.changes, bootstrap.playbooks(settings), kill_switch=True)
    ]
    out.print(
        f"[bold]responder demo[/bold] · run {run_id} · Kafka {settings.kafka.bootstrap_servers}"
    )
    log_path = workdir / "demo-worker.log"
    with log_path.open("w") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "responder", "worker"],
            env={**os.environ, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            out.print(f"worker started (pid {worker.pid}, log {log_path})")
            sent = asyncio.run(send_file(settings.kafka, SCENARIO, settings.kafka.topics.events))
            out.print(f"sent {sent} events from {SCENARIO.name}; waiting for incidents...")
            engine = bootstrap.database(settings)
            deadline = time.monotonic() + WAIT_S
            rows = []
            runs: list[PlaybookRun] = []
            while time.monotonic() < deadline and worker.poll() is None:
                with Session(engine) as session:
                    rows = list_incidents(session)
                    if sorted(r.event_count for r in rows) == want:
                        break
                time.sleep(0.5)
            out.print(incidents_table(rows))
            runs = _wait_for_runs(engine, len(planned), deadline)
            if runs:
                out.print(
                    f"playbook runs (dry run: kill switch on, {len(runs)} of {len(planned)} "
                    "expected; see them with `responder runs show <id>`):"
                )
                for run in runs:
                    out.print(
                        f"  {run.id[:8]}  {safe(run.playbook_id):<28} {run.status}", highlight=False
                    )
            reasons = asyncio.run(_dlq_reasons(settings))
            for reason in reasons:
                out.print(f"dead-lettered: {safe(reason)}", highlight=False)
            with Session(engine) as session:
                count, broken = verify_chain(session)
            if broken:
                out.print(f"[red]audit: BROKEN at record {broken.seq}: {safe(broken.reason)}[/red]")
            else:
                out.print(f"audit verify: OK ({count} records, hash chain intact)")
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
    ok = sorted(r.event_count for r in rows) == want and broken is None
    ok = ok and len(runs) == len(planned) and all(r.status == "completed" for r in runs)
    if not ok:
        err.print(
            f"demo incomplete: expected incidents with {want} events and {len(planned)} "
            f"completed playbook runs; see {log_path}"
        )
        return 1
    out.print(
        f"[green]demo OK[/green]: {len(rows)} incidents, {len(runs)} playbook runs planned; "
        f"database {workdir / 'demo.db'}; "
        f"try: RESPONDER_DATABASE__URL=sqlite:///{workdir / 'demo.db'} responder incidents list"
    )
    return 0


def _wait_for_runs(engine: Engine, expected: int, deadline: float) -> list[PlaybookRun]:
    runs: list[PlaybookRun] = []
    while time.monotonic() < deadline:
        with Session(engine) as session:
            runs = list_runs(session)
        if len(runs) >= expected and all(r.status not in ACTIVE for r in runs):
            break
        time.sleep(0.3)
    return sorted(runs, key=lambda r: r.playbook_id)

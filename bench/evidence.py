"""One incident flooded with events: what each of its changes costs the sink as it grows.

A quiet stream stores a change a transaction. Each change here adds EVENTS events to the same
incident (as a flood into one group does); the sink's batch step (`store_changes`, as the stage
runs it) stores it, and the wall time per change is printed as the incident's events grow,
side by side: with the default evidence limit (`RESPONDER_WORKER__MAX_EVIDENCE`) and without
one (every event kept: what the sink did before the limit). On SQLite, and on PostgreSQL when
given.

Run: `python bench/evidence.py [--postgres URL] [--events 20000]`
(default URL: $RESPONDER_BENCH_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import Session
from workers import pg_schema

from responder.incidents.model import IncidentChange
from responder.incidents.store import MAX_EVIDENCE
from responder.logs import configure
from responder.storage.database import make_engine, upgrade
from responder.streams.sink import store_changes

T0 = datetime(2026, 11, 25, tzinfo=UTC)
EVENTS = 10  # events a change adds
MARKS = (1_000, 5_000, 10_000, 20_000, 40_000, 100_000)


def body(i: int) -> dict[str, Any]:
    return {
        "id": f"flood-{i}",
        "source": "model-monitor",
        "type": "input.adversarial",
        "time": (T0 + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z"),
        "severity": "high",
        "title": "adversarial input",
        "resource": {"kind": "endpoint", "id": "fraud-scorer"},
        "attributes": {"score": 0.97},
        "labels": {},
        "schema_version": "1",
    }


def change(version: int) -> IncidentChange:
    first = (version - 1) * EVENTS
    return IncidentChange(
        change="opened" if version == 1 else "updated",
        version=version,
        incident_id="flooded-incident",
        rule="adversarial-burst",
        kind="adversarial_input",
        title="Adversarial inputs against fraud-scorer",
        severity="high",
        group={"resource.id": "fraud-scorer"},
        first_seen=T0,
        last_seen=T0 + timedelta(milliseconds=first + EVENTS - 1),
        event_count=first + EVENTS,
        events=[body(first + k) for k in range(EVENTS)],
    )


@contextlib.contextmanager
def database(kind: str, postgres: str | None) -> Iterator[str]:
    if kind == "postgresql":
        assert postgres is not None
        with pg_schema(postgres) as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="responder-bench-evidence-") as tmp:
        yield f"sqlite:///{tmp}/evidence.db"


def grow(url: str, events: int, max_evidence: int) -> dict[int, float]:
    """ms per change over the changes before each mark (events the incident has had)."""
    engine = make_engine(url)
    upgrade(engine)
    out: dict[int, float] = {}
    start, done = time.perf_counter(), 0
    for version in range(1, events // EVENTS + 1):
        with Session(engine) as session:
            store_changes(session, [change(version)], max_evidence=max_evidence)
            session.commit()
        seen = version * EVENTS
        if seen in MARKS:
            now = time.perf_counter()
            out[seen] = (now - start) / (version - done) * 1000
            start, done = now, version
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--postgres", default=os.environ.get("RESPONDER_BENCH_DATABASE_URL"))
    ap.add_argument("--events", type=int, default=20_000)
    args = ap.parse_args()
    configure("ERROR", "console")  # the sink's "evidence is full" warning, once per run
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    print(f"one incident, {EVENTS} events a change, a transaction a change")
    print(f"| database | events so far | ms a change, limit {MAX_EVIDENCE:,} | ms, no limit |")
    print("|---|---|---|---|")
    for kind in kinds:
        with database(kind, args.postgres) as url:
            limited = grow(url, args.events, MAX_EVIDENCE)
        with database(kind, args.postgres) as url:
            unlimited = grow(url, args.events, 10**9)
        for mark, ms in limited.items():
            print(f"| {kind} | {mark:,} | {ms:.1f} | {unlimited[mark]:.1f} |", flush=True)


if __name__ == "__main__":
    main()

"""Sink benchmark: the SQL sink alone (no Kafka), on SQLite and PostgreSQL, CPU per change.

The synthetic events of `bench/pipeline.py` are correlated offline with the shipped rules (the
worker's engine, as `replay` runs it) into incident changes, encoded as the incidents topic
carries them; then the sink stores them in batches of the stage's size, as its `handle` does
(parse each change, `SinkStage._apply`: one transaction a batch), with the shipped playbooks
(runs are created) and, with `--assets`, an asset graph naming the events' resources (every
change's blast radius is computed and stored). Prints, per database, incident changes/s (wall)
and µs of this process's CPU per change; the database server's CPU is not in it.

Run: `python bench/sink.py --postgres URL` (default: $RESPONDER_BENCH_DATABASE_URL).
`--profile DIR` writes a cProfile dump per database.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import synthetic
from sqlalchemy import func
from sqlmodel import Session, select
from workers import pg_schema

from responder import bootstrap
from responder.assets.blast_store import IncidentBlastRadius
from responder.assets.graph import AssetGraph
from responder.assets.lineage import LineageIndex
from responder.assets.model import EdgeKind, NodeKind, edge, node, simple_id
from responder.assets.snapshot import SnapshotRefresher
from responder.audit.store import AuditRecord
from responder.correlation.engine import Correlator
from responder.correlation.rules import load_rules
from responder.events.schema import Rejection, event_to_dict, parse_event
from responder.incidents.model import IncidentChange
from responder.incidents.store import IncidentEvent
from responder.logs import configure
from responder.playbooks.runs import PlaybookRun
from responder.settings import Settings, merged
from responder.storage.database import make_engine, upgrade
from responder.streams.collector import tune_gc

BATCH = 2000  # the sink stage's max_records
T0 = datetime(2026, 11, 25, tzinfo=UTC)


def changes_of(events: list[bytes], rules: Path, index: LineageIndex) -> list[bytes]:
    """The incident changes the worker's engine makes of `events`, in the order it makes them,
    as the incidents topic carries them."""
    correlator = Correlator(load_rules(rules))
    out: list[bytes] = []
    for line in events:
        parsed = parse_event(line)
        if isinstance(parsed, Rejection):
            continue
        doc = event_to_dict(parsed)
        for change in correlator.process(doc, parsed.time.timestamp(), index.of(doc["resource"])):
            out.append(change.model_dump_json().encode())
    return out


def graph_for(groups: int) -> AssetGraph:
    """Every synthetic endpoint uses its group's key and runs its group's image; a tenth of
    the endpoints are critical."""
    nodes, edges = [], []
    for g in range(groups):
        ep = simple_id(NodeKind.endpoint, f"ep-{g}")
        key = simple_id(NodeKind.api_key, f"AKIA{g:012d}")
        image = simple_id(NodeKind.image, f"registry/ml/serving-{g}:1.0")
        nodes.append(node(ep, "bench", T0, tier="critical" if g % 10 == 0 else "high"))
        edges += [
            edge(ep, EdgeKind.uses, key, "bench", T0),
            edge(ep, EdgeKind.runs, image, "bench", T0),
        ]
    return AssetGraph(nodes, edges)


@contextlib.contextmanager
def database(kind: str, postgres: str) -> Iterator[str]:
    if kind == "postgresql":
        with pg_schema(postgres) as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="responder-bench-sink-") as tmp:
        url = f"sqlite:///{tmp}/sink.db"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


def store(
    url: str, values: list[bytes], playbooks: Path | None, graph: AssetGraph | None, prof: Any
) -> dict[str, float]:
    """Store every change through the sink's batch step, the sink stage built as the worker
    builds it (`bootstrap.pipeline`, an audit chain key); wall and CPU seconds, rows made."""
    settings = merged(
        Settings(),
        {
            "database": {"url": url},
            "playbooks": {"dir": str(playbooks or tempfile.mkdtemp())},
            "audit": {"key": "bench-chain-key-0123456789abcdef"},
        },
    )
    engine = bootstrap.database(settings)
    built = bootstrap.pipeline(settings, engine=engine, stages=("sink",))
    sink = built.sink
    assert sink is not None
    if graph is not None:
        for helper in built.helpers:  # the snapshot the worker would load from SQL
            if isinstance(helper, SnapshotRefresher):
                helper.snapshot.set(graph)
    with Session(engine) as session:  # connect and warm up outside the clock
        session.exec(select(func.count()).select_from(AuditRecord)).one()
    wall, cpu = time.perf_counter(), time.process_time()
    if prof is not None:
        prof.enable()
    applied = 0
    for i in range(0, len(values), BATCH):
        applied += sink._apply(
            [IncidentChange.model_validate_json(v) for v in values[i : i + BATCH]]
        )
    if prof is not None:
        prof.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    with Session(engine) as session:
        counts = {
            name: session.exec(select(func.count()).select_from(table)).one()
            for name, table in (
                ("runs", PlaybookRun),
                ("evidence", IncidentEvent),
                ("audit", AuditRecord),
                ("radii", IncidentBlastRadius),
            )
        }
    engine.dispose()
    return {"wall": wall, "cpu": cpu, "applied": applied, **counts}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--postgres", default=os.environ.get("RESPONDER_BENCH_DATABASE_URL"))
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--rules", type=Path, default=Path("rules"))
    ap.add_argument("--playbooks", type=Path, default=Path("playbooks"))
    ap.add_argument("--no-playbooks", action="store_true", help="no run is created")
    ap.add_argument("--assets", action="store_true", help="a graph: blast radii are computed")
    ap.add_argument("--databases", default="sqlite,postgresql")
    ap.add_argument("--repeat", type=int, default=1, help="runs per database (medians)")
    ap.add_argument("--profile", type=Path, help="a directory: one cProfile dump per database")
    args = ap.parse_args()
    kinds = args.databases.split(",")
    if "postgresql" in kinds and not args.postgres:
        ap.error("--postgres or RESPONDER_BENCH_DATABASE_URL is required for postgresql")
    configure("WARNING", "console")
    tune_gc()  # as the worker does
    graph = graph_for(args.groups) if args.assets else None
    index = LineageIndex(graph if graph is not None else AssetGraph())
    values = changes_of(synthetic(args.events, args.groups), args.rules, index)
    print(f"{args.events:,} events made {len(values):,} incident changes", flush=True)
    playbooks = None if args.no_playbooks else args.playbooks
    for kind in kinds:
        runs = []
        for _ in range(args.repeat):
            prof = cProfile.Profile(time.process_time) if args.profile else None
            with database(kind, args.postgres) as url:
                runs.append(store(url, values, playbooks, graph, prof))
            if prof is not None:
                prof.dump_stats(args.profile / f"sink-{kind}.prof")
        rate = statistics.median(len(values) / r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] / len(values) * 1e6 for r in runs)
        last = runs[-1]
        print(
            f"sink alone, {kind}: {rate:,.0f} incident changes/s, {cpu:.0f} µs CPU per change "
            f"({last['applied']:,.0f} applied, {last['evidence']:,.0f} evidence rows, "
            f"{last['audit']:,.0f} audit records, {last['runs']:,.0f} runs, "
            f"{last['radii']:,.0f} blast radii)",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Ingest micro-benchmark: the cost of lineage enrichment on the hot path (no Kafka).

Runs the ingest stage's batch work (`streams.ingest_batch.IngestBatch`: validate, route, encode)
on the pipeline benchmark's synthetic events (`bench/pipeline.py`, the shipped rules) three
ways: (a) without an asset graph, (b) with an empty graph (a worker before its first sync),
(c) with a graph in which every endpoint, key and image of the events is an asset, each
endpoint serving a model alias whose version was trained on a dataset, and (d) as (c) with one
more rule, grouped on `lineage.model`, that the adversarial half of the events feeds (so their
lineage is looked up and routed on). Prints CPU µs per event
of a first pass (the lineage caches cold, as after a graph change), then the median of
`--repeat` passes (batches of 5,000 as the stage fetches) and the ratios to (a).
Run: `python bench/ingest_lineage.py` (or `-h`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import synthetic  # noqa: E402

from responder.assets.graph import AssetGraph  # noqa: E402
from responder.assets.lineage import GraphSnapshot  # noqa: E402
from responder.assets.model import EdgeKind, NodeKind, dataset_id, edge, simple_id  # noqa: E402
from responder.correlation.rules import Rule, RuleSet, load_rules  # noqa: E402
from responder.streams.ingest_batch import IngestBatch  # noqa: E402
from tests.support.asset_chain import serving_chain  # noqa: E402
from tests.support.builders import count_rule  # noqa: E402

AT = datetime(2026, 11, 25, tzinfo=UTC)
# (d): half the events (the adversarial inputs) also feed a rule grouped on their lineage
LINEAGE_RULE = Rule.model_validate(
    count_rule("bench-by-model", "input.adversarial", "lineage.model", "5m", 1000)
)


def graph_for(groups: int) -> AssetGraph:
    """Every endpoint, key and image the synthetic events name, with a model chain behind each."""
    edges = []
    for g in range(groups):
        model, version, endpoint = f"m{g % 200}", g % 5 + 1, f"ep-{g}"
        trained_on = {version: [dataset_id(f"d{g % 50}", "abc")]}
        edges += serving_chain(model, trained_on, AT, champion=version, endpoint=endpoint)
        served = simple_id(NodeKind.endpoint, endpoint)
        key = simple_id(NodeKind.api_key, f"AKIA{g:012d}")
        image = simple_id(NodeKind.image, f"registry/ml/serving-{g}:1.0")
        edges += [
            edge(served, EdgeKind.uses, key, "a", AT),
            edge(served, EdgeKind.runs, image, "a", AT),
        ]
    return AssetGraph((), edges)


def cpu_per_event(work: IngestBatch, values: list[bytes], batch: int) -> float:
    started = time.process_time()
    for i in range(0, len(values), batch):
        work.handle(values[i : i + batch])
    return (time.process_time() - started) / len(values) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rules", type=Path, default=Path("rules"))
    args = ap.parse_args()
    values = synthetic(args.events, args.groups)
    rules = load_rules(args.rules)
    full = GraphSnapshot(graph_for(args.groups))
    with_lineage_rule = RuleSet([*rules.rules.values(), LINEAGE_RULE])
    ways = {
        "no graph": IngestBatch(rules, 4),
        "empty graph": IngestBatch(rules, 4, GraphSnapshot()),
        "full graph": IngestBatch(rules, 4, full),
        "+ by model": IngestBatch(with_lineage_rule, 4, full),
    }
    cold = {name: cpu_per_event(work, values, 5000) for name, work in ways.items()}
    print(
        "first pass (lineage caches cold): " + ", ".join(f"{n} {v:.2f} µs" for n, v in cold.items())
    )
    results: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeat):  # interleaved, so drift of the machine hits all alike
        for name, work in ways.items():
            results[name].append(cpu_per_event(work, values, 5000))
    base = statistics.median(results["no graph"])
    for name, runs in results.items():
        median = statistics.median(runs)
        print(
            f"{name:12s} {median:6.2f} µs/event  ratio {median / base:.3f}  runs {[round(r, 2) for r in runs]}"
        )


if __name__ == "__main__":
    main()

"""Correlation cost by arrival order: one group's events in time order vs in reverse.

A late event joins every window that ends at a later event of its group within `window`, so the
engine must check those windows; this measures that it does so at a cost independent of arrival
order. For each shipped rule kind (temporal_ordered, value_count), N `key.used` events of one key
that never fire (the worst case: every window is checked, none opens an incident) go through
`responder replay`'s engine in order and reversed, with an allowed lateness that covers them all.
Run: `python bench/arrival_order.py [-n 1000 2000]` (also part of `make bench`).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from responder.correlation.replay import replay
from responder.correlation.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]
BASE = datetime(2026, 11, 25, tzinfo=UTC)


def events(n: int, *, many_ips: bool) -> list[str]:
    """N uses of one key, 0.5 s apart (all within one 10 or 30 minute window for n <= 1200)."""
    out = []
    for i in range(n):
        moment = (BASE + timedelta(seconds=i * 0.5)).isoformat().replace("+00:00", "Z")
        doc = {
            "id": f"e{i}",
            "source": "cloudtrail",
            "type": "key.used",
            "time": moment,
            "severity": "low",
            "title": "key used",
            "resource": {"kind": "api_key", "id": "AKIABENCH"},
            "actor": {"ip": f"10.0.0.{i % 2}" if many_ips else "10.0.0.1"},
            "labels": {"env": "prod"},
            "schema_version": "1",
        }
        out.append(json.dumps(doc))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, nargs="+", default=[1000, 2000])
    args = parser.parse_args()
    rules = load_rules(ROOT / "rules")
    print(f"{'events':>7} {'rule kind':<18} {'in order':>9} {'reverse':>9} {'ratio':>6}")
    for n in args.n:
        for label, many_ips in (("temporal_ordered", False), ("value_count (2 ips)", True)):
            lines = events(n, many_ips=many_ips)
            timings = []
            for ordered in (lines, lines[::-1]):
                started = time.perf_counter()
                result = replay(ordered, rules, allowed_lateness=timedelta(hours=2))
                timings.append(time.perf_counter() - started)
                assert not result.incidents and not result.rejected
            forward, backward = timings
            print(
                f"{n:>7} {label:<18} {forward:>8.2f}s {backward:>8.2f}s {backward / forward:>6.1f}"
            )


if __name__ == "__main__":
    main()

"""Restore benchmark: a correlation stage restarted with `--keys` live window keys (default 1M),
timed from being given its partitions to serving (`on_assigned` done), as `make bench` times it.

The changelog is written once (`workers.write_changelog`, the event `make bench` uses); each
restore then runs in a fresh process, as a restarted worker would (`workers.time_restore`):
`--repeat` times this checkout's code and, with `--before DIR` (another checkout, e.g.
`git archive main | tar -x -C DIR`), that checkout's code too, interleaved on the same topic.
Prints wall seconds, keys/s and the restoring process's CPU seconds of every run and the
medians. A fresh process pays for every page of its new state (on this machine that was most of
a restore's time before restored bodies stayed serialized); `--warm` times a second restore in
each process instead, on a heap that has freed memory to reuse, as `make bench` does. `--profile FILE` writes a cProfile of one more restore with this checkout's code.

Run: `.venv/bin/python bench/restore.py [--keys N] [--repeat 3] [--before DIR]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

RULE = "adversarial-burst"
ROOT = Path(__file__).resolve().parents[1]


def settings(bootstrap: str, run: str) -> Any:
    from responder.settings import Settings, merged

    names = ("events", "dlq", "correlate", "changelog", "incidents", "commands", "reports")
    return merged(
        Settings(),
        {
            "kafka": {
                "bootstrap_servers": bootstrap,
                "group_prefix": f"bench-{run}",
                "topics": {name: f"bench.{run}.{name}" for name in names},
            },
            "database": {"url": f"sqlite:///{tempfile.mkdtemp(prefix='responder-bench-')}/r.db"},
            "rules_dir": str(ROOT / "rules"),
            "playbooks": {"dir": tempfile.mkdtemp(prefix="responder-bench-playbooks-")},
        },
    )


def child(args: argparse.Namespace) -> None:
    """One restore in this process; prints its figures as one JSON line."""
    from workers import time_restore

    from responder.logs import configure

    configure("WARNING", "console")
    s = settings(args.bootstrap, args.child)
    if args.warm:  # a restore first, its state let go: the heap then holds freed memory
        asyncio.run(time_restore(s, args.keys))
        gc.collect()
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        res = asyncio.run(time_restore(s, args.keys))
        profiler.disable()
        profiler.dump_stats(args.profile)
    else:
        res = asyncio.run(time_restore(s, args.keys))
    print(json.dumps({"wall_s": res.wall_s, "cpu_s": res.cpu_s, "keys": res.keys}))


def restore_in_child(
    args: argparse.Namespace, run: str, source: Path | None, profile: Path | None = None
) -> dict[str, Any]:
    env = dict(os.environ)
    if source is not None:  # its `responder` package ahead of this checkout's
        env["PYTHONPATH"] = str(source.resolve())
    argv = [sys.executable, __file__, "--child", run, "--keys", str(args.keys)]
    argv += ["--bootstrap", args.bootstrap]
    if args.warm:
        argv.append("--warm")
    if profile is not None:
        argv += ["--profile", str(profile)]
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


async def delete_topics(bootstrap: str, run: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(f"bench.{run}")]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--bootstrap", default=os.environ.get("RESPONDER_BENCH_KAFKA", "127.0.0.1:9092")
    )
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", type=Path, help="another checkout, measured interleaved")
    ap.add_argument("--profile", type=Path, help="a cProfile of one more restore (this code)")
    ap.add_argument(
        "--warm",
        action="store_true",
        help="time a second restore in each process (after one let go), as `make bench` times "
        "its restore in a process that has done other work: its heap reuses freed memory",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    from pipeline import synthetic
    from workers import write_changelog

    run = uuid.uuid4().hex[:8]
    body = json.loads(synthetic(1, 1)[0])  # the event `make bench` restores
    asyncio.run(write_changelog(settings(args.bootstrap, run), RULE, body, args.keys))
    print(f"wrote {args.keys:,} changelog keys", flush=True)
    codes: list[tuple[str, Path | None]] = [("this checkout", None)]
    if args.before is not None:
        codes.insert(0, ("before", args.before))
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in codes}
    try:
        for i in range(args.repeat):
            for label, source in codes if i % 2 == 0 else reversed(codes):
                r = restore_in_child(args, run, source)
                runs[label].append(r)
                print(
                    f"{label}: {r['wall_s']:.2f} s ({r['keys'] / r['wall_s']:,.0f} keys/s), "
                    f"CPU {r['cpu_s']:.2f} s",
                    flush=True,
                )
        if args.profile is not None:
            restore_in_child(args, run, None, args.profile)
            print(f"profile written to {args.profile}")
    finally:
        asyncio.run(delete_topics(args.bootstrap, run))
    print()
    print(f"| restore {args.keys:,} window keys (median of {args.repeat}) | wall | CPU |")
    print("|---|---|---|")
    for label, rs in runs.items():
        wall = statistics.median(r["wall_s"] for r in rs)
        cpu = statistics.median(r["cpu_s"] for r in rs)
        print(f"| {label} | {wall:.2f} s ({args.keys / wall:,.0f} keys/s) | {cpu:.2f} s |")


if __name__ == "__main__":
    main()

"""Restart to serving: how long after a worker is killed (-9) and started again it serves.

On per-run topics of the local broker (127.0.0.1:$KAFKA_PORT) with a SQLite database: a worker
serves (a probe event becomes an incident); it is killed with SIGKILL and a new one is started
at once, and a probe produced at that moment is timed until its incident is stored. Also
printed: when the new process logged "worker started" and when its correlation partitions were
assigned. Run: `python bench/restart.py [--restarts 3]`; extra worker settings as KEY=VALUE
arguments (e.g. RESPONDER_KAFKA__INSTANCE_ID=bench).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.harness import (  # noqa: E402
    EACH_RULE,
    Worker,
    produce,
    topic,
    wait_for,
    worker_env,
    write_rules,
)

BOOTSTRAP = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"


def probe(unique: str, name: str) -> None:
    doc = {
        "id": name,
        "source": "bench",
        "type": "secret.leaked",
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "severity": "high",
        "title": "probe",
        "resource": {"kind": "api_key", "id": name},
    }
    produce(BOOTSTRAP, topic(unique, "events"), [json.dumps(doc).encode()])


def stored(db: Path, name: str) -> bool:
    try:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT event_ids FROM incidents").fetchall()
    except sqlite3.Error:
        return False
    return any(name in row[0] for row in rows)


def seconds_after(worker: Worker, event: str, start: float) -> float:
    """When the new process first logged `event` ("" for any line), seconds after `start`."""
    for line in worker.log().splitlines():
        if line.startswith("{") and (not event or f'"{event}"' in line):
            stamp = json.loads(line)["timestamp"].replace("Z", "+00:00")
            return datetime.fromisoformat(stamp).timestamp() - start
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="KEY=VALUE worker settings")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="responder-restart-"))
    unique = uuid.uuid4().hex[:10]
    db = work / "responder.db"
    env = worker_env(BOOTSTRAP, f"sqlite:///{db}", write_rules(work / "rules", EACH_RULE), unique)
    env.update(item.split("=", 1) for item in args.extra)
    worker = Worker(env, work / "w0.log").start()
    probe(unique, "p0")
    wait_for(lambda: stored(db, "p0"), 120)
    serving: list[float] = []
    try:
        for n in range(1, args.restarts + 1):
            time.sleep(2)  # steady state
            worker.kill()
            begin = time.time()
            worker = Worker(env, work / f"w{n}.log")
            worker.spawn()
            probe(unique, f"p{n}")
            wait_for(functools.partial(stored, db, f"p{n}"), 180, interval=0.05)
            serving.append(time.time() - begin)
            steps = {
                "first log line (imports done)": "",
                "pipeline starting": "[^-PipelineService]: Starting...",
                "correlation assigned": "correlation partitions assigned",
                "worker started": "worker started",
            }
            said = ", ".join(
                f"{what} {seconds_after(worker, event, begin):.1f} s"
                for what, event in steps.items()
            )
            print(f"restart {n}: serving after {serving[-1]:.1f} s ({said})")
    finally:
        worker.stop()
    print(f"median restart to serving: {statistics.median(serving):.1f} s over {len(serving)}")


if __name__ == "__main__":
    main()

"""The fault suite (`make chaos`): two workers on PostgreSQL under steady load, faults, then the
stored outcome against `responder replay` of the same events.

It starts its OWN broker (scripts/kafka on CHAOS_KAFKA_PORT, default 19092, data in
kafka-data-<port>) and its OWN PostgreSQL (scripts/postgres on CHAOS_PG_PORT, default 15432),
never the shared ones, and a moto server in this process for real (not dry-run) AWS calls. The
rule `chaos-by-actor` groups by `actor.ip` while events are keyed by resource id, so a group
spans input partitions; its playbook blocks the group's address in a WAFv2 IP set on moto.

Faults, while events are produced at a steady rate: kill -9 each worker in turn (restarted),
kill -9 the broker and restart it (a worker is started while it is down), stop PostgreSQL for
15 s. Then it waits for the pipeline to drain and prints: missing / extra / duplicated
incidents (as sets of events per rule), incident event rows, playbook runs, WAF calls against
addresses blocked, the time to drain after the last fault, and the worker log lines per fault.
Exit 1 if anything is missing, extra or duplicated.

Run: `make chaos` (CHAOS=short: fewer events and shorter pauses, for CI). Its broker and
PostgreSQL are stopped at the end (CHAOS_KEEP=1 leaves them up, to look into a failure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402
from aiokafka.errors import KafkaError  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from responder.correlation.replay import replay  # noqa: E402
from responder.correlation.rules import load_rules  # noqa: E402
from responder.playbooks.statuses import ACTIVE  # noqa: E402
from responder.storage.database import make_engine, upgrade  # noqa: E402
from tests.conftest import schema_url  # noqa: E402
from tests.support.aws_server import CREDENTIALS, MotoServer  # noqa: E402
from tests.support.builders import count_rule  # noqa: E402
from tests.support.harness import (  # noqa: E402
    Worker,
    committed_up_to,
    topic,
    topic_ends,
    wait_for,
    worker_env,
)

KAFKA_PORT = int(os.environ.get("CHAOS_KAFKA_PORT", "19092"))
PG_PORT = int(os.environ.get("CHAOS_PG_PORT", "15432"))
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
BASE = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
QUIET = 5.0  # seconds without any change, once drained

# one address, inputs flagged adversarial on several endpoints
RULE = yaml.safe_dump(
    count_rule(
        "chaos-by-actor", "input.adversarial", "actor.ip", "10s", 3, "chaos_probe", severity="high"
    ),
    sort_keys=False,
)

PLAYBOOK = """
id: chaos-block
title: Block the address
on:
  kind: chaos_probe
  change: [opened]
mode: automatic
guards:
  max_runs_per_hour: 100000
  actions:
    aws.wafv2.block_ips: {per_hour: 100000}
steps:
  - id: block
    action: aws.wafv2.block_ips
    with:
      ip_set_name: "{{ vars.waf_ip_set_name }}"
      ip_set_id: "{{ vars.waf_ip_set_id }}"
      addresses: "{{ events | map(attribute='actor.ip', default='') | select | unique | list }}"
      skip_refused: true
    retry: {attempts: 5, backoff: 1s, max_backoff: 10s, on: retryable}
    on_error: continue
"""

DOC_NETS = ("192.0.2", "198.51.100", "203.0.113")  # public documentation ranges: blockable


@dataclass(frozen=True)
class Plan:
    events: int
    rate: float  # events per second
    pause: float  # seconds between faults
    pg_stop: float = 15.0
    every: int = 10  # one burst (an incident) per this many bursts of 5 events


PLANS = {
    "full": Plan(events=60_000, rate=1000, pause=12, every=40),
    "short": Plan(6_000, 300, 5, 8),
}


def script(name: str, *args: str, port: int) -> str:
    var = "KAFKA_PORT" if name == "kafka" else "PG_PORT"
    done = subprocess.run(
        [str(ROOT / "scripts" / name), *args],
        env={**os.environ, var: str(port)},
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def broker_pid() -> int:
    cache = os.environ.get("KAFKA_HOME_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "responder"
    )
    return int((Path(cache) / f"kafka-data-{KAFKA_PORT}" / "kafka.pid").read_text().strip())


def event(i: int, every: int) -> tuple[bytes, bytes]:
    """Event i: a burst of 5 from one documentation address every `every` * 5 events (one
    incident each), otherwise one event from a private address; 16 endpoints as keys."""
    burst = i // 5
    if burst % every == 0:
        n = burst // every
        ip = f"{DOC_NETS[n % 3]}.{1 + n // 3 % 250}"
    else:
        ip = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
    endpoint = f"ep-{i % 16}"
    doc = {
        "id": f"c{i}",
        "source": "chaos",
        "type": "input.adversarial",
        "time": (BASE + timedelta(seconds=i * 0.1)).isoformat().replace("+00:00", "Z"),
        "severity": "medium",
        "title": "adversarial input",
        "resource": {"kind": "endpoint", "id": endpoint},
        "actor": {"ip": ip},
    }
    return endpoint.encode(), json.dumps(doc).encode()


@dataclass
class Load:
    plan: Plan
    events_topic: str
    sent: int = 0
    values: list[bytes] = field(default_factory=list)
    seconds: float = 0.0

    async def run(self) -> None:
        """Produce at the plan's rate in chunks of a tenth of a second, in order; a chunk that
        fails (an outage) is sent again whole (the copies are redeliveries: same source and id)."""
        producer: AIOKafkaProducer | None = None
        started = time.monotonic()
        chunk = max(1, int(self.plan.rate / 10))
        while self.sent < self.plan.events:
            due = started + self.sent / self.plan.rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            numbers = range(self.sent, min(self.plan.events, self.sent + chunk))
            pairs = [event(i, self.plan.every) for i in numbers]
            try:
                if producer is None:
                    producer = AIOKafkaProducer(
                        bootstrap_servers=BOOTSTRAP,
                        acks="all",
                        linger_ms=5,
                        request_timeout_ms=5000,
                    )
                    await producer.start()
                sends = [
                    await producer.send(self.events_topic, value=value, key=key)
                    for key, value in pairs
                ]
                await asyncio.gather(*sends)
            except (KafkaError, OSError):
                if producer is not None:
                    await _close(producer)
                producer = None
                await asyncio.sleep(1)
                continue
            self.values.extend(value for _, value in pairs)
            self.sent += len(pairs)
        self.seconds = time.monotonic() - started
        if producer is not None:
            await producer.stop()


async def _close(producer: AIOKafkaProducer) -> None:
    try:
        async with asyncio.timeout(5):
            await producer.stop()
    except Exception:  # the broker is gone: nothing to flush
        return


@dataclass
class Fault:
    name: str
    started: float
    lines_before: int = 0
    lines: int = 0


class Chaos:
    def __init__(self, plan: Plan, work: Path, moto: MotoServer) -> None:
        self.plan = plan
        self.work = work
        self.unique = uuid.uuid4().hex[:10]
        self.moto = moto
        self.faults: list[Fault] = []
        self.workers: dict[str, Worker] = {}
        rules = work / "rules"
        rules.mkdir()
        (rules / "chaos-by-actor.yaml").write_text(RULE)
        playbooks = work / "playbooks"
        playbooks.mkdir()
        (playbooks / "chaos-block.yaml").write_text(PLAYBOOK)
        self.rules = rules
        self.ip_set = moto.create_ip_set()
        self.db_url = script("postgres", "url", port=PG_PORT)
        schema = f"chaos_{self.unique}"
        with create_engine(self.db_url).begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        self.url = schema_url(self.db_url, schema)
        upgrade(make_engine(self.url))
        env = worker_env(BOOTSTRAP, self.url, rules, self.unique, playbooks_dir=playbooks)
        env.update(
            {
                "RESPONDER_AWS__ENDPOINT_URL": moto.endpoint_url,
                "RESPONDER_AWS__ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
                "RESPONDER_AWS__SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
                "RESPONDER_PLAYBOOKS__VARS": json.dumps(
                    {"waf_ip_set_name": self.ip_set[0], "waf_ip_set_id": self.ip_set[1]}
                ),
                "RESPONDER_CORRELATION__COMMIT_INTERVAL_S": "1",
            }
        )
        self.env = env

    # --- workers ------------------------------------------------------------------------------

    def start(self, name: str, *, wait: bool = True) -> None:
        env = {**self.env, "RESPONDER_KAFKA__INSTANCE_ID": f"chaos-{name}"}
        worker = Worker(env, self.work / f"{name}.log")
        self.workers[name] = worker.start() if wait else worker
        if not wait:
            worker.spawn()

    def kill(self, name: str) -> None:
        self.workers[name].kill()

    def log_lines(self) -> int:
        return sum(len(w.log().splitlines()) for w in self.workers.values())

    def fault(self, name: str) -> None:
        now = time.monotonic()
        lines = self.log_lines()
        if self.faults:
            self.faults[-1].lines = lines - self.faults[-1].lines_before
        self.faults.append(Fault(name, now, lines_before=lines))
        print(f"  fault: {name}", flush=True)

    # --- the run ------------------------------------------------------------------------------

    async def faults_while(self, load: asyncio.Task[None]) -> float:
        pause, plan = self.plan.pause, self.plan
        await asyncio.sleep(pause)
        for name in ("a", "b"):
            self.fault(f"kill -9 worker {name}")
            self.kill(name)
            await asyncio.sleep(2)
            self.start(name, wait=False)
            await asyncio.sleep(pause)
        self.fault("kill -9 broker; a worker starts while it is down; broker restarted")
        os.kill(broker_pid(), signal.SIGKILL)
        await asyncio.sleep(2)
        self.kill("a")
        self.start("a", wait=False)
        await asyncio.sleep(pause)
        await asyncio.to_thread(script, "kafka", "up", port=KAFKA_PORT)
        await asyncio.sleep(pause)
        self.fault(f"PostgreSQL stopped for {plan.pg_stop:.0f} s")
        await asyncio.to_thread(script, "postgres", "down", port=PG_PORT)
        await asyncio.sleep(plan.pg_stop)
        await asyncio.to_thread(script, "postgres", "up", port=PG_PORT)
        self.fault("none (PostgreSQL back; the load goes on, then the drain)")
        await load
        return max(time.monotonic(), self.faults[-1].started)

    def stored(self) -> dict[str, Any]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                incidents = conn.execute(text("SELECT id, rule FROM incidents")).all()
                rows = conn.execute(
                    text("SELECT incident_id, source, event_id FROM incident_events")
                ).all()
                runs = conn.execute(
                    text("SELECT incident_id, playbook_id, status FROM playbook_runs")
                ).all()
        finally:
            engine.dispose()
        events: dict[str, set[tuple[str, str]]] = {}
        for incident_id, source, event_id in rows:
            events.setdefault(incident_id, set()).add((source, event_id))
        return {"incidents": incidents, "events": events, "rows": len(rows), "runs": runs}


def compare(chaos: Chaos, values: list[bytes], drained_after: float) -> int:
    expected = replay(values, load_rules(chaos.rules))
    want = Counter(
        (s.rule, frozenset((e["source"], e["id"]) for e in s.events)) for s in expected.incidents
    )
    now = chaos.stored()
    got = Counter(
        (rule, frozenset(now["events"].get(incident_id, set())))
        for incident_id, rule in now["incidents"]
    )
    missing = sum((want - got).values())
    extra = sum((got - want).values())
    duplicated = sum(n - 1 for n in got.values() if n > 1)
    runs = Counter(incident_id for incident_id, _, _ in now["runs"])
    run_dupes = sum(n - 1 for n in runs.values() if n > 1)
    want_rows = sum(len(s.events) for s in expected.incidents)
    blocked = set(chaos.moto.ip_set(*chaos.ip_set)["Addresses"])
    want_ips = {f"{s.to_json()['group']['actor.ip']}/32" for s in expected.incidents}
    updates = chaos.moto.count("UpdateIPSet")
    print(f"events produced: {len(values):,}")
    print(
        f"incidents: {sum(got.values())} stored, {sum(want.values())} by replay; "
        f"missing {missing}, extra {extra}, duplicated {duplicated}"
    )
    print(f"incident event rows: {now['rows']} stored, {want_rows} by replay")
    print(
        f"playbook runs: {len(now['runs'])} for {len(runs)} incidents (duplicated {run_dupes}); "
        f"{Counter(status for *_, status in now['runs'])}"
    )
    print(
        f"side effects: {updates} UpdateIPSet calls, {len(blocked)} addresses blocked, "
        f"{len(want_ips)} expected; missing {len(want_ips - blocked)}, "
        f"extra {len(blocked - want_ips)}, duplicated calls {max(0, updates - len(blocked))}"
    )
    print(f"time to drain after the last fault and the last event produced: {drained_after:.1f} s")
    print("worker log lines per fault:")
    for f in chaos.faults:
        print(f"  {f.lines:6d}  {f.name}")
    bad = missing + extra + duplicated + run_dupes + max(0, updates - len(blocked))
    bad += len(want_ips ^ blocked)
    return 1 if bad else 0


async def main_async(plan: Plan) -> int:
    work = Path(tempfile.mkdtemp(prefix="responder-chaos-"))
    print(f"chaos: broker {BOOTSTRAP}, PostgreSQL :{PG_PORT}, work dir {work}", flush=True)
    try:
        await asyncio.to_thread(script, "kafka", "up", port=KAFKA_PORT)
        await asyncio.to_thread(script, "postgres", "up", port=PG_PORT)
        return await _run(plan, work)
    finally:
        if os.environ.get("CHAOS_KEEP", "") in ("", "0"):  # else kept up to look into a failure
            for name, port in (("kafka", KAFKA_PORT), ("postgres", PG_PORT)):
                try:
                    await asyncio.to_thread(script, name, "down", port=port)
                except subprocess.CalledProcessError as exc:  # said, not raised over the result
                    print(f"chaos: scripts/{name} down failed: {exc.stderr or exc}", flush=True)


async def _run(plan: Plan, work: Path) -> int:
    with MotoServer() as moto:
        chaos = Chaos(plan, work, moto)
        try:
            chaos.start("a")
            chaos.start("b")
            load = Load(plan, topic(chaos.unique, "events"))
            last = await chaos.faults_while(asyncio.create_task(load.run()))
            rate = load.sent / load.seconds
            print(f"  load done: {load.sent:,} events in {load.seconds:.0f} s ({rate:,.0f}/s)")
            settle = Settle(chaos)
            await asyncio.to_thread(wait_for, settle.done, 1200, 1.0)
            drained = max(0.0, settle.at - last)
            chaos.faults[-1].lines = chaos.log_lines() - chaos.faults[-1].lines_before
            return compare(chaos, load.values, drained)
        finally:
            for w in chaos.workers.values():
                w.stop()


@dataclass
class Settle:
    """Drained: every stage's group has committed what its topic held at the check before
    (`ends`, a second earlier), no run is left to finish, and incidents, event rows, runs and
    WAF calls stayed unchanged for QUIET s (`at`: the last change).

    Not the topics' ends at the moment of the check: an idle ingest still tells every
    correlation partition which partitions it holds, once a second per worker, so the
    correlation topic grows for ever and its group is a commit behind its end most of the
    time; a drain that waited for both at once waited 150 s in one run and never ended in the
    next."""

    chaos: Chaos
    last: tuple[int, ...] = ()
    at: float = 0.0
    ends: dict[str, dict[int, int]] | None = None

    def drained(self) -> bool:
        """Whether each group committed what the check before saw (then look again)."""
        unique = self.chaos.unique
        stages = {"ingest": "events", "correlate": "correlate", "sink": "incidents"}
        try:
            seen_before = self.ends
            drained = seen_before is not None and all(
                committed_up_to(BOOTSTRAP, f"t-{unique}-{stage}", topic(unique, name), ends)
                for stage, name in stages.items()
                for ends in [seen_before[stage]]
            )
            self.ends = {
                stage: topic_ends(BOOTSTRAP, topic(unique, name)) for stage, name in stages.items()
            }
        except Exception:  # the broker is still coming back
            return False
        return drained

    def done(self) -> bool:
        try:
            now = self.chaos.stored()
        except Exception:  # the database is still coming back
            return False
        if not self.drained() or any(status in ACTIVE for *_, status in now["runs"]):
            self.last = ()
            return False
        statuses = tuple(sorted(Counter(status for *_, status in now["runs"]).items()))
        seen = (
            len(now["incidents"]),
            now["rows"],
            hash(statuses),
            self.chaos.moto.count("UpdateIPSet"),
        )
        moment = time.monotonic()
        if seen != self.last:
            self.last, self.at = seen, moment
            return False
        return moment - self.at > QUIET


def main() -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the load's own outage chatter
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--plan", choices=sorted(PLANS), default=os.environ.get("CHAOS", "full") or "full"
    )
    args = parser.parse_args()
    started = time.monotonic()
    code = asyncio.run(main_async(PLANS[args.plan]))
    print(f"chaos ({args.plan}) took {time.monotonic() - started:.0f} s")
    raise SystemExit(code)


if __name__ == "__main__":
    main()

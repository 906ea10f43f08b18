"""`responder worker` on several cores: a supervisor of real worker processes on real Kafka."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from responder.audit.store import AuditRecord
from responder.storage.database import make_engine, upgrade
from responder.streams.supervisor import (
    default_processes,
    stage_groups,
    storing_processes,
    worker_layout,
)
from tests.support.harness import (
    EACH_RULE,
    Worker,
    caught_up,
    event_json,
    group_members,
    incidents,
    produce,
    topic,
    wait_for,
    worker_env,
    write_rules,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return set()
    return {int(c) for c in text.split()}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def opened_records(url: str) -> int:
    """The audit chain's `incident.opened` records in the database at `url`."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            query = select(func.count()).where(AuditRecord.action == "incident.opened")
            return int(session.exec(query).one())
    finally:
        engine.dispose()


def started(worker: Worker) -> int:
    return worker.log().count('"worker started"')


def stages_of(pid: int) -> str:
    """The stages a child runs, as its process title says (`responder worker --stages ...`)."""
    words = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
    return words[words.index(b"--stages") + 1].decode()


def free_ports(count: int) -> int:
    """A port such that it and the `count - 1` after it are free now."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue


def serves_then_stops_on_sigterm(
    bootstrap: str, unique: str, db: str, proc: subprocess.Popen[bytes], pids: set[int]
) -> None:
    """Eight leaks become eight incidents; then SIGTERM stops the supervisor and every child."""
    produce(
        bootstrap,
        topic(unique, "events"),
        [event_json(f"leak-{i}", type="secret.leaked", resource=f"AKIA{i}") for i in range(8)],
    )
    wait_for(lambda: len(incidents(db)) == 8, 90)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not any(alive(pid) for pid in pids)


def stopped_cleanly(worker: Worker, processes: int) -> str:
    """Every process logged its stop, none failed or had to be killed; the log, for more."""
    log = worker.log()
    assert log.count('"worker stopped"') == processes
    assert "a pipeline stage failed" not in log
    assert "did not stop in time" not in log
    return log


def test_the_default_worker_runs_a_process_per_stage_group_and_restarts_only_the_dead_one(
    kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    """Plain `responder worker` (no process count): one child per stage group, each with its
    own metrics port and static member name; the correlation child killed is restarted alone
    (the others keep their pids) and the events still become stored incidents."""
    db = f"sqlite:///{tmp_path / 'w.db'}"
    env = worker_env(kafka_bootstrap, db, write_rules(tmp_path / "rules", EACH_RULE), unique)
    del env["RESPONDER_WORKER__PROCESSES"]
    port = free_ports(3)
    env["RESPONDER_METRICS__PORT"] = str(port)
    env["RESPONDER_KAFKA__INSTANCE_ID"] = f"m-{unique}"
    groups = [",".join(group) for group in stage_groups()]
    worker = Worker(env, tmp_path / "worker.log")
    proc = worker.spawn()
    try:
        wait_for(lambda: started(worker) == 3 or proc.poll() is not None, 90)
        assert proc.poll() is None, worker.log()[-3000:]
        first = wait_for(lambda: len(children(proc.pid)) == 3 and children(proc.pid), 30)
        by_stages = {stages_of(pid): pid for pid in first}
        assert sorted(by_stages) == sorted(groups)
        served = sorted(e["port"] for e in worker.log_events("metrics served"))
        assert served == [port, port + 1, port + 2]
        started_events = worker.log_events("worker started")
        assert {e["instance_id"] for e in started_events} == {f"m-{unique}-{i}" for i in range(3)}
        assert sorted(",".join(e["stages"]) for e in started_events) == sorted(groups)

        victim = by_stages["correlate"]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: "worker process restarted" in worker.log(), 60)
        wait_for(lambda: started(worker) == 4, 90)
        now = children(proc.pid)
        assert len(now) == 3 and victim not in now and (first - {victim}) <= now
        (restarted,) = now - first
        assert stages_of(restarted) == "correlate"
        assert worker.log_events("worker started")[-1]["stages"] == ["correlate"]
        assert worker.log().count("worker process restarted") == 1

        serves_then_stops_on_sigterm(kafka_bootstrap, unique, db, proc, now)
    finally:
        worker.stop()
    stopped_cleanly(worker, processes=3)
    assert caught_up(kafka_bootstrap, f"t-{unique}-ingest", topic(unique, "events"))
    assert caught_up(kafka_bootstrap, f"t-{unique}-sink", topic(unique, "incidents"))


def test_on_postgresql_the_default_worker_runs_a_sink_per_core(
    kafka_bootstrap: str, tmp_path: Path, unique: str, pg_schema_url: str
) -> None:
    """Plain `responder worker` on PostgreSQL: a sink per core (the extra ones alone in their
    processes, one runner), the sinks share the incidents topic as one consumer group (the extra
    ones wait on standby while a quiet stream leaves no backlog: `streams/standby.py`), and the
    events become incidents stored once each."""
    engine = make_engine(pg_schema_url)
    upgrade(engine)  # a worker migrates only the embedded SQLite database by itself
    engine.dispose()
    env = worker_env(
        kafka_bootstrap, pg_schema_url, write_rules(tmp_path / "rules", EACH_RULE), unique
    )
    del env["RESPONDER_WORKER__PROCESSES"]
    layout = worker_layout("all", None, storing=storing_processes("postgresql", 4))
    worker = Worker(env, tmp_path / "worker.log")
    proc = worker.spawn()
    try:
        wait_for(lambda: started(worker) == len(layout) or proc.poll() is not None, 90)
        assert proc.poll() is None, worker.log()[-3000:]
        kids = wait_for(lambda: len(children(proc.pid)) == len(layout) and children(proc.pid), 30)
        assert sorted(stages_of(pid) for pid in kids) == sorted(layout)
        sinks = [stages for stages in layout if "sink" in stages.split(",")]
        assert len(sinks) == min(default_processes(), 4)
        assert sum("runner" in stages.split(",") for stages in layout) == 1
        wait_for(lambda: group_members(kafka_bootstrap, f"t-{unique}-sink") == 1, 60)
        assert worker.log().count("on standby: joins its group") == len(sinks) - 1
        serves_then_stops_on_sigterm(kafka_bootstrap, unique, pg_schema_url, proc, kids)
        assert "joined the group" not in worker.log()  # eight events: no backlog
    finally:
        worker.stop()
    stopped_cleanly(worker, processes=len(layout))
    assert opened_records(pg_schema_url) == 8  # each change audited once, by one of the sinks
    assert caught_up(kafka_bootstrap, f"t-{unique}-sink", topic(unique, "incidents"))


def test_supervisor_restarts_a_killed_child_and_stops_all_on_sigterm(
    kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    """`--processes 2` runs two whole workers; one killed with SIGKILL is restarted and the
    pair keeps serving; SIGTERM to the supervisor stops every child (offsets committed, no error
    line) and the supervisor exits 0."""
    db = f"sqlite:///{tmp_path / 'w.db'}"
    env = worker_env(kafka_bootstrap, db, write_rules(tmp_path / "rules", EACH_RULE), unique)
    worker = Worker(env, tmp_path / "worker.log", args=("--processes", "2"))
    proc = worker.spawn()
    try:
        wait_for(lambda: started(worker) == 2 or proc.poll() is not None, 90)
        assert proc.poll() is None, worker.log()[-3000:]
        first = wait_for(lambda: len(children(proc.pid)) == 2 and children(proc.pid), 30)

        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: "worker process restarted" in worker.log(), 60)
        wait_for(lambda: started(worker) == 3, 90)
        now = children(proc.pid)
        assert len(now) == 2 and victim not in now and (first - {victim}) <= now

        serves_then_stops_on_sigterm(kafka_bootstrap, unique, db, proc, now)
    finally:
        worker.stop()
    log = stopped_cleanly(worker, processes=2)
    assert '"exit_code": -9' in log  # the kill was seen as such
    assert caught_up(kafka_bootstrap, f"t-{unique}-ingest", topic(unique, "events"))
    assert caught_up(kafka_bootstrap, f"t-{unique}-sink", topic(unique, "incidents"))


def test_an_orphaned_child_stops_by_itself(
    kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    """The supervisor killed outright (SIGKILL, no forwarding): its children notice and stop
    gracefully instead of running on unsupervised."""
    db = f"sqlite:///{tmp_path / 'w.db'}"
    env = worker_env(kafka_bootstrap, db, write_rules(tmp_path / "rules", EACH_RULE), unique)
    worker = Worker(env, tmp_path / "worker.log", args=("--processes", "2"))
    proc = worker.spawn()
    try:
        wait_for(lambda: started(worker) == 2 or proc.poll() is not None, 90)
        kids = wait_for(lambda: len(children(proc.pid)) == 2 and children(proc.pid), 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_for(lambda: not any(alive(pid) for pid in kids), 60)
    finally:
        worker.stop()
    assert worker.log().count("the worker supervisor is gone") == 2
    assert worker.log().count('"worker stopped"') == 2

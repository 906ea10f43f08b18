"""The worker supervisor with real child processes (tiny Python scripts standing in for workers)."""

from __future__ import annotations

import functools
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from responder.streams.pipeline import STAGES
from responder.streams.supervisor import (
    OFF_PATH_NICE,
    Backoff,
    Forked,
    Supervisor,
    default_processes,
    executed,
    niceness,
    stage_groups,
    storing_processes,
    worker_layout,
)
from tests.support.harness import wait_for


def test_backoff_doubles_with_quick_deaths_up_to_its_cap() -> None:
    backoff = Backoff(first_s=0.5, max_s=4.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_default_is_one_process_per_usable_core() -> None:
    assert default_processes() >= 1


def _stop_when(supervisor: Supervisor, predicate: object) -> threading.Thread:
    def watch() -> None:
        wait_for(predicate, 60)  # type: ignore[arg-type]
        supervisor.stopping.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_child_that_dies_is_started_again(tmp_path: Path) -> None:
    """Each start appends a line; the child exits 3 at once; the supervisor keeps restarting."""
    starts = tmp_path / "starts"
    script = f"open({str(starts)!r}, 'a').write('x\\n'); raise SystemExit(3)"
    supervisor = Supervisor(
        executed(lambda slot: ([sys.executable, "-c", script], {})),
        processes=1,
        backoff=Backoff(first_s=0.01, max_s=0.05),
    )
    watcher = _stop_when(
        supervisor, lambda: starts.exists() and len(starts.read_text().splitlines()) >= 3
    )
    assert supervisor.run() == 0
    watcher.join()
    assert len(starts.read_text().splitlines()) >= 3


def test_stopping_forwards_sigterm_to_every_child(tmp_path: Path) -> None:
    """Each child records that it started and that it got SIGTERM; both children got it."""
    script = (
        "import os, signal, sys, time\n"
        "out = sys.argv[1]\n"
        "def term(*_):\n"
        "    open(out, 'a').write('term\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "open(out, 'a').write('up\\n')\n"
        "time.sleep(120)\n"
    )
    logs = [tmp_path / "child0", tmp_path / "child1"]
    supervisor = Supervisor(
        executed(lambda slot: ([sys.executable, "-c", script, str(logs[slot])], {})), processes=2
    )
    watcher = _stop_when(supervisor, lambda: all(p.exists() for p in logs))
    assert supervisor.run() == 0
    watcher.join()
    assert [p.read_text().split() for p in logs] == [["up", "term"], ["up", "term"]]


def test_stage_groups_hold_every_stage_once_correlation_alone() -> None:
    groups = stage_groups()
    flat = [stage for group in groups for stage in group]
    assert sorted(flat) == sorted(STAGES) and len(flat) == len(set(flat))
    assert groups[:2] == [("ingest", "reports"), ("correlate",)]
    assert "sink" in groups[2] and "anchors" in groups[2]


def test_the_default_layout_is_a_process_per_stage_group() -> None:
    assert worker_layout("all", None) == [",".join(group) for group in stage_groups()]


def test_more_sinks_run_as_processes_of_their_own() -> None:
    """Extra sinks run the sink alone: the runner, the commands and the anchors stay single
    (a playbook step's lease then has one runner to compete with)."""
    groups = [",".join(group) for group in stage_groups()]
    assert worker_layout("all", None, storing=3) == [*groups, "sink", "sink"]
    assert worker_layout("all", None, storing=1) == groups
    assert worker_layout("all", 2, storing=3) == worker_layout("all", 2)  # whole pipelines
    layout = worker_layout("all", None, storing=2)
    assert sum("runner" in stages.split(",") for stages in layout) == 1
    assert sum("sink" in stages.split(",") for stages in layout) == 2
    assert [niceness(stages) for stages in layout] == [0, 0, OFF_PATH_NICE, OFF_PATH_NICE]


def test_sqlite_gets_one_sink_postgresql_one_per_core_and_partition() -> None:
    assert storing_processes("sqlite", 4) == 1
    assert storing_processes("postgresql", 64) == default_processes()
    assert storing_processes("postgresql", 1) == 1  # a group gives no more a partition


def test_a_process_count_means_whole_pipelines() -> None:
    """N processes of "all" are N pipelines; only the first also anchors the audit chain."""
    without_anchors = ",".join(stage for stage in STAGES if stage != "anchors")
    assert worker_layout("all", 2) == ["all", without_anchors]
    assert worker_layout("all", 1) == ["all"]
    assert worker_layout("ingest", 3) == ["ingest"] * 3


def test_anchors_run_in_exactly_one_process() -> None:
    """However many processes, one writer appends the chain's head to the anchor topic/file."""
    for stages, processes in [("all", 3), ("sink, anchors", 4), ("anchors", 2), ("all", None)]:
        layout = worker_layout(stages, processes)
        with_anchors = [entry for entry in layout if "anchors" in entry or entry == "all"]
        assert len(with_anchors) == 1, layout
    assert worker_layout("sink, anchors", 3) == ["sink, anchors", "sink", "sink"]
    assert worker_layout("anchors", 2) == ["anchors"]


def test_chosen_stages_run_once_per_core_by_default() -> None:
    assert worker_layout("ingest,reports", None) == ["ingest,reports"] * default_processes()


def test_only_children_off_the_event_to_incident_path_run_at_a_lower_priority() -> None:
    layout = worker_layout("all", None)
    nice = [niceness(stages) for stages in layout]
    assert nice == [0, 0, OFF_PATH_NICE]  # ingest+reports, correlate | sink, playbooks, anchors
    assert niceness("all") == 0  # whole pipelines
    assert niceness("sink, runner") == OFF_PATH_NICE


def test_the_supervisor_lowers_the_priority_of_a_child_off_the_path(tmp_path: Path) -> None:
    """Each child writes the niceness it runs at when it is stopped; only the sink's is
    raised."""
    script = (
        "import os, signal, sys, time\n"
        "out = sys.argv[1]\n"
        "def term(*_):\n"
        "    open(out, 'w').write(str(os.nice(0))); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "open(out + '.up', 'w').write('up')\n"
        "time.sleep(120)\n"
    )
    stages = ["correlate", "sink,runner"]
    outs = [tmp_path / "correlate", tmp_path / "sink"]
    supervisor = Supervisor(
        executed(lambda slot: ([sys.executable, "-c", script, str(outs[slot])], {})),
        processes=2,
        niceness=lambda slot: niceness(stages[slot]),
    )
    watcher = _stop_when(supervisor, lambda: all(Path(f"{p}.up").exists() for p in outs))
    assert supervisor.run() == 0
    watcher.join()
    base = os.nice(0)
    assert [int(p.read_text()) for p in outs] == [base, min(19, base + OFF_PATH_NICE)]


# --- forked children (what `responder worker` starts) ----------------------------------------


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """`Forked` freezes the forking process's objects out of collection (for the children's
    sake); this test process collects them again afterwards."""
    yield
    gc.unfreeze()


def _up_then_sleep(out: Path) -> None:
    out.write_text("up")
    time.sleep(120)


def test_a_forked_child_is_restarted_with_its_exit_code_seen(
    tmp_path: Path, unfrozen: None
) -> None:
    """The target's SystemExit code is the child's; the supervisor restarts it like any."""
    starts = tmp_path / "starts"

    def target() -> None:
        with starts.open("a") as out:
            out.write(f"{os.getpid()}\n")
        raise SystemExit(3)

    supervisor = Supervisor(
        lambda slot: Forked(target), processes=1, backoff=Backoff(first_s=0.01, max_s=0.05)
    )
    watcher = _stop_when(
        supervisor, lambda: starts.exists() and len(starts.read_text().splitlines()) >= 3
    )
    assert supervisor.run() == 0
    watcher.join()
    pids = starts.read_text().split()
    assert len(pids) >= 3 and len(set(pids)) == len(pids) and str(os.getpid()) not in pids
    child = Forked(target)
    assert child.wait(30) == 3 and child.poll() == 3


def test_a_forked_child_stops_on_sigterm_sent_the_moment_it_is_forked(
    tmp_path: Path, unfrozen: None
) -> None:
    """The forking process has its own SIGTERM handler (the supervisor's). A child signalled
    before it could put the default back still ends by the signal: the handler copied into it
    never runs."""
    handled: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: handled.append(signum))
    try:
        for i in range(5):
            child = Forked(functools.partial(_up_then_sleep, tmp_path / f"up{i}"))
            child.send_signal(signal.SIGTERM)
            assert child.wait(30) == -signal.SIGTERM
        assert handled == []  # and none reached this process
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_supervisor_stops_forked_children_and_lowers_the_priority_of_one(
    tmp_path: Path, unfrozen: None
) -> None:
    """SIGTERM's default handling stops a forked child (exit -15, no handler of its own); the
    child off the event path runs at the lower priority; none outlives the supervisor."""
    outs = [tmp_path / "correlate", tmp_path / "sink"]
    children: list[Forked] = []

    def spawn(slot: int) -> Forked:
        child = Forked(lambda: _up_then_sleep(outs[slot]))
        children.append(child)
        return child

    stages = ["correlate", "sink,runner"]
    supervisor = Supervisor(spawn, processes=2, niceness=lambda slot: niceness(stages[slot]))
    nice: list[int] = []

    def up() -> bool:
        if not all(p.exists() for p in outs):
            return False
        nice.extend(os.getpriority(os.PRIO_PROCESS, child.pid) for child in children)
        return True

    watcher = _stop_when(supervisor, up)
    assert supervisor.run() == 0
    watcher.join()
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert nice == [base, min(19, base + OFF_PATH_NICE)]
    assert [child.poll() for child in children] == [-signal.SIGTERM, -signal.SIGTERM]

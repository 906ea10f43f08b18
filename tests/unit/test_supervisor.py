"""The worker supervisor with real child processes (tiny Python scripts standing in for workers)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from responder.streams.pipeline import STAGES
from responder.streams.supervisor import (
    OFF_PATH_NICE,
    Backoff,
    Supervisor,
    default_processes,
    niceness,
    stage_groups,
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
        lambda slot: ([sys.executable, "-c", script], {}),
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
        lambda slot: ([sys.executable, "-c", script, str(logs[slot])], {}), processes=2
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
    nice = [niceness(["responder", "worker", "--stages", stages]) for stages in layout]
    assert nice == [0, 0, OFF_PATH_NICE]  # ingest+reports, correlate | sink, playbooks, anchors
    assert niceness(["responder", "worker", "--stages", "all"]) == 0  # whole pipelines
    assert niceness(["responder", "worker"]) == 0


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
        lambda slot: (
            [sys.executable, "-c", script, str(outs[slot]), "--stages", stages[slot]],
            {},
        ),
        processes=2,
    )
    watcher = _stop_when(supervisor, lambda: all(Path(f"{p}.up").exists() for p in outs))
    assert supervisor.run() == 0
    watcher.join()
    base = os.nice(0)
    assert [int(p.read_text()) for p in outs] == [base, min(19, base + OFF_PATH_NICE)]

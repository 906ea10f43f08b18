"""`responder worker` on every core: a supervisor of worker processes.

`worker_layout` decides what the children run. By default (every stage, no process count) a
child per stage group (`stage_groups`: ingest and reports, correlation, the rest), since the
groups hand over through Kafka topics and each group then has a core's worth of CPU. With a
process count each child is a whole `responder worker --processes 1` (the chosen stages, their
own consumer groups), so the children split every topic's partitions between them as N separate
workers would. A child whose stages are all off the event → incident path (by default
the sink and playbook group) runs at a lower CPU priority (`niceness`), so on a busy machine
storing lags rather than correlating. The supervisor restarts a child that exits while it is
not stopping (after a backoff that grows with quick successive deaths), forwards
SIGTERM/SIGINT to every child and waits for them to stop (each commits its offsets on the way
out), ending hard whatever outlives the grace. A child watches its parent: orphaned (the
supervisor was killed), it stops by itself.

Children are forked (`Forked`): a child starts with every module the supervisor imported and
the settings and rules it validated, so it serves in a few tenths of a second instead of the ~2 s
of CPU a fresh interpreter spends importing (measured here). That matters most when a worker
(re)starts behind a backlog: a fresh sink process at its lower priority got little CPU while
the other stages drained, and stored nothing for seconds. A supervisor that is not single-
threaded (forking one is unsafe), or not on Linux, starts fresh interpreters instead
(`executed`), as it decides before each start.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

import structlog

from responder.streams.pipeline import STAGES

log = structlog.get_logger(__name__)

POLL_S = 0.1  # how often the supervisor looks at its children
PARENT_POLL_S = 0.5  # how often a child looks whether its supervisor is still there
# the stages between an event and its incident; a child with none of them (the sink, the
# playbooks) yields the CPU to those that have: under contention storage lags, not incidents
LATENCY_PATH = frozenset({"ingest", "reports", "correlate"})
OFF_PATH_NICE = 10


def default_processes() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# the stage groups that get a process each by default; every other stage goes in a last group
LEADING_GROUPS: tuple[tuple[str, ...], ...] = (("ingest", "reports"), ("correlate",))


def stage_groups() -> list[tuple[str, ...]]:
    """Every stage in STAGES, grouped: LEADING_GROUPS, then the rest (sink, playbooks, ...)."""
    placed = {stage for group in LEADING_GROUPS for stage in group}
    return [*LEADING_GROUPS, tuple(stage for stage in STAGES if stage not in placed)]


def worker_layout(stages: str, processes: int | None, *, storing: int = 1) -> list[str]:
    """The `--stages` value of each worker process (one entry: run in this process).

    A process count given: that many processes, each running `stages` (N whole pipelines when
    `stages` is "all"). None given: "all" is split into a process per stage group, plus
    `storing - 1` processes of the sink alone (`storing_processes`: more sinks store side by
    side; the runner, the commands and the anchors stay single, so a playbook step's lease has
    one runner to compete with and a command one consumer per partition); a chosen set of
    stages runs once per core. Either way `anchors` runs in the first process only: it
    appends the audit chain's head to the anchor topic and file, which want one writer.
    """
    if processes is None and stages == "all":
        groups = [",".join(group) for group in stage_groups()]
        return groups + ["sink"] * (storing - 1)
    count = default_processes() if processes is None else processes
    chosen = STAGES if stages == "all" else tuple(s.strip() for s in stages.split(","))
    if count == 1 or "anchors" not in chosen:
        return [stages] * count
    rest = ",".join(stage for stage in chosen if stage != "anchors")
    return [stages] + ([rest] * (count - 1) if rest else [])


def extra_sink(stages: str, processes: int | None, slot: int) -> bool:
    """Whether process `slot` of `worker_layout(stages, processes)` is one of the default
    layout's extra sinks: they wait outside the sinks' group while it has no backlog
    (`streams/standby.py`), so a quiet stream is stored by one sink."""
    return processes is None and stages == "all" and slot >= len(stage_groups())


def storing_processes(dialect: str, partitions: int) -> int:
    """How many processes of the default layout run a sink: one per core, at most one per
    partition of the incidents topic (a consumer group gives no more a partition), on a
    database that takes writers side by side (PostgreSQL: two sinks stored ~30 % more than
    one in `bench/pipeline.py`; they are one consumer group); one on SQLite, which lets a
    single writer in at a time."""
    return 1 if dialect == "sqlite" else max(1, min(default_processes(), partitions))


def niceness(stages: str) -> int:
    """The scheduling niceness of a child running `stages` (a `--stages` value): OFF_PATH_NICE
    if they are all off the latency path (the CPU still goes to it whenever the others do not
    need it), else 0."""
    chosen = set(STAGES) if stages == "all" else {s.strip() for s in stages.split(",")}
    return 0 if chosen & LATENCY_PATH else OFF_PATH_NICE


class Child(Protocol):
    """A child process as the supervisor handles it (`subprocess.Popen` and `Forked` are)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


_FORWARDED = (signal.SIGTERM, signal.SIGINT)


class Forked:
    """A child forked from this process to run `target()` (Popen's interface).

    Its exit code is what `target` exits with (`SystemExit`), 0 if it returns, 1 if it raises
    anything else (the traceback goes to stderr). The signals the supervisor forwards are
    blocked across the fork and the child puts their default handling back before it unblocks
    them: a SIGTERM sent to a child that has just been forked stops it rather than reaching
    the supervisor's handler, copied into the child."""

    def __init__(self, target: Callable[[], object], name: str = "responder-worker") -> None:
        context = multiprocessing.get_context("fork")
        self._process = context.Process(target=_forked_main, args=(target,), name=name)
        # out of the collector's reach: a collection in the child would otherwise write to every
        # object's header, copying each page it shares with the supervisor
        gc.freeze()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        try:
            self._process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None, "started in __init__"
        return pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:  # not reaped: the pid is still this child's
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(self._process.name, timeout or 0.0)
        return code

    def kill(self) -> None:
        self._process.kill()


def _forked_main(target: Callable[[], object]) -> None:
    """In the forked child: the default handling of the forwarded signals, then `target`."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
    target()


def can_fork() -> bool:
    """Whether this process may fork its children: on Linux, while it runs only one Python
    thread (elsewhere system libraries may not survive a fork: macOS's do not)."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def executed(
    command: Callable[[int], tuple[Sequence[str], dict[str, str]]],
) -> Callable[[int], Child]:
    """Start the child of a slot as a fresh process: `command(slot)` gives its argv and extra
    environment."""

    def spawn(slot: int) -> Child:
        argv, env = command(slot)
        # our own interpreter and `responder worker` argv, built by the CLI: no outside input
        return subprocess.Popen(list(argv), env={**os.environ, **env})  # noqa: S603

    return spawn


@dataclass(frozen=True)
class Backoff:
    """Delay before restarting a child: doubles with each quick death, reset by a long run."""

    first_s: float = 0.5
    max_s: float = 30.0
    healthy_after_s: float = 60.0  # a child that ran this long died for a fresh reason

    def delay(self, quick_deaths: int) -> float:
        """The delay after the `quick_deaths`-th death in a row (1 is the first)."""
        return min(self.max_s, self.first_s * 2.0 ** max(0, quick_deaths - 1))


@dataclass
class _Child:
    slot: int
    proc: Child | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0
    restarts: int = 0


@dataclass
class Supervisor:
    """Runs `spawn(slot)` N times, restarts what dies, stops them all on a signal.

    `spawn` starts the child of `slot` (0..N-1) (`Forked`, `executed`); `niceness` gives the
    niceness it runs at.
    """

    spawn: Callable[[int], Child]
    processes: int
    niceness: Callable[[int], int] = field(default=lambda slot: 0)
    stop_grace_s: float = 15.0
    backoff: Backoff = field(default_factory=Backoff)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> int:
        """Block until SIGTERM/SIGINT; exit code 0 once every child has stopped."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        children = [_Child(slot) for slot in range(self.processes)]
        try:
            for child in children:
                self._start(child)
            log.info("worker processes started", processes=self.processes, supervisor=os.getpid())
            while not self.stopping.wait(POLL_S):
                for child in children:
                    self._watch(child)
        finally:
            self._stop_all(children)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def _start(self, child: _Child) -> Child:
        child.proc = self.spawn(child.slot)
        child.started = time.monotonic()
        nice = self.niceness(child.slot)
        if nice:
            try:
                os.setpriority(os.PRIO_PROCESS, child.proc.pid, nice)
            except OSError as exc:  # already gone: the watch loop restarts it
                log.warning("could not lower a worker process's priority", error=str(exc))
        return child.proc

    def _watch(self, child: _Child) -> None:
        now = time.monotonic()
        if child.proc is None:  # waiting out its backoff
            if now >= child.restart_at:
                proc = self._start(child)
                child.restarts += 1
                log.info("worker process restarted", slot=child.slot, pid=proc.pid)
            return
        code = child.proc.poll()
        if code is None:
            return
        ran = now - child.started
        child.quick_deaths = 1 if ran >= self.backoff.healthy_after_s else child.quick_deaths + 1
        delay = self.backoff.delay(child.quick_deaths)
        log.warning(
            "worker process exited; restarting it",
            slot=child.slot,
            pid=child.proc.pid,
            exit_code=code,
            ran_s=round(ran, 1),
            restart_in_s=delay,
        )
        child.proc = None
        child.restart_at = now + delay

    def _stop_all(self, children: list[_Child]) -> None:
        running = [c.proc for c in children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_s
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker process did not stop in time; ending it", pid=proc.pid)
                proc.kill()
                proc.wait()
        log.info("worker processes stopped", processes=len(children))


def watch_parent(parent_pid: int) -> threading.Thread:
    """In a child: SIGTERM ourselves (a graceful stop) once `parent_pid` is no longer our
    parent, i.e. the supervisor died without stopping us."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        log.warning("the worker supervisor is gone; stopping", supervisor=parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="watch-supervisor", daemon=True)
    thread.start()
    return thread

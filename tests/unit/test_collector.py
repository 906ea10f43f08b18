"""The promoter keeps long-lived objects out of the collector's scans, and still reclaims cycles
among them: when the stage is idle, or at the latest after `reclaim_within_s`."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from responder.streams.collector import Promoter, batch_uncollected


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def promoter(clock: Clock) -> Promoter:
    return Promoter(every_s=1.0, reclaim_every_s=600.0, reclaim_within_s=3600.0, monotonic=clock)


def test_survivors_are_frozen_once_every_s_passed() -> None:
    clock = Clock()
    keep = [Node() for _ in range(100)]
    promote = promoter(clock)
    promote.step(idle=False)
    assert gc.get_freeze_count() == 0  # not yet
    clock.now += 1.0
    promote.step(idle=False)
    assert gc.get_freeze_count() >= len(keep)
    # frozen objects are out of every generation: a full collection does not look at them
    assert not any(o is keep[0] for o in gc.get_objects())


def test_a_cycle_frozen_while_alive_is_reclaimed_when_idle_after_reclaim_every_s() -> None:
    clock = Clock()
    promote = promoter(clock)
    held = cycle()
    clock.now += 1.0
    promote.step(idle=False)  # frozen while alive
    gc.collect()
    assert held() is not None  # dropped (no outside reference) but frozen: not collected
    clock.now += 600.0
    promote.step(idle=False)  # busy: not reclaimed yet
    gc.collect()
    assert held() is not None and promote.reclaims == 0
    promote.step(idle=True)
    assert held() is None and promote.reclaims == 1
    assert gc.get_freeze_count() > 0  # what is left is frozen again


def test_a_stage_never_idle_reclaims_after_reclaim_within_s() -> None:
    clock = Clock()
    promote = promoter(clock)
    held = cycle()
    clock.now += 1.0
    promote.step(idle=False)
    for _ in range(3):
        clock.now += 1000.0
        promote.step(idle=False)
    assert held() is not None  # 3,001 s: busy all along
    clock.now += 600.0
    promote.step(idle=False)
    assert held() is None and promote.reclaims == 1


def test_an_idle_stage_reclaims_at_most_every_reclaim_every_s() -> None:
    clock = Clock()
    promote = promoter(clock)
    for _ in range(10):
        clock.now += 100.0
        promote.step(idle=True)
    assert promote.reclaims == 1  # at 600 s, not again before 1,200


def test_a_batch_runs_uncollected_and_the_collector_is_on_again_after_it_even_if_it_fails() -> None:
    assert gc.isenabled()
    with batch_uncollected():
        assert not gc.isenabled()
        ref = cycle()
        assert ref() is not None
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # nothing built inside is frozen (it is the batch's)
    gc.collect()
    assert ref() is None  # the cycle made inside is collected once the batch is over
    with pytest.raises(RuntimeError), batch_uncollected():
        raise RuntimeError("the batch failed")
    assert gc.isenabled()


def test_a_collector_turned_off_before_the_batch_stays_off() -> None:
    gc.disable()
    try:
        with batch_uncollected():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_threads_overlapping_their_batches_leave_it_on_only_once_the_last_one_is_out() -> None:
    """Thread A goes in, B goes in, A leaves: B's batch is still uncollected; B leaves: on."""
    a_in, b_in, a_out, b_may_leave = (threading.Event() for _ in range(4))
    seen: dict[str, bool] = {}

    def a() -> None:
        with batch_uncollected():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b() -> None:
        a_in.wait(5)
        with batch_uncollected():
            b_in.set()
            a_out.wait(5)
            seen["inside B after A left"] = gc.isenabled()
            b_may_leave.wait(5)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    a_out.wait(5)
    b_may_leave.set()
    for thread in threads:
        thread.join(5)
    assert seen == {"inside B after A left": False}
    assert gc.isenabled()

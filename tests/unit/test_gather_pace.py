"""The ingest fetch waits for more bytes as the stream gets busier (`streams/gather.py`)."""

from __future__ import annotations

from responder.streams.gather import MAX_GATHER_BYTES, QUIET_WAIT_MS, GatherPace


def steady(pace: GatherPace, per_fetch: int, every_s: float, seconds: float, t: float) -> float:
    """Fetches of `per_fetch` bytes every `every_s` for `seconds` from `t`; the time after."""
    for _ in range(round(seconds / every_s)):
        t += every_s
        pace.observe(per_fetch, t)
    return t


def test_a_quiet_stream_waits_for_the_fixed_gather() -> None:
    pace = GatherPace(floor=2048, wait_ms=50, window_s=0.01)
    steady(pace, 300, 1 / 30, 3, 0.0)  # 30 events/s: ~1.5 events a hold
    assert pace.ask() == (2048, 50)


def test_a_trickle_is_read_at_its_first_byte() -> None:
    """Under ~an event per hold the gather only delays each event by the hold; a fetch of one
    byte answers at once and, idle, is sent four times a second instead of twenty."""
    pace = GatherPace(floor=2048, wait_ms=50, window_s=0.01)
    assert pace.ask() == (1, QUIET_WAIT_MS)  # nothing measured yet
    steady(pace, 300, 0.1, 3, 0.0)  # 10 events/s: ~0.5 an event a hold
    assert pace.ask() == (1, QUIET_WAIT_MS)
    steady(pace, 300, 1 / 17, 3, 3.0)  # ~17 events/s: just under floor / 8 bytes a hold
    assert pace.ask() == (1, QUIET_WAIT_MS)
    steady(pace, 300, 1 / 18, 3, 6.0)
    assert pace.ask() == (2048, 50)
    assert QUIET_WAIT_MS <= 250  # a salvage waits out the fetch in flight (gather_ms's cap)


def test_a_busy_stream_waits_for_a_window_of_its_rate_and_two_windows_at_most() -> None:
    pace = GatherPace(floor=2048, wait_ms=50, window_s=0.01)
    steady(pace, 16_000, 0.01, 3, 0.0)  # 1.6 MB/s: ~5,000 events of ~300 B a second
    size, wait_ms = pace.ask()
    assert 15_000 <= size <= 17_000
    assert wait_ms == 20


def test_the_ask_is_capped_and_never_waits_past_the_quiet_wait() -> None:
    pace = GatherPace(floor=1, wait_ms=15, window_s=0.25)
    steady(pace, 8 * 1024 * 1024, 0.5, 3, 0.0)  # a backlog read at full speed
    assert pace.ask() == (MAX_GATHER_BYTES, 15)


def test_a_stream_that_stops_is_back_at_the_fixed_gather_within_seconds() -> None:
    pace = GatherPace(floor=2048, wait_ms=50, window_s=0.01)
    t = steady(pace, 16_000, 0.01, 3, 0.0)
    t = steady(pace, 0, 0.05, 1, t)  # empty fetches, each held for the two windows
    assert pace.ask()[0] > 2048  # halved at each measure, not dropped at once
    t = steady(pace, 0, 0.05, 2, t)
    assert pace.ask() == (2048, 50)
    steady(pace, 0, 0.25, 3, t)
    assert pace.ask() == (1, QUIET_WAIT_MS)  # then idle: a byte, held a quarter second


def test_a_window_of_zero_keeps_the_fixed_gather() -> None:
    pace = GatherPace(floor=4096, wait_ms=50, window_s=0.0)
    steady(pace, 16_000, 0.01, 3, 0.0)
    assert pace.ask() == (4096, 50)


def test_tombstones_count_no_bytes() -> None:
    pace = GatherPace(floor=1, wait_ms=50, window_s=1.0)
    steady(pace, -1, 0.1, 2, 0.0)
    assert pace.rate == 0.0
    assert pace.ask() == (1, QUIET_WAIT_MS)


def test_a_quiet_stream_that_wakes_up_gathers_again_within_a_tenth_of_the_measure() -> None:
    """After idle each event is read at once; 500 events/s then bring `floor` bytes in a few
    milliseconds, and the pace measures them at a tenth of `every_s` instead of waiting for the
    whole of it, where a trickle of the same bytes waits for the full measure."""
    pace = GatherPace(floor=2048, wait_ms=50, window_s=0.01)
    t = steady(pace, 0, 0.5, 2, 0.0)  # idle, each empty fetch ending a measure
    assert pace.ask() == (1, QUIET_WAIT_MS)
    t = steady(pace, 300, 0.002, 0.048, t)  # 500 events/s, an event a fetch: 7 KB in 48 ms
    assert pace.ask() == (1, QUIET_WAIT_MS)  # not before a tenth of every_s
    steady(pace, 300, 0.002, 0.004, t)
    assert pace.ask() == (2048, 50)
    trickle = GatherPace(floor=2048, wait_ms=50, window_s=0.01)
    t = steady(trickle, 0, 0.5, 2, 0.0)
    steady(trickle, 300, 0.06, 0.42, t)  # 2.1 KB in 0.42 s: ~17 events/s, still quiet
    assert trickle.ask() == (1, QUIET_WAIT_MS)

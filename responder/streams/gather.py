"""How many bytes the ingest stage's next fetch waits for: more as the stream gets busier.

A fetch costs every stage on the event → incident path about the same whatever it carries: a
request and a response through the Kafka client, event-loop rounds, a produce, a commit. At
5,000 events/s, fetches of a few events each kept the worker tree at 1.1 cores; fetches of ~50
events at 0.78, and its p99 fell from 55-58 to 35-44 ms (bench/pipeline.py, interleaved). The
broker holds a fetch until enough bytes are there (`fetch_min_bytes`) or a deadline passes
(`WorkerSettings.gather_ms`). No fixed amount suits every rate: 16 KiB arrive in ~10 ms at
5,000 events/s of ~300 B, in ~100 ms at 500/s. `GatherPace` asks for what the recent rate
brings in `window_s` (at least `floor`, the fixed `gather_bytes`; at most `cap`), so fetches stay
near one per window while the stream is busy, and a quiet stream waits no longer than before.

While it asks for more than `floor`, the broker holds a fetch for at most two windows instead
of `wait_ms` (`gather_ms`, what a quiet stream may wait): a rate that drops between two
measures costs an event that much at most. The rate is measured over at least `every_s` and
smoothed (each measure counts half): a stream that stops brings the ask back to `floor` within
a few seconds. A backlog read at full speed raises the ask, harmlessly: the bytes are there.

A trickle gains nothing from the gather: below about an event per hold (`floor / 8` bytes in
`wait_ms`, ~17 events/s of ~300 B at the defaults) most holds end empty or with one event, each
event waited out the whole hold (50 ms at the defaults), and an idle stream cost 20 empty fetches
a second. So a quiet stream asks for a single byte, held at most `QUIET_WAIT_MS`: the broker
answers at the first event (no fixed delay), and an idle stream costs four fetches a second.
A quiet stream that wakes up is measured as soon as it has brought `floor` bytes, after a tenth
of `every_s` at the earliest, so a burst goes back to gathering within ~50 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_GATHER_BYTES = 1024 * 1024
"""The most a fetch waits for (past it, a stream is busy enough that every fetch is full)."""
QUIET_WAIT_MS = 250
"""How long the broker holds a quiet stream's fetch for its first byte (at most 250, as
`WorkerSettings.gather_ms`: a salvage's seek waits out the fetch in flight)."""


@dataclass
class GatherPace:
    """The ingest fetch's `fetch_min_bytes` from the bytes it has been reading (pure)."""

    floor: int  # WorkerSettings.gather_bytes: what a quiet stream waits for
    wait_ms: int  # WorkerSettings.gather_ms: the longest a quiet stream's fetch is held
    window_s: float  # WorkerSettings.gather_window_ms / 1000; 0: always `floor`
    cap: int = MAX_GATHER_BYTES
    every_s: float = 0.5  # the rate is measured over at least this long
    rate: float = 0.0  # bytes/s, smoothed
    _bytes: int = 0
    _since: float | None = None

    def observe(self, size: int, now: float) -> None:
        """`size` bytes of events were read by the fetch that returned at `now` (monotonic)."""
        if self._since is None:
            self._since = now  # the first fetch's bytes arrived before anything was measured
            return
        self._bytes += max(0, size)  # (a tombstone counts -1)
        elapsed = now - self._since
        if elapsed < self.every_s and not self._waking(elapsed):
            return
        measured = self._bytes / elapsed
        self.rate = measured if self.rate == 0.0 else (self.rate + measured) / 2
        self._bytes, self._since = 0, now

    def _waking(self, elapsed: float) -> bool:
        """A quiet stream that got busy: `floor` bytes already read one by one in a tenth of
        `every_s` is measured at once, not after the whole of it (500 events/s after idle were
        read event by event for half a second)."""
        quiet = self.rate * self.wait_ms / 1000 < self.floor / 8
        return quiet and self._bytes >= self.floor and elapsed >= self.every_s / 10

    def ask(self) -> tuple[int, int]:
        """(bytes, ms): what the next fetch should wait for, and how long at most."""
        wanted = min(self.cap, int(self.rate * self.window_s))
        if self.rate * self.wait_ms / 1000 < self.floor / 8:  # under ~an event per hold
            return 1, QUIET_WAIT_MS
        if wanted <= self.floor:
            return self.floor, self.wait_ms
        return wanted, max(1, min(self.wait_ms, round(2000 * self.window_s)))

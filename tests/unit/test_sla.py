"""SLA clocks: per-severity targets from settings, on track / at risk / met / breached."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from responder.incidents.sla import ClockState, Target, sla, targets
from responder.settings import Settings

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TARGETS = {"high": Target(timedelta(hours=1), timedelta(hours=24))}
TARGETS["info"] = TARGETS["high"]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def clocks(now: float, ack: float | None = None, resolved: float | None = None) -> tuple[str, str]:
    got = sla(
        severity="high",
        created_at=T0,
        acknowledged_at=None if ack is None else at(ack),
        resolved_at=None if resolved is None else at(resolved),
        now=at(now),
        targets=TARGETS,
    )
    return got.acknowledge.state.value, got.resolve.state.value


@pytest.mark.parametrize(
    ("now", "ack", "resolved", "expected"),
    [
        (10, None, None, ("on_track", "on_track")),
        (45, None, None, ("at_risk", "on_track")),  # 15 of 60 minutes left
        (61, None, None, ("breached", "on_track")),
        (61, 30, None, ("met", "on_track")),
        (30 * 60, 30, None, ("met", "breached")),
        (30 * 60, 90, 120, ("breached", "met")),
        (30 * 60, 30, 25 * 60, ("met", "breached")),
        (60, 60, 60, ("met", "met")),  # exactly on the target is in time
    ],
)
def test_clock_states(
    now: float, ack: float | None, resolved: float | None, expected: tuple[str, str]
) -> None:
    """Each clock runs from creation and stops at acknowledgement / closing."""
    assert clocks(now, ack, resolved) == expected


def test_remaining_is_negative_once_overdue_and_frozen_once_stopped() -> None:
    """Remaining time counts down past zero; a stopped clock keeps what it had left."""
    running = sla(
        severity="high", created_at=T0, acknowledged_at=None, resolved_at=None,
        now=at(75), targets=TARGETS,
    )  # fmt: skip
    assert running.acknowledge.remaining == timedelta(minutes=-15)
    assert running.acknowledge.due_at == at(60)
    assert running.breached and running.worst == ClockState.breached
    stopped = sla(
        severity="high", created_at=T0, acknowledged_at=at(20), resolved_at=None,
        now=at(500), targets=TARGETS,
    )  # fmt: skip
    assert stopped.acknowledge.remaining == timedelta(minutes=40)
    assert not stopped.breached and stopped.worst == ClockState.on_track


def test_an_unknown_severity_gets_the_info_targets() -> None:
    """A severity with no target of its own is measured against `info`."""
    got = sla(
        severity="weird", created_at=T0, acknowledged_at=None, resolved_at=None,
        now=at(1), targets=TARGETS,
    )  # fmt: skip
    assert got.acknowledge.target == timedelta(hours=1)


def test_targets_come_from_settings_per_severity(monkeypatch: pytest.MonkeyPatch) -> None:
    """`RESPONDER_SLA__<SEVERITY>_ACKNOWLEDGE_S` overrides one target; the rest keep defaults."""
    monkeypatch.setenv("RESPONDER_SLA__CRITICAL_ACKNOWLEDGE_S", "300")
    found = targets(Settings().sla)
    assert set(found) == {"info", "low", "medium", "high", "critical"}
    assert found["critical"].acknowledge == timedelta(minutes=5)
    assert found["critical"].resolve == timedelta(hours=4)
    assert found["high"] == Target(timedelta(hours=1), timedelta(hours=24))
    ordered = [found[s] for s in ("critical", "high", "medium", "low", "info")]
    assert all(a.acknowledge <= b.acknowledge for a, b in itertools.pairwise(ordered))

"""The dashboard's pure parts: how durations and clocks read, the queue's filters, the role's
buttons, escaping in every template, and the one poller live pages share."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from responder.api.web import render, screens
from responder.api.web.live import Changes, Full, event
from responder.incidents.sla import ClockState
from responder.service.identity import Principal, Role
from responder.service.views import ClockView

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42, "42s"), (60, "1m"), (125, "2m"), (3600, "1h"), (3660, "1h 1m"),
     (90000, "1d 1h"), (86400 * 3 + 60, "3d"), (-1620, "27m")],
)  # fmt: skip
def test_durations_read_in_their_two_largest_units(seconds: float, text: str) -> None:
    """Seconds only under a minute; never more than two units."""
    assert render.duration(seconds) == text


def clock(remaining: int, stopped: bool) -> ClockView:
    return ClockView(
        state=ClockState.on_track,
        target_s=900,
        due_at=NOW,
        stopped_at=NOW if stopped else None,
        remaining_s=remaining,
    )


def test_clocks_say_what_is_due_overdue_met_or_late() -> None:
    """A running clock is due or overdue; a stopped one was met or late."""
    assert render.clock_text(clock(300, False)) == "due in 5m"
    assert render.clock_text(clock(-300, False)) == "overdue by 5m"
    assert render.clock_text(clock(600, True)) == "met with 10m to spare"
    assert render.clock_text(clock(-60, True)) == "late by 1m"
    assert render.ago(NOW - timedelta(hours=2), NOW) == "2h ago"
    assert render.ago(NOW, NOW) == "just now"


def test_queue_filters_ignore_unknown_values_and_round_trip() -> None:
    """Odd values mean no filter; the live URL repeats exactly the chosen filters."""
    odd = screens.QueueFilter.parse({"status": "<x>", "severity": "dire", "sla": "late"})
    assert odd == screens.QueueFilter()
    assert odd.incident_filter().status == ("open", "acknowledged")
    chosen = screens.QueueFilter.parse({"status": "all", "severity": "high", "sla": "breached"})
    assert chosen.incident_filter().status == ()
    assert chosen.incident_filter().severity == ("high",)
    assert chosen.incident_filter().sla == "breached"
    assert chosen.query() == "status=all&severity=high&sla=breached"
    assert screens.QueueFilter.parse({"q": " a&b=c "}).query() == "status=active&q=a%26b%3Dc"


@pytest.mark.parametrize(
    ("role", "act", "decide"),
    [(Role.viewer, False, False), (Role.analyst, True, False), (Role.responder, True, True),
     (Role.admin, True, True)],
)  # fmt: skip
def test_buttons_follow_the_role(role: Role, act: bool, decide: bool) -> None:
    """Analysts act on incidents, responders also decide steps."""
    can = screens.Can.of(Principal(token_id="t", name="n", role=role))
    assert (can.act, can.decide) == (act, decide)


def test_templates_escape_everything_even_strings() -> None:
    """Autoescape is on for templates and strings; StrictUndefined catches typos."""
    hostile = '<script>alert("x")</script>'
    assert "<script>" not in render.ENV.from_string("{{ v }}").render(v=hostile)
    html = render.fragment("_queue_rows.html", incidents=[])
    assert "No incidents match" in html


def test_sse_events_are_one_json_line() -> None:
    """Markup with newlines travels as one escaped data line."""
    raw = event("swap", {"target": "t", "html": "<p>\nx</p>"})
    assert raw == b'event: swap\ndata: {"target":"t","html":"<p>\\nx</p>"}\n\n'


async def test_one_poller_serves_every_listener_and_stops_with_the_last() -> None:
    """The database is read by one task while anyone listens; waiters wake on a change."""
    reads: list[int] = []
    stamp = [1]

    def read() -> int:
        reads.append(stamp[0])
        return stamp[0]

    hub = Changes(read, poll_s=0.01, limit=2)
    async with hub.listening(), hub.listening():
        assert await hub.wait(-1, 1) in (0, 1)
        seen = await hub.wait(0, 1)
        assert seen == 1
        stamp[0] = 2
        assert await hub.wait(1, 1) == 2
        with pytest.raises(Full):
            async with hub.listening():
                pass
        assert await hub.wait(2, 0.05) == 2  # nothing new: back after the timeout
    await asyncio.sleep(0.05)
    count = len(reads)
    await asyncio.sleep(0.05)
    assert len(reads) == count and hub.listeners == 0  # nobody listens: no more reads

"""A sink in another process wakes the runner through PostgreSQL (`storage.signals`): the run
it created starts at once, not at the runner's next poll; the listener reconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from responder.playbooks.loader import load_playbooks
from responder.playbooks.runs import PlaybookRun
from responder.playbooks.start_sql import RunStarter
from responder.settings import KafkaSettings
from responder.storage import signals
from responder.storage.database import make_engine
from responder.storage.signals import RUNS_CHANNEL, Listener
from responder.streams.playbooks import RunnerStage, Wakeup
from responder.streams.sink import SinkStage
from tests.support.runner_kit import Kit, change

# the shared `db` fixture, on PostgreSQL only: notifications are PostgreSQL's
pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
]

TELL = """
id: tell
title: Tell
on: {kind: credential_compromise}
steps:
  - {id: tell, action: slack.notify}
"""


def sink(kit: Kit, *, notify_runs: bool) -> SinkStage:
    """A sink with no runner beside it (its `_apply` stores a batch as the stage does)."""
    return SinkStage(
        KafkaSettings(),
        kit.db,
        on_applied=RunStarter(load_playbooks(kit.directory)),
        notify_runs=notify_runs,
    )


def runs_of(kit: Kit, incident_id: str) -> list[str]:
    with Session(kit.db) as session:
        found = session.exec(select(PlaybookRun.id).where(PlaybookRun.incident_id == incident_id))
        return list(found.all())


async def wait_for(condition: object, seconds: float) -> bool:
    for _ in range(int(seconds / 0.05)):
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


async def test_runs_a_sink_elsewhere_created_start_without_waiting_for_the_poll(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = Kit(db=db, directory=tmp_path / "playbooks")
    kit.playbook("tell", TELL)
    wakeup = Wakeup()
    listener = Listener(db, RUNS_CHANNEL, wakeup.set)
    stage = RunnerStage(kit.runner(), wakeup, poll_s=600, listener=listener)
    ticks = 0
    tick = stage.runner.tick

    async def counted() -> int:
        nonlocal ticks
        try:
            return await tick()
        finally:
            ticks += 1

    monkeypatch.setattr(stage.runner, "tick", counted)
    running = asyncio.create_task(stage.run())
    try:
        assert await wait_for(listener.connected.is_set, 10)
        # the first look, and the one the connection itself asked for, are over
        assert await wait_for(lambda: ticks >= 2 and not wakeup.event.is_set(), 30)
        sink(kit, notify_runs=False)._apply([change(1, incident_id="quiet")])
        await asyncio.sleep(1.5)
        [quiet] = runs_of(kit, "quiet")
        assert kit.run(quiet).status == "pending"  # nobody told the runner: it waits its poll
        sink(kit, notify_runs=True)._apply([change(1, incident_id="told")])
        [told] = runs_of(kit, "told")
        assert await wait_for(lambda: kit.run(told).status == "completed", 10)
        # the look it took found both (advanced side by side: the other may end a bit later)
        assert await wait_for(lambda: kit.run(quiet).status == "completed", 10)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_the_listener_connects_again_after_losing_its_connection(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signals, "RETRY_S", (0.1, 0.5))
    monkeypatch.setattr(signals, "PROBE_S", 0.1)  # a quiet connection answers its probes
    woken: list[int] = []
    # the engine's own connection arguments, a space in the server options included
    spaced = make_engine(
        str(db.url.render_as_string(hide_password=False)).replace(
            "options=-csearch_path", "options=-c%20search_path"
        )
    )
    assert str(spaced.url.query["options"]).startswith("-c search_path=")
    listener = Listener(spaced, "responder_test_channel", lambda: woken.append(1))
    listening = asyncio.create_task(listener.run())
    try:
        assert await wait_for(listener.connected.is_set, 10)
        await asyncio.sleep(0.5)  # a few probes
        assert listener.connected.is_set()
        with db.connect() as conn:
            ended = conn.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.backend_pid}
            ).scalar()
        assert ended
        assert await wait_for(lambda: not listener.connected.is_set(), 10)
        assert await wait_for(listener.connected.is_set, 10)
        before = len(woken)
        with db.begin() as conn:
            conn.execute(text("SELECT pg_notify('responder_test_channel', '')"))
        assert await wait_for(lambda: len(woken) > before, 10)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)

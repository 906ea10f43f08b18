"""The worker's service: a failed stage ends the process with exit code 1, a hung one cannot
keep it from stopping (the stages here are fakes; the broker is not needed)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from responder.settings import Settings
from responder.streams import app as worker_app
from responder.streams.pipeline import Pipeline


class FakeStage:
    def __init__(self, *, fail: bool = False, hang_on_stop: bool = False) -> None:
        self.fail = fail
        self.hang_on_stop = hang_on_stop
        self.stopped = False

    async def start(self) -> None:
        return None

    async def run(self) -> None:
        await asyncio.sleep(0.05)
        if self.fail:
            raise RuntimeError("cannot decode this batch")
        await asyncio.Event().wait()

    async def stop(self) -> None:
        if self.hang_on_stop:
            await asyncio.Event().wait()
        self.stopped = True


def service_with(stages: list[FakeStage], monkeypatch: pytest.MonkeyPatch) -> Any:
    async def no_topics(kafka: object) -> None:
        return None

    monkeypatch.setattr(worker_app, "ensure_topics", no_topics)
    monkeypatch.setattr(worker_app, "STAGE_STOP_S", 0.2)
    pipeline = Pipeline()
    monkeypatch.setattr(Pipeline, "stages", property(lambda self: stages))
    return worker_app.PipelineService(Settings(), pipeline)


async def test_a_failed_stage_stops_the_worker_with_exit_code_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stage's exception is logged, the exit code becomes 1 and the process asks itself to
    shut down (SIGTERM to itself: the worker's own graceful path), instead of hanging."""
    signals: list[int] = []
    monkeypatch.setattr("responder.streams.app.os.kill", lambda pid, sig: signals.append(sig))
    healthy, broken = FakeStage(), FakeStage(fail=True)
    service = service_with([healthy, broken], monkeypatch)
    await service.start()
    for _ in range(100):
        if signals:
            break
        await asyncio.sleep(0.02)
    assert signals == [signal.SIGTERM]
    assert service.exit_code == 1
    await service.stop()
    assert healthy.stopped


async def test_a_stage_that_hangs_on_stop_does_not_hold_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each stage gets a bounded time to close; the rest still stop, and a normal stop is no
    failure (exit code 0)."""
    first, hung = FakeStage(), FakeStage(hang_on_stop=True)
    service = service_with([first, hung], monkeypatch)
    await service.start()
    async with asyncio.timeout(5):
        await service.stop()
    assert first.stopped and not hung.stopped
    assert service.exit_code == 0


def test_faust_data_directory_is_under_the_configured_data_dir(tmp_path: Path) -> None:
    settings = Settings(kafka={"group_prefix": "t-abc", "data_dir": tmp_path})
    app = worker_app.create_app(settings)
    assert app.conf.datadir == tmp_path / "t-abc-worker-data"
    assert not Path("t-abc-worker-data").exists()

"""Who wakes the runner (`bootstrap.pipeline`): a sink beside it in memory; a sink in another
process through PostgreSQL, whose notifications the runner listens for; on SQLite neither
(one process stores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from responder import bootstrap
from responder.streams.pipeline import Pipeline


def built(monkeypatch: pytest.MonkeyPatch, url: str, stages: list[str]) -> Pipeline:
    monkeypatch.setenv("RESPONDER_DATABASE__URL", url)
    return bootstrap.pipeline(bootstrap.load_settings(), stages=stages, announce=False)


POSTGRES = "postgresql+psycopg://responder:secret@127.0.0.1:1/responder"  # never connected here


def test_a_sink_alone_on_postgresql_notifies_through_the_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline = built(monkeypatch, POSTGRES, ["sink"])
    assert pipeline.sink is not None and pipeline.runner is None
    assert pipeline.sink.notify_runs and pipeline.sink.runs_created is None


def test_a_sink_beside_the_runner_wakes_it_in_memory_and_the_runner_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline = built(monkeypatch, POSTGRES, ["sink", "runner"])
    assert pipeline.sink is not None and pipeline.runner is not None
    assert not pipeline.sink.notify_runs and pipeline.sink.runs_created is not None
    assert pipeline.runner.listener is not None
    assert pipeline.runner.listener.channel == "responder_runs"


def test_on_sqlite_the_runner_does_not_listen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pipeline = built(monkeypatch, f"sqlite:///{tmp_path / 'r.db'}", ["runner"])
    assert pipeline.runner is not None and pipeline.runner.listener is None

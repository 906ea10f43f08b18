"""Fixtures the integration tests share (a module may still define its own of the same name)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.harness import Worker
from tests.support.runner_kit import Kit


@pytest.fixture
def kit(db: Engine, tmp_path: Path) -> Kit:
    """The runner kit on the test's database, playbooks from `tmp_path / "playbooks"`."""
    return Kit(db=db, directory=tmp_path / "playbooks")


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Worker processes a test starts (append them): each is stopped when the test ends."""
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()

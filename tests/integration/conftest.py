"""Fixtures the integration tests share (a module may still define its own of the same name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.runner_kit import Kit


@pytest.fixture
def kit(db: Engine, tmp_path: Path) -> Kit:
    """The runner kit on the test's database, playbooks from `tmp_path / "playbooks"`."""
    return Kit(db=db, directory=tmp_path / "playbooks")

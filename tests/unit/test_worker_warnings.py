"""A setting that leaves a stage refusing everything is said once per worker: by the process
the user started (a supervisor's children build their stages quietly)."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from responder import bootstrap

UNTRUSTED = (
    "no command issuer is trusted (RESPONDER_COMMANDS__ISSUERS): every command will be refused"
)


@pytest.fixture
def no_issuers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RESPONDER_DATABASE__URL", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.delenv("RESPONDER_COMMANDS__ISSUERS", raising=False)


def warnings_of(announce: bool) -> list[str]:
    settings = bootstrap.load_settings()
    assert not settings.commands.issuers
    with capture_logs() as logs:
        built = bootstrap.pipeline(settings, stages=["commands"], announce=announce)
    assert built.commands is not None
    if built.engine is not None:
        built.engine.dispose()
    return [entry["event"] for entry in logs if entry["log_level"] == "warning"]


def test_the_process_the_user_started_warns_that_every_command_will_be_refused(
    no_issuers: None,
) -> None:
    assert warnings_of(announce=True) == [UNTRUSTED]


def test_a_supervisors_child_builds_its_stages_quietly(no_issuers: None) -> None:
    assert warnings_of(announce=False) == []

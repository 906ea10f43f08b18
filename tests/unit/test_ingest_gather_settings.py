"""The worker's ingest fetch gathers a quiet stream as configured (WorkerSettings.gather_*),
within bounds that keep an idle stream from spinning and a salvage within its deadline."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from responder import bootstrap
from responder.settings import WorkerSettings
from responder.streams.salvage import WAIT_MS


def test_the_defaults_gather_a_quiet_stream_within_a_latency_bound() -> None:
    worker = WorkerSettings()
    assert worker.gather_bytes > 1
    assert 10 <= worker.gather_ms <= 100


@pytest.mark.parametrize(
    ("field", "value"),
    [("gather_ms", 0), ("gather_ms", 9), ("gather_ms", 251), ("gather_bytes", 0)],
)
def test_gathering_out_of_bounds_is_refused(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        WorkerSettings.model_validate({field: value})


def test_a_salvage_outwaits_two_gathering_fetches() -> None:
    """A seek waits out the fetch in flight, then the next one: both within the salvage's wait."""
    longest = WorkerSettings.model_fields["gather_ms"].metadata
    assert 2 * max(m.le for m in longest if hasattr(m, "le")) < WAIT_MS


def test_the_worker_fetches_as_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RESPONDER_WORKER__GATHER_BYTES", "4096")
    monkeypatch.setenv("RESPONDER_WORKER__GATHER_MS", "70")
    monkeypatch.setenv("RESPONDER_DATABASE__URL", f"sqlite:///{tmp_path / 'r.db'}")
    built = bootstrap.pipeline(bootstrap.load_settings(), stages=["ingest"])
    assert built.ingest is not None
    options = built.ingest.consumer_options()
    assert (options["fetch_min_bytes"], options["fetch_max_wait_ms"]) == (4096, 70)

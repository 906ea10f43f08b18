"""Faults injected into the real code paths (with pytest's monkeypatch)."""

from __future__ import annotations

from typing import Any

import pytest

from responder.correlation.engine import route as engine_route
from responder.correlation.rules import RuleSet


def routing_raises(monkeypatch: pytest.MonkeyPatch, event_id: str, error: Exception) -> None:
    """Routing the event `event_id` through the rules raises `error`; other events route as
    before (whatever an event could make the engine do, the ingest stage must survive it)."""

    def route(rules: RuleSet, doc: dict[str, Any]) -> Any:
        if doc["id"] == event_id:
            raise error
        return engine_route(rules, doc)

    monkeypatch.setattr("responder.streams.records.route", route)
    # the fault lives in the Python engine: the compiled ingest path (which would route the
    # event itself) is switched off for the routers built meanwhile
    monkeypatch.setattr("responder.streams.native.responder_native", None)

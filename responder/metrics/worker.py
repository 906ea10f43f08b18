"""The worker's metrics, in the process's default registry, and the endpoint that serves them.

Counted where the work happens: ingest (events in, rejected by reason), correlation (live
groups, groups evicted by the cap), the sink (incidents opened), the runner (action latency, runs by outcome), the commands stage, and every Kafka
stage's consumer lag (`streams/kafka.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from responder.metrics.labels import Bounded

EVENTS_RECEIVED = Counter(
    "responder_events_received", "Events read from the events topic by ingest"
)
EVENTS_REJECTED = Counter(
    "responder_events_rejected",
    "Events ingest sent to the DLQ, by reason (too_large, invalid_json, schema, other)",
    ["reason"],
)
INCIDENTS_OPENED = Counter(
    "responder_incidents_opened",
    "Incidents the sink stored for the first time",
    ["kind", "severity"],
)
RUNS_FINISHED = Counter(
    "responder_playbook_runs_finished",
    "Playbook runs that reached an end (completed, failed, blocked, undone)",
    ["playbook", "outcome"],
)
ACTION_SECONDS = Histogram(
    "responder_action_duration_seconds",
    "Time of one playbook action call (each attempt), by action and outcome (ok, error)",
    ["action", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
COMMANDS = Counter(
    "responder_commands", "Analyst commands handled, by outcome (applied, refused)", ["outcome"]
)
CONSUMER_LAG = Gauge(
    "responder_consumer_lag",
    "Messages behind the end of the partitions this process consumes, by stage",
    ["stage"],
)

LIVE_GROUPS = Gauge(
    "responder_correlation_live_groups",
    "Groups with window state in the correlation partitions this process owns",
)
GROUPS_EVICTED = Counter(
    "responder_correlation_groups_evicted",
    "Groups evicted because their rule had more live groups than the cap, by rule",
    ["rule"],
)

kinds = Bounded()
rules = Bounded()
playbooks = Bounded()
actions = Bounded()


@dataclass
class Endpoint:
    server: Any
    thread: Thread

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(host: str, port: int) -> Endpoint:
    """Serve `/metrics` (text exposition) on host:port from a daemon thread."""
    server, thread = start_http_server(port, addr=host)
    return Endpoint(server, thread)

"""The API's metrics: one registry per app (so several apps in one process never share
series), request latency by route template, events posted, live dashboard connections, and
the SLA breaches counted from the database when scraped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from responder.metrics.labels import OTHER, Routes

log = structlog.get_logger(__name__)

UNMATCHED = "unmatched"  # a request no route took (its path is never a label)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

BreachCounts = Mapping[tuple[str, str], int]
"""Incidents not closed whose SLA clock is breached, by (severity, clock)."""


class SlaCollector(Collector):
    """`responder_sla_breached_incidents`, read through `count` at most every `cache_s`."""

    def __init__(self, count: Callable[[], BreachCounts], cache_s: float = 5.0) -> None:
        self.count = count
        self.cache_s = cache_s
        self._at = -cache_s
        self._last: BreachCounts = {}

    @staticmethod
    def family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "responder_sla_breached_incidents",
            "Incidents not closed whose SLA clock (acknowledge, resolve) is breached, by severity",
            labels=["severity", "clock"],
        )

    def describe(self) -> Iterable[Metric]:
        """What registering needs to know, without reading the database."""
        yield self.family()

    def collect(self) -> Iterable[Metric]:
        now = time.monotonic()
        if now - self._at >= self.cache_s:
            try:
                self._last = self.count()
            except Exception as exc:  # the database is away: the last counts, and say so
                log.warning("SLA breaches not counted", error=str(exc)[:200])
            self._at = now
        family = self.family()
        for (severity, clock), n in sorted(self._last.items()):
            family.add_metric([severity, clock], n)
        yield family


class ApiMetrics:
    def __init__(self, breaches: Callable[[], BreachCounts] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "responder_api_request_duration_seconds",
            "API request time by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.events_accepted = Counter(
            "responder_api_events_accepted",
            "Events posted to /v1/events and published",
            registry=self.registry,
        )
        self.events_rejected = Counter(
            "responder_api_events_rejected",
            "Events posted to /v1/events and sent to the DLQ, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.live = Gauge(
            "responder_web_live_connections",
            "Open live (server-sent events) connections of the dashboard",
            registry=self.registry,
        )
        if breaches is not None:
            self.registry.register(SlaCollector(breaches))
        self.routes = Routes(())  # the app's templates, set once its routes are known

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        known = method if method in METHODS else OTHER
        route = self.routes.template(path) or UNMATCHED
        self.requests.labels(known, route, str(status)).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

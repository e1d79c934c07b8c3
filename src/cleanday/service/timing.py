"""Request latency per route, for `/metrics`: an ASGI middleware around the routes, and the fast
paths (`cleanday.service.fastpath`), which answer before it, time their own answers.

A request is labelled with its route's template (`/api/v1/behaviors/{name}`), never its path,
so a scrape holds one series per route rather than one per behavior; a request no route took
(a 404, a static file) counts under `other`.

The hot path only bumps a bucket counter in a plain list (a C bisect and two additions, on the
event loop's thread); the Prometheus histogram is built from those counts when scraped. That
costs a tenth of `prometheus_client.Histogram.observe`, whose locks and per-bucket loop would
be a few percent of a run report's CPU.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Key = tuple[str, str, int]  # method, route template, status


class RouteLatency(Collector):
    """Request durations by method, route and status, as a Prometheus histogram."""

    def __init__(self) -> None:
        # per key: one count per bucket and one past the last (+Inf), then the sum of seconds
        self._series: dict[Key, list[float]] = {}

    def observe(self, key: Key, seconds: float) -> None:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [0.0] * (len(BUCKETS) + 2)
        series[bisect_left(BUCKETS, seconds)] += 1
        series[-1] += seconds

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "cleanday_http_request_duration_seconds",
            "Ledger service request latency by route",
            labels=["method", "route", "status"],
        )
        for (method, route, status), series in sorted(self._series.items()):
            counts, total = series[:-1], series[-1]  # a copy: requests go on meanwhile
            cumulative, running = [], 0.0
            for bound, n in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
                running += n
                cumulative.append((bound, running))
            family.add_metric([method, route, str(status)], cumulative, total)
        yield family


def route_of(scope: Scope) -> str:
    template = getattr(scope.get("route"), "path", None)
    return str(template) if template else "other"


class RequestTiming:
    """Observes every HTTP request's duration under its method, route and status."""

    def __init__(self, app: ASGIApp, latency: RouteLatency) -> None:
        self.app = app
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees when the app raises before answering

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, timed_send)
        finally:
            elapsed = time.perf_counter() - started
            self.latency.observe((scope["method"], route_of(scope), status), elapsed)

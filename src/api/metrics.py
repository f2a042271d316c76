"""Prometheus metrics of one app: requests by route, events recorded by type, projection lag.

Each app keeps its metrics in a registry of its own, so several apps in one process (the
tests) never share or collide. With ``ledger serve --workers N`` each worker counts for
itself and a scrape reaches one of them.

Route labels are route templates (``/v1/trains/{train}``), never the raw path, so what a
client puts in a URL cannot grow the number of series; a request no route matched (a 404,
or a body refused before routing) is ``unmatched``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Recording
from eventsourcing.utils import EnvType
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.positions import BoundedRead, Positions
from ledger.application import ReleaseLedger
from ledger.source_reference import SourceReference


class ScrapedReads(Protocol):
    """What a scrape reads of the app's resources (``api.resources.Resources`` has them)."""

    @property
    def positions(self) -> BoundedRead[Positions]: ...

    @property
    def inbox_counts(self) -> BoundedRead[dict[str, int]]: ...


log = logging.getLogger(__name__)

UNMATCHED = "unmatched"
CLIENT_CLOSED = 499
"""The status of a request the client left before any answer (nginx's convention)."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods labelled as themselves; any other token a client sends is ``OTHER``."""
POSITIONS_TIMEOUT = 3.0
"""Seconds a scrape waits for the projections' positions before it reports the database down."""
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""Seconds; reads waiting on ``min_position`` may take up to 5 s."""

"""The log's head and each projection's status, as one read saw them."""


class ApiMetrics:
    """The registry of one app and the metrics the API records into it."""

    def __init__(self, resources: Callable[[], ScrapedReads | None]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ledger_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.durations = Histogram(
            "ledger_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "ledger_events_recorded",
            "Events this process recorded in the ledger, by event type",
            ["type"],
            registry=self.registry,
        )
        self.registry.register(ProjectionCollector(resources))
        # labels() validates and locks on every call; the children are cached instead,
        # touched only from the event loop's thread.
        self._counted: dict[tuple[str, str, int], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        counted = self._counted.get((method, route, status))
        if counted is None:
            counted = self.requests.labels(method, route, str(status))
            self._counted[method, route, status] = counted
        timed = self._timed.get((method, route))
        if timed is None:
            timed = self.durations.labels(method, route)
            self._timed[method, route] = timed
        counted.inc()
        timed.observe(seconds)

    def count_events(self, types: Iterable[str]) -> None:
        for event_type in types:
            self.events.labels(event_type).inc()

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The metrics in the format ``accept`` asks for (Prometheus text by default)."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


class ProjectionCollector(Collector):
    """The log's head, each projection's position and lag, and the inbox, read at scrape time.

    A scrape while the database is down still answers, within ``POSITIONS_TIMEOUT``:
    ``ledger_database_up`` is 0 and the positions are left out rather than reported
    stale (``api.positions``).
    """

    def __init__(self, resources: Callable[[], ScrapedReads | None]) -> None:
        self.resources = resources

    def describe(self) -> Iterable[Metric]:
        return _families()

    def collect(self) -> Iterable[Metric]:
        resources = self.resources()
        try:
            if resources is None:
                raise LookupError("the app has not started")
            read = resources.positions.read(POSITIONS_TIMEOUT)
            inbox_counts = resources.inbox_counts.read(POSITIONS_TIMEOUT)
        except TimeoutError:
            log.warning("metrics: no answer from the database in %g s", POSITIONS_TIMEOUT)
            return [_down()]
        except Exception as error:  # any failure to reach the database: report it as down
            log.warning("metrics could not read the projections' positions: %s", error)
            return [_down()]
        up, head_family, positions, lags, inbox = _families()
        up.add_metric([], 1)
        head_family.add_metric([], read.head)
        for status in read.projections:
            positions.add_metric([status.name], status.position)
            lags.add_metric([status.name], status.lag)
        for name, count in inbox_counts.items():
            inbox.add_metric([name], count)
        return [up, head_family, positions, lags, inbox]


def _down() -> GaugeMetricFamily:
    up = _families()[0]
    up.add_metric([], 0)
    return up


def _families() -> list[GaugeMetricFamily]:
    return [
        GaugeMetricFamily(
            "ledger_database_up", "1 if this scrape reached the database, 0 if it did not"
        ),
        GaugeMetricFamily("ledger_log_head_position", "Position of the last event in the log"),
        GaugeMetricFamily(
            "ledger_projection_position",
            "Last log position each projection has applied",
            labels=["projection"],
        ),
        GaugeMetricFamily(
            "ledger_projection_lag_events",
            "Events each projection trails the log's head by",
            labels=["projection"],
        ),
        GaugeMetricFamily(
            "ledger_inbox_deliveries",
            "Webhook deliveries in the inbox by status (pending ones are still to be mapped)",
            labels=["status"],
        ),
    ]


class RequestMetrics:
    """Counts and times every HTTP request by method, route template and status.

    Pure ASGI, so streaming responses pass through untouched. Installed outermost, it
    also sees requests refused before routing (a body over the limit).
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = perf_counter()
        try:
            await self.app(scope, receive, observe)
        except Exception:
            status = status or 500  # what the server error middleware answers with
            raise
        finally:
            # The router leaves the route it matched in the scope, templates and all.
            route = getattr(scope.get("route"), "path_format", None) or UNMATCHED
            self.metrics.observe_request(
                scope["method"], route, status or CLIENT_CLOSED, perf_counter() - started
            )


class MeteredLedger(ReleaseLedger):
    """A ledger that counts, by type, every event it records.

    Counting where events are saved leaves out, by construction, commands answered from
    an earlier recording (a known ``source_ref``) and attempts lost to a concurrent writer.
    """

    # The library names tables and reads settings by the application's name.
    name = ReleaseLedger.name

    def __init__(self, env: EnvType | None = None, *, metrics: ApiMetrics, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.metrics = metrics

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        super()._notify(recordings)
        # A claim on a source_ref is bookkeeping, not an event of the ledger's history.
        self.metrics.count_events(
            type(recording.domain_event).__name__
            for recording in recordings
            if not isinstance(recording.domain_event, SourceReference.Event)
        )


def install_metrics(app: FastAPI) -> ApiMetrics:
    """Give ``app`` its metrics and the middleware that records its requests."""
    metrics = ApiMetrics(lambda: getattr(app.state, "resources", None))
    app.state.metrics = metrics
    app.add_middleware(RequestMetrics, metrics=metrics)
    return metrics

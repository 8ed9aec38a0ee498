"""What operators watch: Prometheus metrics at ``/metrics`` and readiness at ``/readyz``.

One ``CollectorRegistry`` per app (not prometheus-client's global one), so several apps in one
process (the tests) do not share series. The request histogram is observed once per request by
``MetricsMiddleware``; everything that describes the catalog (its version, how far this replica
is behind the change log, the projections' sizes, live sources' latencies and failures) is read
when Prometheus scrapes, by ``CatalogCollector``, so requests pay nothing for it.

With ``capahub serve --workers N`` each worker process has its own series: scrape each, or run
one worker per replica (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from catalog.services import Services

#: Operation names are the client's to choose: at most this many distinct ones get a series of
#: their own, the rest are counted as ``other`` (a scrape's size stays bounded).
MAX_OPERATION_LABELS = 200
_OPERATION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: The paths that get a series of their own; any other is ``other`` (a scanner's random paths).
_ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/metrics", "/"})
#: Seconds; a small lookup takes about a millisecond, a graph question up to its budget.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


_NAMED_OPERATION = re.compile(r"\s*(?:query|mutation|subscription)\s+([A-Za-z_][A-Za-z0-9_]*)")


def operation_name(query: object, given: object) -> str | None:
    """The operation's name for the metrics: the request's ``operationName``, else the name
    of a document's leading operation (only the start of the text is looked at)."""
    if isinstance(given, str):
        return given
    if isinstance(query, str):
        found = _NAMED_OPERATION.match(query, 0, 300)
        if found is not None:
            return found.group(1)
    return None


class Metrics:
    """The hub's metrics: a registry of its own, the request histogram and the catalog's
    collector (bound to the services once they are started)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "capahub_request_duration_seconds",
            "HTTP requests by route, GraphQL operation name and status, and how long they took "
            "(until the answer's first byte was handed to the server).",
            ["route", "operation", "status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.collector = CatalogCollector()
        self.registry.register(self.collector)
        self._operations: set[str] = set()
        self._children: dict[tuple[str, str, int], Any] = {}

    def observe(self, path: str, operation: str | None, status: int, seconds: float) -> None:
        """Count one request."""
        key = (path, operation or "", status)
        child = self._children.get(key)
        if child is None:
            route = path if path in _ROUTES else "other"
            child = self.requests.labels(route, self._operation_label(operation), str(status))
            if len(self._children) < 4 * MAX_OPERATION_LABELS:
                self._children[key] = child
        child.observe(seconds)

    def _operation_label(self, operation: str | None) -> str:
        if not operation:
            return ""
        if operation in self._operations:
            return operation
        if len(self._operations) >= MAX_OPERATION_LABELS or not _OPERATION_NAME.fullmatch(
            operation
        ):
            return "other"
        self._operations.add(operation)
        return operation

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)


class CatalogCollector(Collector):
    """Series read from the running services at scrape time."""

    def __init__(self) -> None:
        self.services: Callable[[], Services | None] = lambda: None
        #: the newest change id in the database, read by the /metrics page before it renders
        self.committed: int | None = None

    def describe(self) -> list[Metric]:
        return []  # the series exist only once the services run: nothing to check up front

    def collect(self) -> Iterator[Metric]:
        services = self.services()
        if services is None:
            return
        graph = services.graph
        yield _gauge(
            "capahub_catalog_version",
            "The change-log id this replica's projections have caught up with.",
            graph.last_change,
        )
        committed = self.committed
        if committed is not None:
            yield _gauge(
                "capahub_catalog_committed_version",
                "The newest change-log id in the database.",
                committed,
            )
            yield _gauge(
                "capahub_replica_lag_changes",
                "Committed changes this replica has not applied yet.",
                max(0, committed - graph.last_change),
            )
        yield _gauge(
            "capahub_replica_sync_age_seconds",
            "Seconds since this replica last looked at the change log.",
            max(0.0, time.monotonic() - services.synced_at) if services.synced_at else 0.0,
        )
        yield _gauge(
            "capahub_projection_nodes", "Nodes in the graph projection.", graph.g.number_of_nodes()
        )
        yield _gauge(
            "capahub_projection_relations",
            "Relations in the graph projection.",
            graph.g.number_of_edges(),
        )
        stats = services.records.source_stats()
        requests = GaugeMetricFamily(
            "capahub_source_requests",
            "Live-record fetches from each source system since start, by outcome.",
            labels=["source", "outcome"],
        )
        seconds = GaugeMetricFamily(
            "capahub_source_seconds",
            "Total seconds spent fetching live records from each source system since start.",
            labels=["source"],
        )
        for source, stat in stats.items():
            requests.add_metric([source, "ok"], stat.ok)
            requests.add_metric([source, "error"], stat.errors)
            seconds.add_metric([source], stat.seconds)
        yield requests
        yield seconds


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class MetricsMiddleware:
    """Observe every HTTP request's route, operation name (``/graphql`` puts it in the
    request's state), status and duration."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status, start
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = time.perf_counter() - start
                state = scope.get("state") or {}
                self.metrics.observe(scope["path"], state.get("graphql_operation"), status, elapsed)
                start = 0.0  # observed
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if start:  # no answer was started (the client left, or the app failed)
                state = scope.get("state") or {}
                self.metrics.observe(
                    scope["path"],
                    state.get("graphql_operation"),
                    status if status != 500 else 499,
                    time.perf_counter() - start,
                )


async def committed_version(services: Services) -> int:
    """The newest change id in the database (SQLite: a synchronous look at its index)."""
    committed = services.store.last_change_id_now()
    if committed is None:
        async with services.store.read() as r:
            committed = await r.last_change_id()
    return committed


async def readiness(
    services: Services | None, *, max_lag: int, warming: bool = False
) -> tuple[bool, dict[str, Any]]:
    """Whether this replica should get traffic: started, projections loaded, what every
    request reads worked out (``warming``: not yet; the cost limit's catalog statistics, a
    whole pass over the projection that the first request would otherwise make on the event
    loop: 16 s at 1,000,000 nodes), and no more than ``max_lag`` committed changes behind the
    database (after one look at the change log)."""
    if services is None:
        return False, {"status": "starting"}
    if warming:
        return False, {"status": "warming up", "version": services.graph.last_change}
    committed = await committed_version(services)
    behind = max(0, committed - services.graph.last_change)
    if behind > max_lag:
        await services.sync_if_changed()
        behind = max(0, committed - services.graph.last_change)
    body = {
        "status": "ready" if behind <= max_lag else "catching up",
        "version": services.graph.last_change,
        "committed": committed,
        "behind": behind,
    }
    return behind <= max_lag, body


#: The request header a client sends back with the ``extensions.catalogVersion`` it was given
#: (after a write, say), so that any replica answers from that version or a later one.
VERSION_HEADER = "x-capahub-catalog-version"


async def reach_version(services: Services, wanted: str, *, wait: float) -> None:
    """Wait, at most ``wait`` seconds, until this replica's projections hold change ``wanted``
    (the ``X-Capahub-Catalog-Version`` header); refuse a malformed value, and a version this
    replica has not reached in time (503 UNAVAILABLE: ahead of anything committed, or not
    caught up yet)."""
    from catalog.http import GraphQLHTTPError

    text = wanted.strip()
    if not text.isdigit() or len(text) > 18:
        raise GraphQLHTTPError(
            400,
            "X-Capahub-Catalog-Version: expected a catalog version (a non-negative integer, "
            "as given in extensions.catalogVersion)",
            None,
            {"code": "BAD_USER_INPUT", "field": "X-Capahub-Catalog-Version"},
        )
    version = int(text)
    graph = services.graph
    if graph.last_change >= version:
        return
    deadline = time.monotonic() + wait
    delay = 0.005
    while True:
        await services.sync_if_changed()
        if graph.last_change >= version:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 0.1)
    committed = await committed_version(services)
    why = (
        f"is ahead of anything committed (the newest is {committed})"
        if version > committed
        else f"is not reached by this replica yet (it is at {graph.last_change})"
    )
    raise GraphQLHTTPError(
        503,
        f"X-Capahub-Catalog-Version: catalog version {version} {why} after waiting "
        f"{wait:g} s (CAPAHUB_VERSION_WAIT); try again shortly",
        {"Retry-After": "1"},
        {
            "code": "UNAVAILABLE",
            "field": "X-Capahub-Catalog-Version",
            "retryAfter": 1,
            "catalogVersion": graph.last_change,
        },
    )


__all__ = [
    "VERSION_HEADER",
    "CatalogCollector",
    "Metrics",
    "MetricsMiddleware",
    "committed_version",
    "reach_version",
    "readiness",
]

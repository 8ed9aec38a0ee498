"""Composition root: builds the services and the schema and mounts them on Starlette."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import re
import threading
from collections.abc import AsyncIterator
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.budget import CostBudget, charge_of
from catalog.changes.websocket import NOBODY, SocketLimits
from catalog.demo import demo_data_dir, load_demo
from catalog.explorer import explorer_routes
from catalog.http import CatalogGraphQL, RequestLimits, www_authenticate
from catalog.operations import (
    VERSION_HEADER,
    Metrics,
    MetricsMiddleware,
    committed_version,
    reach_version,
    readiness,
)
from catalog.playground import playground_routes
from catalog.registry import Registry
from catalog.services import Services, WriteServices
from catalog.settings import Settings
from catalog.tracing import TraceRequests, tracer_from_environment, tracing_wanted
from metadata.errors import UnauthenticatedError
from metadata.store import COMMITTED
from resolvers import build_schema, make_context

log = logging.getLogger("capahub")
#: A client's own ``X-Request-Id`` is kept (and recorded in history) when it looks like one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


async def _prime_after(
    warming: asyncio.Task[None], services: Services, stopping: threading.Event
) -> None:
    """The findings' first pass once the cost statistics are worked out (one whole pass over
    the projection at a time: they would slow each other, and readiness waits for the first);
    it stops early when ``stopping`` is set (shutdown)."""
    with contextlib.suppress(Exception):
        await warming
    if not stopping.is_set():
        await services.analysis.prime(stopping.is_set)


async def _follow_other_processes(services: Services) -> None:
    """Poll the change log so projections see what other processes (apply, replicas) wrote;
    record when hub tokens were last used."""
    while True:
        # Shorter while subscribers wait on a database without notifications (SQLite).
        await asyncio.sleep(services.follow_interval())
        try:
            await services.sync_if_changed()
            await services.tokens.flush_last_used()
        except Exception:  # keep following; a transient database error must not stop it
            log.exception("catching up with the change log failed; retrying")


def _request_id(request: Any) -> str | None:
    """The client's X-Request-Id when it looks like one (else the context makes one when the
    request first writes: a uuid per read request was a few per cent of a small lookup)."""
    given = request.headers.get("x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return str(given)
    return None


def create_app(settings: Settings | None = None, *, demo: bool = False) -> Starlette:
    """The hub as an ASGI app; the database is opened (and migrated) on startup."""
    settings = settings or Settings()
    schema = build_schema(
        max_depth=settings.max_query_depth,
        max_cost=settings.max_query_cost,
        max_page_size=settings.max_page_size,
        query_cache_mb=settings.query_cache_mb,
    )
    per_minute = settings.effective_cost_per_minute  # docs/limits.md, "Cost budget per caller"
    if per_minute:
        schema.costs.budget = CostBudget(
            per_minute,
            max_charge=max(settings.max_query_cost, charge_of(0, settings.max_body_bytes)),
        )
    state: dict[str, Any] = {}
    metrics = Metrics()
    metrics.collector.services = lambda: state.get("services")

    async def context(request: Any, response: Any) -> Any:
        services: Services = state["services"]
        if request.scope["type"] == "websocket":
            # A subscription connection says who it is at connection_init (its handler).
            return make_context(services, request, response, principal=NOBODY)
        # Who calls, before anything else runs (UnauthenticatedError: a 401 from the view);
        # the access log names the caller (catalog.access_log.actor_of).
        request.state.actor = "anonymous"
        principal = await services.auth.authenticate(request.headers.get("authorization"))
        request.state.actor = principal.actor
        if services.graph.version:  # projections loaded: catch up with other processes first
            wanted = request.headers.get(VERSION_HEADER)
            if wanted is not None:  # read-your-writes across replicas (docs/deployment.md)
                await reach_version(services, wanted, wait=settings.version_wait)
            else:
                await services.catch_up()
        # The version this request reads (extensions.catalogVersion); its own writes add to it.
        request.state.catalog_version = services.graph.last_change
        committed: list[int] = []
        request.state.committed = committed
        COMMITTED.set(committed)
        return make_context(
            services, request, response, principal=principal, request_id=_request_id(request)
        )

    graphql = CatalogGraphQL(
        schema,
        context,
        graphql_ide="graphiql" if settings.graphql_ide else None,
        limits=RequestLimits(
            max_body_bytes=settings.max_body_bytes,
            max_response_bytes=settings.max_response_bytes,
            timeout=settings.request_timeout,
        ),
        socket_limits=SocketLimits(
            max_per_connection=settings.subscriptions_per_connection,
            init_timeout=settings.subscription_init_timeout,
            ping_interval=settings.subscription_ping_interval,
            send_timeout=settings.subscription_send_timeout,
            max_message_bytes=settings.subscription_max_message_bytes,
            recheck=settings.sync_interval,
        ),
        # WebSocket handshakes from a page on another origin (cross-site WebSocket hijacking):
        # only the hub's own origin and the CORS origins.
        allowed_origins=cors_origins(settings),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await Services.start(settings)
        state["services"] = services
        app.state.services = services
        if demo:
            await _load_demo(services.registry, settings)
        # The projections and caches built at start live as long as the process: move them out
        # of the collector's sight, or every full collection walks them (tens of ms each).
        gc.collect()
        gc.freeze()
        syncer = asyncio.create_task(_follow_other_processes(services))
        # The cost limit's catalog statistics, on a worker thread (seconds at 1,000,000 nodes):
        # else the first request works them out on the event loop. /readyz waits for them.
        warming = asyncio.create_task(schema.costs.sizes.warm(services.graph))
        state["warming"] = warming
        # Then the whole-catalog findings (gaps, redundancies), in the background: their first
        # pass outlasts a question's time budget on a large catalog; later versions move on.
        stopping = threading.Event()
        priming = asyncio.create_task(_prime_after(warming, services, stopping))
        await services.start_delivery()  # webhooks: this server delivers; CLI commands never do
        try:
            yield
        finally:
            syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncer
            stopping.set()  # the findings' pass stops at its next check
            with contextlib.suppress(Exception):  # a thread's work is not cancelled: awaited
                await warming
            with contextlib.suppress(Exception):
                await priming
            await services.close()

    async def healthz(request: Request) -> JSONResponse:
        services: Services | None = state.get("services")
        if services is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        # A SQLite file answers at once on a connection of its own; the async driver's round
        # trips wait for the busy loop (hundreds of ms while graph questions run).
        change = services.store.last_change_id_now()
        if change is None:
            async with services.store.read() as r:
                change = await r.last_change_id()
        return JSONResponse({"status": "ok", "database": services.store.dialect, "change": change})

    async def readyz(request: Request) -> JSONResponse:
        warming = state.get("warming")
        ready, body = await readiness(
            state.get("services"),
            max_lag=settings.ready_max_lag,
            warming=warming is not None and not warming.done(),
        )
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_page(request: Request) -> Response:
        services: Services | None = state.get("services")
        if services is not None and settings.auth == "on":
            request.state.actor = "anonymous"
            try:
                principal = await services.auth.authenticate(request.headers.get("authorization"))
            except UnauthenticatedError as error:
                return _unauthenticated(request, error)
            request.state.actor = principal.actor
        if services is not None:
            metrics.collector.committed = await committed_version(services)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/graphql", graphql),  # the view answers other methods with a JSON 405
        WebSocketRoute("/graphql", graphql),  # subscriptions (graphql-transport-ws)
        *playground_routes(),
        *explorer_routes(),  # the web interface at /, static pages over /graphql
    ]
    if settings.metrics:
        routes.append(Route("/metrics", metrics_page, methods=["GET"]))
    middleware = _middleware(settings)
    if tracing_wanted():  # the standard OTEL_* environment (docs/deployment.md, "Traces")
        tracer = tracer_from_environment()
        if tracer is not None:
            middleware.insert(0, Middleware(TraceRequests, tracer=tracer))
    if settings.metrics:
        middleware.append(Middleware(MetricsMiddleware, metrics=metrics))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.metrics = metrics
    app.state.schema = schema
    return app


def _unauthenticated(request: Request, error: UnauthenticatedError) -> Response:
    body = {"errors": [{"message": error.message, "extensions": {"code": "UNAUTHENTICATED"}}]}
    return Response(
        orjson.dumps(body),
        status_code=401,
        media_type="application/json",
        headers={"WWW-Authenticate": www_authenticate(request, error)},
    )


def _middleware(settings: Settings) -> list[Middleware]:
    """Host checking on every route (docs/limits.md), then CORS when origins are configured."""
    stack = [Middleware(TrustedHosts, allowed_hosts=allowed_hosts(settings))]
    origins = cors_origins(settings)
    if origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
            )
        )
    return stack


def cors_origins(settings: Settings) -> list[str]:
    """The origins of ``CAPAHUB_CORS_ORIGINS``."""
    return [o.strip() for o in settings.cors_origins.split(",") if o.strip()]


def allowed_hosts(settings: Settings) -> list[str]:
    """The ``Host`` names the hub answers: ``CAPAHUB_ALLOWED_HOSTS`` and the address it listens
    on when that is one (``CAPAHUB_HOST``), IPv6 literals in brackets as a ``Host`` has them."""
    names = [n.strip().lower() for n in settings.allowed_hosts.split(",") if n.strip()]
    if "*" in names:
        return ["*"]
    listen = settings.host.strip().lower()
    if listen.strip("[]") not in ("", "0.0.0.0", "::"):
        names.append(listen)
    hosts: list[str] = []
    for name in names:
        bare = name.strip("[]")
        host = f"[{bare}]" if ":" in bare else bare
        if host not in hosts:
            hosts.append(host)
    return hosts


class TrustedHosts:
    """Starlette's ``TrustedHostMiddleware`` (stops DNS rebinding: a page that had a name
    resolve to this hub still sends that name), with two additions.

    A ``Host`` that is the IP address the connection came to is answered as well: a rebound
    page never sends an address, and a load balancer's health probe or a client that uses the
    address does. A refused request gets a GraphQL-shaped JSON 400 that names the setting.
    The middleware's answer for a ``Host`` (and the connection's address) is asked once and
    remembered: asking it for every request was a tenth of a small lookup's time.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.check = TrustedHostMiddleware(_mark_trusted, allowed_hosts, www_redirect=False)
        self._answers: dict[tuple[str | None, str], bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or refuse it with a 400."""
        if scope["type"] not in ("http", "websocket") or self.check.allow_any:
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        key = (_host_header(scope), str(server[0]) if server and server[0] else "")
        trusted = self._answers.get(key)
        if trusted is None:
            trusted = await self._trusted(*key)
            if len(self._answers) >= 1024:  # any number of names may be sent: stay bounded
                self._answers.clear()
            self._answers[key] = trusted
        if trusted:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # the handshake gets a 403
        else:
            await _wrong_host(key[0])(scope, receive, send)

    async def _trusted(self, host: str | None, address: str) -> bool:
        """What the middleware says of a request with this ``Host``, or its own address."""
        if host is not None and address and _names_address(host, address):
            return True
        probe: dict[str, Any] = {"type": "http", "headers": []}
        if host is not None:
            probe["headers"].append((b"host", host.encode("latin-1")))

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        async def discard(message: Message) -> None:
            pass

        await self.check(probe, nothing, discard)
        return bool(probe.get("capahub.trusted_host"))


async def _mark_trusted(scope: Scope, receive: Receive, send: Send) -> None:
    scope["capahub.trusted_host"] = True


def _host_header(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"host":
            return str(value.decode("latin-1"))
    return None


def _names_address(host: str, address: str) -> bool:
    """Whether ``host`` (a ``Host`` header) is the literal IP ``address``, any port (one mapped
    by a container or a proxy differs from the one the hub listens on)."""
    named = host if host.endswith("]") or ":" not in host else host.rpartition(":")[0]
    try:
        return ipaddress.ip_address(named.strip("[]")) == ipaddress.ip_address(address)
    except ValueError:  # a name, or a server address that is not an IP (a test client's)
        return False


def _wrong_host(host: str | None) -> Response:
    shown = "none" if host is None else repr(host[:100])
    message = (
        f"This hub does not answer to the host name {shown}: if it is this hub's name, add it "
        "to CAPAHUB_ALLOWED_HOSTS (comma-separated)."
    )
    body = {"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]}
    return Response(orjson.dumps(body), status_code=400, media_type="application/json")


def access_logged(settings: Settings) -> bool:
    """Whether ``capahub serve`` writes access lines (on, and a log level that shows INFO)."""
    return settings.access_log and settings.log_level.lower() in ("trace", "debug", "info")


async def load_demo_once(settings: Settings) -> None:
    """Load the demo landscape before the workers start (each would otherwise race to)."""
    services = await WriteServices.start(settings)
    try:
        await _load_demo(services.registry, settings)
    finally:
        await services.close()


async def _load_demo(registry: Registry, settings: Settings) -> None:
    report = await load_demo(registry, demo_data_dir(settings))
    log.info("demo landscape: %d added, %d updated", len(report.added), len(report.updated))


__all__ = ["access_logged", "allowed_hosts", "create_app", "load_demo_once"]

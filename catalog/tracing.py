"""OpenTelemetry traces, an optional extra (``pip install 'capahub[otel]'``).

When the standard ``OTEL_*`` environment asks for traces (``tracing_wanted``) and the extra is
installed, ``create_app`` mounts ``TraceRequests``: one server span per GraphQL request on
``/graphql``, named after its operation, with the operation name, the catalog version it was
answered at, the caller (``Principal.actor``, never a credential) and the HTTP status as
attributes, parented on the caller's W3C ``traceparent`` when it sent one. Otherwise nothing
of OpenTelemetry is imported and requests pay nothing (docs/deployment.md, "Traces").

Why not strawberry's ``OpenTelemetryExtension``: it opens a span for every resolved field (an
``impact`` answer of 20,000 nodes, tens of thousands), records the whole query text,
and a schema extension takes requests off the prepared lane (docs/architecture.md). One span
per operation, from the request's state, costs one span whichever lane answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.access_log import actor_of

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

log = logging.getLogger("capahub")

#: The instrumentation scope the hub's spans are recorded under.
TRACER_NAME = "capahub"
#: The headers a trace context comes in (W3C Trace Context and Baggage).
_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})


def tracing_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard environment asks for traces: ``OTEL_TRACES_EXPORTER`` names an
    exporter (not ``none``), or, without it, an OTLP endpoint is set; never with
    ``OTEL_SDK_DISABLED=true``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER")
    if exporters is not None:
        return any(e.strip().lower() not in ("", "none") for e in exporters.split(","))
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def tracer_from_environment(environ: Mapping[str, str] = os.environ) -> Tracer | None:
    """The hub's tracer as the environment configures it: the process's tracer provider when
    one is set already (``opentelemetry-instrument``), else one built here with the exporters
    of ``OTEL_TRACES_EXPORTER`` (default ``otlp``) behind a batch processor; None, with a
    warning, when the extra is not installed."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_* asks for traces but OpenTelemetry is not installed: pip install "
            "'capahub[otel]'; serving without traces"
        )
        return None
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):  # configured by someone already
        return trace.get_tracer(TRACER_NAME, tracer_provider=current)
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; the sampler comes
    # from OTEL_TRACES_SAMPLER, the batching from OTEL_BSP_*, endpoints and headers from
    # OTEL_EXPORTER_OTLP_*, all read by the SDK itself.
    provider = TracerProvider(
        resource=Resource.create({} if named else {"service.name": "capahub"})
    )
    names = environ.get("OTEL_TRACES_EXPORTER") or "otlp"
    for name in (n.strip().lower() for n in names.split(",")):
        if name in ("", "none"):
            continue
        exporter = _exporter(name, environ)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return trace.get_tracer(TRACER_NAME, tracer_provider=provider)


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter | None:
    """The span exporter ``OTEL_TRACES_EXPORTER`` names: ``otlp`` (its protocol from
    ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_PROTOCOL``, default
    ``http/protobuf``) or ``console``; others through the SDK's entry points."""
    try:
        if name == "otlp":
            protocol = (
                environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            )
            if protocol.strip() == "grpc":
                # Not in every install of the extra's dependencies' stubs: checked either way.
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                    OTLPSpanExporter as GrpcExporter,
                )

                grpc: SpanExporter = GrpcExporter()  # typed: Any when the stubs are absent
                return grpc
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )

            http: SpanExporter = OTLPSpanExporter()
            return http
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter()
        from importlib.metadata import entry_points

        for point in entry_points(group="opentelemetry_traces_exporter", name=name):
            exporter: SpanExporter = point.load()()
            return exporter
    except ImportError as error:
        log.warning("OTEL_TRACES_EXPORTER=%s: %s; pip install 'capahub[otel]'", name, error)
        return None
    log.warning("OTEL_TRACES_EXPORTER: no span exporter called %r is installed; skipped", name)
    return None


class TraceRequests:
    """ASGI middleware: a server span for every HTTP request to ``/graphql``."""

    def __init__(
        self,
        app: ASGIApp,
        tracer: Tracer | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        from opentelemetry import trace

        self.app = app
        self.tracer = tracer or trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request inside its span; name it and set its attributes once answered."""
        if scope["type"] != "http" or scope.get("path") != "/graphql":
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", ())
            if k in _PROPAGATED
        }
        parent = propagate.extract(carrier) if carrier else None
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracer.start_as_current_span(
            "GraphQL Operation", context=parent, kind=SpanKind.SERVER
        ) as span:
            try:
                await self.app(scope, receive, sending)
            finally:
                attributes = span_attributes(scope, status)
                name = attributes.get("graphql.operation.name")
                if name:
                    span.update_name(f"GraphQL {name}")
                span.set_attributes(attributes)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))


def span_attributes(scope: Scope, status: int) -> dict[str, Any]:
    """What a request's span says of it: operation name, catalog version, caller, HTTP method,
    path and status (the request's state holds the first three once it has run)."""
    state = scope.get("state") or {}
    attributes: dict[str, Any] = {
        "http.request.method": scope.get("method", ""),
        "url.path": scope.get("path", ""),
        "http.response.status_code": status,
    }
    operation = state.get("graphql_operation")
    if operation:
        attributes["graphql.operation.name"] = str(operation)
    version = state.get("catalog_version")
    if version is not None:
        attributes["capahub.catalog_version"] = max([version, *state.get("committed", ())])
    actor = actor_of(scope)
    if actor is not None:
        attributes["enduser.id"] = actor
    return attributes


__all__ = [
    "TRACER_NAME",
    "TraceRequests",
    "span_attributes",
    "tracer_from_environment",
    "tracing_wanted",
]

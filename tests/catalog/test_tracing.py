"""OpenTelemetry traces (catalog/tracing.py, the ``otel`` extra): a span per GraphQL request
with its operation, catalog version and caller; nothing of OpenTelemetry imported when the
standard ``OTEL_*`` environment does not ask for traces."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from catalog.app import create_app
from catalog.settings import Settings
from catalog.tracing import TraceRequests, tracing_wanted
from tests.conftest import TEST_HOSTS
from tests.serving import capahub_serve

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[TestClient, InMemorySpanExporter, str]]:
    """The app with auth on, behind ``TraceRequests`` on an in-memory exporter, and a hub
    token of a viewer called ``ci``."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        allowed_hosts=TEST_HOSTS,
        auth="on",
        _env_file=None,
    )
    app = create_app(settings)
    with TestClient(TraceRequests(app, tracer_provider=provider)) as client:
        tokens = app.state.services.tokens
        _, token = client.portal.call(  # type: ignore[union-attr]
            functools.partial(tokens.create, "ci", "viewer", created_by="tests")
        )
        yield client, exporter, token
    provider.shutdown()


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_each_graphql_request_gets_a_span_with_operation_version_and_caller(
    traced: tuple[TestClient, InMemorySpanExporter, str],
) -> None:
    client, exporter, token = traced
    query = {"query": "query CountSystems { systems { totalCount } }"}
    headers = {"Authorization": f"Bearer {token}", "traceparent": PARENT}
    versions = []
    for _ in range(2):  # the second one takes the prepared lane: a span all the same
        answer = client.post("/graphql", json=query, headers=headers)
        assert answer.status_code == 200, answer.text
        versions.append(answer.json()["extensions"]["catalogVersion"])
    assert client.get("/healthz").status_code == 200  # not a GraphQL request: no span
    refused = client.post("/graphql", json={"query": "query Anon { systems { totalCount } }"})
    assert refused.status_code == 401
    spans = exporter.get_finished_spans()
    # Refused before its operation was read: the span has the generic name.
    assert [s.name for s in spans] == ["GraphQL CountSystems"] * 2 + ["GraphQL Operation"]
    for span, version in zip(spans, versions, strict=False):
        attrs = _attrs(span)
        assert attrs["graphql.operation.name"] == "CountSystems"
        assert attrs["capahub.catalog_version"] == version
        assert attrs["enduser.id"] == "token:ci"
        assert attrs["http.response.status_code"] == 200
        assert span.kind.name == "SERVER"
        assert span.context is not None and f"{span.context.trace_id:032x}" == TRACE_ID
        assert span.parent is not None and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
    anon = _attrs(spans[2])
    assert anon["enduser.id"] == "anonymous" and anon["http.response.status_code"] == 401
    assert spans[2].parent is None  # no traceparent: a trace of its own
    for span in spans:
        assert token not in json.dumps(_attrs(span))


def test_traces_are_wanted_only_when_the_standard_environment_says_so() -> None:
    assert not tracing_wanted({})
    assert not tracing_wanted({"OTEL_TRACES_EXPORTER": "none"})
    assert tracing_wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing_wanted({"OTEL_TRACES_EXPORTER": "none,console"})
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318"})
    assert not tracing_wanted(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_EXPORTER": "none"}
    )  # noqa: E501
    assert not tracing_wanted({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"})


_PROBE = """
import sys
from starlette.testclient import TestClient
from catalog.app import create_app
from catalog.settings import Settings
app = create_app(Settings(database_url=sys.argv[1], _env_file=None))
with TestClient(app) as client:
    assert client.post("/graphql", json={"query": "{ __typename }"}).status_code == 200
traced = any(m.cls.__name__ == "TraceRequests" for m in app.user_middleware)
print("PROBE", traced, any(name.startswith("opentelemetry") for name in sys.modules))
"""


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "PROBE False False"), ({"OTEL_TRACES_EXPORTER": "console"}, "PROBE True True")],
)
def test_nothing_of_opentelemetry_is_imported_unless_asked(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    clean["CAPAHUB_ALLOWED_HOSTS"] = TEST_HOSTS
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, f"sqlite:///{tmp_path / 'c.db'}"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout.splitlines(), done.stdout


def test_a_real_serve_exports_spans_to_the_console_exporter(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    env |= {"OTEL_SERVICE_NAME": "capahub-test", "CAPAHUB_ACCESS_LOG": "false"}
    env.pop("CAPAHUB_AUTH", None)
    with capahub_serve(tmp_path, "--database", f"sqlite:///{tmp_path / 'c.db'}", env=env) as srv:
        answer = httpx.post(
            f"{srv.base}/graphql",
            json={"query": "query Hello { __typename }"},
            headers={"traceparent": PARENT},
            trust_env=False,
        )
        assert answer.status_code == 200
        deadline = time.monotonic() + 10
        while '"GraphQL Hello"' not in srv.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        output = srv.output()
    assert '"name": "GraphQL Hello"' in output, output
    assert TRACE_ID in output
    assert '"enduser.id": "anonymous"' in output
    assert '"service.name": "capahub-test"' in output

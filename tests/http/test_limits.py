"""Request limits through the real app (catalog/http.py, catalog/app.py): body size (413 while
reading), bodies that are not UTF-8 or nest too deeply (400), answer size, the time budget,
host checking and CORS. Every refusal is a GraphQL-shaped JSON error with a code."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import graphql
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from catalog.app import allowed_hosts, create_app
from catalog.http import GRAPHQL_RESPONSE_JSON, JSON, _is_mutation
from catalog.settings import Settings
from tests.conftest import TEST_HOSTS

TYPENAME = {"query": "{ __typename }"}
#: ``multipart/mixed`` keeps a request off the prepared lane: the full path reads the body.
LANES = {"prepared": {"accept": JSON}, "full": {"accept": f"multipart/mixed, {JSON}"}}
INTROSPECTION = "{ __schema { types { name fields { name args { name } } } } }"


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """A client on the real app over an empty SQLite catalog, with settings overridden."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'c.db'}",
            _env_file=None,
            **{"allowed_hosts": TEST_HOSTS, "cost_per_minute": 0, **overrides},
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def refusal(resp: Any, status: int, code: str = "BAD_USER_INPUT") -> dict[str, Any]:
    """The one error of a refused request, after checking its status, media type and code."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith((JSON, GRAPHQL_RESPONSE_JSON))
    body = resp.json()
    assert set(body) == {"errors"}, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == code, error
    result: dict[str, Any] = error
    return result


async def raw_request(
    client: TestClient,
    chunks: list[bytes],
    headers: dict[str, str],
    *,
    pause: float = 0.0,
    server: tuple[str, int] | None = None,
) -> tuple[int, dict[str, str], bytes, int]:
    """POST ``chunks`` to /graphql straight through ASGI (``pause`` seconds before each);
    returns the status, headers, body and how many chunks the app asked for."""
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= len(chunks):
            await asyncio.sleep(3600)  # the client sends nothing more
        await asyncio.sleep(pause)
        pulled += 1
        return {
            "type": "http.request",
            "body": chunks[pulled - 1],
            "more_body": pulled < len(chunks),
        }

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": server or ("testserver", 80),
        "state": {},
    }
    await client.app(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    sent = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], sent, body, pulled


def run(client: TestClient, coro: Any) -> Any:
    return client.portal.call(lambda: coro)  # type: ignore[union-attr]


# Bodies


def test_a_declared_body_over_the_limit_is_413_before_any_of_it_is_read(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(max_body_bytes=10_000)
    headers = {"content-type": JSON, "host": "testserver", "content-length": "100000000"}
    status, sent, body, pulled = run(client, raw_request(client, [b"{}"], headers))
    assert (status, pulled) == (413, 0)
    assert sent["connection"] == "close"  # the server stops reading the connection
    [error] = json.loads(body)["errors"]
    assert error["extensions"] | {"catalogVersion": None} == {
        "catalogVersion": None,
        "code": "BAD_USER_INPUT",
        "maxBodyBytes": 10_000,
    }
    assert "10,000 bytes (CAPAHUB_MAX_BODY_BYTES)" in error["message"]


@pytest.mark.parametrize("lane", sorted(LANES))
def test_a_streamed_body_over_the_limit_is_413_as_soon_as_it_passes_it(
    make_client: Callable[..., TestClient], lane: str
) -> None:
    client = make_client(max_body_bytes=10_000)
    chunks = [b'{"query": "{ __typename }", "x": "'] + [b"a" * 1000] * 100 + [b'"}']
    headers = {"content-type": JSON, "host": "testserver", **LANES[lane]}
    status, sent, body, pulled = run(client, raw_request(client, chunks, headers))
    assert status == 413 and sent["connection"] == "close"
    assert pulled == 11  # 10,034 bytes: the rest of the 100 KB was never asked for
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_body_within_the_limit_is_answered(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=10_000)
    padded = {**TYPENAME, "variables": {"pad": "a" * 9_000}}
    assert client.post("/graphql", json=padded).json()["data"] == {"__typename": "Query"}
    refusal(client.post("/graphql", json={**TYPENAME, "variables": {"pad": "a" * 10_000}}), 413)


@pytest.mark.parametrize("lane", sorted(LANES))
@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "{ __typename \xff }"}',
        b'\xff\xfe{"query": "{ __typename }"}',
        '{"query": "{ __typename }"}'.encode("utf-16"),
        b'{"query": "{ __typename }", "variables": {"a": "\xc3"}}',
    ],
)
def test_a_body_that_is_not_utf8_is_400(
    make_client: Callable[..., TestClient], lane: str, body: bytes
) -> None:
    client = make_client()
    resp = client.post("/graphql", content=body, headers={"content-type": JSON, **LANES[lane]})
    assert "not UTF-8" in refusal(resp, 400)["message"]


@pytest.mark.parametrize("lane", sorted(LANES))
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"query": "{ __typename }", "variables": {"v": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        b'{"query": "{ __typename }", "variables": {"v": ' + b'{"a": ' * 70 + b"1" + b"}" * 70,
        b'{"query": "{ __typename }", "variables": ' + b"[" * 100_000,  # never closed
    ],
)
def test_a_body_nested_too_deeply_is_400(
    make_client: Callable[..., TestClient], lane: str, body: bytes
) -> None:
    client = make_client()
    started = time.perf_counter()
    resp = client.post("/graphql", content=body, headers={"content-type": JSON, **LANES[lane]})
    assert "nested deeper than 64 levels" in refusal(resp, 400)["message"]
    assert time.perf_counter() - started < 1


def test_nesting_within_the_bound_and_brackets_in_strings_are_read(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    query = "query($v: JSON) { __typename @include(if: true) }"
    nested: Any = "[[[{{" * 20_000
    for _ in range(60):
        nested = [nested]
    body = client.post("/graphql", json={"query": query, "variables": {"v": nested}}).json()
    assert "nested" not in json.dumps(body)
    assert body["errors"][0]["message"] == "Variable '$v' is never used."


def test_an_integer_of_thousands_of_digits_is_400(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    body = b'{"query": "{ __typename }", "variables": {"n": ' + b"7" * 5000 + b"}}"
    resp = client.post("/graphql", content=body, headers={"content-type": JSON})
    assert "4,300 digits" in refusal(resp, 400)["message"]
    resp = client.get(
        "/graphql", params={"query": "{ __typename }", "variables": '{"n": [[[' + "]" * 3}
    )
    assert resp.status_code == 400


def test_get_variables_nested_too_deeply_are_400(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    params = {"query": "{ __typename }", "variables": '{"v": ' + "[" * 3000 + "]" * 3000 + "}"}
    resp = client.get("/graphql", params=params, headers={"accept": JSON})
    assert "nested deeper" in refusal(resp, 400)["message"]


# Answers


@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE_JSON])
def test_an_answer_over_the_limit_is_replaced_by_a_coded_error_on_both_lanes(
    make_client: Callable[..., TestClient], accept: str
) -> None:
    client = make_client(max_response_bytes=2_000)
    hits = client.app.state.schema.prepared.hits  # type: ignore[attr-defined]
    for _ in range(2):  # the first sight takes the full path, the second the prepared lane
        resp = client.post("/graphql", json={"query": INTROSPECTION}, headers={"accept": accept})
        assert resp.status_code == 200  # it ran: `data` is there, null
        body = resp.json()
        assert body["data"] is None
        [error] = body["errors"]
        ext = error["extensions"]
        assert ext["code"] == "BAD_USER_INPUT" and ext["maxResponseBytes"] == 2_000
        assert ext["responseBytes"] > 2_000
        assert f"{ext['responseBytes']:,} bytes" in error["message"]
        assert "CAPAHUB_MAX_RESPONSE_BYTES" in error["message"]
        assert len(resp.content) < 2_000
    assert client.app.state.schema.prepared.hits == hits + 1  # type: ignore[attr-defined]
    small = client.post("/graphql", json=TYPENAME)
    assert small.json()["data"] == {"__typename": "Query"}


# Time


def test_a_body_that_arrives_too_slowly_is_stopped_at_the_budget(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(request_timeout=0.5)
    chunks = [b'{"query": "{ __typ', b'ename }"}']
    started = time.perf_counter()
    status, sent, body, pulled = run(
        client, raw_request(client, chunks, {"content-type": JSON, "host": "testserver"}, pause=5)
    )
    assert time.perf_counter() - started < 2
    assert (status, pulled) == (503, 0) and sent["connection"] == "close"
    [error] = json.loads(body)["errors"]
    assert error["extensions"] | {"catalogVersion": None} == {
        "catalogVersion": None,
        "code": "UNAVAILABLE",
        "timeoutSeconds": 0.5,
    }
    assert "0.5 s (CAPAHUB_REQUEST_TIMEOUT)" in error["message"]


class _SlowSource(BaseHTTPRequestHandler):
    """A REST source that takes 3 s to answer."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(3)
        body = b'{"items": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def slow_source() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowSource)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


LANDSCAPE = """
nodes:
  - {id: system:shop, name: Shop}
  - {id: entity:customer, name: Customer, attributes: [{name: email}]}
  - {id: entity:shop.customer, name: Shop customer, properties: {live: {path: /customers}},
     attributes: [{name: mail}]}
  - {id: source:shop-api, name: Shop API, properties: {type: REST, location: "BASE"}}
relations:
  - {from: system:shop, type: STORES, to: entity:shop.customer}
  - {from: source:shop-api, type: PART_OF, to: system:shop}
  - {from: entity:shop.customer, type: REPRESENTS, to: entity:customer,
     properties: {matchKey: email, fields: {email: mail}}}
"""
APPLY = "mutation($d: String!) { applyCatalog(document: $d) { added } }"


def test_a_query_past_the_budget_is_stopped_and_answered_unavailable(
    make_client: Callable[..., TestClient], slow_source: str
) -> None:
    client = make_client(request_timeout=0.5, source_timeout=20, harvest_allowed_hosts="127.0.0.1")
    applied = client.post(
        "/graphql",
        json={"query": APPLY, "variables": {"d": LANDSCAPE.replace("BASE", slow_source)}},
    )
    assert "errors" not in applied.json(), applied.json()
    started = time.perf_counter()
    resp = client.post(
        "/graphql", json={"query": '{ records(entity: "entity:customer") { totalCount } }'}
    )
    assert time.perf_counter() - started < 2  # the source takes 3 s
    assert "CAPAHUB_REQUEST_TIMEOUT" in refusal(resp, 503, "UNAVAILABLE")["message"]
    assert client.get("/healthz").status_code == 200


def test_a_mutation_is_not_cut_by_the_budget(make_client: Callable[..., TestClient]) -> None:
    client = make_client(request_timeout=0.05)
    document = "nodes:\n" + "".join(f"  - {{id: system:s{i}, name: S{i}}}\n" for i in range(2000))
    started = time.perf_counter()
    resp = client.post("/graphql", json={"query": APPLY, "variables": {"d": document}})
    assert time.perf_counter() - started > 0.05  # longer than the budget, and not stopped
    assert len(resp.json()["data"]["applyCatalog"]["added"]) == 2000


def test_mutations_are_recognised_without_parsing() -> None:
    for query, name, expected in [
        ("mutation { retire(id: 1) { id } }", None, True),
        ("mutation M($x: ID!) @a { retire(id: $x) { id } }", "M", True),
        ("{ mutation: __typename }", None, False),
        ("query mutation { a }", None, False),
        ("mutation A { a } query B { b }", "B", False),
        ("mutation A { a } query B { b }", None, False),
        ('{ a(s: "mutation") } # mutation', None, False),
        ('mutation X { f(a: """\\\\""" ) } mutation M { y } """) } query M { b }', "M", False),
    ]:
        assert _is_mutation(query, name) is expected, query


#: Argument values that trip a lexer that does not follow graphql-core's: strings and block
#: strings holding braces, quotes, escapes and keywords, comments.
TRICKY = st.sampled_from(
    [
        "1",
        '"mutation { x }"',
        '"}"',
        '"\\" } query Q {"',
        '"""a } mutation M {"""',
        '"""\\""" } mutation M { a } """',
        '"""x\\\\""" ',
        '""',
        "[1, {a: 2}]",
        "$x",
    ]
)
FIELD = st.builds(
    lambda name, arg, comment, sub: f"{name}(a: {arg}){comment}{sub}",
    st.sampled_from(["a", "mutation", "query", "b"]),
    TRICKY,
    st.sampled_from(["", " # } mutation M {\n"]),
    st.sampled_from(["", " { c }", " { ...F }"]),
)
DEFINITION = st.builds(
    lambda kind, name, variables, fields: (
        f"fragment {name or 'F'} on Query {{ {' '.join(fields)} }}"
        if kind == "fragment"
        else f"{{ {' '.join(fields)} }}"
        if kind == "{"
        else f"{kind} {name or ''}{variables} @d {{ {' '.join(fields)} }}"
    ),
    st.sampled_from(["query", "mutation", "subscription", "fragment", "{"]),
    st.sampled_from([None, "M", "Q", "mutation", "query"]),
    st.sampled_from(["", '($x: String = "} mutation M {")', "($x: Int)"]),
    st.lists(FIELD, min_size=1, max_size=3),
)


@settings(max_examples=1500, deadline=None)
@given(
    definitions=st.lists(DEFINITION, min_size=1, max_size=3),
    name=st.sampled_from([None, "M", "Q"]),
)
def test_what_is_read_as_a_mutation_is_the_mutation_graphql_runs(
    definitions: list[str], name: str | None
) -> None:
    query = "\n".join(definitions)
    try:
        document = graphql.parse(query)
    except graphql.GraphQLSyntaxError:  # a tricky string made it invalid: nothing runs
        return
    operation = graphql.utilities.get_operation_ast(document, name)
    runs_a_mutation = (
        operation is not None and operation.operation == graphql.OperationType.MUTATION
    )
    if _is_mutation(query, name):
        assert runs_a_mutation
    elif runs_a_mutation and '"' not in query and len(definitions) == 1:
        pytest.fail(f"a plain mutation was not recognised: {query}")


# Hosts and CORS


def test_a_host_the_hub_does_not_answer_to_is_refused_everywhere(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    for path in ("/graphql", "/healthz", "/"):
        resp = client.get(path, headers={"host": "rebound.example:8000"})
        error = refusal(resp, 400)
        assert "'rebound.example:8000'" in error["message"]
        assert "CAPAHUB_ALLOWED_HOSTS" in error["message"]
    assert client.post("/graphql", json=TYPENAME).status_code == 200  # Host: testserver


def test_the_default_hosts_are_loopback_names_and_the_listen_address(
    make_client: Callable[..., TestClient],
) -> None:
    base = {"database_url": "sqlite://", "_env_file": None}
    default = Settings(**base, allowed_hosts="localhost,127.0.0.1,::1")  # type: ignore[arg-type]
    assert allowed_hosts(default) == ["localhost", "127.0.0.1", "[::1]"]
    exposed = default.model_copy(update={"host": "10.0.0.5"})
    assert allowed_hosts(exposed)[-1] == "10.0.0.5"
    assert allowed_hosts(default.model_copy(update={"host": "0.0.0.0"}))[-1] == "[::1]"
    assert allowed_hosts(default.model_copy(update={"allowed_hosts": "a.example, *"})) == ["*"]
    client = make_client(allowed_hosts="localhost,127.0.0.1,::1")
    for host, status in [
        ("localhost:8000", 200),
        ("127.0.0.1", 200),
        ("[::1]:8000", 200),
        ("testserver", 400),
        ("localhost.rebound.example", 400),
    ]:
        assert client.post("/graphql", json=TYPENAME, headers={"host": host}).status_code == status


def test_a_host_that_is_the_address_the_connection_came_to_is_answered(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(allowed_hosts="hub.example")
    body = [json.dumps(TYPENAME).encode()]
    for host, status in [("10.1.2.3:8000", 200), ("10.1.2.3", 200), ("10.1.2.4", 400)]:
        headers = {"content-type": JSON, "host": host}
        got = run(client, raw_request(client, body, headers, server=("10.1.2.3", 8000)))
        assert got[0] == status, (host, got)
    ipv6 = {"content-type": JSON, "host": "[fd00::1]:8000"}
    assert run(client, raw_request(client, body, ipv6, server=("fd00::1", 8000)))[0] == 200


def test_any_host_with_a_star(make_client: Callable[..., TestClient]) -> None:
    client = make_client(allowed_hosts="*")
    resp = client.post("/graphql", json=TYPENAME, headers={"host": "anything.example"})
    assert resp.status_code == 200


PREFLIGHT = {
    "origin": "https://app.example",
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type",
}


def test_no_cors_permission_unless_origins_are_configured(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    preflight = client.options("/graphql", headers=PREFLIGHT)
    assert not any(k.startswith("access-control-") for k in preflight.headers)
    resp = client.post("/graphql", json=TYPENAME, headers={"origin": "https://app.example"})
    assert not any(k.startswith("access-control-") for k in resp.headers)


def test_configured_origins_may_call_with_a_token(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_origins="https://app.example, https://other.example")
    preflight = client.options("/graphql", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert set(preflight.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    resp = client.post("/graphql", json=TYPENAME, headers={"origin": "https://app.example"})
    assert resp.headers["access-control-allow-origin"] == "https://app.example"
    stranger = client.options("/graphql", headers={**PREFLIGHT, "origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers

"""Prepared queries (resolvers/prepared.py) answer over HTTP exactly as the full path does.

Two real apps on the same SQLite demo catalog: one as shipped, one with prepared queries
switched off. Every request goes twice to the first (the first sight takes the full path and
prepares the query, the second runs it prepared) and once to the second; status, headers and
body must be the same byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from graphql import parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from catalog.app import create_app
from catalog.http import GRAPHQL_RESPONSE_JSON, JSON
from catalog.settings import Settings
from resolvers.prepared import MAX_PREPARED, SKIPPABLE, PreparedQueries
from resolvers.schema import RequireOperationName


class Pair:
    """The shipped app and one without prepared queries, on one catalog."""

    def __init__(self, fast: TestClient, full: TestClient) -> None:
        self.fast, self.full = fast, full
        self.prepared: PreparedQueries = fast.app.state.schema.prepared  # type: ignore[attr-defined]

    def compare(
        self, payload: Any, headers: dict[str, str] | None = None, *, prepares: bool | None
    ) -> Any:
        """Send ``payload`` (JSON-encoded) to both apps; return the decoded body once equal."""
        content = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        hdrs = {"content-type": JSON, **(headers or {})}
        first = self.fast.post("/graphql", content=content, headers=hdrs)
        hits = self.prepared.hits
        second = self.fast.post("/graphql", content=content, headers=hdrs)
        if prepares is not None:
            assert self.prepared.hits == hits + (1 if prepares else 0), payload
        full = self.full.post("/graphql", content=content, headers=hdrs)
        for resp in (first, second):
            assert resp.status_code == full.status_code, (payload, resp.text, full.text)
            assert resp.headers.items() == full.headers.items(), payload
            assert resp.content == full.content, payload
        return orjson.loads(full.content) if full.content else None


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    db = tmp_path_factory.mktemp("prepared") / "c.db"
    # No cost budget: the hypothesis test sends hundreds of requests from one caller.
    settings = Settings(database_url=f"sqlite:///{db}", cost_per_minute=0, _env_file=None)
    with (
        TestClient(create_app(settings, demo=True)) as fast,
        TestClient(create_app(settings)) as full,
    ):
        full.app.state.schema.prepared.enabled = False  # type: ignore[attr-defined]
        yield Pair(fast, full)


# prepares: True = the second request runs prepared; False = never; None = either is fine
CASES: list[tuple[str, Any, bool | None]] = [
    ("node by id", {"query": '{ node(id: "system:crm") { id name } }'}, True),
    ("missing node", {"query": '{ node(id: "system:nope") { id } }'}, True),
    ("bad id: a field error", {"query": '{ node(id: "no-kind") { id } }'}, True),
    (
        "variables",
        {
            "query": "query Q($id: ID!) { node(id: $id) { id ... on System { provides { id } } } }",
            "variables": {"id": "system:crm"},
        },
        True,
    ),
    (
        "a variable of the wrong type: an error before execution",
        {"query": "query Q($id: ID!) { node(id: $id) { id } }", "variables": {"id": [1]}},
        True,
    ),
    (
        "a missing variable",
        {"query": "query Q($id: ID!) { node(id: $id) { id } }", "variables": {}},
        True,
    ),
    (
        "connections, fragments, aliases",
        {
            "query": "{ a: capabilities(first: 3) { totalCount edges { node { ...C } } } } "
            "fragment C on Capability { id name providers { id } parent { id } }"
        },
        True,
    ),
    (
        "operationName picks one of several",
        {
            "query": "query A { __typename } query B { systems(first: 1) { totalCount } }",
            "operationName": "B",
        },
        True,
    ),
    (
        "several operations, no name",
        {"query": "query A { __typename } query B { __typename }"},
        False,
    ),
    ("an empty operationName", {"query": "{ __typename }", "operationName": ""}, None),
    (
        "an operationName naming no operation",
        {"query": "query A { __typename }", "operationName": "B"},
        False,
    ),
    ("variables: null", {"query": "{ systems(first: 2) { totalCount } }", "variables": None}, True),
    ("does not parse", {"query": "{ node(id: "}, False),
    ("does not validate", {"query": "{ nope }"}, False),
    ("a mutation", {"query": 'mutation { retire(id: "system:nope") { id } }'}, False),
    ("extensions are left to the full path", {"query": "{ __typename }", "extensions": {}}, False),
    ("variables of the wrong shape", {"query": "{ __typename }", "variables": [1]}, False),
    ("not an object", [{"query": "{ __typename }"}], False),
]


@pytest.mark.parametrize(("payload", "prepares"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("accept", [None, JSON, GRAPHQL_RESPONSE_JSON])
def test_prepared_answers_equal_the_full_path(
    pair: Pair, payload: Any, prepares: bool | None, accept: str | None
) -> None:
    headers = {"accept": accept} if accept else None
    body = pair.compare(payload, headers, prepares=prepares)
    assert body is not None


def test_a_prepared_lookup_answers_what_the_catalog_holds(pair: Pair) -> None:
    body = pair.compare({"query": '{ node(id: "system:crm") { id name } }'}, prepares=True)
    assert body["data"]["node"]["id"] == "system:crm"
    assert body["data"]["node"]["name"]


def test_bodies_and_headers_the_lane_does_not_take(pair: Pair) -> None:
    query = orjson.dumps({"query": "{ __typename }"})
    pair.compare(query, prepares=True)  # prepared now
    for raw, headers in [
        (b"{not json", None),
        (b"", None),
        (query, {"content-type": "text/plain"}),
        (query, {"content-type": "application/json; charset=latin-1"}),
        (query, {"accept": "text/html"}),
        (query, {"accept": "multipart/mixed"}),
    ]:
        hits = pair.prepared.hits
        a = pair.fast.post(
            "/graphql", content=raw, headers={"content-type": JSON, **(headers or {})}
        )
        b = pair.full.post(
            "/graphql", content=raw, headers={"content-type": JSON, **(headers or {})}
        )
        assert pair.prepared.hits == hits, (raw, headers)
        assert (a.status_code, a.content) == (b.status_code, b.content), (raw, headers)


def test_a_schema_with_another_extension_never_prepares() -> None:
    from strawberry.extensions import SchemaExtension

    from resolvers import build_schema

    class Tracing(SchemaExtension):
        """Stands for any extension that must see every request."""

    schema = build_schema()
    assert schema.prepared.enabled
    schema.extensions = [*schema.extensions, Tracing]
    assert not PreparedQueries(schema, (*SKIPPABLE, RequireOperationName)).enabled


def test_the_table_is_bounded(pair: Pair) -> None:
    prepared = pair.prepared
    for i in range(MAX_PREPARED + 10):
        q = f"{{ __typename }} # {i}"
        prepared.remember(q, None, parse(q))
    assert len(prepared._documents) == MAX_PREPARED
    assert prepared.known(f"{{ __typename }} # {MAX_PREPARED + 9}", None)
    assert not prepared.known("{ __typename } # 0", None)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _orjson_reads(content: bytes) -> bool:
    try:
        orjson.loads(content)
    except orjson.JSONDecodeError:
        return False
    return True


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    id_value=JSON_VALUES | st.sampled_from(["system:crm", "capability:create-order", "x:y"]),
    first=JSON_VALUES | st.integers(-2, 5) | st.integers(2**62, 2**80) | st.just(float("inf")),
)
def test_any_variables_answer_the_same(pair: Pair, id_value: Any, first: Any) -> None:
    payload = {
        "query": "query Q($id: ID!, $first: Int) { node(id: $id) { id } "
        "systems(first: $first) { totalCount edges { node { id } } } }",
        "variables": {"id": id_value, "first": first},
    }
    # NaN and infinities are not JSON: json.dumps writes them as the full path's json.loads
    # reads them; orjson refuses them, and the lane leaves such a body to the full path.
    # So do integers of 19 digits or more, which orjson would read as floats.
    content = json.dumps(payload).encode()
    lane = _orjson_reads(content) and not re.search(rb"\d{19}", content)
    body = pair.compare(content, prepares=lane)
    assert "data" in body or "errors" in body

"""Property-based tests: no input makes an INTERNAL error or a partial write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from catalog.app import create_app
from catalog.settings import Settings

PREFIXES = [
    "domain",
    "team",
    "system",
    "capability",
    "entity",
    "journey",
    "step",
    "touchpoint",
    "source",
    "foo",
    "",
    "System",
]
RELATION_TYPES = [
    "PART_OF",
    "PROVIDES",
    "DEPENDS_ON",
    "READS",
    "WRITES",
    "MASTERS",
    "STORES",
    "OWNS",
    "STEWARDS",
    "REFERENCES",
    "FLOWS_TO",
    "REPRESENTS",
    "USES",
    "OCCURS_AT",
    "SERVED_BY",
    "HARVESTED_FROM",
    "LIKES",
]
KEYS = st.one_of(st.sampled_from(["crm", "erp", "a.b", "x-1", "order_2"]), st.text(max_size=12))
IDS = st.builds(lambda p, k: f"{p}:{k}", st.sampled_from(PREFIXES), KEYS) | st.text(max_size=20)
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)  # beyond 64 bits: refused with a message, never INTERNAL
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
NODE = st.fixed_dictionaries(
    {"id": IDS},
    optional={
        "name": st.text(max_size=20),
        "description": st.text(max_size=20) | st.none(),
        "tags": st.lists(st.text(max_size=8), max_size=3),
        "lifecycle": st.sampled_from(["ACTIVE", "RETIRED", "PLANNED", "DEPRECATED", "dead"]),
        "owner": IDS,
        "properties": JSONISH,
        "attributes": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=8)}, optional={"classification": st.text(max_size=4)}
            ),
            max_size=2,
        ),
        "expectedVersion": st.integers(-2, 3),
        "extra": st.integers(),
    },
)
RELATION = st.fixed_dictionaries(
    {"from": IDS, "type": st.sampled_from(RELATION_TYPES), "to": IDS},
    optional={"properties": JSONISH},
)
DOCUMENT = st.fixed_dictionaries(
    {},
    optional={
        "nodes": st.lists(NODE, max_size=5),
        "relations": st.lists(RELATION, max_size=5),
        "prune": st.booleans(),
        "unknown": st.integers(),
    },
)
SEED = """nodes:
  - {id: team:t, name: T}
  - {id: system:crm, name: CRM, owner: team:t}
  - {id: capability:a.b, name: AB}
  - {id: entity:crm, name: Customer}
relations:
  - {from: system:crm, type: PROVIDES, to: capability:a.b}
"""
APPLY = "mutation($d: String!) { applyCatalog(document: $d) { added updated unchanged } }"
UPSERT = "mutation($i: NodeInput!) { upsertNode(input: $i) { id version } }"
RELATE = "mutation($i: RelationInput!) { relate(input: $i) { type } }"
EXPORT = "{ nodes(first: 500) { totalCount edges { node { id name version tags lifecycle properties relations { type from { id } to { id } } } } } }"


def _post(client: TestClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = client.post(
        "/graphql", json={"query": query, "variables": variables}
    ).json()
    return body


def _check(client: TestClient, query: str, variables: dict[str, Any]) -> None:
    before = _post(client, EXPORT, {})
    body = _post(client, query, variables)
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    assert "INTERNAL" not in codes, body
    assert all(codes), body
    if codes:
        assert _post(client, EXPORT, {}) == before, "a refused write changed the catalog"


def _client(tmp_path: Path) -> TestClient:
    url = f"sqlite:///{tmp_path / 'prop.db'}"
    # Without the cost budget per caller: this one client sends hundreds of operations in
    # seconds, and a RATE_LIMITED export is not the catalog (tests/http/test_budget.py).
    settings = Settings(database_url=url, cost_per_minute=0, _env_file=None)  # type: ignore[call-arg]
    client = TestClient(create_app(settings))
    client.__enter__()
    _post(client, APPLY, {"d": SEED})
    return client


FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FAST
@given(doc=DOCUMENT, as_json=st.booleans())
def test_random_documents_never_fail_internally_or_partially(
    tmp_path_factory: Any, doc: dict[str, Any], as_json: bool
) -> None:
    client = _client(tmp_path_factory.mktemp("doc"))
    try:
        text = json.dumps(doc) if as_json else yaml.safe_dump(doc)
        _check(client, APPLY, {"d": text})
    finally:
        client.__exit__(None, None, None)


@FAST
@given(text=st.text(max_size=200))
def test_random_text_documents_never_fail_internally(tmp_path_factory: Any, text: str) -> None:
    client = _client(tmp_path_factory.mktemp("txt"))
    try:
        _check(client, APPLY, {"d": text})
    finally:
        client.__exit__(None, None, None)


@FAST
@given(node=NODE, rel=RELATION)
def test_random_mutation_inputs_never_fail_internally(
    tmp_path_factory: Any, node: dict[str, Any], rel: dict[str, Any]
) -> None:
    client = _client(tmp_path_factory.mktemp("mut"))
    try:
        node.pop("extra", None)
        node.setdefault("name", "N")
        _check(client, UPSERT, {"i": node})
        _check(client, RELATE, {"i": rel})
    finally:
        client.__exit__(None, None, None)


def test_non_finite_numbers_in_documents_are_refused(tmp_path: Path) -> None:
    client = _client(tmp_path)
    try:
        doc = (
            '{"nodes": [{"id": "system:x", "name": "X", "properties": {"v": NaN, "w": Infinity}}]}'
        )
        _check(client, APPLY, {"d": doc})
        body = _post(client, APPLY, {"d": doc})
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "properties" in body["errors"][0]["message"]
    finally:
        client.__exit__(None, None, None)


def test_integers_beyond_64_bits_are_refused(tmp_path: Path) -> None:
    client = _client(tmp_path)
    try:
        doc = '{"nodes": [{"id": "system:x", "name": "X", "properties": {"n": 99999999999999999999}}]}'
        _check(client, APPLY, {"d": doc})
        body = _post(client, APPLY, {"d": doc})
        error = body["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "properties.n" in error["message"] and "64-bit" in error["message"]
        node = {"id": "system:y", "name": "Y", "properties": {"list": [1, -(2**64)]}}
        body = _post(client, UPSERT, {"i": node})
        error = body["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "properties.list[1]" in error["message"]
        for node_id in ("system:x", "system:y"):
            found = _post(client, "query($id: ID!) { node(id: $id) { id } }", {"id": node_id})
            assert found["data"] == {"node": None}
    finally:
        client.__exit__(None, None, None)

"""capahub's Federation 2 subgraph surface in-process: ``_service { sdl }`` and ``_entities``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from catalog.app import create_app
from catalog.settings import Settings
from resolvers.schema import print_sdl
from tests.conftest import GraphQLClient, StatementCounter

NODE_TYPES = (
    "Domain",
    "Team",
    "System",
    "Capability",
    "DataEntity",
    "Journey",
    "JourneyStep",
    "Touchpoint",
    "Source",
)
ENTITIES = """query($representations: [_Any!]!) {
  _entities(representations: $representations) {
    __typename
    ... on CatalogNode { id name kind }
    ... on Capability { providers { id } }
    ... on System { provides { id } }
    ... on DataEntity { masteredBy { id } }
  }
}"""


@pytest.fixture
def sdl(sqlite_url: str) -> str:
    """What ``_service { sdl }`` answers over HTTP (the schema, so one database is enough)."""
    settings = Settings(database_url=sqlite_url, _env_file=None)
    with TestClient(create_app(settings)) as client:
        sdl: str = GraphQLClient(client).data("{ _service { sdl } }")["_service"]["sdl"]
    return sdl


def test_service_sdl_links_federation_2_and_imports_key(sdl: str) -> None:
    link = re.search(r'@link\(url: "https://specs\.apollo\.dev/federation/v2\.(\d+)"[^)]*\)', sdl)
    assert link, "the SDL lacks the Federation 2 @link on its schema definition"
    assert '"@key"' in link.group(0)


def test_service_sdl_declares_an_id_key_on_every_node_type(sdl: str) -> None:
    for name in NODE_TYPES:
        header = re.search(rf"^type {name} implements CatalogNode([^{{]*)\{{", sdl, re.MULTILINE)
        assert header, f"type {name} is missing from the SDL"
        assert '@key(fields: "id")' in header.group(1), f'{name} has no @key(fields: "id")'
    entity_union = re.search(r"^union _Entity = (.*)$", sdl, re.MULTILINE)
    assert entity_union
    assert sorted(entity_union.group(1).split(" | ")) == sorted(NODE_TYPES)


def test_service_sdl_is_the_printed_schema(sdl: str) -> None:
    # What a gateway or `rover subgraph introspect` sees is what `capahub schema` prints.
    assert sdl.strip() == print_sdl().strip()


def test_entities_resolves_representations_of_several_types(demo_gql: GraphQLClient) -> None:
    representations = [
        {"__typename": "System", "id": "system:crm"},
        {
            "__typename": "Capability",
            "id": "capability:order-management.order-capture.change-order",
        },
        {"__typename": "DataEntity", "id": "entity:customer"},
    ]
    system, capability, entity = demo_gql.data(ENTITIES, {"representations": representations})[
        "_entities"
    ]
    assert system["__typename"] == "System"
    assert (system["id"], system["name"], system["kind"]) == ("system:crm", "CRM", "SYSTEM")
    assert system["provides"]
    assert capability["__typename"] == "Capability"
    assert capability["name"] == "Change Order"
    assert capability["providers"] == [{"id": "system:webshop"}]
    assert entity["__typename"] == "DataEntity"
    assert (entity["id"], entity["kind"]) == ("entity:customer", "DATA_ENTITY")
    assert {"id": "system:crm"} in entity["masteredBy"]


def test_entities_resolves_one_node_of_every_kind(demo_gql: GraphQLClient) -> None:
    edges = demo_gql.data("{ nodes(first: 500) { edges { node { __typename id } } } }")["nodes"][
        "edges"
    ]
    first_of_type: dict[str, str] = {}
    for edge in edges:
        first_of_type.setdefault(edge["node"]["__typename"], edge["node"]["id"])
    assert set(first_of_type) >= set(NODE_TYPES) - {
        "Source"
    }  # Source: only if the demo registers sources
    representations = [{"__typename": t, "id": i} for t, i in sorted(first_of_type.items())]
    found = demo_gql.data(ENTITIES, {"representations": representations})["_entities"]
    assert [(e["__typename"], e["id"]) for e in found] == [
        (r["__typename"], r["id"]) for r in representations
    ]


def test_entities_answers_null_for_an_unknown_id(demo_gql: GraphQLClient) -> None:
    representations = [
        {"__typename": "System", "id": "system:no-such-system"},
        {"__typename": "Capability", "id": "capability:no-such-capability"},
        {"__typename": "System", "id": "system:crm"},
        # A known id under the wrong type is no System: null, not a DataEntity.
        {"__typename": "System", "id": "entity:customer"},
    ]
    body = demo_gql.post(ENTITIES, {"representations": representations})
    assert not body.get("errors"), body["errors"]
    unknown, unknown_capability, crm, wrong_type = body["data"]["_entities"]
    assert unknown is None
    assert unknown_capability is None
    assert crm["id"] == "system:crm"
    assert wrong_type is None


def _entity_statements(
    settings: Settings, count_statements: Callable[[Any], StatementCounter], n: int
) -> int:
    with TestClient(create_app(settings, demo=True)) as client:
        ids = GraphQLClient(client).data(
            "query($n: Int) { capabilities(first: $n) { edges { node { id } } } }", {"n": n}
        )["capabilities"]["edges"]
        representations = [{"__typename": "Capability", "id": e["node"]["id"]} for e in ids]
        engine = client.app.state.services.store.engine  # type: ignore[attr-defined]
        counter = count_statements(engine)
        found = GraphQLClient(client).data(ENTITIES, {"representations": representations})
        assert [e["id"] for e in found["_entities"]] == [r["id"] for r in representations]
        return counter.count


def test_entities_batches_lookups_whatever_the_number_of_representations(
    settings: Settings, count_statements: Callable[[Any], StatementCounter]
) -> None:
    # A gateway sends every representation of a query plan step in one `_entities` request.
    counts = {n: _entity_statements(settings, count_statements, n) for n in (1, 10, 100)}
    # One node batch for the representations, one relation batch for `providers`, one node
    # batch for the providers (none when the only capability has no provider).
    assert counts[10] == counts[100] <= 3, counts
    assert counts[1] <= counts[100], counts

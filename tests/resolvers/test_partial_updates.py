"""Partial updates: fields left out keep their stored value, in catalog files and upsertNode."""

from __future__ import annotations

import pytest

from catalog.services import Services
from catalog.specs import parse_document
from metadata.errors import InvalidInputError
from metadata.model import Lifecycle
from tests.conftest import GraphQLClient

BASE = """
nodes:
  - {id: team:sales-it, name: Sales IT}
  - {id: system:crm, name: CRM, owner: team:sales-it, tags: [sales, core], description: The CRM}
"""
UPSERT = "mutation($i: NodeInput!) { upsertNode(input: $i) { id name lifecycle version tags } }"


async def test_a_file_may_update_a_node_by_id_and_one_field(services: Services) -> None:
    await services.registry.apply_document(parse_document(BASE))
    report = await services.registry.apply_document(
        parse_document("nodes: [{id: system:crm, lifecycle: DEPRECATED}]")
    )
    assert report.updated == ["system:crm"]
    rec = (await services.discovery.get_nodes(["system:crm"]))["system:crm"]
    assert rec.lifecycle is Lifecycle.DEPRECATED
    assert (rec.name, rec.owner, rec.tags, rec.description) == (
        "CRM",
        "team:sales-it",
        ("sales", "core"),
        "The CRM",
    )
    assert rec.version == 2


async def test_a_new_node_without_a_name_is_refused_and_says_so(services: Services) -> None:
    with pytest.raises(InvalidInputError) as exc:
        await services.registry.apply_document(
            parse_document("nodes: [{id: system:new, lifecycle: PLANNED}]")
        )
    assert "nodes[0].name" in exc.value.message
    assert "new node" in exc.value.message
    assert await services.discovery.get_nodes(["system:new"]) == {}


def test_upsert_node_updates_one_field(gql: GraphQLClient) -> None:
    gql.data(UPSERT, {"i": {"id": "system:crm", "name": "CRM", "tags": ["a"]}})
    node = gql.data(UPSERT, {"i": {"id": "system:crm", "lifecycle": "DEPRECATED"}})["upsertNode"]
    assert node == {
        "id": "system:crm",
        "name": "CRM",
        "lifecycle": "DEPRECATED",
        "version": 2,
        "tags": ["a"],
    }


def test_upsert_node_without_a_name_for_a_new_node_is_a_coded_refusal(gql: GraphQLClient) -> None:
    err = gql.error(UPSERT, {"i": {"id": "system:nobody", "lifecycle": "PLANNED"}})
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert "input.name" in err["message"] and "new node" in err["message"]
    assert gql.data('{ node(id: "system:nobody") { id } }') == {"node": None}


def test_a_null_name_is_refused_even_for_an_existing_node(gql: GraphQLClient) -> None:
    gql.data(UPSERT, {"i": {"id": "system:crm", "name": "CRM"}})
    err = gql.error(UPSERT, {"i": {"id": "system:crm", "name": None}})
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert "name" in err["message"]

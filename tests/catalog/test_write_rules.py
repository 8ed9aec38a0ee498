"""Rules of the write path: existing capabilities, self-relations (issue 16)."""

from __future__ import annotations

import pytest

from catalog.services import Services
from catalog.specs import CapabilitySpec
from metadata.errors import ConflictError
from tests.conftest import GraphQLClient


async def test_registering_an_existing_capability_says_it_exists_and_how_to_update(
    services: Services,
) -> None:
    spec = CapabilitySpec.model_validate({"key": "order.change", "name": "Change order"})
    await services.registry.register_capability(spec)
    with pytest.raises(ConflictError) as exc:
        await services.registry.register_capability(spec)
    message = exc.value.message
    assert exc.value.field == "input.key"
    assert "capability:order.change already exists" in message
    assert "upsertNode" in message and "applyCatalog" in message
    assert "expectedVersion: 1" in message  # how to update it, not a version the caller sent
    assert not message.startswith("input.expectedVersion")


async def test_a_writer_waiting_for_the_lock_leaves_the_garbage_collector_on(
    services: Services,
) -> None:
    import asyncio
    import gc

    from catalog.specs import parse_document

    assert gc.isenabled()
    doc = parse_document("nodes: [{id: system:a, name: A}]")
    async with services.store.transaction():  # holds the write lock
        waiting = asyncio.create_task(services.registry.apply_document(doc))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        # Another writer waits for the lock: the whole server must keep collecting.
        assert gc.isenabled()
    await waiting
    assert gc.isenabled()


SELF = [
    ("system:crm", "DEPENDS_ON"),
    ("capability:a", "DEPENDS_ON"),
    ("capability:a", "PART_OF"),
    ("entity:customer", "FLOWS_TO"),
    ("entity:customer", "REPRESENTS"),
    ("team:t", "OWNS"),
]
SEEDED = (
    "nodes: [{id: team:t, name: T}, {id: system:crm, name: CRM}, {id: capability:a, name: A},"
    " {id: entity:customer, name: Customer}]\n"
)


@pytest.mark.parametrize(("node", "rtype"), SELF)
async def test_self_relations_that_make_no_sense_are_refused_by_every_writer(
    services: Services, node: str, rtype: str
) -> None:
    from catalog.specs import RelationSpec, parse_document
    from metadata.errors import InvalidInputError

    await services.registry.apply_document(parse_document(SEEDED))
    spec = RelationSpec.model_validate({"from": node, "type": rtype, "to": node})
    with pytest.raises(InvalidInputError) as exc:
        await services.registry.relate(spec)
    assert exc.value.details.get("rule") == "no-self-relation"
    assert f"{rtype} cannot go from {node} to itself" in exc.value.message
    doc = parse_document(f"relations: [{{from: '{node}', type: {rtype}, to: '{node}'}}]")
    with pytest.raises(InvalidInputError, match="relations\\[0\\].*itself"):
        await services.registry.apply_document(doc)
    async with services.store.read() as r:
        assert await r.relations_from([node]) == []


async def test_an_entity_may_reference_itself(services: Services) -> None:
    from catalog.specs import RelationSpec, parse_document

    await services.registry.apply_document(parse_document(SEEDED))
    spec = RelationSpec.model_validate(
        {"from": "entity:customer", "type": "REFERENCES", "to": "entity:customer"}
    )
    rel = await services.registry.relate(spec)  # e.g. a customer's referrer is a customer
    assert rel.from_id == rel.to_id == "entity:customer"


def test_the_graphql_error_names_the_rule(gql: GraphQLClient) -> None:
    gql.data('mutation { upsertNode(input: {id: "system:crm", name: "CRM"}) { id } }')
    err = gql.error(
        'mutation { relate(input: {from: "system:crm", type: DEPENDS_ON, to: "system:crm"})'
        " { type } }"
    )
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert err["extensions"]["rule"] == "no-self-relation"
    assert "input" in err["message"] and "itself" in err["message"]

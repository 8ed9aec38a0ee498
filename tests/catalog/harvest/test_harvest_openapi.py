"""OpenAPI 3.1 and Swagger 2.0 harvesting on realistic specs, and what bad specs get."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from catalog.harvest import HarvestService, SourceSpec, SourceType
from catalog.services import Services
from metadata.errors import BadSourceDataError
from metadata.model import Lifecycle, NodeRecord, RelationRecord, RelationType
from tests.catalog.harvest.conftest import FIXTURES, fixture_text, history_count

R = RelationType


def spec(
    location: str | Path, *, key: str = "shop-api", system: str = "system:webshop"
) -> SourceSpec:
    return SourceSpec.build(
        {
            "key": key,
            "name": key,
            "type": SourceType.OPENAPI,
            "location": str(location),
            "system": system,
        }
    )


async def load(services: Services, *ids: str) -> dict[str, NodeRecord]:
    async with services.store.read() as r:
        return await r.get_nodes(list(ids))


async def rels_from(services: Services, node_id: str) -> list[RelationRecord]:
    async with services.store.read() as r:
        return await r.relations_from([node_id])


def targets(rels: list[RelationRecord], rtype: RelationType) -> set[str]:
    return {r.to_id for r in rels if r.type is rtype}


async def test_harvest_openapi_31_maps_operations_tags_and_schemas(hub: Services) -> None:
    report = await hub.harvest.harvest_location(spec(FIXTURES / "shop-openapi.yaml"))
    assert report.retired == [] and report.updated == []
    caps = [i for i in report.added if i.startswith("capability:")]
    entities = [i for i in report.added if i.startswith("entity:")]
    assert len(caps) == 17 + 4  # 17 operations, 4 tag groups
    assert len(entities) == 18  # every component schema
    nodes = await load(
        hub,
        "capability:shop-api.get-order",
        "capability:shop-api.tags.orders",
        "capability:shop-api.refund-payment",
        "capability:shop-api.get-health",
        "entity:shop-api.customer",
        "entity:shop-api.customer-registration",
    )
    op = nodes["capability:shop-api.get-order"]
    assert op.name == "Get an order"
    assert op.tags == ("orders",)
    assert op.properties is not None
    assert op.properties["method"] == "GET" and op.properties["path"] == "/orders/{orderId}"
    assert op.properties["operationId"] == "getOrder"
    assert op.properties["protocol"] == "REST"
    assert op.properties["endpoint"] == "https://api.shop.example.com/v2/orders/{orderId}"
    group = nodes["capability:shop-api.tags.orders"]
    assert group.description == "Place, change, cancel and track orders."
    assert nodes["capability:shop-api.refund-payment"].lifecycle is Lifecycle.DEPRECATED
    # No operationId: the id derives from method and path, and a warning says so.
    assert nodes["capability:shop-api.get-health"].properties["operation"] == "GET /health"  # type: ignore[index]
    assert any("no operationId" in w for w in report.warnings)
    assert any("no tags" in w for w in report.warnings)
    assert any("webhook" in w for w in report.warnings)

    customer = nodes["entity:shop-api.customer"]
    attrs = {a["name"]: a for a in customer.attributes}
    assert attrs["email"] == {"name": "email", "type": "string(email)", "classification": "PII"}
    assert attrs["birthDate"]["classification"] == "PII"
    assert attrs["phone"]["classification"] == "PII"
    assert "classification" not in attrs["loyaltyTier"]
    assert attrs["recentOrders"]["type"] == "array<Order>"
    # allOf members are merged into one entity.
    registration = {a["name"] for a in nodes["entity:shop-api.customer-registration"].attributes}
    assert {"email", "password", "acceptedTerms"} <= registration


async def test_operations_read_and_write_what_payloads_reference(hub: Services) -> None:
    await hub.harvest.harvest_location(spec(FIXTURES / "shop-openapi.yaml"))
    get_order = await rels_from(hub, "capability:shop-api.get-order")
    assert targets(get_order, R.PART_OF) == {"capability:shop-api.tags.orders"}
    assert targets(get_order, R.WRITES) == set()
    reads = {r.to_id: r.properties for r in get_order if r.type is R.READS}
    assert reads["entity:shop-api.order"] is None  # the response itself
    # Nested and circular refs are followed (Order -> Customer -> Order, Category -> Category)
    # and marked nested; error responses (Problem) are not data the operation reads.
    assert reads["entity:shop-api.customer"] == {"nested": True}
    assert reads["entity:shop-api.category"] == {"nested": True}
    assert "entity:shop-api.problem" not in reads

    place = await rels_from(hub, "capability:shop-api.place-order")
    assert targets(place, R.WRITES) == {"entity:shop-api.new-order"}  # via components/requestBodies
    assert "entity:shop-api.order" in targets(place, R.READS)

    change = await rels_from(hub, "capability:shop-api.change-order")
    # An inline request schema with nested refs: both are written.
    assert targets(change, R.WRITES) == {"entity:shop-api.order-line", "entity:shop-api.address"}

    listing = await rels_from(hub, "capability:shop-api.list-orders")
    assert "entity:shop-api.order-page" in targets(listing, R.READS)
    assert "entity:shop-api.order" in targets(listing, R.READS)

    async with hub.store.read() as r:
        provided = {
            x.to_id for x in await r.relations_from(["system:webshop"]) if x.type is R.PROVIDES
        }
        stored = {x.to_id for x in await r.relations_from(["system:webshop"]) if x.type is R.STORES}
        harvested = [
            x for x in await r.relations_to(["source:shop-api"]) if x.type is R.HARVESTED_FROM
        ]
    assert "capability:shop-api.get-order" in provided
    assert "capability:shop-api.tags.orders" in provided
    assert "entity:shop-api.customer" in stored
    assert len(harvested) == 39


async def test_harvest_swagger_20(hub: Services) -> None:
    report = await hub.harvest.harvest_location(
        spec(FIXTURES / "legacy-erp-swagger.json", key="erp-api", system="system:erp")
    )
    assert "capability:erp-api.get-debtor" in report.added
    assert "capability:erp-api.tags.invoicing" in report.added
    assert "entity:erp-api.debtor" in report.added
    nodes = await load(hub, "capability:erp-api.create-invoice", "entity:erp-api.debtor")
    props = nodes["capability:erp-api.create-invoice"].properties or {}
    assert props["endpoint"] == "https://erp-gw.example.com/api/v1/invoices"
    assert props["method"] == "POST"
    attrs = {a["name"]: a for a in nodes["entity:erp-api.debtor"].attributes}
    assert attrs["email_address"]["classification"] == "PII"
    assert attrs["phone_number"]["classification"] == "PII"
    assert attrs["billingAddress"]["type"] == "PostalAddress"
    create = await rels_from(hub, "capability:erp-api.create-invoice")
    assert targets(create, R.WRITES) == {"entity:erp-api.invoice"}  # a body parameter
    upsert = await rels_from(hub, "capability:erp-api.upsert-debtor")
    assert targets(upsert, R.WRITES) == {"entity:erp-api.debtor"}
    get = await rels_from(hub, "capability:erp-api.get-debtor")
    assert targets(get, R.READS) == {"entity:erp-api.debtor", "entity:erp-api.postal-address"}


async def test_spec_without_tags_or_schemas_is_harvested_with_warnings(
    hub: Services, tmp_path: Path
) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "openapi: 3.0.3\ninfo: {title: Tiny, version: '1'}\npaths:\n"
        "  /ping:\n    get:\n      operationId: ping\n      responses: {'200': {description: ok}}\n"
        "  /pong:\n    post:\n      responses: {'204': {description: ok}}\n"
        "  /broken: 42\n"
    )
    report = await hub.harvest.harvest_location(spec(path, key="tiny"))
    assert sorted(report.added) == ["capability:tiny.ping", "capability:tiny.post-pong"]
    text = " | ".join(report.warnings)
    assert "no tags" in text and "no schemas" in text and "path /broken" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "openapi: 3.1.0\ninfo: {title: x}\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n          description: ok\n          content: {application/json: {schema: {$ref: '#/components/schemas/Nope'}}}\n",
            "broken $ref '#/components/schemas/Nope'",
        ),
        (
            "openapi: 3.1.0\npaths:\n  /a:\n    get:\n      parameters: [{$ref: '#/components/parameters/Gone'}]\n      requestBody: {$ref: '#/components/requestBodies/Gone'}\n      responses: {}\n",
            "broken $ref '#/components/requestBodies/Gone'",
        ),
        ("asyncapi: 2.6.0\ninfo: {title: events}\n", "not an OpenAPI or Swagger document"),
        ('{"openapi": "3.1.0", "paths": {"/a": {"get": ', "not valid JSON"),
        ("openapi: 3.1.0\npaths:\n  /a: {get: [unclosed\n", "not valid YAML"),
        ("", "empty"),
    ],
    ids=[
        "broken-schema-ref",
        "broken-body-ref",
        "not-openapi",
        "truncated-json",
        "bad-yaml",
        "empty",
    ],
)
async def test_bad_spec_is_refused_and_writes_nothing(
    hub: Services, tmp_path: Path, content: str, message: str
) -> None:
    # A good first harvest, so a refused second one could wipe something if it were not atomic.
    path = tmp_path / "api.yaml"
    path.write_text(fixture_text("shop-openapi.yaml"))
    first = await hub.harvest.harvest_location(spec(path))
    before = await history_count(hub)
    path.write_text(content)
    with pytest.raises(BadSourceDataError) as err:
        await hub.harvest.harvest_location(spec(path))
    assert message in err.value.message
    assert err.value.message.startswith("source:shop-api: ")
    assert await history_count(hub) == before
    nodes = await load(hub, *first.added)
    assert all(n.lifecycle is not Lifecycle.RETIRED for n in nodes.values())


async def test_deeply_circular_specs_terminate(
    make_harvest: Callable[..., HarvestService], tmp_path: Path
) -> None:
    schemas = "\n".join(
        f"    S{i}:\n      type: object\n      properties:\n        next: {{$ref: '#/components/schemas/S{(i + 1) % 200}'}}\n"
        f"        all: {{type: array, items: {{$ref: '#/components/schemas/S{(i * 7) % 200}'}}}}"
        for i in range(200)
    )
    path = tmp_path / "ring.yaml"
    path.write_text(
        "openapi: 3.1.0\ninfo: {title: ring, version: '1'}\npaths:\n  /s:\n    get:\n"
        "      operationId: getS\n      responses:\n        '200':\n          description: ok\n"
        "          content: {application/json: {schema: {$ref: '#/components/schemas/S0'}}}\n"
        f"components:\n  schemas:\n{schemas}\n"
    )
    report = await make_harvest().harvest_location(spec(path, key="ring"))
    assert len(report.added) == 201
    assert report.relations_added > 200

"""OpenAPI 3.1 and Swagger 2.0 harvesting on realistic specs, and what bad specs get."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from catalog.harvest import HarvestService, SourceSpec, SourceType
from catalog.harvest.base import HarvestBatch, HarvestContext
from catalog.harvest.fetch import Fetcher, FetchPolicy
from catalog.harvest.openapi import OpenAPIHarvester
from catalog.services import Services
from catalog.specs import RelationSpec, parse_document
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


async def test_operations_read_and_write_what_payloads_name(hub: Services) -> None:
    await hub.harvest.harvest_location(spec(FIXTURES / "shop-openapi.yaml"))
    get_order = await rels_from(hub, "capability:shop-api.get-order")
    assert targets(get_order, R.PART_OF) == {"capability:shop-api.tags.orders"}
    assert targets(get_order, R.WRITES) == set()
    # The response names Order; what Order's properties reference (Customer, Category...) is
    # not read by the operation but referenced by the entity. Error responses (Problem) are
    # not data the operation reads.
    assert targets(get_order, R.READS) == {"entity:shop-api.order"}

    place = await rels_from(hub, "capability:shop-api.place-order")
    assert targets(place, R.WRITES) == {"entity:shop-api.new-order"}  # via components/requestBodies
    assert targets(place, R.READS) == {"entity:shop-api.order"}

    change = await rels_from(hub, "capability:shop-api.change-order")
    # An inline request schema is the request's own: what its properties name is written.
    assert targets(change, R.WRITES) == {"entity:shop-api.order-line", "entity:shop-api.address"}

    listing = await rels_from(hub, "capability:shop-api.list-orders")
    assert targets(listing, R.READS) == {"entity:shop-api.order-page"}
    search = await rels_from(hub, "capability:shop-api.search-products")
    assert targets(search, R.READS) == {"entity:shop-api.product"}  # an inline envelope
    # allOf and oneOf: a registration is a customer; a payment is a card or invoice payment.
    register = await rels_from(hub, "capability:shop-api.register-customer")
    assert targets(register, R.WRITES) == {
        "entity:shop-api.customer-registration",
        "entity:shop-api.customer",
    }
    pay = await rels_from(hub, "capability:shop-api.authorize-payment")
    assert targets(pay, R.WRITES) == {
        "entity:shop-api.payment",
        "entity:shop-api.card-payment",
        "entity:shop-api.invoice-payment",
    }

    # References between schemas are REFERENCES between entities, naming the attributes.
    order = {r.to_id: r.properties for r in await rels_from(hub, "entity:shop-api.order")}
    assert order["entity:shop-api.customer"] == {"attributes": ["customer"]}
    assert order["entity:shop-api.order-line"] == {"attributes": ["lines"]}
    assert order["entity:shop-api.payment"] == {"attributes": ["payment"]}
    category = await rels_from(hub, "entity:shop-api.category")
    assert [r.properties for r in category if r.type is R.REFERENCES] == [
        {"attributes": ["parent", "children"]}  # a tree: the entity references itself
    ]
    registration = await rels_from(hub, "entity:shop-api.customer-registration")
    assert [(r.to_id, r.properties) for r in registration if r.type is R.REFERENCES] == [
        ("entity:shop-api.customer", {"composition": ["allOf"]})
    ]

    async with hub.store.read() as r:
        provided = {
            x.to_id for x in await r.relations_from(["system:webshop"]) if x.type is R.PROVIDES
        }
        stored = {x.to_id for x in await r.relations_from(["system:webshop"]) if x.type is R.STORES}
        harvested = [
            x for x in await r.relations_to(["source:shop-api"]) if x.type is R.HARVESTED_FROM
        ]
        every = await r.all_relations()
    assert "capability:shop-api.get-order" in provided
    assert "capability:shop-api.tags.orders" in provided
    assert "entity:shop-api.customer" in stored
    assert len(harvested) == 39
    counts = Counter(x.type for x in every)
    # Measured with the harvester that read the transitive closure: READS 91, WRITES 7.
    assert (counts[R.READS], counts[R.WRITES], counts[R.REFERENCES]) == (11, 10, 24)


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
    assert targets(get, R.READS) == {"entity:erp-api.debtor"}
    debtor = await rels_from(hub, "entity:erp-api.debtor")
    assert [(r.to_id, r.properties) for r in debtor if r.type is R.REFERENCES] == [
        ("entity:erp-api.postal-address", {"attributes": ["billingAddress"]})
    ]


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


def ledger_relations(rels: list[RelationRecord]) -> dict[tuple[str, str, str], object]:
    """Relations as ``(from, type, to) -> properties``, ids without the ``ledger.`` prefix."""

    def short(node_id: str) -> str:
        return node_id.partition(":")[2].removeprefix("ledger.")

    return {(short(r.from_id), r.type.value, short(r.to_id)): r.properties for r in rels}


async def test_deep_schema_references_become_references_between_entities(hub: Services) -> None:
    await hub.harvest.harvest_location(spec(FIXTURES / "ledger-openapi.yaml", key="ledger"))
    async with hub.store.read() as r:
        every = ledger_relations(await r.all_relations())
    ops = {k: v for k, v in every.items() if k[1] in ("READS", "WRITES")}
    # Each operation touches what its payloads name, however deep the schemas behind them go
    # (the closure reached 9 entities from getInvoice): an inline envelope, a named array, a
    # map, a pointer into another schema, allOf and oneOf are looked through.
    assert ops == {
        ("list-invoices", "READS", "invoice"): None,
        ("create-invoice", "WRITES", "invoice-draft"): None,
        ("create-invoice", "WRITES", "invoice-base"): None,
        ("create-invoice", "READS", "invoice"): None,
        ("get-invoice", "READS", "invoice"): None,
        ("get-invoice-lines", "READS", "invoice-line"): None,
        ("export-invoices", "READS", "invoice-list"): None,
        ("export-invoices", "READS", "invoice"): None,
        ("get-totals", "READS", "totals"): None,
        ("get-totals", "READS", "money"): None,
        ("get-customer", "READS", "customer"): None,
        ("add-payment-method", "WRITES", "payment-method"): None,
        ("add-payment-method", "WRITES", "card"): None,
        ("add-payment-method", "WRITES", "bank-account"): None,
        ("add-payment-method", "WRITES", "payment-method-base"): None,
    }
    refs = {(k[0], k[2]): v for k, v in every.items() if k[1] == "REFERENCES"}
    assert refs == {
        ("address", "country"): {"attributes": ["country"]},
        ("account", "customer"): {"attributes": ["owner"]},  # circular: Customer -> Account
        ("customer", "address"): {"attributes": ["address"]},
        ("customer", "account"): {"attributes": ["account"]},
        ("category", "category"): {"attributes": ["parent"]},
        ("product", "category"): {"attributes": ["category"]},
        ("invoice-line", "product"): {"attributes": ["product"]},
        ("invoice-line", "money"): {"attributes": ["price"]},
        ("invoice", "customer"): {"attributes": ["customer", "payer"]},
        ("invoice", "invoice-line"): {"attributes": ["lines"]},
        ("invoice", "money"): {"attributes": ["total"]},
        ("invoice-base", "customer"): {"attributes": ["customer"]},
        ("invoice-draft", "invoice-base"): {"composition": ["allOf"]},
        ("invoice-draft", "invoice-line"): {"attributes": ["lines"]},  # its inline allOf part
        ("invoice-list", "invoice"): {"composition": ["items"]},
        ("totals", "money"): {"composition": ["additionalProperties"]},
        ("bank", "address"): {"attributes": ["address"]},
        ("payment-method-base", "customer"): {"attributes": ["holder"]},
        ("card", "payment-method-base"): {"composition": ["allOf"]},
        ("card", "bank"): {"attributes": ["issuer"]},
        ("bank-account", "bank"): {"attributes": ["bank"]},
        ("payment-method", "card"): {"composition": ["oneOf"]},
        ("payment-method", "bank-account"): {"composition": ["oneOf"]},
    }
    assert not any(k[2] == "problem" for k in every if k[1] != "STORES")  # error payloads


class ClosureHarvester:
    """What the OpenAPI harvester wrote before this change: the same nodes, but operations
    READ the transitive closure of their schemas (``nested: true``) and no REFERENCES.

    The READS/WRITES are the old harvester's own output on the same spec, kept in
    ``<spec>.old-relations.json`` next to it.
    """

    type = SourceType.OPENAPI

    def __init__(self, old_relations: Path) -> None:
        self.old = json.loads(old_relations.read_text())

    async def harvest(self, ctx: HarvestContext) -> HarvestBatch:
        batch = await OpenAPIHarvester().harvest(ctx)
        kept = [r for r in batch.relations if r.type not in (R.READS, R.WRITES, R.REFERENCES)]
        old = [
            RelationSpec.model_validate(
                {"from": row[0], "type": row[1], "to": row[2], "properties": (row[3:] or [None])[0]}
            )
            for row in self.old
        ]
        return HarvestBatch(nodes=batch.nodes, relations=[*kept, *old], warnings=batch.warnings)


@pytest.mark.parametrize(
    ("fixture", "key", "removed", "added", "updated"),
    [
        # Ledger: 43 closure READS go, and 4 more that are WRITES now (allOf/oneOf members of
        # a request); those 4 WRITES and 23 REFERENCES come; 2 READS (a named array's items, a
        # map's values) lose `nested`.
        ("ledger-openapi.yaml", "ledger", 43 + 4, 4 + 23, 2),
        # Shop: 77 closure READS go, 3 become WRITES (a registration is a customer, a payment
        # is a card or invoice payment); 24 REFERENCES come.
        ("shop-openapi.yaml", "shop-api", 77 + 3, 3 + 24, 0),
    ],
)
async def test_reharvest_of_a_closure_harvest_converts_it_as_a_minimal_diff(
    hub: Services,
    make_harvest: Callable[..., HarvestService],
    fixture: str,
    key: str,
    removed: int,
    added: int,
    updated: int,
) -> None:
    old_relations = FIXTURES / fixture.replace(".yaml", ".old-relations.json")
    old = make_harvest()
    old.register_harvester(ClosureHarvester(old_relations))
    first = await old.harvest_location(spec(FIXTURES / fixture, key=key))
    async with hub.store.read() as r:
        before_nodes = {n.id: n for n in await r.all_nodes()}
        assert sum(1 for x in await r.all_relations() if x.type is R.READS) > 50
    # A relation a person added by hand stays through the conversion.
    hand = f"capability:{key}.get-customer"
    await hub.registry.apply_document(
        parse_document(f"relations: [{{from: {hand}, type: READS, to: entity:{key}.problem}}]")
    )

    new = make_harvest()
    dry = await new.harvest_location(spec(FIXTURES / fixture, key=key), dry_run=True)
    history = await history_count(hub)
    report = await new.harvest_location(spec(FIXTURES / fixture, key=key))
    for rep in (dry, report):
        assert (rep.added, rep.updated, rep.retired, len(rep.unchanged)) == (
            [],
            [],
            [],
            len(first.added),
        )
        assert (rep.relations_removed, rep.relations_added) == (removed, added)
    # Besides the relations themselves, each changed node's memory (its HARVESTED_FROM) moves.
    assert report.relations_updated >= updated
    assert await history_count(hub) > history

    async with hub.store.read() as r:
        after_nodes = {n.id: n for n in await r.all_nodes()}
        stored = await r.all_relations()
    assert {i: n.version for i, n in after_nodes.items()} == {
        i: n.version for i, n in before_nodes.items()
    }  # no node changed: only relations did
    assert not any((x.properties or {}).get("nested") for x in stored)
    # The result is exactly what a harvest by the new code writes, plus the hand-made READS.
    fresh = await OpenAPIHarvester().harvest(
        HarvestContext(
            source_id=f"source:{key}",
            key=key,
            name=key,
            system="system:webshop",
            location=str(FIXTURES / fixture),
            fetcher=Fetcher(FetchPolicy(any_file=True)),
        )
    )
    data = (R.READS, R.WRITES, R.REFERENCES)
    want = {(x.from_, x.type, x.to, json.dumps(x.properties)) for x in fresh.relations}
    have = {(x.from_id, x.type, x.to_id, json.dumps(x.properties)) for x in stored}
    assert {w for w in want if w[1] in data} | {
        (hand, R.READS, f"entity:{key}.problem", "null")
    } == {h for h in have if h[1] in data}
    # And once converted, the source re-harvests with no writes at all.
    again = await new.harvest_location(spec(FIXTURES / fixture, key=key))
    assert (again.relations_added, again.relations_removed, again.relations_updated) == (0, 0, 0)


async def test_a_write_with_an_inline_body_writes_the_resource_it_answers_with(
    hub: Services, tmp_path: Path
) -> None:
    """Stripe's shape: form bodies without a `$ref`; the operation writes what it returns."""
    ok = "{'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/%s'}}}}}"
    path = tmp_path / "forms.yaml"
    path.write_text(
        "openapi: 3.0.3\ninfo: {title: Forms, version: '1'}\npaths:\n"
        "  /v1/customers:\n"
        "    post:\n      operationId: PostCustomers\n"
        "      requestBody: {content: {application/x-www-form-urlencoded: {schema:"
        " {type: object, properties: {email: {type: string}}}}}}\n"
        f"      responses: {ok % 'customer'}\n"
        "    get:\n      operationId: GetCustomers\n"
        f"      responses: {ok % 'customer'}\n"
        "  /v1/customers/{id}:\n"
        "    delete:\n      operationId: DeleteCustomer\n"
        f"      responses: {ok % 'deleted_customer'}\n"
        "  /v1/customers/{id}/invoices:\n"
        "    post:\n      operationId: PostCustomerInvoice\n"
        "      requestBody: {content: {application/json: {schema:"
        " {$ref: '#/components/schemas/invoice'}}}}\n"
        f"      responses: {ok % 'customer'}\n"
        "components:\n  schemas:\n"
        "    customer: {type: object, properties: {id: {type: string}}}\n"
        "    deleted_customer: {type: object, properties: {id: {type: string}}}\n"
        "    invoice: {type: object, properties: {id: {type: string}}}\n"
    )
    await hub.harvest.harvest_location(spec(path, key="forms"))
    create = await rels_from(hub, "capability:forms.post-customers")
    assert targets(create, R.WRITES) == {"entity:forms.customer"}
    assert targets(create, R.READS) == set()
    listing = await rels_from(hub, "capability:forms.get-customers")
    assert (targets(listing, R.READS), targets(listing, R.WRITES)) == (
        {"entity:forms.customer"},
        set(),
    )
    delete = await rels_from(hub, "capability:forms.delete-customer")
    assert targets(delete, R.WRITES) == {"entity:forms.deleted_customer"}
    # A body that names a schema: that schema is written, the answer read.
    invoice = await rels_from(hub, "capability:forms.post-customer-invoice")
    assert targets(invoice, R.WRITES) == {"entity:forms.invoice"}
    assert targets(invoice, R.READS) == {"entity:forms.customer"}

"""Re-harvest is a diff: untouched, updated, retired, revived; hand edits survive; all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.harvest import HarvestBatch, HarvestContext, SourceSpec, SourceType
from catalog.services import Services
from catalog.specs import NodeSpec, RelationSpec, parse_document
from metadata.errors import BadSourceDataError
from metadata.model import Lifecycle, NodeRecord, RelationType
from metadata.store import Writer
from tests.catalog.harvest.conftest import fixture_text, history_count

R = RelationType
SPEC = fixture_text("shop-openapi.yaml")


def shop(path: Path) -> SourceSpec:
    return SourceSpec.build(
        {
            "key": "shop-api",
            "name": "Shop API",
            "type": SourceType.OPENAPI,
            "location": str(path),
            "system": "system:webshop",
        }
    )


async def node(services: Services, node_id: str) -> NodeRecord:
    async with services.store.read() as r:
        return (await r.get_nodes([node_id]))[node_id]


async def has_relation(services: Services, src: str, rtype: RelationType, dst: str) -> bool:
    async with services.store.read() as r:
        return bool(await r.get_relations([(src, rtype.value, dst)]))


@pytest.fixture
def api_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(SPEC)
    return path


async def test_reharvest_of_unchanged_source_writes_nothing(hub: Services, api_file: Path) -> None:
    first = await hub.harvest.harvest_location(shop(api_file))
    order = await node(hub, "entity:shop-api.order")
    before = await history_count(hub)
    again = await hub.harvest.harvest_location(shop(api_file))
    assert (again.added, again.updated, again.retired) == ([], [], [])
    assert len(again.unchanged) == len(first.added)
    assert again.relations_added == again.relations_removed == 0
    assert await history_count(hub) == before
    assert (await node(hub, "entity:shop-api.order")).version == order.version
    # Through a registered source too (the API path).
    third = await hub.harvest.harvest_source("source:shop-api", trusted=True)
    assert len(third.unchanged) == len(first.added) and await history_count(hub) == before


async def test_changed_spec_updates_retires_and_adds(hub: Services, api_file: Path) -> None:
    await hub.harvest.harvest_location(shop(api_file))
    changed = (
        SPEC.replace("summary: Get an order\n", "summary: Get one order\n")
        .replace("operationId: trackOrder", "operationId: followOrder")
        .replace(
            "      operationId: listCategories\n",
            "      operationId: listCategories\n      deprecated: true\n",
        )
        .replace("        voucherCode: {type: string}\n", "")
    )
    api_file.write_text(changed)
    report = await hub.harvest.harvest_location(shop(api_file))
    assert report.added == ["capability:shop-api.follow-order"]
    assert report.retired == ["capability:shop-api.track-order"]
    assert set(report.updated) == {
        "capability:shop-api.get-order",
        "capability:shop-api.list-categories",
        "entity:shop-api.new-order",
    }
    get_order = await node(hub, "capability:shop-api.get-order")
    assert get_order.name == "Get one order" and get_order.version == 2
    assert (
        await node(hub, "capability:shop-api.list-categories")
    ).lifecycle is Lifecycle.DEPRECATED
    new_order = await node(hub, "entity:shop-api.new-order")
    assert "voucherCode" not in {a["name"] for a in new_order.attributes}
    # Retired, never deleted: the node and its relations stay, with its history.
    retired = await node(hub, "capability:shop-api.track-order")
    assert retired.lifecycle is Lifecycle.RETIRED
    assert await has_relation(
        hub, "capability:shop-api.track-order", R.HARVESTED_FROM, "source:shop-api"
    )

    # Back in the spec: revived.
    api_file.write_text(SPEC)
    back = await hub.harvest.harvest_location(shop(api_file))
    assert "capability:shop-api.track-order" in back.updated
    assert back.retired == ["capability:shop-api.follow-order"]
    assert (await node(hub, "capability:shop-api.track-order")).lifecycle is Lifecycle.ACTIVE


async def test_relations_follow_the_spec(hub: Services, api_file: Path) -> None:
    await hub.harvest.harvest_location(shop(api_file))
    cap = "capability:shop-api.get-stock"
    assert await has_relation(hub, cap, R.READS, "entity:shop-api.stock-level")
    api_file.write_text(
        SPEC.replace(
            "                $ref: '#/components/schemas/StockLevel'",
            "                $ref: '#/components/schemas/Product'",
        )
    )
    version = (await node(hub, cap)).version
    report = await hub.harvest.harvest_location(shop(api_file))
    # Only relations changed: the node itself is untouched (no version bump).
    assert report.updated == [] and (await node(hub, cap)).version == version
    assert not await has_relation(hub, cap, R.READS, "entity:shop-api.stock-level")
    assert await has_relation(hub, cap, R.READS, "entity:shop-api.product")
    assert report.relations_removed >= 1 and report.relations_added >= 1


async def test_hand_edited_fields_survive_reharvest(hub: Services, api_file: Path) -> None:
    await hub.harvest.harvest_location(shop(api_file))
    # A person curates two harvested nodes through the registry (as the API would).
    await hub.registry.apply_document(
        parse_document(
            """
nodes:
  - id: capability:shop-api.get-order
    name: Get an order
    description: Curated - the order with lines, for every channel.
    tags: [orders, curated]
    owner: team:curators
  - id: entity:shop-api.customer
    name: Customer
    properties: {sla: gold}
relations:
  - {from: capability:shop-api.get-order, type: READS, to: entity:shop-api.money}
"""
        )
    )
    async with hub.store.transaction() as tx:  # and removes a harvested relation
        found = await tx.get_relations(
            [("capability:shop-api.get-order", "READS", "entity:shop-api.problem")]
        )
        found |= await tx.get_relations(
            [("capability:shop-api.get-order", "READS", "entity:shop-api.customer")]
        )
        await tx.delete_relations(list(found.values()))
    customer = await node(hub, "entity:shop-api.customer")
    attrs = [dict(a) for a in customer.attributes]
    for a in attrs:
        if a["name"] == "loyaltyTier":
            a["classification"] = "CONFIDENTIAL"
    props = {**(customer.properties or {}), "sla": "gold"}
    async with hub.store.transaction() as tx:
        from dataclasses import replace

        await tx.update_nodes(
            [
                (
                    customer,
                    replace(
                        customer,
                        attributes=tuple(attrs),
                        properties=props,
                        version=customer.version + 1,
                    ),
                )
            ]
        )

    # The source changes the same node in other places, and in the edited field too.
    api_file.write_text(
        SPEC.replace(
            "summary: Get an order\n",
            "summary: Fetch an order\n      description: From the spec.\n",
        ).replace(
            "description: A registered customer of the shop.", "description: A shop customer."
        )
    )
    report = await hub.harvest.harvest_location(shop(api_file))
    assert "capability:shop-api.get-order" in report.updated
    op = await node(hub, "capability:shop-api.get-order")
    assert op.name == "Fetch an order"  # not edited by a person: follows the source
    assert op.description == "Curated - the order with lines, for every channel."  # edited: kept
    assert op.tags == ("orders", "curated")
    assert op.owner == "team:curators"
    # The person's relation stays; the one they removed stays removed.
    assert await has_relation(
        hub, "capability:shop-api.get-order", R.READS, "entity:shop-api.money"
    )
    assert not await has_relation(
        hub, "capability:shop-api.get-order", R.READS, "entity:shop-api.customer"
    )

    customer = await node(hub, "entity:shop-api.customer")
    assert customer.description == "A shop customer."
    assert (customer.properties or {})["sla"] == "gold"
    tiers = [a for a in customer.attributes if a["name"] == "loyaltyTier"]
    assert tiers[0]["classification"] == "CONFIDENTIAL"

    # Another unchanged re-harvest keeps all of it and writes nothing.
    before = await history_count(hub)
    again = await hub.harvest.harvest_location(shop(api_file))
    assert again.updated == [] and await history_count(hub) == before


async def test_person_retired_node_stays_retired(hub: Services, api_file: Path) -> None:
    await hub.harvest.harvest_location(shop(api_file))
    await hub.registry.retire("capability:shop-api.cancel-order")
    report = await hub.harvest.harvest_location(shop(api_file))
    assert "capability:shop-api.cancel-order" not in report.updated
    assert (await node(hub, "capability:shop-api.cancel-order")).lifecycle is Lifecycle.RETIRED


async def test_dry_run_reports_the_diff_and_writes_nothing(hub: Services, api_file: Path) -> None:
    before = await history_count(hub)
    dry = await hub.harvest.harvest_location(shop(api_file), dry_run=True)
    assert dry.dry_run and len(dry.added) == 39
    assert await history_count(hub) == before
    async with hub.store.read() as r:
        assert await r.get_nodes(["source:shop-api", *dry.added]) == {}
    await hub.harvest.harvest_location(shop(api_file))
    api_file.write_text(SPEC.replace("operationId: trackOrder", "operationId: followOrder"))
    before = await history_count(hub)
    dry = await hub.harvest.harvest_source("source:shop-api", dry_run=True, trusted=True)
    assert dry.retired == ["capability:shop-api.track-order"]
    assert dry.added == ["capability:shop-api.follow-order"]
    assert await history_count(hub) == before
    assert (await node(hub, "capability:shop-api.track-order")).lifecycle is Lifecycle.ACTIVE


async def test_failure_inside_the_write_rolls_everything_back(
    hub: Services, api_file: Path
) -> None:
    await hub.harvest.harvest_location(shop(api_file))
    api_file.write_text(SPEC.replace("operationId: trackOrder", "operationId: followOrder"))
    before = await history_count(hub)
    armed = True

    async def explode(tx: Writer) -> None:
        if armed and any(p.target_id == "capability:shop-api.track-order" for p in tx.pending):
            raise RuntimeError("disk full")

    hub.store.add_transaction_hook(explode)
    with pytest.raises(RuntimeError):
        await hub.harvest.harvest_location(shop(api_file))
    armed = False
    assert await history_count(hub) == before
    assert (await node(hub, "capability:shop-api.track-order")).lifecycle is Lifecycle.ACTIVE
    async with hub.store.read() as r:
        assert await r.get_nodes(["capability:shop-api.follow-order"]) == {}


async def test_source_that_suddenly_describes_nothing_is_refused(
    hub: Services, api_file: Path
) -> None:
    await hub.harvest.harvest_location(shop(api_file))
    before = await history_count(hub)
    api_file.write_text("openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths: {}\n")
    with pytest.raises(BadSourceDataError, match="refusing to retire its 39 harvested nodes"):
        await hub.harvest.harvest_location(shop(api_file))
    assert await history_count(hub) == before


class _Fixed:
    """A third-party harvester (through the extension point) returning a fixed batch."""

    type = SourceType.BACKSTAGE

    def __init__(self, batch: HarvestBatch) -> None:
        self.batch = batch

    async def harvest(self, ctx: HarvestContext) -> HarvestBatch:
        return self.batch


async def test_custom_harvester_batches_are_checked(hub: Services, tmp_path: Path) -> None:
    batch = HarvestBatch(
        nodes=[
            NodeSpec(id="system:custom.a", name="A"),
            NodeSpec(id="capability:custom.b", name="B", owner="team:nobody"),
        ],
        relations=[
            RelationSpec.model_validate(
                {"from": "system:custom.a", "type": "PROVIDES", "to": "capability:custom.b"}
            ),
            RelationSpec.model_validate(
                {"from": "system:custom.a", "type": "PART_OF", "to": "system:custom.a"}
            ),
            RelationSpec.model_validate(
                {"from": "system:custom.a", "type": "DEPENDS_ON", "to": "system:ghost"}
            ),
            RelationSpec.model_validate(
                {"from": "capability:custom.b", "type": "READS", "to": "system:webshop"}
            ),
        ],
    )
    hub.harvest.register_harvester(_Fixed(batch))
    (tmp_path / "x.yaml").write_text("{}")
    report = await hub.harvest.harvest_location(
        SourceSpec.build(
            {
                "key": "custom",
                "name": "c",
                "type": SourceType.BACKSTAGE,
                "location": str(tmp_path / "x.yaml"),
                "system": "system:portal",
            }
        )
    )
    assert sorted(report.added) == ["capability:custom.b", "system:custom.a"]
    text = " | ".join(report.warnings)
    assert "owner team:nobody is not a known team" in text
    assert "would make the hierarchy a cycle" in text
    assert "no node system:ghost" in text
    assert "READS cannot go from a capability to a system" in text
    assert await has_relation(hub, "system:custom.a", R.PROVIDES, "capability:custom.b")
    source = await node(hub, "source:custom")
    assert (source.properties or {})["warnings"] == report.warnings

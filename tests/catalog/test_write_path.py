"""One write path: every writer's changes meet every metamodel rule (issue 16)."""

from __future__ import annotations

from pathlib import Path

from catalog.harvest import HarvestBatch, HarvestContext, SourceSpec, SourceType
from catalog.services import Services
from catalog.specs import NodeSpec, RelationSpec, parse_document
from metadata.model import RelationType


class _Fixed:
    """A harvester (through the extension point) returning a fixed batch."""

    type = SourceType.BACKSTAGE

    def __init__(self, batch: HarvestBatch) -> None:
        self.batch = batch

    async def harvest(self, ctx: HarvestContext) -> HarvestBatch:
        return self.batch


def _source(tmp_path: Path) -> SourceSpec:
    (tmp_path / "x.yaml").write_text("{}")
    return SourceSpec.build(
        {
            "key": "portal",
            "name": "Portal",
            "type": SourceType.BACKSTAGE,
            "location": str(tmp_path / "x.yaml"),
            "system": "system:portal",
        }
    )


async def _part_of(services: Services) -> set[tuple[str, str]]:
    async with services.store.read() as r:
        return {
            (rel.from_id, rel.to_id)
            for rel in await r.all_relations()
            if rel.type is RelationType.PART_OF and rel.from_id.startswith("capability:")
        }


async def test_a_harvest_cannot_close_a_part_of_cycle_with_stored_relations(
    services: Services, tmp_path: Path
) -> None:
    await services.registry.apply_document(
        parse_document(
            "nodes: [{id: system:portal, name: Portal}, {id: capability:a, name: A},"
            " {id: capability:b, name: B}]\n"
            "relations: [{from: capability:a, type: PART_OF, to: capability:b}]\n"
        )
    )
    batch = HarvestBatch(
        nodes=[NodeSpec(id="capability:b", name="B")],
        relations=[
            RelationSpec.model_validate(
                {"from": "capability:b", "type": "PART_OF", "to": "capability:a"}
            )
        ],
    )
    services.harvest.register_harvester(_Fixed(batch))
    dry = await services.harvest.harvest_location(_source(tmp_path), dry_run=True)
    assert dry.relations_added == 1  # the provenance link only
    assert any("cycle" in w for w in dry.warnings), dry.warnings
    report = await services.harvest.harvest_location(_source(tmp_path))
    assert any(
        "capability:b PART_OF capability:a" in w and "cycle" in w for w in report.warnings
    ), report.warnings
    assert await _part_of(services) == {("capability:a", "capability:b")}


async def test_a_harvester_cannot_store_what_the_metamodel_forbids(
    services: Services, tmp_path: Path
) -> None:
    await services.registry.apply_document(
        parse_document("nodes: [{id: system:portal, name: Portal}]")
    )
    batch = HarvestBatch(
        nodes=[
            NodeSpec.model_validate(
                {"id": "system:portal.x", "name": "X", "attributes": [{"name": "a"}]}
            )
        ],
        relations=[
            RelationSpec.model_validate(
                {"from": "system:portal.x", "type": "DEPENDS_ON", "to": "system:portal.x"}
            )
        ],
    )
    services.harvest.register_harvester(_Fixed(batch))
    report = await services.harvest.harvest_location(_source(tmp_path))
    text = " | ".join(report.warnings)
    assert "only data entities have attributes" in text
    assert "itself" in text
    async with services.store.read() as r:
        rec = (await r.get_nodes(["system:portal.x"]))["system:portal.x"]
        assert rec.attributes == ()
        assert [x.type for x in await r.relations_from(["system:portal.x"])] == [
            RelationType.HARVESTED_FROM
        ]

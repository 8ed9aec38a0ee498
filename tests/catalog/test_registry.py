"""The registry: validated, all-or-nothing writes."""

from __future__ import annotations

import pytest

from catalog.demo import demo_document, load_demo
from catalog.export import export_document
from catalog.services import Services
from catalog.specs import NodeSpec, RelationSpec, parse_document
from metadata.errors import ConflictError, InvalidInputError, NotFoundError
from metadata.model import Lifecycle, RelationType

BASE = """
nodes:
  - {id: team:sales-it, name: Sales IT}
  - {id: system:crm, name: CRM, owner: team:sales-it, tags: [sales, core]}
  - id: entity:customer
    name: Customer
    attributes: [{name: email, type: string, classification: PII}]
  - {id: capability:customer-profile, name: Customer profile}
relations:
  - {from: system:crm, type: MASTERS, to: entity:customer}
  - {from: system:crm, type: PROVIDES, to: capability:customer-profile}
"""


async def _snapshot(services: Services) -> dict[str, object]:
    doc = await export_document(services.store)
    async with services.store.read() as r:
        doc["changes"] = await r.last_change_id()
    return doc


async def test_apply_adds_then_reports_unchanged(services: Services) -> None:
    first = await services.registry.apply_document(parse_document(BASE))
    assert sorted(first.added) == [
        "capability:customer-profile",
        "entity:customer",
        "system:crm",
        "team:sales-it",
    ]
    assert first.relations_added == 2
    again = await services.registry.apply_document(parse_document(BASE))
    assert again.added == [] and again.updated == []
    assert len(again.unchanged) == 4
    assert again.relations_added == 0 and again.relations_removed == 0


async def test_relations_may_refer_to_nodes_defined_later(services: Services) -> None:
    doc = parse_document(
        "relations: [{from: system:b, type: DEPENDS_ON, to: system:a}]\n"
        "nodes: [{id: system:b, name: B}, {id: system:a, name: A}]\n"
    )
    report = await services.registry.apply_document(doc)
    assert report.relations_added == 1


async def test_update_bumps_version_and_keeps_unsent_fields(services: Services) -> None:
    await services.registry.apply_document(parse_document(BASE))
    spec = NodeSpec.model_validate({"id": "system:crm", "name": "CRM 2"})
    rec = await services.registry.upsert_node(spec)
    assert rec.version == 2
    assert rec.owner == "team:sales-it" and rec.tags == ("sales", "core")
    same = await services.registry.upsert_node(spec)
    assert same.version == 2


async def test_stale_expected_version_conflicts_and_writes_nothing(services: Services) -> None:
    await services.registry.apply_document(parse_document(BASE))
    before = await _snapshot(services)
    spec = NodeSpec.model_validate({"id": "system:crm", "name": "X", "expectedVersion": 5})
    with pytest.raises(ConflictError, match="expectedVersion: system:crm is at version 1"):
        await services.registry.upsert_node(spec)
    assert await _snapshot(services) == before


async def test_expected_version_zero_means_create_only(services: Services) -> None:
    spec = NodeSpec.model_validate({"id": "system:new", "name": "N", "expectedVersion": 0})
    assert (await services.registry.upsert_node(spec)).version == 1
    with pytest.raises(ConflictError):
        await services.registry.upsert_node(spec)


@pytest.mark.parametrize(
    ("document", "error", "words"),
    [
        ("nodes: [{id: 'foo:x', name: X}]", InvalidInputError, "nodes[0].id: unknown kind prefix"),
        ("nodes: [{id: 'system:X', name: X}]", InvalidInputError, "nodes[0].id: malformed key"),
        (
            "nodes: [{id: 'system:x', name: X}]\n"
            "relations: [{from: 'system:x', type: MASTERS, to: 'system:x'}]",
            InvalidInputError,
            "relations[0].type: MASTERS cannot go from a system to a system",
        ),
        (
            "relations: [{from: 'system:crm', type: PROVIDES, to: 'capability:nope'}]",
            NotFoundError,
            "relations[0].to: no node 'capability:nope'",
        ),
        ("nodes: [{id: 'system:x', name: X, owner: 'team:ghost'}]", NotFoundError, "owner"),
        ("nodes: [{id: 'system:x', name: X, owner: 'system:crm'}]", InvalidInputError, "team"),
        (
            "nodes: [{id: 'system:x', name: X, colour: red}]",
            InvalidInputError,
            "colour: unknown field",
        ),
        ("nodes: [{id: 'system:x'}]", InvalidInputError, "nodes[0].name"),
        ("nodes: [{id: 'system:x', name: X, lifecycle: DEAD}]", InvalidInputError, "lifecycle"),
        (
            "nodes: [{id: 'system:x', name: X, attributes: [{name: a}]}]",
            InvalidInputError,
            "only data entities",
        ),
        (
            "nodes: [{id: 'system:x', name: X}, {id: 'system:x', name: Y}]",
            InvalidInputError,
            "twice",
        ),
        ("nodes: [ {id: system:x", InvalidInputError, "not valid YAML at line 1"),
        ("- just a list", InvalidInputError, "expected a mapping"),
        ('{"nodes": [}', InvalidInputError, "not valid JSON at line 1"),
        (
            "nodes: [{id: 'step:s', name: S, properties: {order: first}}]",
            InvalidInputError,
            "order",
        ),
    ],
)
async def test_bad_documents_are_refused_and_write_nothing(
    services: Services, document: str, error: type[Exception], words: str
) -> None:
    await services.registry.apply_document(parse_document(BASE))
    before = await _snapshot(services)
    with pytest.raises(error) as exc:
        await services.registry.apply_document(parse_document(document))
    assert words in str(exc.value)
    assert await _snapshot(services) == before


async def test_a_failure_late_in_a_document_rolls_back_everything(services: Services) -> None:
    doc = parse_document(
        "nodes: [{id: system:a, name: A}, {id: system:b, name: B}]\n"
        "relations:\n"
        "  - {from: system:a, type: DEPENDS_ON, to: system:b}\n"
        "  - {from: system:a, type: DEPENDS_ON, to: system:ghost}\n"
    )
    with pytest.raises(NotFoundError):
        await services.registry.apply_document(doc)
    assert await services.discovery.get_nodes(["system:a", "system:b"]) == {}


async def test_part_of_cycles_are_refused(services: Services) -> None:
    await services.registry.apply_document(
        parse_document(
            "nodes: [{id: capability:a, name: A}, {id: capability:b, name: B},"
            " {id: capability:c, name: C}]\n"
            "relations: [{from: capability:b, type: PART_OF, to: capability:a},"
            " {from: capability:c, type: PART_OF, to: capability:b}]\n"
        )
    )
    spec = RelationSpec.model_validate(
        {"from": "capability:a", "type": "PART_OF", "to": "capability:c"}
    )
    with pytest.raises(InvalidInputError, match="cycle"):
        await services.registry.relate(spec)


async def test_dry_run_reports_but_writes_nothing(services: Services) -> None:
    before = await _snapshot(services)
    report = await services.registry.apply_document(parse_document(BASE), dry_run=True)
    assert len(report.added) == 4 and report.relations_added == 2 and report.dry_run
    assert await _snapshot(services) == before


async def test_prune_removes_relations_missing_from_the_document(services: Services) -> None:
    await services.registry.apply_document(parse_document(BASE))
    pruned = BASE.replace(
        "  - {from: system:crm, type: PROVIDES, to: capability:customer-profile}\n", ""
    )
    report = await services.registry.apply_document(parse_document(pruned + "prune: true\n"))
    assert report.relations_removed == 1
    rels = await services.discovery.relations_from(["system:crm"])
    assert [r.type for r in rels] == [RelationType.MASTERS]


async def test_retire_keeps_the_node_and_its_history(services: Services) -> None:
    await services.registry.apply_document(parse_document(BASE))
    rec = await services.registry.retire("system:crm")
    assert rec.lifecycle is Lifecycle.RETIRED and rec.version == 2
    hist = await services.discovery.history("system:crm", first=10)
    assert [h.op for h in hist] == ["update", "create"]
    assert hist[0].before and hist[0].before["lifecycle"] == "ACTIVE"
    with pytest.raises(NotFoundError):
        await services.registry.retire("system:ghost")


async def test_unrelate_removes_and_reports_absence(services: Services) -> None:
    await services.registry.apply_document(parse_document(BASE))
    spec = RelationSpec.model_validate(
        {"from": "system:crm", "type": "MASTERS", "to": "entity:customer"}
    )
    assert await services.registry.unrelate(spec) is True
    assert await services.registry.unrelate(spec) is False


async def test_export_reapplies_to_the_same_catalog(services: Services) -> None:
    await load_demo(services.registry)
    exported = await export_document(services.store)
    import yaml

    text = yaml.safe_dump(exported)
    report = await services.registry.apply_document(parse_document(text))
    assert report.added == [] and report.updated == [] and report.relations_added == 0
    assert len(report.unchanged) == len(exported["nodes"])


async def test_demo_landscape_loads_idempotently(services: Services) -> None:
    first = await load_demo(services.registry)
    assert len(first.added) > 100 and first.relations_added > 300
    caps = [n for n in first.added if n.startswith("capability:")]
    assert len(caps) >= 40
    again = await load_demo(services.registry)
    assert again.added == [] and again.updated == [] and again.relations_added == 0
    assert "journey:buy-everyday-sneakers" in demo_document()

"""Graph questions on small hand-built graphs whose answers are known, and on the demo."""

from __future__ import annotations

import pytest

from catalog.demo import load_demo
from catalog.services import Services
from catalog.specs import RelationSpec, parse_document
from metadata.errors import InvalidInputError, NotFoundError
from metadata.graph import CatalogGraph
from metadata.model import Kind, RelationType

SMALL = """
nodes:
  - {id: team:t, name: T}
  - {id: system:crm, name: CRM, owner: team:t}
  - {id: system:erp, name: ERP, owner: team:t}
  - {id: system:shop, name: Shop, owner: team:t}
  - {id: system:bot, name: Bot}
  - {id: capability:orders, name: Orders, owner: team:t}
  - {id: capability:orders.create, name: Create order, owner: team:t}
  - {id: capability:orders.change, name: Change order, owner: team:t}
  - {id: capability:profile, name: Profile, owner: team:t}
  - {id: entity:customer, name: Customer}
  - {id: entity:order, name: Order}
  - {id: entity:crm.contact, name: Contact}
  - {id: entity:dwh.customer, name: DWH customer}
  - {id: journey:buy, name: Buy}
  - {id: step:buy.choose, name: Choose, properties: {order: 1}}
  - {id: step:buy.pay, name: Pay, properties: {order: 2}}
  - {id: touchpoint:web, name: Web}
  - {id: touchpoint:reviews, name: Reviews}
relations:
  - {from: capability:orders.create, type: PART_OF, to: capability:orders}
  - {from: capability:orders.change, type: PART_OF, to: capability:orders}
  - {from: system:erp, type: PROVIDES, to: capability:orders.create}
  - {from: system:crm, type: PROVIDES, to: capability:profile}
  - {from: system:shop, type: PROVIDES, to: capability:profile}
  - {from: system:shop, type: DEPENDS_ON, to: system:crm}
  - {from: system:bot, type: DEPENDS_ON, to: system:shop}
  - {from: system:crm, type: MASTERS, to: entity:customer}
  - {from: system:erp, type: MASTERS, to: entity:order}
  - {from: system:erp, type: MASTERS, to: entity:customer}
  - {from: team:t, type: STEWARDS, to: entity:customer}
  - {from: capability:profile, type: READS, to: entity:customer}
  - {from: entity:order, type: REFERENCES, to: entity:customer}
  - {from: entity:crm.contact, type: REPRESENTS, to: entity:customer}
  - {from: system:crm, type: STORES, to: entity:crm.contact}
  - {from: entity:crm.contact, type: FLOWS_TO, to: entity:dwh.customer}
  - {from: step:buy.choose, type: PART_OF, to: journey:buy}
  - {from: step:buy.pay, type: PART_OF, to: journey:buy}
  - {from: step:buy.choose, type: USES, to: capability:profile}
  - {from: step:buy.pay, type: USES, to: capability:orders.change}
  - {from: step:buy.choose, type: OCCURS_AT, to: touchpoint:web}
  - {from: step:buy.pay, type: OCCURS_AT, to: touchpoint:reviews}
  - {from: touchpoint:web, type: SERVED_BY, to: system:shop}
"""


@pytest.fixture
async def small(services: Services) -> Services:
    await services.registry.apply_document(parse_document(SMALL))
    return services


async def test_impact_of_retiring_the_crm(small: Services) -> None:
    result = small.analysis.impact("system:crm", 3)
    got = {n: d for n, d, _ in result.affected}
    assert got["capability:profile"] == 1
    assert got["system:shop"] == 1
    assert got["entity:customer"] == 1
    assert got["system:bot"] == 2  # depends on the shop, which depends on the CRM
    assert got["step:buy.choose"] == 2  # uses the profile capability
    assert got["journey:buy"] == 3
    assert got["entity:order"] == 2  # references the customer
    # The shop provides profile too: it depends on the CRM (so it is affected), but it stays in
    # service, so profile keeps a provider.
    assert result.unprovided_capabilities == []
    # The ERP also masters the customer: it is not orphaned.
    assert result.orphaned_entities == []
    via = dict((n, v) for n, _, v in result.affected)["system:bot"]
    assert [(s.from_id, s.type, s.to_id) for s in via] == [
        ("system:shop", RelationType.DEPENDS_ON, "system:crm"),
        ("system:bot", RelationType.DEPENDS_ON, "system:shop"),
    ]


LOSSES = """
nodes:
  - {id: system:crm, name: CRM}
  - {id: system:crm.mail, name: CRM mailer}
  - {id: system:erp, name: ERP}
  - {id: system:shop, name: Shop}
  - {id: system:crm2, name: New CRM, lifecycle: PLANNED}
  - {id: system:legacy, name: Legacy, lifecycle: DEPRECATED}
  - {id: capability:customer, name: Customer management}
  - {id: capability:customer.profile, name: Profile}
  - {id: capability:customer.consent, name: Consent}
  - {id: capability:customer.mailing, name: Mailing}
  - {id: capability:orders, name: Orders}
  - {id: capability:orders.change, name: Change order}
  - {id: capability:orders.track, name: Track order}
  - {id: entity:customer, name: Customer}
  - {id: entity:consent, name: Consent}
  - {id: entity:lead, name: Lead}
relations:
  - {from: system:crm.mail, type: PART_OF, to: system:crm}
  - {from: system:shop, type: DEPENDS_ON, to: system:crm}
  - {from: capability:customer.profile, type: PART_OF, to: capability:customer}
  - {from: capability:customer.consent, type: PART_OF, to: capability:customer}
  - {from: capability:customer.mailing, type: PART_OF, to: capability:customer}
  - {from: capability:orders.change, type: PART_OF, to: capability:orders}
  - {from: capability:orders.track, type: PART_OF, to: capability:orders}
  # Only the CRM and its parts provide the customer capabilities (a planned successor does
  # not provide anything yet): all of them, and their parent, are left unprovided.
  - {from: system:crm, type: PROVIDES, to: capability:customer.profile}
  - {from: system:crm2, type: PROVIDES, to: capability:customer.profile}
  - {from: system:crm, type: PROVIDES, to: capability:customer.consent}
  - {from: system:crm.mail, type: PROVIDES, to: capability:customer.mailing}
  # The ERP provides the parent, not the sub-capability: change order is left unprovided.
  - {from: system:erp, type: PROVIDES, to: capability:orders}
  - {from: system:crm, type: PROVIDES, to: capability:orders.change}
  # A deprecated system is still in service.
  - {from: system:crm, type: PROVIDES, to: capability:orders.track}
  - {from: system:legacy, type: PROVIDES, to: capability:orders.track}
  - {from: system:crm, type: MASTERS, to: entity:customer}
  - {from: system:shop, type: MASTERS, to: entity:customer}
  - {from: system:crm.mail, type: MASTERS, to: entity:consent}
  - {from: system:crm2, type: MASTERS, to: entity:lead}
  - {from: system:crm, type: MASTERS, to: entity:lead}
"""


async def test_impact_counts_as_unprovided_only_what_no_remaining_system_provides(
    services: Services,
) -> None:
    await services.registry.apply_document(parse_document(LOSSES))
    result = services.analysis.impact("system:crm", 1)
    assert result.unprovided_capabilities == [
        "capability:customer",  # nothing below it is provided any more (as gaps counts)
        "capability:customer.consent",
        "capability:customer.mailing",  # its provider is a component of the CRM
        "capability:customer.profile",  # the planned successor does not count
        "capability:orders.change",  # the ERP provides the parent only
    ]
    # The shop depends on the CRM but still masters the customer; the mailer goes with the
    # CRM (it is PART_OF it), and a planned system is no system of record yet.
    assert result.orphaned_entities == ["entity:consent", "entity:lead"]
    # The verdicts do not depend on how far the affected nodes are listed.
    assert services.analysis.impact("system:crm", 0).unprovided_capabilities == (
        result.unprovided_capabilities
    )
    # A component going alone leaves only its own capability and entity unserved.
    part = services.analysis.impact("system:crm.mail", 3)
    assert part.unprovided_capabilities == ["capability:customer.mailing"]
    assert part.orphaned_entities == ["entity:consent"]
    # Retiring a provider first: what it provided is no longer the CRM's loss alone.
    await services.registry.retire("system:legacy")
    assert (
        "capability:orders.track"
        in services.analysis.impact("system:crm", 1).unprovided_capabilities
    )


async def test_unprovided_capabilities_in_a_deep_hierarchy(services: Services) -> None:
    # Deeper than Python's recursion limit: the hierarchy is walked without recursion.
    n = 1500
    nodes = "".join(f"  - {{id: capability:c{i}, name: C{i}}}\n" for i in range(n))
    chain = "".join(
        f"  - {{from: capability:c{i + 1}, type: PART_OF, to: capability:c{i}}}\n"
        for i in range(n - 1)
    )
    doc = (
        f"nodes:\n  - {{id: system:crm, name: CRM}}\n{nodes}relations:\n{chain}"
        f"  - {{from: system:crm, type: PROVIDES, to: capability:c{n - 1}}}\n"
    )
    await services.registry.apply_document(parse_document(doc))
    result = services.analysis.impact("system:crm", 1)
    assert len(result.unprovided_capabilities) == n  # the leaf and every capability above it


async def test_impact_direct_only_lists_what_depends_on_the_root_itself(small: Services) -> None:
    every = small.analysis.impact("system:crm", 3)
    direct = small.analysis.impact("system:crm", 3, direct_only=True)
    assert {n for n, d, _ in every.affected if d == 1} == {n for n, _, _ in direct.affected}
    assert {d for _, d, _ in direct.affected} == {1}
    assert len(every.affected) > len(direct.affected)
    assert (direct.unprovided_capabilities, direct.orphaned_entities) == (
        every.unprovided_capabilities,
        every.orphaned_entities,
    )
    assert small.analysis.impact("system:crm", 0, direct_only=True).affected == []


async def test_impact_depth_limits_and_skips_retired(small: Services) -> None:
    assert {n for n, _, _ in small.analysis.impact("system:crm", 1).affected} == {
        "capability:profile",
        "system:shop",
        "entity:customer",
        "entity:crm.contact",
    }
    await small.registry.retire("system:shop")
    affected = {n for n, _, _ in small.analysis.impact("system:crm", 3).affected}
    assert "system:shop" not in affected and "system:bot" not in affected
    assert small.analysis.impact("system:erp", 1).orphaned_entities == ["entity:order"]


async def test_path_reports_relations_as_stored(small: Services) -> None:
    steps = small.analysis.path("system:bot", "entity:customer", 6)
    assert steps is not None
    assert [(s.from_id, s.type.value, s.to_id) for s in steps] == [
        ("system:bot", "DEPENDS_ON", "system:shop"),
        ("system:shop", "DEPENDS_ON", "system:crm"),
        ("system:crm", "MASTERS", "entity:customer"),
    ]
    assert small.analysis.path("system:bot", "entity:customer", 2) is None
    assert small.analysis.path("system:crm", "system:crm", 6) == []
    assert small.analysis.path("team:t", "journey:buy", 6) is not None


async def test_neighborhood_and_lineage(small: Services) -> None:
    hood = small.analysis.neighborhood("system:shop", 1, None)
    assert set(hood.nodes) == {
        "system:shop",
        "system:crm",
        "system:bot",
        "capability:profile",
        "touchpoint:web",
    }
    only_deps = small.analysis.neighborhood("system:shop", 2, [RelationType.DEPENDS_ON])
    assert set(only_deps.nodes) == {"system:shop", "system:crm", "system:bot"}
    assert {(r.from_id, r.to_id) for r in only_deps.relations} == {
        ("system:shop", "system:crm"),
        ("system:bot", "system:shop"),
    }
    down = small.analysis.lineage("entity:crm.contact", "out", 5)
    assert set(down.nodes) == {"entity:crm.contact", "entity:customer", "entity:dwh.customer"}
    up = small.analysis.lineage("entity:dwh.customer", "in", 5)
    assert set(up.nodes) == {"entity:dwh.customer", "entity:crm.contact"}


async def test_gaps_name_what_is_missing(small: Services) -> None:
    gaps = {(g.node, g.reason) for g in small.analysis.gaps(None)}
    nodes = {g for g, _ in gaps}
    assert "capability:orders.change" in nodes  # nobody provides it
    assert "capability:orders" not in nodes  # covered through orders.create
    assert ("system:bot", "this system has no owner (no team owns it)") in gaps
    assert any(n == "step:buy.pay" and "capability:orders.change" in r for n, r in gaps)
    assert ("touchpoint:reviews", "no active system serves this touchpoint") in gaps
    assert ("entity:order", "no team stewards this entity") in gaps
    assert not any(n == "entity:crm.contact" for n in nodes)  # a physical copy
    only = small.analysis.gaps([Kind.TOUCHPOINT])
    assert [g.node for g in only] == ["touchpoint:reviews"]


async def test_redundancies_find_double_providers_and_masters(small: Services) -> None:
    found = {r.node: r.involved for r in small.analysis.redundancies()}
    assert found == {
        "capability:profile": ["system:crm", "system:shop"],
        "entity:customer": ["system:crm", "system:erp"],
    }


async def test_capability_map_counts_leaves(small: Services) -> None:
    entries = small.analysis.capability_map(None, 3)
    by_id = {e.capability: e for e in entries}
    assert [e.capability for e in entries] == [
        "capability:orders",
        "capability:orders.change",
        "capability:orders.create",
        "capability:profile",
    ]
    assert (
        by_id["capability:orders"].covered_leaves,
        by_id["capability:orders"].uncovered_leaves,
    ) == (1, 1)
    assert by_id["capability:orders.create"].providers == ["system:erp"]
    assert by_id["capability:orders.create"].parent == "capability:orders"
    assert [e.capability for e in small.analysis.capability_map(None, 1)] == [
        "capability:orders",
        "capability:profile",
    ]


async def test_journey_coverage_in_step_order(small: Services) -> None:
    cov = small.analysis.journey_coverage("journey:buy", {"step:buy.choose": 1, "step:buy.pay": 2})
    assert [s.step for s in cov.steps] == ["step:buy.choose", "step:buy.pay"]
    choose, pay = cov.steps
    assert choose.systems == ["system:crm", "system:shop"]
    assert choose.entities == ["entity:customer"] and choose.gaps == []
    assert {g.node for g in pay.gaps} == {"capability:orders.change", "touchpoint:reviews"}


async def test_hotspots_rank_the_most_connected(small: Services) -> None:
    top = small.analysis.hotspots(3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    assert "entity:customer" in [n for n, _ in top]


async def test_bad_arguments_are_refused(small: Services) -> None:
    with pytest.raises(NotFoundError):
        small.analysis.impact("system:ghost", 3)
    with pytest.raises(InvalidInputError, match="depth: must be between 0 and 10"):
        small.analysis.impact("system:crm", 11)
    with pytest.raises(InvalidInputError, match="maxLength"):
        small.analysis.path("system:crm", "system:erp", -1)
    with pytest.raises(InvalidInputError, match="not a journey"):
        small.analysis.journey_coverage("system:crm", {})


async def test_projection_follows_commits_and_ignores_rollbacks(small: Services) -> None:
    spec = RelationSpec.model_validate(
        {"from": "system:bot", "type": "DEPENDS_ON", "to": "system:erp"}
    )
    await small.registry.relate(spec)
    assert small.graph.out("system:bot", RelationType.DEPENDS_ON) == ["system:shop", "system:erp"]
    with pytest.raises(NotFoundError):
        await small.registry.apply_document(
            parse_document(
                "nodes: [{id: system:x, name: X}]\nrelations: [{from: system:x, type: DEPENDS_ON, to: system:ghost}]"
            )
        )
    assert not small.graph.has("system:x")
    await small.registry.unrelate(spec)
    assert small.graph.out("system:bot", RelationType.DEPENDS_ON) == ["system:shop"]


async def test_a_fresh_projection_equals_the_incremental_one(small: Services) -> None:
    await small.registry.retire("system:bot")
    fresh = CatalogGraph()
    await fresh.load(small.store)
    assert sorted(fresh.g.edges(data=True)) == sorted(small.graph.g.edges(data=True))
    assert dict(fresh.g.nodes(data=True)) == dict(small.graph.g.nodes(data=True))
    # Replaying the change log over a fresh projection changes nothing (idempotent sync).
    fresh.last_change = 0
    await fresh.sync(small.store)
    assert dict(fresh.g.nodes(data=True)) == dict(small.graph.g.nodes(data=True))


async def test_demo_landscape_has_real_answers(services: Services) -> None:
    await load_demo(services.registry)
    gaps = services.analysis.gaps(None)
    assert any(g.node == "step:sneakers.advocate" for g in gaps)
    assert any(g.node == "touchpoint:review-site" for g in gaps)
    red = {r.node for r in services.analysis.redundancies()}
    assert {"entity:customer", "capability:customer-profile-management.profile-maintenance"} <= red
    impact = services.analysis.impact("system:crm", 3)
    assert len(impact.affected) > 10
    assert services.analysis.path("system:chatbot", "entity:order", 6) is not None


async def test_hotspots_agree_with_networkx_pagerank(small: Services) -> None:
    import networkx as nx

    ours = dict(small.analysis.hotspots(500))
    reference = nx.pagerank(small.graph.g.to_undirected(as_view=True), tol=1e-10)
    assert ours.keys() == reference.keys()
    for node, score in reference.items():
        assert abs(ours[node] - score) < 1e-4, node


async def test_an_edge_to_a_node_not_yet_synced_does_not_break_questions(small: Services) -> None:
    from metadata.store import Change

    # Another process created system:late, but its change is not synced yet when ours lands.
    small.graph.apply(
        [Change(10_000, "relation", "x", "create", None,
                {"from": "system:bot", "type": "DEPENDS_ON", "to": "system:late"})]
    )  # fmt: skip
    assert small.graph.kind("system:late") is Kind.SYSTEM
    small.analysis.gaps(None)
    small.analysis.hotspots(5)
    assert small.analysis.impact("system:late", 2).affected


async def test_touching_is_ordered_and_follows_every_change(small: Services) -> None:
    """The per-node memo of relations answers like the store and forgets on every change."""
    graph = small.graph

    def as_keys(node_id: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
        t = graph.touching(node_id)
        return [r.key for r in t.out], [r.key for r in t.into]

    async def from_store(
        node_id: str,
    ) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
        async with small.store.read() as r:
            rels = await r.relations_touching([node_id])
        out = sorted(r.key for r in rels if r.from_id == node_id)
        into = sorted((r.key for r in rels if r.to_id == node_id), key=lambda k: (k[0], k[1]))
        return sorted(out, key=lambda k: (k[2], k[1])), into

    for node in ("system:erp", "entity:customer", "capability:orders", "team:t", "system:nope"):
        assert as_keys(node) == await from_store(node), node
    before = graph.touching("system:erp")
    assert graph.touching("system:erp") is before  # remembered
    # Two relation types between the same pair are both there, by type name.
    both = RelationSpec.model_validate(
        {"from": "system:erp", "type": "STORES", "to": "entity:order"}
    )
    await small.registry.relate(both)
    assert as_keys("system:erp") == await from_store("system:erp")
    assert [r.type for r in graph.touching("system:erp").out if r.to_id == "entity:order"] == [
        RelationType.MASTERS,
        RelationType.STORES,
    ]
    assert as_keys("entity:order") == await from_store("entity:order")
    await small.registry.unrelate(both)
    assert as_keys("system:erp") == await from_store("system:erp")
    assert as_keys("entity:order") == await from_store("entity:order")


async def test_the_findings_are_primed_in_the_background_and_stop_when_told(
    small: Services, caplog: pytest.LogCaptureFixture
) -> None:
    analysis = small.analysis
    await analysis.prime(lambda: True)  # shutting down: stops at its first check, quietly
    assert analysis._gaps._index is None and analysis._redundancies._index is None
    assert not [r for r in caplog.records if "gaps and redundancies" in r.getMessage()]
    await analysis.prime()
    assert analysis._gaps._index is not None and analysis._redundancies._index is not None
    assert analysis.gaps(None) == analysis._gaps._index.results()

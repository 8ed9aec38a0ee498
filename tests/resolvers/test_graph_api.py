"""Graph questions through the real app, on the demo landscape."""

from __future__ import annotations

from tests.conftest import GraphQLClient


def test_what_breaks_if_we_retire_the_crm(demo_gql: GraphQLClient) -> None:
    data = demo_gql.data(
        """{ impact(id: "system:crm", depth: 2) {
             root { id name }
             affected { node { id kind } distance via { type from { id } to { id } } }
             unprovidedCapabilities { id name }
             orphanedEntities { id }
        } }"""
    )["impact"]
    assert data["root"]["id"] == "system:crm"
    assert all(1 <= a["distance"] <= 2 for a in data["affected"])
    first = data["affected"][0]
    assert len(first["via"]) == first["distance"]
    assert (
        first["via"][0]["from"]["id"] == "system:crm" or first["via"][0]["to"]["id"] == "system:crm"
    )
    assert data["unprovidedCapabilities"], "the CRM is the only provider of some capabilities"


def test_impact_direct_only_through_the_api(demo_gql: GraphQLClient) -> None:
    q = """query($direct: Boolean) { impact(id: "system:crm", depth: 3, directOnly: $direct) {
             affected { node { id } distance }
             unprovidedCapabilities { id }
             orphanedEntities { id }
        } }"""
    every = demo_gql.data(q, {"direct": False})["impact"]
    direct = demo_gql.data(q, {"direct": True})["impact"]
    assert {a["distance"] for a in direct["affected"]} == {1}
    assert direct["affected"] == [a for a in every["affected"] if a["distance"] == 1]
    assert len(every["affected"]) > len(direct["affected"])
    for key in ("unprovidedCapabilities", "orphanedEntities"):
        assert direct[key] == every[key]
    unprovided = {c["id"] for c in every["unprovidedCapabilities"]}
    # Only the CRM provides case handling; marketing automation, which depends on the CRM
    # (through the CDP), is affected but still provides recording consent and sending email.
    assert "capability:case-management.case-handling.open-case" in unprovided
    assert "capability:consent-management.consent-capture.record-consent" not in unprovided
    assert "capability:campaign-management.campaign-execution.send-email" not in unprovided
    assert "system:marketing-automation" in {a["node"]["id"] for a in every["affected"]}


def test_read_your_writes_in_the_projection(demo_gql: GraphQLClient) -> None:
    q = '{ path(from: "system:bi", to: "system:chatbot", maxLength: 1) { type } }'
    assert demo_gql.data(q)["path"] is None
    demo_gql.data(
        'mutation { relate(input: {from: "system:chatbot", type: DEPENDS_ON, to: "system:bi"}) { type } }'
    )
    assert demo_gql.data(q)["path"] == [{"type": "DEPENDS_ON"}]


def test_gaps_redundancies_map_and_coverage(demo_gql: GraphQLClient) -> None:
    data = demo_gql.data(
        """{
          gaps(kinds: [JOURNEY_STEP, TOUCHPOINT]) { node { id kind } reason }
          redundancies { node { id } reason involved { id } }
          capabilityMap(depth: 2) { capability { id name } level parentId providers { id } coveredLeaves uncoveredLeaves }
          journeyCoverage(id: "journey:buy-everyday-sneakers") {
            journey { id } coverage
            steps { step { id order } touchpoints { id } capabilities { id } systems { id } entities { id } covered gaps { node { id } reason } }
          }
          hotspots(first: 5) { node { id } score }
          lineage(id: "entity:crm.contact", direction: OUT) { nodes { id } relations { type } }
          neighborhood(id: "system:crm", depth: 1, types: [MASTERS]) { nodes { id } relations { type } }
        }"""
    )
    assert {g["node"]["kind"] for g in data["gaps"]} <= {"JOURNEY_STEP", "TOUCHPOINT"}
    assert any(
        "capability" in g["reason"]
        for g in data["gaps"]
        if g["node"]["id"] == "step:sneakers.advocate"
    )
    assert any(r["node"]["id"] == "entity:customer" for r in data["redundancies"])
    levels = [e["level"] for e in data["capabilityMap"]]
    assert set(levels) == {1, 2} and levels[0] == 1
    steps = data["journeyCoverage"]["steps"]
    assert [s["step"]["order"] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert 0 < data["journeyCoverage"]["coverage"] < 1
    assert len(data["hotspots"]) == 5
    assert {r["type"] for r in data["lineage"]["relations"]} <= {"FLOWS_TO", "REPRESENTS"}
    assert {r["type"] for r in data["neighborhood"]["relations"]} == {"MASTERS"}


def test_graph_questions_refuse_bad_input(demo_gql: GraphQLClient) -> None:
    cases = [
        ('{ impact(id: "system:ghost") { root { id } } }', "NOT_FOUND"),
        ('{ impact(id: "system:crm", depth: 99) { root { id } } }', "BAD_USER_INPUT"),
        ('{ impact(id: "system:crm", depth: -1) { root { id } } }', "BAD_USER_INPUT"),
        (
            '{ path(from: "system:crm", to: "system:erp", maxLength: 100) { type } }',
            "BAD_USER_INPUT",
        ),
        ("{ hotspots(first: 100000) { score } }", "BAD_USER_INPUT"),
        ('{ journeyCoverage(id: "system:crm") { coverage } }', "BAD_USER_INPUT"),
        ('{ capabilityMap(root: "team:nobody") { level } }', "NOT_FOUND"),
    ]
    for query, code in cases:
        err = demo_gql.error(query)
        assert err["extensions"]["code"] == code, (query, err)


def test_a_graph_question_past_its_budget_is_refused(app_factory) -> None:  # type: ignore[no-untyped-def]
    gql = app_factory(demo=True, graph_time_budget=0.0)
    err = gql.error('{ impact(id: "system:crm", depth: 10) { affected { distance } } }')
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert "took longer than" in err["message"]

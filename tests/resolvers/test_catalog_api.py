"""The catalog's GraphQL API through the real Starlette app."""

from __future__ import annotations

from tests.conftest import GraphQLClient

CAPS = """
query($first: Int, $after: String) {
  capabilities(first: $first, after: $after) {
    totalCount
    edges { cursor node { id name providers { id name } reads { id } writes { id } parent { id } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def test_healthz_answers_once_serving(gql: GraphQLClient) -> None:
    resp = gql.http.get("/healthz")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


def test_register_capability_creates_node_and_relations(gql: GraphQLClient) -> None:
    gql.data(
        """mutation {
          a: upsertNode(input: {id: "team:commerce", name: "Commerce"}) { id }
          b: upsertNode(input: {id: "system:erp", name: "ERP"}) { id }
          c: upsertNode(input: {id: "entity:order", name: "Order",
                 attributes: [{name: "number", type: "string"}]}) { id }
          d: upsertNode(input: {id: "capability:order-capture", name: "Order capture"}) { id }
          e: upsertNode(input: {id: "domain:commerce", name: "Commerce"}) { id }
        }"""
    )
    cap = gql.data(
        """mutation {
          registerCapability(input: {key: "order-capture.change-order", name: "Change order",
            parent: "capability:order-capture", domain: "domain:commerce", owner: "team:commerce",
            providedBy: ["system:erp"], reads: ["entity:order"], writes: ["entity:order"],
            tags: ["orders"]}) {
            id kind key name version tags owner { id name }
            parent { id children { id } } providers { id provides { id } }
            reads { id masteredBy { id } } writes { id attributes { name type } } domain { id }
          }
        }"""
    )["registerCapability"]
    assert cap["id"] == "capability:order-capture.change-order"
    assert cap["kind"] == "CAPABILITY" and cap["key"] == "order-capture.change-order"
    assert cap["owner"] == {"id": "team:commerce", "name": "Commerce"}
    assert cap["parent"]["children"] == [{"id": cap["id"]}]
    assert cap["providers"] == [{"id": "system:erp", "provides": [{"id": cap["id"]}]}]
    assert cap["writes"][0]["attributes"] == [{"name": "number", "type": "string"}]
    assert cap["domain"] == {"id": "domain:commerce"}
    err = gql.error(
        'mutation { registerCapability(input: {key: "order-capture.change-order", name: "X"})'
        " { id } }"
    )
    assert err["extensions"]["code"] == "CONFLICT"


def test_pagination_walks_every_capability_once(demo_gql: GraphQLClient) -> None:
    seen: list[str] = []
    after = None
    total = None
    while True:
        conn = demo_gql.data(CAPS, {"first": 7, "after": after})["capabilities"]
        total = conn["totalCount"]
        seen.extend(e["node"]["id"] for e in conn["edges"])
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == total >= 40
    assert seen == sorted(seen)


def test_nodes_filters_by_kind_tag_and_lifecycle(demo_gql: GraphQLClient) -> None:
    q = """query($k: [Kind!], $t: [String!], $l: [Lifecycle!]) {
      nodes(kinds: $k, tags: $t, lifecycle: $l, first: 500) { totalCount edges { node { id kind lifecycle tags } } }
    }"""
    systems = demo_gql.data(q, {"k": ["SYSTEM"]})["nodes"]
    assert systems["totalCount"] >= 11
    assert {e["node"]["kind"] for e in systems["edges"]} == {"SYSTEM"}
    deprecated = demo_gql.data(q, {"l": ["DEPRECATED"]})["nodes"]
    assert all(e["node"]["lifecycle"] == "DEPRECATED" for e in deprecated["edges"])
    some_tag = systems["edges"][0]["node"]["tags"][0]
    tagged = demo_gql.data(q, {"t": [some_tag]})["nodes"]
    assert tagged["totalCount"] >= 1
    assert all(some_tag in e["node"]["tags"] for e in tagged["edges"])


def test_typed_fields_on_the_demo(demo_gql: GraphQLClient) -> None:
    data = demo_gql.data(
        """{
          crm: node(id: "system:crm") { ... on System { provides { id } masters { id } dependsOn { id } domain { id } } }
          customer: node(id: "entity:customer") { ... on DataEntity {
              attributes { name classification } masteredBy { id } stewards { id } representedBy { id } } }
          journey: node(id: "journey:buy-everyday-sneakers") { ... on Journey { steps { id order touchpoints { id } uses { id } journey { id } } } }
        }"""
    )
    crm = data["crm"]
    assert {"id": "entity:customer"} in crm["masters"] and crm["provides"]
    customer = data["customer"]
    assert {a["classification"] for a in customer["attributes"]} >= {"PII"}
    assert {s["id"] for s in customer["masteredBy"]} == {"system:crm", "system:erp"}
    assert len(customer["representedBy"]) >= 3
    steps = data["journey"]["steps"]
    assert [s["order"] for s in steps] == sorted(s["order"] for s in steps)
    assert len(steps) == 6
    assert all(s["journey"]["id"] == "journey:buy-everyday-sneakers" for s in steps)


def test_relations_filter_by_type_and_direction(demo_gql: GraphQLClient) -> None:
    q = """query($d: Direction) { node(id: "entity:customer") {
      relations(types: [MASTERS], direction: $d) { type from { id } to { id } } } }"""
    incoming = demo_gql.data(q, {"d": "IN"})["node"]["relations"]
    assert {r["from"]["id"] for r in incoming} == {"system:crm", "system:erp"}
    assert all(r["to"]["id"] == "entity:customer" for r in incoming)
    assert demo_gql.data(q, {"d": "OUT"})["node"]["relations"] == []


def test_upsert_relate_unrelate_retire_round_trip(gql: GraphQLClient) -> None:
    gql.data(
        'mutation { a: upsertNode(input: {id: "system:a", name: "A"}) { id }'
        ' b: upsertNode(input: {id: "system:b", name: "B"}) { id } }'
    )
    rel = 'input: {from: "system:a", type: DEPENDS_ON, to: "system:b", properties: {why: "orders"}}'
    r = gql.data(f"mutation {{ relate({rel}) {{ type from {{ id }} to {{ id }} properties }} }}")
    assert r["relate"]["properties"] == {"why": "orders"}
    assert gql.data(f"mutation {{ unrelate({rel}) }}")["unrelate"] is True
    assert gql.data(f"mutation {{ unrelate({rel}) }}")["unrelate"] is False
    retired = gql.data('mutation { retire(id: "system:a") { lifecycle version } }')["retire"]
    assert retired == {"lifecycle": "RETIRED", "version": 2}
    hist = gql.data('{ history(id: "system:a") { operation at before after } }')["history"]
    assert [h["operation"] for h in hist] == ["update", "create"]
    assert hist[0]["after"]["lifecycle"] == "RETIRED"


def test_apply_catalog_reports_diff(gql: GraphQLClient) -> None:
    doc = "nodes: [{id: system:a, name: A}, {id: system:b, name: B}]\nrelations: [{from: system:a, type: DEPENDS_ON, to: system:b}]"
    q = "mutation($d: String!, $dry: Boolean) { applyCatalog(document: $d, dryRun: $dry) { added updated unchanged relationsAdded relationsRemoved dryRun } }"
    dry = gql.data(q, {"d": doc, "dry": True})["applyCatalog"]
    assert dry["added"] == ["system:a", "system:b"] and dry["dryRun"] is True
    assert gql.data('{ node(id: "system:a") { id } }')["node"] is None
    first = gql.data(q, {"d": doc})["applyCatalog"]
    assert first["relationsAdded"] == 1
    again = gql.data(q, {"d": doc})["applyCatalog"]
    assert again["unchanged"] == ["system:a", "system:b"] and again["relationsAdded"] == 0


def test_errors_carry_codes_and_name_the_field(gql: GraphQLClient) -> None:
    cases = [
        (
            'mutation { upsertNode(input: {id: "nope:x", name: "X"}) { id } }',
            "BAD_USER_INPUT",
            "input.id",
        ),
        (
            'mutation { upsertNode(input: {id: "system:a", name: ""}) { id } }',
            "BAD_USER_INPUT",
            "input.name",
        ),
        (
            'mutation { upsertNode(input: {id: "system:a", name: "A", owner: "team:x"}) { id } }',
            "NOT_FOUND",
            "input.owner",
        ),
        ('mutation { retire(id: "system:ghost") { id } }', "NOT_FOUND", "id"),
        (
            'mutation { relate(input: {from: "capability:a", type: PROVIDES, to: "system:a"}) { type } }',
            "BAD_USER_INPUT",
            "PROVIDES",
        ),
        ('mutation { applyCatalog(document: "nodes: [") { added } }', "BAD_USER_INPUT", "line"),
        ("{ nodes(first: 100000) { totalCount } }", "BAD_USER_INPUT", "first"),
        ('{ nodes(after: "garbage") { totalCount } }', "BAD_USER_INPUT", "after"),
        ("{ nope }", "BAD_USER_INPUT", "nope"),
        ("{ node(id: ", "BAD_USER_INPUT", "Syntax Error"),
    ]
    for query, code, words in cases:
        err = gql.error(query)
        assert err["extensions"]["code"] == code, (query, err)
        assert words in err["message"], (query, err)
    assert gql.data("{ nodes { totalCount } }")["nodes"]["totalCount"] == 0


def test_stale_expected_version_is_a_conflict(gql: GraphQLClient) -> None:
    gql.data('mutation { upsertNode(input: {id: "system:a", name: "A"}) { version } }')
    err = gql.error(
        'mutation { upsertNode(input: {id: "system:a", name: "B", expectedVersion: 3}) { id } }'
    )
    assert err["extensions"]["code"] == "CONFLICT"
    assert gql.data('{ node(id: "system:a") { name version } }')["node"] == {
        "name": "A",
        "version": 1,
    }


def test_query_depth_is_limited(gql: GraphQLClient) -> None:
    deep = (
        '{ node(id: "system:a") { ... on System { '
        + "dependsOn { " * 14
        + "id"
        + " }" * 14
        + " } } }"
    )
    err = gql.error(deep)
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert "depth" in err["message"]


def test_federation_entities_resolve_by_id(demo_gql: GraphQLClient) -> None:
    q = """query($r: [_Any!]!) { _entities(representations: $r) {
      ... on System { id name } ... on Capability { id name } } }"""
    reps = [
        {"__typename": "System", "id": "system:crm"},
        {"__typename": "Capability", "id": "capability:nope"},
    ]
    ents = demo_gql.data(q, {"r": reps})["_entities"]
    assert ents[0]["id"] == "system:crm" and ents[1] is None
    sdl = demo_gql.data("{ _service { sdl } }")["_service"]["sdl"]
    assert '@key(fields: "id")' in sdl


def test_later_mutations_in_one_request_see_earlier_ones(gql: GraphQLClient) -> None:
    data = gql.data(
        """mutation {
          a: upsertNode(input: {id: "system:a", name: "A"}) { id }
          b: upsertNode(input: {id: "system:b", name: "B"}) { id }
          r: relate(input: {from: "system:a", type: DEPENDS_ON, to: "system:b"}) { type }
          x: upsertNode(input: {id: "system:a", name: "A"}) { ... on System { dependsOn { id name } } }
          u: unrelate(input: {from: "system:a", type: DEPENDS_ON, to: "system:b"})
          n: upsertNode(input: {id: "system:b", name: "B2"}) { name }
          y: upsertNode(input: {id: "system:a", name: "A"}) { ... on System { dependsOn { id } } }
        }"""
    )
    assert data["x"]["dependsOn"] == [{"id": "system:b", "name": "B"}]
    assert data["y"]["dependsOn"] == []


def test_several_operations_need_an_operation_name(demo_gql: GraphQLClient) -> None:
    doc = 'mutation B { retire(id: "system:crm") { id } } query A { node(id: "system:crm") { lifecycle } }'
    err = demo_gql.error(doc)
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "operationName" in err["message"]
    body = demo_gql.http.post("/graphql", json={"query": doc, "operationName": "A"}).json()
    assert body["data"]["node"]["lifecycle"] == "ACTIVE"  # the mutation did not run


def test_fields_after_a_mutation_read_what_it_wrote(gql: GraphQLClient) -> None:
    """Every mutation empties the request's dataloaders once it has written (``FreshReads``):
    a later mutation's fields in the same request see the earlier writes, not what the
    request loaded before them."""
    data = gql.data(
        """mutation {
          a: upsertNode(input: {id: "system:crm", name: "CRM"}) { id relations { type } }
          b: upsertNode(input: {id: "system:erp", name: "ERP"}) { id }
          c: relate(input: {from: "system:crm", type: DEPENDS_ON, to: "system:erp"}) { type }
          d: upsertNode(input: {id: "system:crm", description: "the CRM"}) {
            id description relations { type to { id name } }
          }
          e: unrelate(input: {from: "system:crm", type: DEPENDS_ON, to: "system:erp"})
          f: retire(id: "system:erp") { id lifecycle }
          g: upsertNode(input: {id: "system:crm", name: "CRM"}) { relations { type } }
        }"""
    )
    assert data["a"]["relations"] == []
    assert data["d"]["description"] == "the CRM"
    assert data["d"]["relations"] == [
        {"type": "DEPENDS_ON", "to": {"id": "system:erp", "name": "ERP"}}
    ]
    assert data["e"] is True and data["f"]["lifecycle"] == "RETIRED"
    assert data["g"]["relations"] == []

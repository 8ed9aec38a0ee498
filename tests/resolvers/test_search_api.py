"""The ``search`` query through the real app, on the demo landscape."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.demo import demo_document
from tests.conftest import GraphQLClient

SEARCH = """
query($q: String!, $kinds: [Kind!], $tags: [String!], $domain: ID, $lifecycle: [Lifecycle!],
      $first: Int, $after: String) {
  search(query: $q, kinds: $kinds, tags: $tags, domain: $domain, lifecycle: $lifecycle,
         first: $first, after: $after) {
    totalCount
    hits { score highlight node { id kind name ... on Capability { providers { id } } } }
    facets {
      kind { value count } tag { value count } domain { value count }
      lifecycle { value count } owner { value count }
    }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""

CHANGE_ORDER = "capability:order-management.order-capture.change-order"


def search(gql: GraphQLClient, q: str, **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = gql.data(SEARCH, {"q": q, **variables})["search"]
    return result


def hit_ids(result: dict[str, Any]) -> list[str]:
    return [h["node"]["id"] for h in result["hits"]]


def demo_nodes() -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = yaml.safe_load(demo_document())["nodes"]
    return nodes


# -- realistic queries on the demo landscape ----------------------------------------------------


def test_change_order_finds_the_capability_first(demo_gql: GraphQLClient) -> None:
    result = search(demo_gql, "change order")
    assert hit_ids(result)[0] == CHANGE_ORDER
    top = result["hits"][0]
    assert top["node"]["providers"] == [{"id": "system:webshop"}]
    assert "<mark>Change</mark>" in top["highlight"] and "<mark>order</mark>" in top["highlight"]


def test_customer_puts_the_customer_entity_on_top(demo_gql: GraphQLClient) -> None:
    result = search(demo_gql, "customer")
    assert hit_ids(result)[0] == "entity:customer"
    assert "entity:webshop.customer" in hit_ids(result)[:3]
    assert result["totalCount"] > 20
    kinds = {f["value"] for f in result["facets"]["kind"]}
    assert {"DATA_ENTITY", "CAPABILITY", "SYSTEM"} <= kinds


def test_typing_a_prefix_finds_customer(demo_gql: GraphQLClient) -> None:
    assert hit_ids(search(demo_gql, "cust"))[0] == "entity:customer"
    assert hit_ids(search(demo_gql, "change ord"))[0] == CHANGE_ORDER


def test_pii_finds_exactly_the_entities_with_pii_attributes(demo_gql: GraphQLClient) -> None:
    expected = {
        n["id"]
        for n in demo_nodes()
        if any(a.get("classification") == "PII" for a in n.get("attributes", []))
    }
    result = search(demo_gql, "pii", first=100)
    assert set(hit_ids(result)) == expected
    assert result["facets"]["kind"] == [{"value": "DATA_ENTITY", "count": len(expected)}]
    assert all("<mark>PII</mark>" in h["highlight"] for h in result["hits"])


def test_consent_ranks_entity_then_capabilities(demo_gql: GraphQLClient) -> None:
    ids = hit_ids(search(demo_gql, "consent"))
    assert ids[0] == "entity:consent"
    assert set(ids[1:3]) == {
        "capability:consent-management",
        "capability:consent-management.consent-capture",
    }
    assert "system:marketing-automation" in ids  # "... subscriptions and consent records"


def test_crm_finds_the_system_first_then_what_it_provides(demo_gql: GraphQLClient) -> None:
    result = search(demo_gql, "crm", first=50)
    ids = hit_ids(result)
    assert ids[:2] == ["system:crm", "entity:crm.contact"]
    # Found by the name of the system that provides them.
    assert "capability:customer-profile-management.profile-maintenance.update-profile" in ids


def test_quoted_phrase_matches_words_in_order(demo_gql: GraphQLClient) -> None:
    assert hit_ids(search(demo_gql, '"order capture"'))[0] == (
        "capability:order-management.order-capture"
    )
    assert search(demo_gql, '"capture order"')["totalCount"] == 0


def test_filters_domain_kinds_tags_lifecycle(demo_gql: GraphQLClient) -> None:
    result = search(demo_gql, "order", domain="domain:commerce", kinds=["CAPABILITY"])
    assert CHANGE_ORDER in hit_ids(result)
    assert result["facets"]["domain"][0] == {
        "value": "domain:commerce",
        "count": len(result["hits"]),
    }
    assert all(h["node"]["kind"] == "CAPABILITY" for h in result["hits"])
    deprecated = search(demo_gql, "loyalty", lifecycle=["DEPRECATED"])
    assert hit_ids(deprecated) == ["system:legacy-loyalty"]
    tagged = search(demo_gql, "customer", tags=["gdpr"])
    assert tagged["hits"] and all(
        "consent" in h["node"]["id"] or "preference" in h["node"]["id"] for h in tagged["hits"]
    )


def test_cursors_walk_the_whole_result(demo_gql: GraphQLClient) -> None:
    full = search(demo_gql, "customer", first=100)
    seen: list[str] = []
    after = None
    while True:
        page = search(demo_gql, "customer", first=7, after=after)
        assert page["totalCount"] == full["totalCount"]
        assert page["facets"] == full["facets"]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        seen.extend(hit_ids(page))
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == hit_ids(full)


def test_registered_capability_is_found_by_the_next_request(demo_gql: GraphQLClient) -> None:
    demo_gql.data(
        """mutation { registerCapability(input: {
             key: "order-management.order-capture.split-parcel", name: "Split Parcel",
             description: "Split an order into several parcels.",
             parent: "capability:order-management.order-capture",
             providedBy: ["system:erp"]}) { id } }"""
    )
    result = search(demo_gql, "split parcel")
    assert hit_ids(result)[0] == "capability:order-management.order-capture.split-parcel"
    assert result["facets"]["domain"] == [{"value": "domain:commerce", "count": 1}]
    erp = hit_ids(search(demo_gql, "erp", first=100))
    assert "capability:order-management.order-capture.split-parcel" in erp


# -- refusals -----------------------------------------------------------------------------------


def test_overlong_query_is_bad_user_input_naming_the_field(demo_gql: GraphQLClient) -> None:
    err = demo_gql.error(SEARCH, {"q": "customer " * 1200})
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert err["extensions"]["field"] == "query"
    assert "at most 500 characters" in err["message"]


def test_bad_arguments_are_bad_user_input(demo_gql: GraphQLClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"after": "bm90LWEtY3Vyc29y"}, "after"),
        ({"after": "Yzpzb3JkZXI="}, "after"),  # a node listing's cursor, not a search one
        ({"first": -1}, "first"),
        ({"first": 100_000}, "first"),
        ({"domain": "system:crm"}, "domain"),
        ({"domain": "not an id"}, "domain"),
        ({"tags": [""]}, "tags"),
    ]
    for variables, field in cases:
        err = demo_gql.error(SEARCH, {"q": "order", **variables})
        assert err["extensions"]["code"] == "BAD_USER_INPUT", (variables, err)
        assert err["extensions"]["field"] == field


def test_nothing_to_search_for_is_an_empty_result(demo_gql: GraphQLClient) -> None:
    for q in ["", "   ", "🎉🎉", '""', "*", "()"]:
        result = search(demo_gql, q)
        assert result["totalCount"] == 0 and result["hits"] == []
        assert result["pageInfo"] == {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        }


NASTY = st.sampled_from(
    ['"', "'", "*", "(", ")", "AND", "OR", "NOT", "NEAR", "NEAR/2", ":", "^", "-", "+", "{", "}",
     "\\", "\x00", "%", "_", "🎉", "Ω", "é", "order", "cust", " ", "\n", "\t", "<b>", "&", "|"]
)  # fmt: skip
QUERIES = st.one_of(
    st.text(max_size=80),
    st.lists(NASTY, max_size=40).map(" ".join),
    st.lists(NASTY, max_size=40).map("".join),
    st.text(min_size=490, max_size=10_000),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(q=QUERIES, first=st.integers(-5, 600), tag=st.none() | st.text(max_size=20))
def test_any_query_answers_or_is_refused_never_internal(
    demo_gql: GraphQLClient, q: str, first: int, tag: str | None
) -> None:
    variables: dict[str, Any] = {"q": q, "first": first}
    if tag is not None:
        variables["tags"] = [tag]
    body = demo_gql.post(SEARCH, variables)
    if body.get("errors"):
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], body
    else:
        result = body["data"]["search"]
        assert len(result["hits"]) <= max(first, 0) and result["totalCount"] >= len(result["hits"])

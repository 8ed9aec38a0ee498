"""GraphQL harvesting from an SDL file, an introspection file and a live endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from graphql import build_schema, introspection_from_schema

from catalog.harvest import HarvestService, SourceSpec, SourceType
from catalog.services import Services
from metadata.errors import BadSourceDataError, SourceUnavailableError
from metadata.model import Lifecycle, NodeRecord, RelationRecord, RelationType
from tests.catalog.harvest.conftest import FIXTURES, FakeSite, fixture_text, history_count

R = RelationType
SDL = fixture_text("customer-service.graphql")


def introspection() -> dict[str, object]:
    """The fixture schema's introspection result, as a server would answer it."""
    clean = SDL.replace("  notes: [CaseNote!]!\n  status: CaseStatus!\n", "  notes: [CaseNote!]!\n")
    return {"data": introspection_from_schema(build_schema(clean))}


def gql_source(location: str | Path, key: str = "care-graph") -> SourceSpec:
    return SourceSpec.build(
        {
            "key": key,
            "name": "Care graph",
            "type": SourceType.GRAPHQL,
            "location": str(location),
            "system": "system:callcenter",
        }
    )


async def load(services: Services, *ids: str) -> dict[str, NodeRecord]:
    async with services.store.read() as r:
        return await r.get_nodes(list(ids))


async def rels(services: Services, node_id: str) -> list[RelationRecord]:
    async with services.store.read() as r:
        return await r.relations_from([node_id])


def to(rels: list[RelationRecord], rtype: RelationType) -> set[str]:
    return {r.to_id for r in rels if r.type is rtype}


async def check_graph(services: Services, added: list[str]) -> None:
    entities = {i for i in added if i.startswith("entity:")}
    assert entities == {
        f"entity:care-graph.{n}"
        for n in ("customer", "organization", "service-case", "case-note", "agent", "order")
    }
    caps = {i for i in added if i.startswith("capability:")}
    assert "capability:care-graph.query.customer-by-email" in caps
    assert "capability:care-graph.mutation.open-case" in caps
    assert "capability:care-graph.subscription.case-updated" in caps
    assert "capability:care-graph.query" in caps  # the group of the Query fields
    found = await load(
        services,
        "entity:care-graph.customer",
        "entity:care-graph.service-case",
        "entity:care-graph.agent",
        "capability:care-graph.query.find-party",
        "capability:care-graph.query.open-cases",
    )
    customer = found["entity:care-graph.customer"]
    assert customer.description == "A private customer."
    attrs = {a["name"]: a for a in customer.attributes}
    assert attrs["email"]["type"] == "EmailAddress" and attrs["email"]["classification"] == "PII"
    assert attrs["dateOfBirth"]["classification"] == "PII"
    assert attrs["phone"]["description"] == "Mobile number in E.164."
    assert attrs["cases"]["type"] == "[ServiceCase!]!"
    assert (customer.properties or {})["implements"] == ["Node", "Party"]
    assert (customer.properties or {})["unions"] == ["SearchResult"]
    case_attrs = [a["name"] for a in found["entity:care-graph.service-case"].attributes]
    assert case_attrs.count("status") == 1
    assert "email" in {a["name"] for a in found["entity:care-graph.agent"].attributes}  # extension
    assert found["capability:care-graph.query.find-party"].lifecycle is Lifecycle.DEPRECATED
    props = found["capability:care-graph.query.open-cases"].properties or {}
    assert props["protocol"] == "GRAPHQL" and props["operationType"] == "query"
    assert props["arguments"] == ["agentId: ID", "first: Int"]

    # Query fields READ, Mutation fields WRITE; interfaces and unions stand for their objects.
    assert to(await rels(services, "capability:care-graph.query.customer"), R.READS) == {
        "entity:care-graph.customer"
    }
    assert to(await rels(services, "capability:care-graph.query.search"), R.READS) == {
        "entity:care-graph.customer",
        "entity:care-graph.organization",
        "entity:care-graph.service-case",
        "entity:care-graph.order",
    }
    assert to(await rels(services, "capability:care-graph.query.find-party"), R.READS) == {
        "entity:care-graph.customer",
        "entity:care-graph.organization",
    }
    assert len(to(await rels(services, "capability:care-graph.query.node"), R.READS)) == 6
    open_case = await rels(services, "capability:care-graph.mutation.open-case")
    assert to(open_case, R.WRITES) == {"entity:care-graph.service-case"}
    assert to(open_case, R.PART_OF) == {"capability:care-graph.mutation"}
    assert to(await rels(services, "capability:care-graph.subscription.case-updated"), R.READS) == {
        "entity:care-graph.service-case"
    }


async def test_harvest_sdl_file(hub: Services) -> None:
    report = await hub.harvest.harvest_location(gql_source(FIXTURES / "customer-service.graphql"))
    await check_graph(hub, report.added)
    assert any("ServiceCase.status is defined twice" in w for w in report.warnings)
    before = await history_count(hub)
    again = await hub.harvest.harvest_location(gql_source(FIXTURES / "customer-service.graphql"))
    assert again.updated == [] and again.added == [] and await history_count(hub) == before


async def test_harvest_introspection_file(hub: Services, tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(introspection()))
    report = await hub.harvest.harvest_location(gql_source(path))
    await check_graph(hub, report.added)


async def test_harvest_live_endpoint_by_introspection(
    make_harvest: Callable[..., HarvestService],
    site: FakeSite,
    hub: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAPAHUB_CRED_CARE", "s3cr3t-token")
    url = site.serve("/graphql", json.dumps(introspection()), require_auth="Bearer s3cr3t-token")
    spec = SourceSpec.build(
        {
            "key": "care-graph",
            "name": "Care graph",
            "type": SourceType.GRAPHQL,
            "location": url,
            "system": "system:callcenter",
            "credentialsEnv": "CAPAHUB_CRED_CARE",
        }
    )
    service = make_harvest(harvest_allowed_hosts="127.0.0.1")
    report = await service.harvest_location(spec, trusted=False)
    await check_graph(hub, report.added)
    assert site.seen[-1]["authorization"] == "Bearer s3cr3t-token"
    endpoint = (await load(hub, "capability:care-graph.query.customer"))[
        "capability:care-graph.query.customer"
    ]
    assert (endpoint.properties or {})["endpoint"] == url
    source = (await load(hub, "source:care-graph"))["source:care-graph"]
    assert "s3cr3t" not in json.dumps(source.properties)

    # Wrong credentials: a clear error, nothing written, nothing echoed.
    monkeypatch.setenv("CAPAHUB_CRED_CARE", "wrong-token")
    before = await history_count(hub)
    with pytest.raises(SourceUnavailableError, match="HTTP 401") as err:
        await service.harvest_source("source:care-graph")
    assert "wrong-token" not in err.value.message
    assert await history_count(hub) == before


async def test_introspection_errors_and_bad_sdl(
    make_harvest: Callable[..., HarvestService], site: FakeSite, tmp_path: Path
) -> None:
    service = make_harvest(harvest_allowed_hosts="127.0.0.1")
    url = site.serve("/refused", json.dumps({"errors": [{"message": "introspection is disabled"}]}))
    with pytest.raises(
        BadSourceDataError, match="introspection was refused: introspection is disabled"
    ):
        await service.harvest_location(gql_source(url))
    url = site.serve("/html", "<html>hello</html>", content_type="text/html")
    with pytest.raises(BadSourceDataError, match="did not answer with JSON"):
        await service.harvest_location(gql_source(url))
    bad = tmp_path / "bad.graphql"
    bad.write_text("type Query {\n  customer(id: ID!: Customer\n}\n")
    with pytest.raises(BadSourceDataError, match=r"not valid GraphQL SDL at line 2"):
        await service.harvest_location(gql_source(bad))

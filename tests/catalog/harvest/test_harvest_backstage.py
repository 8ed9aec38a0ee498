"""Backstage catalog files (every kind) mapped onto the metamodel."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.harvest import SourceSpec, SourceType
from catalog.harvest.backstage import parse_ref
from catalog.services import Services
from metadata.errors import BadSourceDataError
from metadata.model import Kind, Lifecycle, NodeRecord, RelationType
from tests.catalog.harvest.conftest import FIXTURES, history_count

R = RelationType
P = "catalog"  # the source key: ids are <prefix>:catalog.<name>


def source(location: str | Path) -> SourceSpec:
    return SourceSpec.build(
        {
            "key": P,
            "name": "Backstage",
            "type": SourceType.BACKSTAGE,
            "location": str(location),
            "system": "system:portal",
        }
    )


async def load(services: Services, *ids: str) -> dict[str, NodeRecord]:
    async with services.store.read() as r:
        return await r.get_nodes(list(ids))


async def edges(services: Services) -> set[tuple[str, str, str]]:
    async with services.store.read() as r:
        return {
            (x.from_id, x.type.value, x.to_id)
            for x in await r.all_relations()
            if x.type is not R.HARVESTED_FROM and x.from_id.split(":")[1].startswith(f"{P}.")
        }


def test_parse_ref() -> None:
    assert parse_ref("orders-api", "api", "default") == ("api", "default", "orders-api")
    assert parse_ref("group:team-a", "group", "default") == ("group", "default", "team-a")
    assert parse_ref("component:payments/adapter", "component", "x") == (
        "component",
        "payments",
        "adapter",
    )
    assert parse_ref("Ops/Team-B", "group", "default") == ("group", "ops", "team-b")
    assert parse_ref({"kind": "User", "name": "jdoe"}, "group", "default") == (
        "user",
        "default",
        "jdoe",
    )
    assert parse_ref("", "group", "default") is None


async def test_harvest_backstage_catalog_with_every_kind(hub: Services) -> None:
    report = await hub.harvest.harvest_location(source(FIXTURES / "catalog-info.yaml"))
    by_kind: dict[str, set[str]] = {}
    for node_id in report.added:
        by_kind.setdefault(node_id.split(":")[0], set()).add(node_id.split(".", 1)[1])
    assert by_kind == {
        "domain": {"commerce", "service", "returns"},
        "system": {
            "webshop",
            "call-center",
            "checkout",
            "catalog-service",
            "storefront",
            "payment-adapter",
            "agent-desktop",
            "legacy-ivr",
            "orders-db",
            "recordings-bucket",
        },
        "capability": {"orders-api", "catalog-api", "payments-api", "customer-graph"},
        "team": {"commerce-leads", "commerce-platform", "customer-care"},
    }
    found = await load(
        hub,
        f"system:{P}.checkout",
        f"system:{P}.webshop",
        f"system:{P}.payment-adapter",
        f"system:{P}.legacy-ivr",
        f"capability:{P}.orders-api",
        f"team:{P}.commerce-platform",
        f"domain:{P}.returns",
    )
    checkout = found[f"system:{P}.checkout"]
    assert checkout.name == "Checkout Service"
    assert checkout.owner == f"team:{P}.commerce-platform"
    assert checkout.tags == ("java", "spring")
    backstage = (checkout.properties or {})["backstage"]
    assert backstage["kind"] == "Component" and backstage["type"] == "service"
    assert backstage["annotations"]["github.com/project-slug"] == "example/checkout"
    assert backstage["consumesApis"] == ["payments-api", "api:default/customer-graph"]
    assert found[f"system:{P}.legacy-ivr"].lifecycle is Lifecycle.DEPRECATED
    # Owned by a user: no team owner, the reference kept, a warning.
    adapter = found[f"system:{P}.payment-adapter"]
    assert adapter.owner is None and (adapter.properties or {})["backstage"]["owner"] == "user:jdoe"
    api = found[f"capability:{P}.orders-api"]
    assert api.kind is Kind.CAPABILITY and (api.properties or {})["protocol"] == "openapi"
    team = (found[f"team:{P}.commerce-platform"].properties or {})["backstage"]
    assert team["members"] == ["jdoe"] and team["parent"] == "commerce-leads"
    assert (found[f"domain:{P}.returns"].properties or {})["backstage"]["subdomainOf"] == "service"

    got = await edges(hub)
    expected = {
        (f"system:{P}.webshop", "PART_OF", f"domain:{P}.commerce"),
        (f"system:{P}.call-center", "PART_OF", f"domain:{P}.service"),
        (f"system:{P}.checkout", "PART_OF", f"system:{P}.webshop"),
        (f"system:{P}.payment-adapter", "PART_OF", f"system:{P}.checkout"),
        (f"system:{P}.orders-db", "PART_OF", f"system:{P}.webshop"),
        (f"system:{P}.checkout", "PROVIDES", f"capability:{P}.orders-api"),
        (f"system:{P}.payment-adapter", "PROVIDES", f"capability:{P}.payments-api"),
        (f"system:{P}.webshop", "PROVIDES", f"capability:{P}.orders-api"),
        (f"system:{P}.call-center", "PROVIDES", f"capability:{P}.customer-graph"),
        (f"system:{P}.checkout", "DEPENDS_ON", f"system:{P}.orders-db"),
        (f"system:{P}.checkout", "DEPENDS_ON", f"system:{P}.catalog-service"),
        (
            f"system:{P}.checkout",
            "DEPENDS_ON",
            f"system:{P}.call-center",
        ),  # consumes customer-graph
        (f"system:{P}.storefront", "DEPENDS_ON", f"system:{P}.checkout"),  # consumes orders-api
        (f"system:{P}.storefront", "DEPENDS_ON", f"system:{P}.catalog-service"),
        (f"system:{P}.legacy-ivr", "DEPENDS_ON", f"system:{P}.agent-desktop"),
        (f"system:{P}.legacy-ivr", "DEPENDS_ON", f"system:{P}.recordings-bucket"),  # dependencyOf
    }
    assert expected <= got
    # Consuming an API of its own parts is not a dependency on itself.
    assert (f"system:{P}.checkout", "DEPENDS_ON", f"system:{P}.payment-adapter") in got
    assert (f"system:{P}.checkout", "DEPENDS_ON", f"system:{P}.webshop") not in got
    assert (f"system:{P}.agent-desktop", "DEPENDS_ON", f"system:{P}.call-center") not in got

    text = "\n".join(report.warnings)
    assert "Location commerce-landscape: locations are not followed" in text
    assert "Template new-service: kind Template has no counterpart" in text
    assert "2 users are not nodes" in text
    assert "1 entity is owned by a user" in text
    assert "1 group has a parent group" in text
    assert "1 domain is a subdomain" in text
    assert "4 API definitions are not parsed" in text

    before = await history_count(hub)
    again = await hub.harvest.harvest_location(source(FIXTURES / "catalog-info.yaml"))
    assert again.updated == [] and again.added == [] and await history_count(hub) == before


async def test_messy_backstage_file_harvests_what_it_can(hub: Services, tmp_path: Path) -> None:
    path = tmp_path / "catalog-info.yaml"
    path.write_text(
        """
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: alpha}
spec: {owner: ghosts, system: nowhere, lifecycle: sunset, dependsOn: [component:beta]}
---
- just a list
---
kind: Component
spec: {}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: beta}
spec: {subcomponentOf: gamma, dependsOn: [api:missing]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: gamma}
spec: {subcomponentOf: beta}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: alpha}
spec: {}
"""
    )
    report = await hub.harvest.harvest_location(source(path))
    assert sorted(report.added) == [f"system:{P}.alpha", f"system:{P}.beta", f"system:{P}.gamma"]
    text = "\n".join(report.warnings)
    assert "document 2: not a mapping; skipped" in text
    assert "document 3: no kind or metadata.name; skipped" in text
    assert "owner 'ghosts' is not a group of this file" in text
    assert "system 'nowhere' is not in this file" in text
    assert "lifecycle 'sunset' has no counterpart" in text
    assert "appears twice" in text
    assert "would make the hierarchy a cycle" in text
    got = await edges(hub)
    assert (f"system:{P}.alpha", "DEPENDS_ON", f"system:{P}.beta") in got
    part_of = {e for e in got if e[1] == "PART_OF"}
    assert len(part_of) == 1  # one of beta/gamma's mutual parents was left out


async def test_not_a_backstage_file(hub: Services, tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("replicas: 3\nimage: shop:1.2\n")
    with pytest.raises(BadSourceDataError, match="not a Backstage catalog file"):
        await hub.harvest.harvest_location(source(path))

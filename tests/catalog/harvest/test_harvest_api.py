"""``registerSource`` and ``harvest`` through the real app: policy, codes, reports."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.catalog.harvest.conftest import FIXTURES, SYSTEMS, FakeSite, fixture_text
from tests.conftest import GraphQLClient

REGISTER = """
mutation($input: SourceInput!) {
  registerSource(input: $input) { id name properties system { id } }
}"""
HARVEST = """
mutation($source: ID!, $dryRun: Boolean) {
  harvest(source: $source, dryRun: $dryRun) {
    added updated retired unchanged warnings relationsAdded relationsRemoved dryRun
  }
}"""


def source_input(location: str, **extra: Any) -> dict[str, Any]:
    return {
        "input": {
            "key": "shop-api",
            "name": "Shop API",
            "type": "OPENAPI",
            "location": location,
            "system": "system:webshop",
            **extra,
        }
    }


@pytest.fixture
def specs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "specs"
    path.mkdir()
    for name in ("shop-openapi.yaml", "customer-service.graphql", "catalog-info.yaml"):
        shutil.copy(FIXTURES / name, path / name)
    return path


@pytest.fixture
def api(app_factory: Callable[..., GraphQLClient], specs_dir: Path) -> GraphQLClient:
    client = app_factory(harvest_file_roots=str(specs_dir))
    client.data("mutation($d: String!) { applyCatalog(document: $d) { added } }", {"d": SYSTEMS})
    return client


def test_register_and_harvest_through_the_api(api: GraphQLClient, specs_dir: Path) -> None:
    registered = api.data(REGISTER, source_input(str(specs_dir / "shop-openapi.yaml")))[
        "registerSource"
    ]
    assert registered["id"] == "source:shop-api"
    assert registered["system"] == {"id": "system:webshop"}
    assert registered["properties"] == {
        "type": "OPENAPI",
        "location": str(specs_dir / "shop-openapi.yaml"),
    }

    dry = api.data(HARVEST, {"source": "source:shop-api", "dryRun": True})["harvest"]
    assert dry["dryRun"] is True and len(dry["added"]) == 39
    assert api.data('{ node(id: "capability:shop-api.get-order") { id } }')["node"] is None

    report = api.data(HARVEST, {"source": "source:shop-api"})["harvest"]
    assert len(report["added"]) == 39 and report["unchanged"] == 0 and not report["dryRun"]
    assert report["warnings"]
    node = api.data(
        '{ node(id: "capability:shop-api.get-order") { name ... on Capability { providers { id } '
        "reads { id } parent { id } } } }"
    )["node"]
    assert node["providers"] == [{"id": "system:webshop"}]
    assert node["parent"] == {"id": "capability:shop-api.tags.orders"}
    assert {"id": "entity:shop-api.order"} in node["reads"]
    source = api.data('{ node(id: "source:shop-api") { ... on Source { harvested { id } } } }')
    assert len(source["node"]["harvested"]) == 39

    again = api.data(HARVEST, {"source": "source:shop-api"})["harvest"]
    assert again["added"] == again["updated"] == again["retired"] == []
    assert again["unchanged"] == 39 and again["relationsAdded"] == 0


DIFF = """
mutation($source: ID!, $dryRun: Boolean) {
  harvest(source: $source, dryRun: $dryRun) {
    added updated retired relationsAdded relationsUpdated relationsRemoved dryRun
    changes { id operation fields { field before after } }
    relationChanges { operation from type to properties before }
  }
}"""


def test_harvest_reports_the_write_paths_diff(api: GraphQLClient, specs_dir: Path) -> None:
    """A harvest's report is the write path's: the dry run shows the diff (fields before ->
    after, relations) that the harvest then writes and reports, as ``applyCatalog`` does."""
    spec = specs_dir / "shop-openapi.yaml"
    api.data(REGISTER, source_input(str(spec)))
    dry = api.data(DIFF, {"source": "source:shop-api", "dryRun": True})["harvest"]
    assert dry["dryRun"] is True
    assert {c["id"] for c in dry["changes"]} == set(dry["added"]) and len(dry["added"]) == 39
    added = next(c for c in dry["changes"] if c["id"] == "capability:shop-api.get-order")
    assert added["operation"] == "ADDED"
    assert {"field": "name", "before": None, "after": "Get an order"} in added["fields"]
    assert len(dry["relationChanges"]) == dry["relationsAdded"] > 0
    provides = [
        r
        for r in dry["relationChanges"]
        if r["to"] == "capability:shop-api.get-order" and r["type"] == "PROVIDES"
    ]
    assert [(r["operation"], r["from"]) for r in provides] == [("ADDED", "system:webshop")]

    done = api.data(DIFF, {"source": "source:shop-api"})["harvest"]
    assert {**done, "dryRun": True} == dry  # what was shown is what was written

    # The spec loses an operation: retired (a field before -> after), its relations removed.
    text = spec.read_text()
    start = text.index("  /orders/{orderId}:")
    spec.write_text(text[:start] + text[text.index("\n  /", start + 1) + 1 :])
    again = api.data(DIFF, {"source": "source:shop-api", "dryRun": True})["harvest"]
    assert "capability:shop-api.get-order" in again["retired"]
    retired = next(c for c in again["changes"] if c["id"] == "capability:shop-api.get-order")
    assert retired["operation"] == "UPDATED"
    assert {"field": "lifecycle", "before": "ACTIVE", "after": "RETIRED"} in retired["fields"]
    assert again["relationsRemoved"] == sum(
        r["operation"] == "REMOVED" for r in again["relationChanges"]
    )


@pytest.mark.parametrize(
    ("name", "location", "extra", "code", "text"),
    [
        (
            "outside roots",
            str(FIXTURES / "shop-openapi.yaml"),
            {},
            "FORBIDDEN",
            "outside the directories",
        ),
        ("scheme", "ftp://example.com/spec.yaml", {}, "FORBIDDEN", "ftp:// is not allowed"),
        (
            "password",
            "https://bob:hunter2@example.com/spec.yaml",
            {},
            "BAD_USER_INPUT",
            "contains a password",
        ),
        (
            "any env var",
            "https://example.com/spec.yaml",
            {"credentialsEnv": "AWS_SECRET_ACCESS_KEY"},
            "FORBIDDEN",
            "CAPAHUB_CRED_",
        ),
        (
            "bad env name",
            "https://example.com/spec.yaml",
            {"credentialsEnv": "not a name"},
            "BAD_USER_INPUT",
            "credentialsEnv",
        ),
        (
            "bad key",
            "https://example.com/spec.yaml",
            {"key": "Shop API!"},
            "BAD_USER_INPUT",
            "input.key",
        ),
        (
            "no system",
            "https://example.com/spec.yaml",
            {"system": "system:nope"},
            "NOT_FOUND",
            "system:nope",
        ),
        (
            "not a system",
            "https://example.com/spec.yaml",
            {"system": "team:curators"},
            "BAD_USER_INPUT",
            "input.system",
        ),
    ],
)
def test_register_source_refusals(
    api: GraphQLClient, name: str, location: str, extra: dict[str, Any], code: str, text: str
) -> None:
    err = api.error(REGISTER, source_input(location, **extra))
    assert err["extensions"]["code"] == code, err
    assert text in err["message"]
    assert "hunter2" not in json.dumps(err)
    assert api.data('{ node(id: "source:shop-api") { id } }')["node"] is None


def test_sql_source_with_password_is_refused(api: GraphQLClient) -> None:
    err = api.error(
        REGISTER, source_input("postgresql://shop:hunter2@db.example.com/shop", type="SQL")
    )
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert "hunter2" not in json.dumps(err)


def test_moving_a_source_to_another_system_conflicts(api: GraphQLClient, specs_dir: Path) -> None:
    api.data(REGISTER, source_input(str(specs_dir / "shop-openapi.yaml")))
    err = api.error(
        REGISTER, source_input(str(specs_dir / "shop-openapi.yaml"), system="system:erp")
    )
    assert err["extensions"]["code"] == "CONFLICT"
    renamed = api.data(REGISTER, source_input(str(specs_dir / "shop-openapi.yaml"), name="Shop v2"))
    assert renamed["registerSource"]["name"] == "Shop v2"


def test_harvest_errors_carry_codes(
    app_factory: Callable[..., GraphQLClient], specs_dir: Path, site: FakeSite
) -> None:
    api = app_factory(harvest_file_roots=str(specs_dir))
    api.data("mutation($d: String!) { applyCatalog(document: $d) { added } }", {"d": SYSTEMS})
    missing = api.error(HARVEST, {"source": "source:nope"})
    assert missing["extensions"]["code"] == "NOT_FOUND"
    not_source = api.error(HARVEST, {"source": "system:webshop"})
    assert not_source["extensions"]["code"] == "BAD_USER_INPUT"

    url = site.serve("/spec.yaml", fixture_text("shop-openapi.yaml"))
    api.data(REGISTER, source_input(url))
    forbidden = api.error(HARVEST, {"source": "source:shop-api"})
    assert forbidden["extensions"]["code"] == "FORBIDDEN"
    assert "CAPAHUB_HARVEST_ALLOWED_HOSTS" in forbidden["message"]
    assert site.seen == []

    (specs_dir / "broken.yaml").write_text(
        "openapi: 3.1.0\npaths:\n  /a:\n    get:\n      responses:\n        '200': {$ref: '#/components/responses/Gone'}\n"
    )
    api.data(REGISTER, source_input(str(specs_dir / "broken.yaml"), key="broken"))
    bad = api.error(HARVEST, {"source": "source:broken"})
    assert bad["extensions"]["code"] == "BAD_SOURCE_DATA"
    assert (
        bad["message"].startswith("source:broken: ")
        and "#/components/responses/Gone" in bad["message"]
    )

    api.data(REGISTER, source_input("http://127.0.0.1:1/spec.yaml", key="down"))
    allowed = app_factory(harvest_allowed_hosts="127.0.0.1")
    down = allowed.error(HARVEST, {"source": "source:down"})
    assert down["extensions"]["code"] == "SOURCE_UNAVAILABLE"
    ok = allowed.data(HARVEST, {"source": "source:shop-api"})["harvest"]
    assert len(ok["added"]) == 39


def test_missing_credentials_variable_is_reported_not_guessed(
    api: GraphQLClient, specs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAPAHUB_CRED_SHOP", raising=False)
    api.data(
        REGISTER,
        source_input(str(specs_dir / "shop-openapi.yaml"), credentialsEnv="CAPAHUB_CRED_SHOP"),
    )
    err = api.error(HARVEST, {"source": "source:shop-api"})
    assert err["extensions"]["code"] == "SOURCE_UNAVAILABLE"
    assert "CAPAHUB_CRED_SHOP" in err["message"] and "not set" in err["message"]


def test_register_source_with_an_unparsable_sql_url_is_bad_user_input(gql: Any) -> None:
    gql.data('mutation { upsertNode(input: {id: "system:s", name: "S"}) { id } }')
    err = gql.error(
        'mutation { registerSource(input: {key: "x", name: "X", type: SQL, location: "http://[::1", system: "system:s"}) { id } }'
    )
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "input.location" in err["message"]

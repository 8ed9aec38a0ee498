"""Live records across sources: real SQLite source files and a real, misbehaving HTTP server."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import parse_document
from tests.conftest import GraphQLClient

RECORDS = """query($e: ID!, $w: JSON, $f: Int, $a: String) { records(entity: $e, where: $w, first: $f, after: $a) {
  totalCount errors { source code message }
  edges { cursor node { key data sources conflicts { field values { system value } chosen reason } } }
  pageInfo { hasNextPage endCursor } } }"""


@pytest.fixture
def demo_gql(app_factory: Callable[..., GraphQLClient]) -> GraphQLClient:
    """The demo, with a cost limit that lets a page of 500 records with their conflicts and
    values through (about 211,000: docs/limits.md)."""
    return app_factory(demo=True, max_query_cost=250_000)


def test_demo_customer_is_unified_across_crm_webshop_and_erp(demo_gql: GraphQLClient) -> None:
    conn = demo_gql.data(RECORDS, {"e": "entity:customer", "f": 500})["records"]
    assert conn["errors"] == []
    assert conn["totalCount"] == 300  # CRM 1-250, webshop 100-300, ERP 150-300: 300 people
    by_sources = {tuple(e["node"]["sources"]) for e in conn["edges"]}
    assert ("system:crm", "system:erp", "system:webshop") in by_sources
    assert ("system:crm",) in by_sources
    conflicts = [c for e in conn["edges"] for c in e["node"]["conflicts"]]
    phone = next(c for c in conflicts if c["field"] == "phone")
    assert phone["chosen"] == next(
        v["value"] for v in phone["values"] if v["system"] == "system:crm"
    )
    assert "system of record" in phone["reason"]


def test_where_filters_on_the_merged_values_and_pages(demo_gql: GraphQLClient) -> None:
    first = demo_gql.data(RECORDS, {"e": "entity:customer", "w": {"country": "LU"}, "f": 10})[
        "records"
    ]
    assert first["totalCount"] > 10 and first["pageInfo"]["hasNextPage"]
    assert all(e["node"]["data"]["country"] == "LU" for e in first["edges"])
    rest = demo_gql.data(
        RECORDS,
        {
            "e": "entity:customer",
            "w": {"country": "LU"},
            "f": 500,
            "a": first["pageInfo"]["endCursor"],
        },
    )["records"]
    keys = [e["node"]["key"] for e in first["edges"] + rest["edges"]]
    assert len(keys) == len(set(keys)) == first["totalCount"]
    # A person filtered through the ERP still carries the webshop's and the CRM's fields.
    full = [e for e in first["edges"] if len(e["node"]["sources"]) == 3]
    assert full and all(e["node"]["data"]["first_name"] for e in full)


def test_metadata_and_live_data_in_one_query(demo_gql: GraphQLClient) -> None:
    node = demo_gql.data(
        """{ node(id: "entity:customer") { ... on DataEntity {
             stewards { id } masteredBy { id }
             records(first: 5) { totalCount edges { node { data sources } } } } } }"""
    )["node"]
    assert node["masteredBy"] and len(node["records"]["edges"]) == 5


def test_bad_records_input_is_refused(demo_gql: GraphQLClient) -> None:
    cases = [
        ({"e": "entity:customer", "w": {"shoe_colour": "red"}}, "where.shoe_colour"),
        ({"e": "entity:customer", "w": {"country": {"in": ["NL"]}}}, "where.country"),
        ({"e": "entity:campaign"}, "no source"),
        ({"e": "entity:ghost"}, "no node"),
        ({"e": "system:crm"}, "not a data entity"),
        ({"e": "entity:customer", "a": "bogus"}, "after"),
    ]
    for variables, words in cases:
        err = demo_gql.error(RECORDS, variables)
        assert err["extensions"]["code"] in ("BAD_USER_INPUT", "NOT_FOUND"), err
        assert words in err["message"], err


class _Source(BaseHTTPRequestHandler):
    """A REST source that misbehaves on purpose, by path."""

    rows = [
        {"mail": "a@example.com", "tel": "+31 1", "nation": "NL"},
        {"mail": "b@example.com", "tel": "+31 2", "nation": "BE"},
    ]

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/ok":
            self._send(200, json.dumps({"items": self.rows}).encode())
        elif path == "/fail":
            self._send(500, b'{"error": "boom"}')
        elif path == "/slow":
            time.sleep(1.5)
            self._send(200, b"[]")
        elif path == "/garbage":
            self._send(200, b"<html>not json")
        elif path == "/wrong-shape":
            self._send(200, b'{"items": "nope"}')
        else:  # /close: hang up without an answer
            self.close_connection = True
            self.connection.shutdown(2)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def rest_source() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Source)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _landscape(tmp_path: Path, base: str, path: str) -> str:
    db = tmp_path / "crm.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE contact (email TEXT, phone TEXT)")
    conn.executemany(
        "INSERT INTO contact VALUES (?, ?)",
        [("a@example.com", "+31 9"), ("c@example.com", "+31 3")],
    )
    conn.commit()
    conn.close()
    return f"""
nodes:
  - {{id: system:crm, name: CRM}}
  - {{id: system:shop, name: Shop}}
  - {{id: entity:customer, name: Customer, attributes: [{{name: email}}, {{name: phone}}, {{name: country}}]}}
  - {{id: entity:crm.contact, name: Contact, attributes: [{{name: email}}, {{name: phone}}]}}
  - {{id: entity:shop.customer, name: Shop customer, properties: {{live: {{path: "{path}"}}}},
     attributes: [{{name: mail}}, {{name: tel}}, {{name: nation}}]}}
  - {{id: source:crm-db, name: CRM db, properties: {{type: SQL, location: "sqlite:///{db}"}}}}
  - {{id: source:shop-api, name: Shop API, properties: {{type: REST, location: "{base}"}}}}
relations:
  - {{from: system:crm, type: MASTERS, to: entity:customer}}
  - {{from: system:crm, type: STORES, to: entity:crm.contact}}
  - {{from: system:shop, type: STORES, to: entity:shop.customer}}
  - {{from: source:crm-db, type: PART_OF, to: system:crm}}
  - {{from: source:shop-api, type: PART_OF, to: system:shop}}
  - {{from: entity:crm.contact, type: REPRESENTS, to: entity:customer, properties: {{matchKey: email, fields: {{email: email, phone: phone}}}}}}
  - {{from: entity:shop.customer, type: REPRESENTS, to: entity:customer, properties: {{matchKey: email, fields: {{email: mail, phone: tel, country: nation}}}}}}
"""


@pytest.fixture
async def live(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    """Services whose live-data policy allows the test's local server and files."""
    allowed = settings.model_copy(
        update={"harvest_allowed_hosts": "127.0.0.1", "harvest_file_roots": str(tmp_path)}
    )
    svc = await Services.start(allowed)
    try:
        yield svc
    finally:
        await svc.close()


async def test_rest_and_sql_sources_merge_with_master_winning(
    live: Services, rest_source: str, tmp_path: Path
) -> None:
    services = live
    await services.registry.apply_document(parse_document(_landscape(tmp_path, rest_source, "/ok")))
    page = await services.records.records("entity:customer", None, first=10, after=None)
    assert page.errors == [] and page.total == 3
    a = next(r for r in page.records if r.key == "a@example.com")
    assert a.sources == ["system:crm", "system:shop"]
    assert a.data == {"email": "a@example.com", "phone": "+31 9", "country": "NL"}
    assert [(c.field, c.chosen) for c in a.conflicts] == [("phone", "+31 9")]
    nl = await services.records.records("entity:customer", {"country": "NL"}, first=10, after=None)
    assert [r.key for r in nl.records] == ["a@example.com"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/fail", "SOURCE_UNAVAILABLE"),
        ("/slow", "SOURCE_UNAVAILABLE"),
        ("/close", "SOURCE_UNAVAILABLE"),
        ("/garbage", "BAD_SOURCE_DATA"),
        ("/wrong-shape", "BAD_SOURCE_DATA"),
    ],
)
async def test_a_failing_source_gives_partial_data_and_an_error(
    live: Services, rest_source: str, tmp_path: Path, path: str, code: str
) -> None:
    services = live
    services.records.connectors["REST"].timeout = 0.5  # type: ignore[attr-defined]
    services.records.connectors["REST"]._client.timeout = 0.5  # type: ignore[attr-defined]
    await services.registry.apply_document(parse_document(_landscape(tmp_path, rest_source, path)))
    started = time.monotonic()
    page = await services.records.records("entity:customer", None, first=10, after=None)
    assert time.monotonic() - started < 1.4  # bounded by the timeout, not the slow source
    assert [(e.source, e.code) for e in page.errors] == [("source:shop-api", code)]
    assert sorted(r.key for r in page.records) == ["a@example.com", "c@example.com"]


async def test_an_unreachable_database_is_reported_not_raised(
    live: Services, tmp_path: Path
) -> None:
    services = live
    doc = _landscape(tmp_path, "http://127.0.0.1:9", "/ok").replace(
        str(tmp_path / "crm.db"), str(tmp_path / "missing.db")
    )
    await services.registry.apply_document(parse_document(doc))
    page = await services.records.records("entity:customer", None, first=10, after=None)
    assert {e.source: e.code for e in page.errors} == {
        "source:crm-db": "SOURCE_UNAVAILABLE",
        "source:shop-api": "SOURCE_UNAVAILABLE",
    }
    assert page.records == []


async def test_live_data_obeys_the_api_policy(
    services: Services, rest_source: str, tmp_path: Path
) -> None:
    """Without allowed hosts and file roots, a local server and a file outside the roots are
    refused (FORBIDDEN) instead of read: editing a source must not reach internal addresses."""
    await services.registry.apply_document(parse_document(_landscape(tmp_path, rest_source, "/ok")))
    page = await services.records.records("entity:customer", None, first=10, after=None)
    assert {e.source: e.code for e in page.errors} == {
        "source:crm-db": "FORBIDDEN",
        "source:shop-api": "FORBIDDEN",
    }


async def test_credentials_need_the_api_prefix(
    live: Services, rest_source: str, tmp_path: Path
) -> None:
    doc = _landscape(tmp_path, rest_source, "/ok").replace(
        "{type: REST, location:", "{type: REST, credentialsEnv: HOME, location:"
    )
    await live.registry.apply_document(parse_document(doc))
    page = await live.records.records("entity:customer", None, first=10, after=None)
    assert [(e.source, e.code) for e in page.errors] == [("source:shop-api", "FORBIDDEN")]
    assert "CAPAHUB_CRED_" in page.errors[0].message


@pytest.mark.parametrize(
    "location", ["mysql://db.example.com/crm", "foo://x", "not a url", "http://[::1"]
)
async def test_a_broken_source_location_is_a_source_error_not_internal(
    live: Services, rest_source: str, tmp_path: Path, location: str
) -> None:
    doc = _landscape(tmp_path, rest_source, "/ok").replace(
        f"sqlite:///{tmp_path / 'crm.db'}", location
    )
    await live.registry.apply_document(parse_document(doc))
    page = await live.records.records("entity:customer", None, first=10, after=None)
    assert sorted(r.key for r in page.records) == ["a@example.com", "b@example.com"]  # the shop
    assert all(
        e.code in ("BAD_SOURCE_DATA", "SOURCE_UNAVAILABLE", "FORBIDDEN") for e in page.errors
    )


async def test_metadata_only_sources_are_not_used_for_live_data(
    live: Services, rest_source: str, tmp_path: Path
) -> None:
    doc = _landscape(tmp_path, rest_source, "/ok") + (
        "  - {from: source:a-crm-spec, type: PART_OF, to: system:crm}\n"
    )
    doc = doc.replace(
        "relations:",
        "  - {id: source:a-crm-spec, name: CRM spec, properties: {type: OPENAPI, location: /specs/crm.yaml}}\nrelations:",
    )
    await live.registry.apply_document(parse_document(doc))
    page = await live.records.records("entity:customer", None, first=10, after=None)
    assert page.errors == [] and page.total == 3


class _Api(BaseHTTPRequestHandler):
    """A small shop API: its OpenAPI document and the collection it describes."""

    spec: dict[str, Any] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/openapi.json":
            body = json.dumps(self.spec).encode()
        elif self.path.split("?")[0] == "/api/customers":
            body = json.dumps(
                {
                    "items": [
                        {"email": "a@example.com", "country": "NL"},
                        {"email": "z@example.com", "country": "BE"},
                    ]
                }
            ).encode()
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def test_a_harvested_openapi_collection_serves_live_records(live: Services) -> None:
    from catalog.harvest.base import SourceSpec

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _Api.spec = {
        "openapi": "3.1.0",
        "info": {"title": "Shop", "version": "1"},
        "servers": [{"url": f"{base}/api"}],
        "paths": {
            "/customers": {
                "get": {
                    "operationId": "listCustomers",
                    "parameters": [{"name": "page", "in": "query"}],
                    "responses": {"200": {"content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Customer"}},
                            "next": {"type": "string"},
                        },
                    }}}}},
                }
            }
        },
        "components": {"schemas": {"Customer": {"type": "object", "properties": {
            "email": {"type": "string", "format": "email"}, "country": {"type": "string"}}}}},
    }  # fmt: skip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        await live.registry.apply_document(parse_document("nodes: [{id: system:shop, name: Shop}]"))
        spec = SourceSpec.build(
            {
                "key": "shop-api",
                "name": "Shop API",
                "type": "openapi",
                "location": f"{base}/openapi.json",
                "system": "system:shop",
            }
        )
        await live.harvest.register_source(spec)
        await live.harvest.harvest_source("source:shop-api")
        nodes = await live.discovery.get_nodes(["entity:shop-api.customer"])
        assert nodes, "the harvest names the entity entity:<source>.<schema>"
        rec = nodes["entity:shop-api.customer"]
        assert rec.properties and rec.properties["live"] == {
            "method": "GET",
            "path": "/customers",
            "params": ["page"],
            "itemsKey": "items",
            "baseUrl": f"{base}/api",
        }
        page = await live.records.records(rec.id, {"country": "NL"}, first=10, after=None)
        assert page.errors == []
        assert [r.data for r in page.records] == [{"email": "a@example.com", "country": "NL"}]
    finally:
        server.shutdown()
        server.server_close()

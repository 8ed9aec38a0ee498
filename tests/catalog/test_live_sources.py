"""Live sources follow the catalog and their files: never old data, never a guessed source.

Real SQLite source files under ``tmp_path``: a changed location, a deleted file, a file
replaced (moved in, or copied over), a second source on a system, a named source.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from catalog.services import Services
from catalog.settings import Settings
from catalog.sources.base import Query, SourceRef, Target
from catalog.sources.records import RecordsPage
from catalog.sources.sql import SqlConnector
from catalog.specs import parse_document
from metadata.errors import BadSourceDataError, InvalidInputError, SourceUnavailableError
from resolvers import build_schema, make_context

CRM_ROWS = [("a@example.com", "+31 1"), ("b@example.com", "+31 2"), ("c@example.com", "+31 3")]
SHOP_ROWS = [("a@example.com", "NL"), ("d@example.com", "BE")]


def crm_db(path: Path, rows: list[tuple[str, str]]) -> Path:
    """A CRM database file with ``contact(email, phone)``."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contact (email TEXT, phone TEXT)")
    conn.executemany("INSERT INTO contact VALUES (?, ?)", rows)
    conn.commit()
    conn.close()
    return path


def shop_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customer (mail TEXT, nation TEXT)")
    conn.executemany("INSERT INTO customer VALUES (?, ?)", SHOP_ROWS)
    conn.commit()
    conn.close()
    return path


def landscape(crm: Path, shop: Path) -> str:
    return f"""
nodes:
  - {{id: system:crm, name: CRM}}
  - {{id: system:shop, name: Shop}}
  - {{id: entity:customer, name: Customer, attributes: [{{name: email}}, {{name: phone}}, {{name: country}}]}}
  - {{id: entity:crm.contact, name: Contact, attributes: [{{name: email}}, {{name: phone}}]}}
  - {{id: entity:shop.customer, name: Shop customer, attributes: [{{name: mail}}, {{name: nation}}]}}
  - {{id: source:crm-db, name: CRM db, properties: {{type: SQL, location: "sqlite:///{crm}"}}}}
  - {{id: source:shop-db, name: Shop db, properties: {{type: SQL, location: "sqlite:///{shop}"}}}}
relations:
  - {{from: system:crm, type: STORES, to: entity:crm.contact}}
  - {{from: system:shop, type: STORES, to: entity:shop.customer}}
  - {{from: source:crm-db, type: PART_OF, to: system:crm}}
  - {{from: source:shop-db, type: PART_OF, to: system:shop}}
  - {{from: entity:crm.contact, type: REPRESENTS, to: entity:customer, properties: {{matchKey: email, fields: {{email: email, phone: phone}}}}}}
  - {{from: entity:shop.customer, type: REPRESENTS, to: entity:customer, properties: {{matchKey: email, fields: {{email: mail, country: nation}}}}}}
"""


@pytest.fixture
async def live(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    """The server's services (projections on) on a catalog of two SQLite sources."""
    settings = Settings(  # type: ignore[call-arg]
        database_url=sqlite_url, harvest_file_roots=str(tmp_path), _env_file=None
    )
    services = await Services.start(settings)
    crm = crm_db(tmp_path / "crm.db", CRM_ROWS)
    shop = shop_db(tmp_path / "shop.db")
    await services.registry.apply_document(parse_document(landscape(crm, shop)))
    try:
        yield services
    finally:
        await services.close()


async def customers(services: Services) -> RecordsPage:
    return await services.records.records("entity:customer", None, first=100, after=None)


def view(page: RecordsPage) -> dict[str, tuple[list[str], dict[str, Any]]]:
    return {r.key: (r.sources, r.data) for r in page.records}


async def apply(services: Services, doc: str) -> None:
    await services.registry.apply_document(parse_document(doc))


async def test_a_changed_location_reads_the_new_database(live: Services, tmp_path: Path) -> None:
    assert {"b@example.com", "c@example.com"} <= set(view(await customers(live)))
    other = crm_db(tmp_path / "crm-2026.db", [("z@example.com", "+31 9")])
    await apply(
        live,
        f"nodes: [{{id: source:crm-db, name: CRM db, properties: {{type: SQL, location: 'sqlite:///{other}'}}}}]",
    )
    page = await customers(live)
    assert page.errors == []
    assert sorted(view(page)) == ["a@example.com", "d@example.com", "z@example.com"]
    assert view(page)["z@example.com"] == (
        ["system:crm"],
        {"email": "z@example.com", "phone": "+31 9"},
    )


async def test_a_deleted_file_is_an_error_for_its_source_never_old_data(
    live: Services, tmp_path: Path
) -> None:
    assert (await customers(live)).errors == []  # the engine and its connections are open now
    (tmp_path / "crm.db").unlink()
    page = await customers(live)
    assert [(e.source, e.code) for e in page.errors] == [("source:crm-db", "SOURCE_UNAVAILABLE")]
    assert "does not exist" in page.errors[0].message
    # The shop's records only; a is known to both, and carries nothing of the CRM's now.
    assert view(page) == {
        "a@example.com": (["system:shop"], {"email": "a@example.com", "country": "NL"}),
        "d@example.com": (["system:shop"], {"email": "d@example.com", "country": "BE"}),
    }
    crm_db(tmp_path / "crm.db", [("e@example.com", "+31 5")])  # restored: read again
    page = await customers(live)
    assert page.errors == [] and "e@example.com" in view(page)
    assert "b@example.com" not in view(page)


@pytest.mark.parametrize("how", ["moved in", "copied over"])
async def test_a_replaced_file_gives_the_new_data_never_the_old(
    live: Services, tmp_path: Path, how: str
) -> None:
    assert "b@example.com" in view(await customers(live))
    new = crm_db(tmp_path / "new.db", [("a@example.com", "+31 7"), ("f@example.com", "+31 6")])
    if how == "moved in":
        os.replace(new, tmp_path / "crm.db")
    else:
        shutil.copyfile(new, tmp_path / "crm.db")
    page = await customers(live)
    assert page.errors == []
    assert sorted(view(page)) == ["a@example.com", "d@example.com", "f@example.com"]
    assert view(page)["a@example.com"][1]["phone"] == "+31 7"


async def test_a_second_source_on_the_system_is_an_ambiguity_not_a_switch(
    live: Services, tmp_path: Path
) -> None:
    before = await customers(live)
    small = crm_db(tmp_path / "crm-copy.db", [("q@example.com", "+31 0")])
    await apply(
        live,
        f"""
nodes: [{{id: source:crm-copy, name: CRM copy, properties: {{type: SQL, location: 'sqlite:///{small}'}}}}]
relations: [{{from: source:crm-copy, type: PART_OF, to: system:crm}}]
""",
    )
    page = await customers(live)
    assert [(e.source, e.code) for e in page.errors] == [("entity:crm.contact", "AMBIGUOUS_SOURCE")]
    message = page.errors[0].message
    assert "source:crm-copy" in message and "source:crm-db" in message
    assert "properties.source" in message
    # The rest is still there, and nothing was read from either candidate.
    assert sorted(view(page)) == ["a@example.com", "d@example.com"]
    assert all(sources == ["system:shop"] for sources, _ in view(page).values())
    # Naming the source on the mapping gives the records of before, exactly.
    await apply(
        live,
        "relations: [{from: entity:crm.contact, type: REPRESENTS, to: entity:customer, properties: {matchKey: email, fields: {email: email, phone: phone}, source: source:crm-db}}]",
    )
    named = await customers(live)
    assert named.errors == [] and view(named) == view(before)
    # ... and naming the other one reads that one.
    await apply(
        live,
        "relations: [{from: entity:crm.contact, type: REPRESENTS, to: entity:customer, properties: {matchKey: email, fields: {email: email, phone: phone}, source: source:crm-copy}}]",
    )
    assert sorted(view(await customers(live))) == [
        "a@example.com",
        "d@example.com",
        "q@example.com",
    ]


async def test_an_entity_harvested_from_one_source_is_served_by_it(
    live: Services, tmp_path: Path
) -> None:
    before = await customers(live)
    small = crm_db(tmp_path / "crm-copy.db", [("q@example.com", "+31 0")])
    await apply(
        live,
        f"""
nodes: [{{id: source:crm-copy, name: CRM copy, properties: {{type: SQL, location: 'sqlite:///{small}'}}}}]
relations:
  - {{from: source:crm-copy, type: PART_OF, to: system:crm}}
  - {{from: entity:crm.contact, type: HARVESTED_FROM, to: source:crm-db}}
""",
    )
    page = await customers(live)
    assert page.errors == [] and view(page) == view(before)


async def test_a_named_source_that_is_missing_is_an_error_entry(live: Services) -> None:
    await apply(
        live,
        "relations: [{from: entity:crm.contact, type: REPRESENTS, to: entity:customer, properties: {matchKey: email, fields: {email: email, phone: phone}, source: source:ghost}}]",
    )
    page = await customers(live)
    assert [(e.source, e.code) for e in page.errors] == [("source:ghost", "NOT_FOUND")]
    assert "entity:crm.contact" in page.errors[0].message
    assert sorted(view(page)) == ["a@example.com", "d@example.com"]


async def test_a_mapping_naming_something_else_than_a_source_is_refused(live: Services) -> None:
    for bad in ("system:crm", "crm", 7):
        with pytest.raises(InvalidInputError) as caught:
            await apply(
                live,
                f"relations: [{{from: entity:crm.contact, type: REPRESENTS, to: entity:customer, properties: {{matchKey: email, source: {bad!r}}}}}]",
            )
        assert "relations[0].properties.source" in caught.value.message


async def test_the_errors_entry_reaches_graphql(live: Services, tmp_path: Path) -> None:
    small = crm_db(tmp_path / "crm-copy.db", [("q@example.com", "+31 0")])
    await apply(
        live,
        f"""
nodes: [{{id: source:crm-copy, name: CRM copy, properties: {{type: SQL, location: 'sqlite:///{small}'}}}}]
relations: [{{from: source:crm-copy, type: PART_OF, to: system:crm}}]
""",
    )
    result = await build_schema().execute(
        '{ records(entity: "entity:customer", first: 10) { totalCount errors { source code message } } }',
        context_value=make_context(live),
    )
    assert result.errors is None, result.errors
    assert result.data is not None
    records = result.data["records"]
    assert records["totalCount"] == 2
    assert [(e["source"], e["code"]) for e in records["errors"]] == [
        ("entity:crm.contact", "AMBIGUOUS_SOURCE")
    ]


async def test_the_connector_rebuilds_its_engine_when_the_source_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = crm_db(tmp_path / "crm.db", CRM_ROWS)
    connector = SqlConnector(timeout=2)
    ref = SourceRef("source:crm-db", "SQL", f"sqlite:///{crm}")

    def target(source: SourceRef) -> Target:
        return Target("entity:crm.contact", source, "contact", ("email",))

    try:
        unknown = SourceRef("source:x", "SQL", "nosuchdialect://db.example.invalid/crm")
        with pytest.raises(BadSourceDataError, match="location cannot be used"):
            await connector.fetch(target(unknown), Query())
        assert len(await connector.fetch(target(ref), Query())) == 3
        engine = connector._connections["source:crm-db"].engine
        assert len(await connector.fetch(target(ref), Query())) == 3
        assert connector._connections["source:crm-db"].engine is engine  # kept while unchanged
        monkeypatch.setenv("CAPAHUB_CRED_CRM", "s3cret")
        with_secret = SourceRef(ref.id, "SQL", ref.location, "CAPAHUB_CRED_CRM")
        await connector.fetch(target(with_secret), Query())
        rebuilt = connector._connections["source:crm-db"].engine
        assert rebuilt is not engine
        monkeypatch.setenv("CAPAHUB_CRED_CRM", "rotated")  # the secret itself changed
        await connector.fetch(target(with_secret), Query())
        assert connector._connections["source:crm-db"].engine is not rebuilt
        (tmp_path / "crm.db").unlink()
        with pytest.raises(SourceUnavailableError, match="does not exist"):
            await connector.fetch(target(ref), Query())
        assert "source:crm-db" not in connector._connections  # the old engine is gone
    finally:
        await connector.close()


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("http://[::1", "BAD_SOURCE_DATA"),
        ("postgresql://db.example.invalid:port/crm", "BAD_SOURCE_DATA"),
        ("sqlite://", "BAD_SOURCE_DATA"),  # in memory: no records
        ("sqlite:///:memory:", "BAD_SOURCE_DATA"),
        ("sqlite:////etc/hostname", "FORBIDDEN"),  # outside the allowed directories
        ("not a url", None),  # not a live source at all: not read, no error
    ],
)
async def test_an_unusable_location_is_an_error_entry_for_its_source(
    live: Services, location: str, code: str | None
) -> None:
    await apply(
        live,
        f"nodes: [{{id: source:crm-db, name: CRM db, properties: {{type: SQL, location: {location!r}}}}}]",
    )
    page = await customers(live)
    assert [(e.source, e.code) for e in page.errors] == (
        [("source:crm-db", code)] if code else []
    ), page.errors
    assert sorted(view(page)) == ["a@example.com", "d@example.com"]

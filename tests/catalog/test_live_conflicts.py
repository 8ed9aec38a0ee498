"""How live records settle conflicting fields: the rule, and a reason that names it.

Three real SQLite sources (CRM, ERP, webshop) hold the same person with disagreeing values;
which systems MASTER the canonical customer varies per test.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import parse_document

Reasons = dict[str, tuple[Any, str]]


def database(path: Path, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> Path:
    """A SQLite source file with one table."""
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
    conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in columns)})", rows)
    conn.commit()
    conn.close()
    return path


def landscape(tmp_path: Path, masters: list[str]) -> str:
    crm = database(
        tmp_path / "crm.db",
        "contact",
        ["email", "phone", "country", "created"],
        [("ann@example.com", "+31 1", "BE", "2020-01-01")],
    )
    erp = database(
        tmp_path / "erp.db",
        "debtor",
        ["email", "telephone", "country"],
        [("ann@example.com", "+31 2", None)],  # ERP has no country for Ann; no created column
    )
    shop = database(
        tmp_path / "shop.db",
        "customer",
        ["mail", "nation", "created"],
        [("ann@example.com", "NL", "2021-06-30")],
    )
    master_lines = "".join(
        f"  - {{from: {m}, type: MASTERS, to: entity:customer}}\n" for m in masters
    )
    attrs = ", ".join(f"{{name: {a}}}" for a in ("email", "phone", "country", "created_at"))
    return f"""
nodes:
  - {{id: system:crm, name: CRM}}
  - {{id: system:erp, name: ERP}}
  - {{id: system:shop, name: Shop}}
  - {{id: system:mdm, name: Master data hub}}
  - {{id: entity:customer, name: Customer, attributes: [{attrs}]}}
  - {{id: entity:crm.contact, name: Contact}}
  - {{id: entity:erp.debtor, name: Debtor}}
  - {{id: entity:shop.customer, name: Shop customer}}
  - {{id: source:crm-db, name: CRM db, properties: {{type: SQL, location: "sqlite:///{crm}"}}}}
  - {{id: source:erp-db, name: ERP db, properties: {{type: SQL, location: "sqlite:///{erp}"}}}}
  - {{id: source:shop-db, name: Shop db, properties: {{type: SQL, location: "sqlite:///{shop}"}}}}
relations:
  - {{from: system:crm, type: STORES, to: entity:crm.contact}}
  - {{from: system:erp, type: STORES, to: entity:erp.debtor}}
  - {{from: system:shop, type: STORES, to: entity:shop.customer}}
  - {{from: source:crm-db, type: PART_OF, to: system:crm}}
  - {{from: source:erp-db, type: PART_OF, to: system:erp}}
  - {{from: source:shop-db, type: PART_OF, to: system:shop}}
  - {{from: entity:crm.contact, type: REPRESENTS, to: entity:customer, properties: {{matchKey: email, fields: {{email: email, phone: phone, country: country, created_at: created}}}}}}
  - {{from: entity:erp.debtor, type: REPRESENTS, to: entity:customer, properties: {{matchKey: email, fields: {{email: email, phone: telephone, country: country}}}}}}
  - {{from: entity:shop.customer, type: REPRESENTS, to: entity:customer, properties: {{matchKey: email, fields: {{email: mail, country: nation, created_at: created}}}}}}
{master_lines}"""


@pytest.fixture
async def settle(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[Callable[[list[str]], Awaitable[Reasons]]]:
    """Ann's record with the given systems of record: field -> (value chosen, reason), on a
    catalog in SQLite or PostgreSQL."""
    services = await Services.start(
        settings.model_copy(update={"harvest_file_roots": str(tmp_path)})
    )

    async def run(masters: list[str]) -> Reasons:
        await services.registry.apply_document(parse_document(landscape(tmp_path, masters)))
        page = await services.records.records("entity:customer", None, first=10, after=None)
        assert page.errors == []
        (ann,) = page.records
        assert ann.sources == ["system:crm", "system:erp", "system:shop"]
        for c in ann.conflicts:
            assert ann.data[c.field] == c.chosen
        return {c.field: (c.chosen, c.reason) for c in ann.conflicts}

    try:
        yield run
    finally:
        await services.close()


async def test_the_system_of_record_wins_even_when_another_comes_first(
    settle: Callable[[list[str]], Awaitable[Reasons]],
) -> None:
    got = await settle(["system:erp"])
    assert got["phone"] == ("+31 2", "system of record: system:erp MASTERS entity:customer")
    # The ERP has no created_at column and no country for Ann: the others decide, by id, and
    # the reason says why the system of record did not.
    assert got["created_at"] == (
        "2020-01-01",
        "first by id, no system of record has a value: system:erp (a system of record) "
        "does not map created_at; system:crm comes first of the others",
    )
    assert got["country"] == (
        "BE",
        "first by id, no system of record has a value: system:erp (a system of record) "
        "has no value for country; system:crm comes first of the others",
    )


async def test_two_systems_of_record_are_settled_by_id_and_say_so(
    settle: Callable[[list[str]], Awaitable[Reasons]],
) -> None:
    got = await settle(["system:erp", "system:crm"])
    assert got["phone"] == (
        "+31 1",
        "first system of record by id: system:crm, system:erp all MASTER entity:customer and "
        "disagree; system:crm comes first",
    )
    # created_at from the CRM while the ERP masters the customer too: the reason tells why.
    assert got["created_at"] == (
        "2020-01-01",
        "system of record: system:crm MASTERS entity:customer; system:erp (also a system of "
        "record) does not map created_at",
    )


@pytest.mark.parametrize(
    ("masters", "why"),
    [
        ([], "first by id, no system of record: nothing MASTERS entity:customer"),
        (
            ["system:mdm"],
            "first by id, no system of record among the sources: system:mdm MASTERS "
            "entity:customer but is not read here",
        ),
    ],
    ids=["no-master", "master-not-read"],
)
async def test_without_a_system_of_record_the_first_by_id_wins(
    settle: Callable[[list[str]], Awaitable[Reasons]], masters: list[str], why: str
) -> None:
    got = await settle(masters)
    assert got["phone"] == ("+31 1", f"{why}; system:crm comes first")
    assert got["created_at"] == ("2020-01-01", f"{why}; system:crm comes first")
    assert set(got) == {"phone", "created_at", "country"}

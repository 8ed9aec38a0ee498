"""The SQL harvester on a real shop database: a SQLite file, and PostgreSQL when available."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from catalog.harvest import HarvestService, SourceSpec, SourceType
from catalog.services import Services
from metadata.errors import NotAllowedError, SourceUnavailableError
from metadata.model import Lifecycle, NodeRecord, RelationRecord, RelationType
from tests.catalog.harvest.conftest import history_count

PG_URL = os.environ.get("CAPAHUB_TEST_DATABASE_URL")

#: A webshop of a dozen tables (and a view): composite keys, two foreign keys between the
#: same pair of tables, a self reference, a composite foreign key. Valid SQLite and PostgreSQL.
SHOP_DDL = [
    """CREATE TABLE customers (
        id INTEGER PRIMARY KEY,
        email VARCHAR(254) NOT NULL UNIQUE,
        first_name VARCHAR(100),
        last_name VARCHAR(100),
        phone VARCHAR(30),
        birth_date DATE,
        created_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE addresses (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customers(id),
        street VARCHAR(200) NOT NULL,
        postal_code VARCHAR(20) NOT NULL,
        city VARCHAR(100) NOT NULL,
        country CHAR(2) NOT NULL
    )""",
    """CREATE TABLE categories (
        id INTEGER PRIMARY KEY,
        parent_id INTEGER REFERENCES categories(id),
        name VARCHAR(100) NOT NULL
    )""",
    """CREATE TABLE products (
        id INTEGER PRIMARY KEY,
        sku VARCHAR(40) NOT NULL UNIQUE,
        name VARCHAR(200) NOT NULL,
        category_id INTEGER REFERENCES categories(id),
        price_cents INTEGER NOT NULL
    )""",
    """CREATE TABLE warehouses (
        id INTEGER PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        city VARCHAR(100)
    )""",
    """CREATE TABLE stock_levels (
        product_id INTEGER NOT NULL REFERENCES products(id),
        warehouse_id INTEGER NOT NULL REFERENCES warehouses(id),
        quantity INTEGER NOT NULL,
        PRIMARY KEY (product_id, warehouse_id)
    )""",
    """CREATE TABLE orders (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customers(id),
        billing_address_id INTEGER REFERENCES addresses(id),
        shipping_address_id INTEGER REFERENCES addresses(id),
        status VARCHAR(20) NOT NULL,
        placed_at TIMESTAMP NOT NULL,
        total_cents INTEGER NOT NULL
    )""",
    """CREATE TABLE order_lines (
        order_id INTEGER NOT NULL REFERENCES orders(id),
        line_no INTEGER NOT NULL,
        product_id INTEGER NOT NULL REFERENCES products(id),
        quantity INTEGER NOT NULL,
        unit_price_cents INTEGER NOT NULL,
        PRIMARY KEY (order_id, line_no)
    )""",
    """CREATE TABLE payments (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id),
        method VARCHAR(20) NOT NULL,
        amount_cents INTEGER NOT NULL,
        iban VARCHAR(34)
    )""",
    """CREATE TABLE shipments (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id),
        warehouse_id INTEGER NOT NULL REFERENCES warehouses(id),
        carrier VARCHAR(40),
        tracking_number VARCHAR(60)
    )""",
    """CREATE TABLE returns (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL,
        line_no INTEGER NOT NULL,
        reason VARCHAR(200),
        FOREIGN KEY (order_id, line_no) REFERENCES order_lines(order_id, line_no)
    )""",
    """CREATE TABLE coupons (
        code VARCHAR(20) PRIMARY KEY,
        discount_pct INTEGER NOT NULL
    )""",
    """CREATE TABLE order_coupons (
        order_id INTEGER NOT NULL REFERENCES orders(id),
        coupon_code VARCHAR(20) NOT NULL REFERENCES coupons(code),
        PRIMARY KEY (order_id, coupon_code)
    )""",
    """CREATE VIEW customer_order_totals AS
        SELECT c.id AS customer_id, c.email AS email, COUNT(o.id) AS orders, SUM(o.total_cents) AS total_cents
        FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
        GROUP BY c.id, c.email""",
]
TABLES = 13


def create_shop(url: str, extra: list[str] | None = None) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in [*SHOP_DDL, *(extra or [])]:
            conn.execute(text(statement))
    engine.dispose()


@pytest.fixture
def sqlite_shop(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    create_shop(url)
    return url


@pytest.fixture
def pg_shop() -> Iterator[str]:
    if not PG_URL:
        pytest.skip(
            "CAPAHUB_TEST_DATABASE_URL is not set: no PostgreSQL for the SQL harvester (.ci/run starts one)"
        )
    base = make_url(PG_URL).set(drivername="postgresql+psycopg")
    name = f"shop_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name)
    create_shop(
        url.render_as_string(hide_password=False),
        [
            "COMMENT ON TABLE customers IS 'Registered webshop customers'",
            "COMMENT ON COLUMN customers.email IS 'Login and contact address'",
        ],
    )
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def sql_source(location: str, key: str = "shopdb") -> SourceSpec:
    return SourceSpec.build(
        {
            "key": key,
            "name": "Shop DB",
            "type": SourceType.SQL,
            "location": location,
            "system": "system:shopdb",
        }
    )


async def nodes(services: Services, *ids: str) -> dict[str, NodeRecord]:
    async with services.store.read() as r:
        return await r.get_nodes(list(ids))


async def references(services: Services, src: str) -> dict[str, RelationRecord]:
    async with services.store.read() as r:
        return {
            x.to_id: x for x in await r.relations_from([src]) if x.type is RelationType.REFERENCES
        }


async def check_shop(services: Services, report_added: list[str], *, dialect: str) -> None:
    entities = [i for i in report_added if i.startswith("entity:")]
    assert len(entities) == TABLES + 1
    found = await nodes(
        services,
        "entity:shopdb.customers",
        "entity:shopdb.order_lines",
        "entity:shopdb.customer_order_totals",
        "entity:shopdb.payments",
    )
    customers = found["entity:shopdb.customers"]
    props = customers.properties or {}
    assert props["tableType"] == "table" and props["primaryKey"] == ["id"]
    assert props["dialect"] == dialect
    attrs = {a["name"]: a for a in customers.attributes}
    assert attrs["email"]["type"].upper().startswith("VARCHAR(254)")
    assert attrs["email"]["classification"] == "PII"
    assert attrs["birth_date"]["classification"] == "PII"
    assert attrs["first_name"]["classification"] == "PII"
    assert "classification" not in attrs["created_at"]
    iban = found["entity:shopdb.payments"].attributes[-1]
    assert iban["name"] == "iban" and iban["classification"] == "PII"
    assert (found["entity:shopdb.order_lines"].properties or {})["primaryKey"] == [
        "order_id",
        "line_no",
    ]
    view = found["entity:shopdb.customer_order_totals"]
    assert (view.properties or {})["tableType"] == "view"
    assert {a["name"] for a in view.attributes} == {"customer_id", "email", "orders", "total_cents"}

    # Two foreign keys from orders to addresses make one relation listing both.
    orders = await references(services, "entity:shopdb.orders")
    assert set(orders) == {"entity:shopdb.customers", "entity:shopdb.addresses"}
    keys = orders["entity:shopdb.addresses"].properties["foreignKeys"]  # type: ignore[index]
    assert sorted(k["columns"][0] for k in keys) == ["billing_address_id", "shipping_address_id"]
    assert all(k["referencedColumns"] == ["id"] for k in keys)
    # A self reference, and a composite key.
    categories = await references(services, "entity:shopdb.categories")
    self_keys = categories["entity:shopdb.categories"].properties["foreignKeys"]  # type: ignore[index]
    assert [(k["columns"], k["referencedColumns"]) for k in self_keys] == [(["parent_id"], ["id"])]
    returns = await references(services, "entity:shopdb.returns")
    fk = returns["entity:shopdb.order_lines"].properties["foreignKeys"][0]  # type: ignore[index]
    assert fk["columns"] == ["order_id", "line_no"]
    assert fk["referencedColumns"] == ["order_id", "line_no"]
    async with services.store.read() as r:
        stored = {
            x.to_id
            for x in await r.relations_from(["system:shopdb"])
            if x.type is RelationType.STORES
        }
    assert len(stored) == TABLES + 1


async def test_harvest_sqlite_shop(hub: Services, sqlite_shop: str) -> None:
    report = await hub.harvest.harvest_location(sql_source(sqlite_shop))
    await check_shop(hub, report.added, dialect="sqlite")
    before = await history_count(hub)
    again = await hub.harvest.harvest_location(sql_source(sqlite_shop))
    assert (
        len(again.unchanged) == TABLES + 1
        and again.updated == []
        and await history_count(hub) == before
    )


async def test_schema_changes_update_and_retire_tables(hub: Services, sqlite_shop: str) -> None:
    await hub.harvest.harvest_location(sql_source(sqlite_shop))
    engine = create_engine(sqlite_shop)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE order_coupons"))
        conn.execute(text("ALTER TABLE products ADD COLUMN brand VARCHAR(60)"))
        conn.execute(
            text(
                "CREATE TABLE wishlists (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id))"
            )
        )
    engine.dispose()
    report = await hub.harvest.harvest_location(sql_source(sqlite_shop))
    assert report.added == ["entity:shopdb.wishlists"]
    assert report.updated == ["entity:shopdb.products"]
    assert report.retired == ["entity:shopdb.order_coupons"]
    retired = (await nodes(hub, "entity:shopdb.order_coupons"))["entity:shopdb.order_coupons"]
    assert retired.lifecycle is Lifecycle.RETIRED
    assert "entity:shopdb.customers" in await references(hub, "entity:shopdb.wishlists")


async def test_sqlite_file_is_opened_read_only(hub: Services, tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(SourceUnavailableError, match="no such database file"):
        await hub.harvest.harvest_location(sql_source(f"sqlite:///{missing}"))
    assert not missing.exists()  # never created by the harvest


async def test_unreachable_database_is_a_source_error(
    make_harvest: Callable[..., HarvestService],
) -> None:
    service = make_harvest(harvest_allowed_hosts="127.0.0.1", timeout=3)
    with pytest.raises(SourceUnavailableError, match="cannot read the database") as err:
        await service.harvest_location(sql_source("postgresql://harvest@127.0.0.1:1/shop"))
    assert err.value.message.startswith("source:shopdb: ")


async def test_database_on_private_address_needs_an_allowed_host(hub: Services) -> None:
    with pytest.raises(NotAllowedError, match="CAPAHUB_HARVEST_ALLOWED_HOSTS"):
        await hub.harvest.harvest_location(sql_source("postgresql://harvest@127.0.0.1:1/shop"))


async def test_harvest_postgresql_shop(
    make_harvest: Callable[..., HarvestService], hub: Services, pg_shop: str
) -> None:
    service = make_harvest(harvest_allowed_hosts="127.0.0.1")
    report = await service.harvest_location(sql_source(pg_shop))
    await check_shop(hub, report.added, dialect="postgresql")
    customers = (await nodes(hub, "entity:shopdb.customers"))["entity:shopdb.customers"]
    assert customers.description == "Registered webshop customers"
    assert customers.attributes[1]["description"] == "Login and contact address"
    before = await history_count(hub)
    again = await service.harvest_location(sql_source(pg_shop))
    assert len(again.unchanged) == TABLES + 1 and await history_count(hub) == before

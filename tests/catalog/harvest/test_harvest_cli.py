"""``capahub harvest`` through typer's CliRunner: register, harvest, re-harvest, fail cleanly."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from catalog.cli import app
from catalog.harvest import source_key_for
from tests.catalog.harvest.conftest import FIXTURES, SYSTEMS

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    systems = tmp_path / "systems.yaml"
    systems.write_text(SYSTEMS)
    result = runner.invoke(app, ["apply", str(systems), "--database", url])
    assert result.exit_code == 0, result.output
    return url


def export(db: str) -> dict[str, dict[str, object]]:
    out = runner.invoke(app, ["export", "--database", db, "--format", "json"])
    return {n["id"]: n for n in json.loads(out.stdout)["nodes"]}


def test_harvest_registers_then_reharvests_as_a_diff(db: str, tmp_path: Path) -> None:
    spec = tmp_path / "shop-openapi.yaml"
    shutil.copy(FIXTURES / "shop-openapi.yaml", spec)
    args = ["harvest", "openapi", str(spec), "--system", "system:webshop", "--database", db]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "source:shop-openapi: harvested" in first.stdout
    assert "nodes added" in first.stdout and "39" in first.stdout
    assert "no operationId" in first.stdout
    nodes = export(db)
    source = nodes["source:shop-openapi"]
    assert source["properties"]["location"] == str(spec)  # type: ignore[index]

    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert "nodes unchanged" in again.stdout
    assert (
        _count(again.stdout, "nodes unchanged") == 39 and _count(again.stdout, "nodes added") == 0
    )

    spec.write_text(spec.read_text().replace("operationId: trackOrder", "operationId: followOrder"))
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0 and "dry run, nothing written" in dry.stdout
    assert "capability:shop-openapi.track-order" in dry.stdout
    assert "capability:shop-openapi.follow-order" not in export(db)
    changed = runner.invoke(app, args)
    assert _count(changed.stdout, "nodes retired") == 1
    assert export(db)["capability:shop-openapi.track-order"]["lifecycle"] == "RETIRED"


def _count(output: str, label: str) -> int:
    for line in output.splitlines():
        if label in line:
            return int(line.strip("│┃ ").split()[-1])
    raise AssertionError(f"{label!r} not in {output}")


def test_every_type_from_the_command_line(db: str, tmp_path: Path) -> None:
    for kind, name, system in (
        ("graphql", "customer-service.graphql", "system:callcenter"),
        ("backstage", "catalog-info.yaml", "system:portal"),
        ("openapi", "legacy-erp-swagger.json", "system:erp"),
    ):
        result = runner.invoke(
            app, ["harvest", kind, str(FIXTURES / name), "--system", system, "--database", db]
        )
        assert result.exit_code == 0, result.output
    shop = tmp_path / "shop.db"
    with sqlite3.connect(shop) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)")
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id))"
        )
    result = runner.invoke(
        app,
        [
            "harvest",
            "SQL",
            f"sqlite:///{shop}",
            "--system",
            "system:shopdb",
            "--key",
            "shop",
            "--database",
            db,
        ],
    )
    assert result.exit_code == 0, result.output
    nodes = export(db)
    assert "entity:customer-service.customer" in nodes
    assert "system:catalog-info.checkout" in nodes
    assert "capability:legacy-erp-swagger.get-debtor" in nodes
    assert nodes["entity:shop.orders"]["attributes"] == [
        {"name": "id", "type": "INTEGER"},
        {"name": "customer_id", "type": "INTEGER"},
    ]


def test_failed_harvest_exits_nonzero_with_one_line(db: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text('{"openapi": "3.1.0", "paths": {"/a": ')
    result = runner.invoke(
        app, ["harvest", "openapi", str(broken), "--system", "system:webshop", "--database", db]
    )
    assert result.exit_code != 0
    message = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())  # typer boxes errors
    assert "source:broken: " in message and "not valid JSON at line 1" in message
    assert "Traceback" not in result.output
    assert "source:broken" not in export(db)  # nothing written, not even the source

    unknown = runner.invoke(
        app,
        ["harvest", "openapi", str(broken), "--system", "system:nope", "--no-create-system"]
        + ["--database", db],
    )
    assert unknown.exit_code != 0 and "system:nope" in unknown.output
    bad_type = runner.invoke(
        app, ["harvest", "wsdl", str(broken), "--system", "system:webshop", "--database", db]
    )
    assert bad_type.exit_code == 2


def test_credentials_are_never_stored_or_printed(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_DB_PASSWORD", "hunter2")
    result = runner.invoke(
        app,
        [
            "harvest",
            "sql",
            "postgresql://shop@127.0.0.1:1/shop",
            "--system",
            "system:shopdb",
            "--credentials-env",
            "SHOP_DB_PASSWORD",
            "--database",
            db,
        ],
    )
    assert result.exit_code != 0
    assert "hunter2" not in result.output
    ok = runner.invoke(
        app,
        [
            "harvest",
            "openapi",
            str(FIXTURES / "shop-openapi.yaml"),
            "--system",
            "system:webshop",
            "--credentials-env",
            "SHOP_DB_PASSWORD",
            "--database",
            db,
        ],
    )
    assert ok.exit_code == 0
    dump = runner.invoke(app, ["export", "--database", db]).stdout
    assert "hunter2" not in dump
    assert yaml.safe_load(dump)


@pytest.mark.parametrize(
    ("location", "key"),
    [
        ("/specs/Shop OpenAPI.v2.yaml", "shop-open-api.v2"),
        ("https://api.example.com/v2/openapi.json", "api.example.com-openapi"),
        ("https://api.example.com", "api.example.com"),
        ("postgresql://reader@db.internal:5432/ShopDB", "shop-db"),
        ("sqlite:////data/shop.db", "shop"),
    ],
)
def test_source_key_derives_from_the_location(location: str, key: str) -> None:
    assert source_key_for(location) == key


def test_harvest_dry_run_prints_the_diff_table(db: str, tmp_path: Path) -> None:
    """``--dry-run`` prints the write path's diff, the table ``capahub apply --dry-run``
    prints, and writes nothing."""
    spec = tmp_path / "shop-openapi.yaml"
    shutil.copy(FIXTURES / "shop-openapi.yaml", spec)
    args = ["harvest", "openapi", str(spec), "--system", "system:webshop", "--database", db]
    dry = runner.invoke(app, [*args, "--dry-run"], env={"COLUMNS": "200"})
    assert dry.exit_code == 0, dry.output
    assert "dry run, nothing written" in dry.stdout and "changes" in dry.stdout
    row = next(
        line for line in dry.stdout.splitlines() if "capability:shop-openapi.get-order" in line
    )
    assert "added" in row and "name" in row and "Get an order" in row
    assert "system:webshop PROVIDES capability:shop-openapi.get-order" in dry.stdout
    assert "capability:shop-openapi.get-order" not in export(db)

"""schema.graphql is the served schema."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from catalog.cli import app
from resolvers import print_sdl

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_schema_file_equals_served_schema() -> None:
    assert SCHEMA_FILE.read_text() == print_sdl(), (
        "schema.graphql is stale; regenerate it with: capahub schema > schema.graphql"
    )


def test_cli_schema_prints_the_served_schema() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.stdout == print_sdl()


def test_served_schema_has_the_contract_names() -> None:
    sdl = print_sdl()
    for name in [
        "enum Kind",
        "enum RelationType",
        "enum Lifecycle",
        "enum Direction",
        "interface CatalogNode",
        "type Relation",
        "input NodeInput",
        "input RelationInput",
        "input CapabilityInput",
        "type ApplyReport",
        "type NodeConnection",
        "type SystemConnection",
        "type CapabilityConnection",
        "type DataEntityConnection",
        'type Capability implements CatalogNode @key(fields: "id")',
    ]:
        assert name in sdl, name

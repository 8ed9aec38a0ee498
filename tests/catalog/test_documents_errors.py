"""Every error of a document, each with its file, line, column, rule and a likely fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from catalog.services import Services
from catalog.specs import parse_document
from metadata.errors import InvalidInputError, NotFoundError
from tests.conftest import GraphQLClient

BAD = """\
nodes:
  - id: team:sales
    name: Sales
  - id: system:crm
    name: CRM
    ownr: team:sales
  - id: system:erp
    name: ERP
    lifecycle: ACTVE
relations:
  - {from: system:crm, type: DEPEND_ON, to: system:erp}
"""


def test_every_shape_error_is_reported_with_line_column_and_suggestion() -> None:
    with pytest.raises(InvalidInputError) as exc:
        parse_document(BAD, prefix="crm.yaml:")
    problems = exc.value.details["problems"]
    assert [(p["field"], p["line"], p["column"], p["suggestion"]) for p in problems] == [
        ("crm.yaml:nodes[1].ownr", 6, 5, "owner"),
        ("crm.yaml:nodes[2].lifecycle", 9, 5, "ACTIVE"),
        ("crm.yaml:relations[0].type", 11, 24, "DEPENDS_ON"),
    ]
    assert all(p["file"] == "crm.yaml" for p in problems)
    assert problems[0]["rule"] == "unknown-field"
    assert "3 problems" in exc.value.message
    assert "did you mean `owner`?" in exc.value.message
    assert "(line 6, column 5)" in exc.value.message


def test_json_documents_get_positions_too() -> None:
    text = '{"nodes": [\n  {"id": "system:a", "name": "A",\n   "colour": "red"}]}'
    with pytest.raises(InvalidInputError) as exc:
        parse_document(text)
    (problem,) = exc.value.details["problems"]
    assert (problem["line"], problem["column"], problem["rule"]) == (3, 4, "unknown-field")


async def test_every_catalog_error_is_reported_with_positions(services: Services) -> None:
    await services.registry.apply_document(
        parse_document("nodes: [{id: team:sales, name: Sales}, {id: system:crm, name: CRM}]")
    )
    text = """\
nodes:
  - {id: system:a, name: A, owner: team:sale}
  - {id: system:b, name: B, owner: system:crm}
relations:
  - {from: system:a, type: PROVIDES, to: system:b}
  - {from: system:a, type: DEPENDS_ON, to: system:crn}
"""
    with pytest.raises(InvalidInputError) as exc:
        await services.registry.apply_document(parse_document(text, prefix="x.yaml:"))
    problems = exc.value.details["problems"]
    assert [(p["field"], p["line"], p["rule"]) for p in problems] == [
        ("x.yaml:nodes[1].owner", 3, "owner-is-team"),
        ("x.yaml:relations[0].type", 5, "input"),
    ]
    # Once the shape is right, references that do not exist, each with the likely id.
    fixed = text.replace("owner: system:crm", "owner: team:sales").replace(
        "type: PROVIDES, to: system:b", "type: DEPENDS_ON, to: system:b"
    )
    with pytest.raises(NotFoundError) as missing:
        await services.registry.apply_document(parse_document(fixed, prefix="x.yaml:"))
    problems = missing.value.details["problems"]
    assert [(p["field"], p["line"], p["suggestion"]) for p in problems] == [
        ("x.yaml:nodes[0].owner", 2, "team:sales"),
        ("x.yaml:relations[1].to", 6, "system:crm"),
    ]
    assert await services.discovery.get_nodes(["system:a", "system:b"]) == {}


async def test_a_cycle_error_names_the_file_and_line(services: Services) -> None:
    await services.registry.apply_document(
        parse_document(
            "nodes: [{id: capability:a, name: A}, {id: capability:b, name: B}]\n"
            "relations: [{from: capability:b, type: PART_OF, to: capability:a}]\n"
        )
    )
    text = "relations:\n  - {from: capability:a, type: PART_OF, to: capability:b}\n"
    with pytest.raises(InvalidInputError) as exc:
        await services.registry.apply_document(parse_document(text, prefix="map.yaml:"))
    assert exc.value.message.startswith("map.yaml:relations[0].type: PART_OF: this would make")
    assert "(line 2, column 26)" in exc.value.message
    assert exc.value.details["rule"] == "part-of-acyclic"


def test_problems_are_bounded() -> None:
    text = "nodes:\n" + "".join(f"  - {{id: system:n{i}, name: N, x: 1}}\n" for i in range(300))
    with pytest.raises(InvalidInputError) as exc:
        parse_document(text)
    assert len(exc.value.details["problems"]) == 100
    assert "300 problems" in exc.value.message and "(and 290 more)" in exc.value.message


def test_apply_catalog_carries_the_problems_in_extensions(gql: GraphQLClient) -> None:
    err = gql.error("mutation($d: String!) { applyCatalog(document: $d) { added } }", {"d": BAD})
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    problems = err["extensions"]["problems"]
    assert [(p["field"], p["line"], p["column"], p["rule"], p["suggestion"]) for p in problems] == [
        ("nodes[1].ownr", 6, 5, "unknown-field", "owner"),
        ("nodes[2].lifecycle", 9, 5, "enum", "ACTIVE"),
        ("relations[0].type", 11, 24, "enum", "DEPENDS_ON"),
    ]


def test_the_cli_prints_every_problem_with_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "crm.yaml"
    path.write_text(BAD)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "catalog.cli",
            "apply",
            str(path),
            "--database",
            f"sqlite:///{tmp_path / 'c.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert f"{path}:6:5: nodes[1].ownr: unknown field; did you mean `owner`?" in lines
    assert f"{path}:9:5: nodes[2].lifecycle" in proc.stderr
    assert f"{path}:11:24: relations[0].type" in proc.stderr
    assert lines[-1].startswith("error: 3 problems")

"""A dry run shows the diff: nodes and fields before -> after, relations added and removed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from catalog.services import Services
from catalog.specs import parse_document
from tests.conftest import GraphQLClient

BASE = """
nodes:
  - {id: team:t, name: T}
  - {id: system:crm, name: CRM, tags: [sales], lifecycle: ACTIVE}
  - {id: system:erp, name: ERP}
relations:
  - {from: system:crm, type: DEPENDS_ON, to: system:erp}
"""
CHANGE = """
nodes:
  - {id: system:crm, name: CRM, lifecycle: DEPRECATED, owner: team:t}
  - {id: system:erp, name: ERP}
  - {id: system:shop, name: Shop}
relations:
  - {from: system:shop, type: DEPENDS_ON, to: system:crm}
prune: true
"""
DRY = """mutation($d: String!) { applyCatalog(document: $d, dryRun: true) {
  dryRun updated changes { id operation fields { field before after } }
  relationChanges { operation from type to } } }"""


async def test_the_report_carries_the_diff(services: Services) -> None:
    await services.registry.apply_document(parse_document(BASE))
    report = await services.registry.apply_document(parse_document(CHANGE), dry_run=True)
    changes = {
        c.id: (c.op, [(f.field, f.before, f.after) for f in c.fields])
        for c in report.node_changes()
    }
    assert changes == {
        "system:crm": (
            "updated",
            [("lifecycle", "ACTIVE", "DEPRECATED"), ("owner", None, "team:t")],
        ),
        "system:shop": ("added", [("name", None, "Shop"), ("lifecycle", None, "ACTIVE")]),
    }
    rels = [(c.op, c.relation.key) for c in report.relation_changes]
    assert rels == [
        ("added", ("system:shop", "DEPENDS_ON", "system:crm")),
        ("removed", ("system:crm", "DEPENDS_ON", "system:erp")),
    ]


def test_apply_catalog_dry_run_answers_the_diff(gql: GraphQLClient) -> None:
    gql.data("mutation($d: String!) { applyCatalog(document: $d) { added } }", {"d": BASE})
    report = gql.data(DRY, {"d": CHANGE})["applyCatalog"]
    assert report["dryRun"] is True and report["updated"] == ["system:crm"]
    assert report["changes"][0] == {
        "id": "system:crm",
        "operation": "UPDATED",
        "fields": [
            {"field": "lifecycle", "before": "ACTIVE", "after": "DEPRECATED"},
            {"field": "owner", "before": None, "after": "team:t"},
        ],
    }
    assert report["relationChanges"] == [
        {"operation": "ADDED", "from": "system:shop", "type": "DEPENDS_ON", "to": "system:crm"},
        {"operation": "REMOVED", "from": "system:crm", "type": "DEPENDS_ON", "to": "system:erp"},
    ]
    # Nothing was written.
    node = gql.data('{ node(id: "system:crm") { lifecycle version } }')["node"]
    assert node == {"lifecycle": "ACTIVE", "version": 1}


def test_capahub_apply_dry_run_prints_the_diff_table(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    base, change = tmp_path / "base.yaml", tmp_path / "change.yaml"
    base.write_text(BASE)
    change.write_text(CHANGE)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "catalog.cli", "apply", *args, "--database", db],
            capture_output=True,
            text=True,
            timeout=120,
            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        )

    assert run(str(base)).returncode == 0
    proc = run(str(change), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # Progress as plain lines on stderr (not a terminal), never on stdout.
    assert "checking 3 nodes and 1 relations" in proc.stderr
    assert "checking" not in out
    assert "dry run: nothing written" in out
    rows = [" ".join(line.strip("│┃ ").split()) for line in out.splitlines()]
    assert any(
        "updated" in r
        and "system:crm" in r
        and "lifecycle" in r
        and "ACTIVE" in r
        and "DEPRECATED" in r
        for r in rows
    ), out
    assert any("owner" in r and "team:t" in r for r in rows), out
    assert any("added" in r and "system:shop DEPENDS_ON system:crm" in r for r in rows), out
    assert any("removed" in r and "system:crm DEPENDS_ON system:erp" in r for r in rows), out

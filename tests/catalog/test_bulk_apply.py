"""Bulk apply: catalog files read in parts (``catalog.document_stream``) and written part by
part in one transaction (``Registry.apply_stream``) give what the whole-document apply gives."""

from __future__ import annotations

import gc
import json
import random
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from catalog.cli import app
from catalog.cli import apply as apply_cli
from catalog.document_stream import DocumentStream
from catalog.export import export_document
from catalog.problems import Problems
from catalog.registry import Caller
from catalog.services import Services
from catalog.specs import parse_document
from metadata.errors import CatalogError, NotFoundError

runner = CliRunner()


def _landscape(n: int, seed: int = 3) -> dict[str, Any]:
    """A small landscape whose references go every way: owners defined after the nodes they
    own, relations to nodes defined later, a PART_OF hierarchy, properties and attributes."""
    rng = random.Random(seed)
    teams = [f"team:t{i}" for i in range(max(2, n // 50))]
    systems = [f"system:s{i}" for i in range(max(3, n // 10))]
    caps = [f"capability:c{i}" for i in range(n // 2)]
    ents = [f"entity:e{i}" for i in range(n - len(caps) - len(systems) - len(teams))]
    nodes: list[dict[str, Any]] = []
    for s in systems:
        nodes.append({"id": s, "name": s.upper(), "owner": rng.choice(teams), "tags": ["core"]})
    for c in caps:
        nodes.append({"id": c, "name": f"Cap {c}", "description": "does things"})
    for e in ents:
        nodes.append(
            {
                "id": e,
                "name": f"Entity {e}",
                "attributes": [{"name": "id", "type": "string"}],
                "properties": {"rows": rng.randint(1, 1000)},
            }
        )
    nodes.extend({"id": t, "name": f"Team {t}"} for t in teams)  # owners come last
    rels: list[dict[str, Any]] = []
    for i, c in enumerate(caps):
        if i >= 5:
            rels.append({"from": c, "type": "PART_OF", "to": caps[i // 5 - 1]})
        rels.append({"from": rng.choice(systems), "type": "PROVIDES", "to": c})
        rels.append({"from": c, "type": "READS", "to": rng.choice(ents)})
    for s in systems:
        rels.append({"from": s, "type": "MASTERS", "to": rng.choice(ents)})
        dep = rng.choice(systems)
        if dep != s:
            rels.append({"from": s, "type": "DEPENDS_ON", "to": dep})
    # Relations first in the list: they name nodes the stream has not reached.
    return {"relations": rels, "nodes": nodes}


def _split(doc: dict[str, Any], parts: int) -> list[dict[str, Any]]:
    return [
        {"relations": doc["relations"][i::parts], "nodes": doc["nodes"][i::parts]}
        for i in range(parts)
    ]


async def _catalog(services: Services) -> tuple[Any, ...]:
    """Everything an apply writes that a reader sees: the export, the search documents, the
    history rows (without their timestamps) and who wrote them."""
    exported = await export_document(services.store)
    async with services.store.read() as r:
        docs = (
            await r.conn.execute(
                text(
                    "SELECT node_id, kind, name_norm, related_names, tag_list, domain_list "
                    "FROM search_docs ORDER BY node_id"
                )
            )
        ).all()
        hist = (
            await r.conn.execute(
                text("SELECT target, target_id, op, actor FROM history ORDER BY target_id, op")
            )
        ).all()
    return exported, [tuple(d) for d in docs], [tuple(h) for h in hist]


async def _reset(services: Services) -> None:
    async with services.store.transaction() as tx:
        for table in ("search_domains", "search_docs", "history", "relations", "node_tags"):
            await tx.conn.execute(text(f"DELETE FROM {table}"))
        await tx.conn.execute(text("DELETE FROM nodes WHERE owner_id IS NOT NULL"))
        await tx.conn.execute(text("DELETE FROM nodes"))


def _files(tmp_path: Path, doc: dict[str, Any]) -> list[Path]:
    """The document as a JSON file and a YAML file of two documents."""
    first, second = _split(doc, 2)
    a = tmp_path / "a.json"
    a.write_bytes(orjson.dumps(first))
    b = tmp_path / "b.yaml"
    halves = _split(second, 2)
    b.write_text(yaml.safe_dump_all(halves, sort_keys=False), encoding="utf-8")
    return [a, b]


async def test_streamed_apply_equals_the_whole_document_apply(
    services: Services, tmp_path: Path
) -> None:
    doc = _landscape(400)
    paths = _files(tmp_path, doc)
    by = Caller(request_id="bulk-test")
    problems = Problems()
    streams = [DocumentStream(p, problems, part_size=7) for p in paths]
    streamed = await services.registry.apply_stream(streams, problems, by=by)
    assert not problems
    after_stream = await _catalog(services)

    await _reset(services)
    # The same specs in the order the files hold them (relations keep their order).
    first, second = _split(doc, 2)
    in_files = [first, *_split(second, 2)]
    merged = {k: [x for d in in_files for x in d[k]] for k in ("nodes", "relations")}
    whole = parse_document(json.dumps(merged))
    report = await services.registry.apply_document(whole, by=by)
    assert await _catalog(services) == after_stream
    assert sorted(streamed.added) == sorted(report.added)
    assert streamed.relations_added == report.relations_added == len(doc["relations"])
    assert {h[3] for h in after_stream[2]} == {"local:capahub"}

    # Applied again, in parts: everything unchanged, nothing written.
    problems = Problems()
    again = await services.registry.apply_stream(
        [DocumentStream(p, problems, part_size=7) for p in paths], problems, by=by
    )
    assert (len(again.unchanged), again.relations_added, again.added) == (400, 0, [])
    assert await _catalog(services) == after_stream


async def test_a_failing_part_writes_nothing(services: Services, tmp_path: Path) -> None:
    doc = _landscape(200)
    doc["relations"].append({"from": "system:s1", "type": "MASTERS", "to": "entity:nowhere"})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    problems = Problems()
    with pytest.raises(NotFoundError) as caught:
        await services.registry.apply_stream(
            [DocumentStream(path, problems, part_size=10)], problems
        )
    listed = caught.value.details["problems"]
    assert len(listed) == 1
    where = len(doc["relations"]) - 1
    assert listed[0]["field"] == f"{path}:relations[{where}].to"
    assert listed[0]["file"] == str(path) and listed[0]["line"] is not None
    line = path.read_text().splitlines()[listed[0]["line"] - 1]
    assert '"to": "entity:nowhere"' in line
    async with services.store.read() as r:
        counts = [
            (await r.conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
            for t in ("nodes", "relations", "history", "search_docs")
        ]
    assert counts == [0, 0, 0, 0]


async def test_every_problem_of_every_part_is_reported(services: Services, tmp_path: Path) -> None:
    doc = _landscape(100)
    doc["nodes"][3]["lifecycle"] = "ACTIV"
    doc["nodes"][50]["nme"] = "typo"
    doc["relations"][-1]["type"] = "OWNS_IT"
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    problems = Problems()
    with pytest.raises(CatalogError) as caught:
        await services.registry.apply_stream(
            [DocumentStream(path, problems, part_size=10)], problems
        )
    fields = [p["field"] for p in caught.value.details["problems"]]
    last = len(doc["relations"]) - 1
    assert fields == [
        f"{path}:nodes[3].lifecycle",
        f"{path}:nodes[50].nme",
        f"{path}:relations[{last}].type",
    ]
    suggestions = [p["suggestion"] for p in caught.value.details["problems"]]
    assert suggestions[:2] == ["ACTIVE", "name"]
    assert all(p["line"] for p in caught.value.details["problems"])


def test_cli_streams_large_files_with_dry_run_and_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply_cli, "STREAM_FROM_BYTES", 0)
    db = f"sqlite:///{tmp_path / 'a.db'}"
    paths = [str(p) for p in _files(tmp_path, _landscape(120))]
    dry = runner.invoke(app, ["apply", *paths, "--dry-run", "--database", db])
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing written" in dry.output and "changes" in dry.output
    exported = runner.invoke(app, ["export", "--database", db, "--format", "json"])
    assert json.loads(exported.stdout) == {"nodes": [], "relations": []}
    done = runner.invoke(app, ["apply", *paths, "--database", db])
    assert done.exit_code == 0, done.output
    assert "120" in done.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes:\n  - {id: system:x, name: X, owner: team:nobody}\n")
    refused = runner.invoke(app, ["apply", str(bad), "--database", db])
    assert refused.exit_code == 1
    assert f"{bad}:2:" in refused.output and "team:nobody" in refused.output


def test_the_streamed_reader_holds_a_part_not_the_document(tmp_path: Path) -> None:
    nodes = [
        {
            "id": f"capability:c{i}",
            "name": f"Capability {i}",
            "description": "A capability of the generated landscape, described at some length.",
            "tags": ["core", "generated"],
            "properties": {"level": i % 3, "code": f"C-{i:06d}"},
        }
        for i in range(50_000)
    ]
    rels = [
        {
            "from": f"capability:c{i}",
            "type": "DEPENDS_ON",
            "to": f"capability:c{(i * 7 + j) % 50_000}",
        }
        for i in range(50_000)
        for j in (1, 2)
    ]
    path = tmp_path / "big.json"
    path.write_bytes(orjson.dumps({"nodes": nodes, "relations": rels}))
    size = path.stat().st_size
    del nodes, rels
    gc.collect()
    tracemalloc.start()
    try:
        problems = Problems()
        stream = DocumentStream(path, problems)
        counted = sum(len(p) for p in stream.node_parts())
        counted += sum(len(p) for p in stream.relation_parts())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counted == 150_000 and not problems
    # Measured: 27 MB streamed; the whole document parsed and validated at once (parse_document)
    # peaks at about 330 MB for this 18 MB file.
    assert peak < 40_000_000, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"

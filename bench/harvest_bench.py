"""Time harvesting a large generated OpenAPI spec, then re-harvesting it unchanged.

The spec has 1,000 operations (in 50 tags) and 500 component schemas (50 domains of 10,
each schema with scalar properties, references within its domain, arrays, an allOf and a
circular back-reference, plus shared Money and Address schemas). Measured in-process on the
code path of ``capahub harvest`` (read, parse, map, diff, one transaction) against an empty
SQLite catalog; then the same spec again, which must write nothing (history rows are counted
before and after). Targets: first harvest < 10 s; unchanged re-harvest < 3 s and zero writes.

    .venv/bin/python bench/harvest_bench.py [--operations 1000] [--schemas 500] [--repeat 3]
        [--database URL]   # e.g. an empty PostgreSQL database instead of a SQLite file
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from _util import settings_for
from sqlalchemy import func, select

from catalog.harvest import HarvestReport, SourceSpec, SourceType
from catalog.services import Services
from catalog.specs import parse_document
from metadata.tables import history

FIRST_TARGET_S = 10.0
AGAIN_TARGET_S = 3.0
DOMAINS = 50


def generate_spec(operations: int, schemas: int, *, seed: int = 7) -> dict[str, Any]:
    """An OpenAPI 3.1 document of the given size, deterministic for a seed."""
    rnd = random.Random(seed)
    per_domain = max(1, schemas // DOMAINS)
    names = [f"D{d:02d}Entity{i:02d}" for d in range(DOMAINS) for i in range(per_domain)]
    names = names[: schemas - 2]
    comps: dict[str, Any] = {
        "Money": {
            "type": "object",
            "properties": {"amount": {"type": "string"}, "currency": {"type": "string"}},
        },
        "Address": {
            "type": "object",
            "properties": {
                k: {"type": "string"} for k in ("street", "postalCode", "city", "country")
            },
        },
    }
    for idx, name in enumerate(names):
        domain = names[(idx // per_domain) * per_domain : (idx // per_domain + 1) * per_domain]
        props: dict[str, Any] = {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string", "description": f"Name of the {name}."},
            "email": {"type": "string", "format": "email"},
            "createdAt": {"type": "string", "format": "date-time"},
            "status": {"type": "string", "enum": ["new", "active", "closed"]},
            "count": {"type": "integer", "format": "int32"},
            "price": {"$ref": "#/components/schemas/Money"},
        }
        if idx % 3 == 0:
            props["address"] = {"$ref": "#/components/schemas/Address"}
        sibling = domain[(domain.index(name) + 1) % len(domain)]
        props["related"] = {"$ref": f"#/components/schemas/{sibling}"}
        props["items"] = {
            "type": "array",
            "items": {"$ref": f"#/components/schemas/{rnd.choice(domain)}"},
        }
        props["parent"] = {"$ref": f"#/components/schemas/{domain[0]}"}  # circular in-domain
        schema: dict[str, Any] = {
            "type": "object",
            "description": f"{name} of domain {idx // per_domain}.",
            "required": ["id", "name"],
            "properties": props,
        }
        if idx % 10 == 5:
            schema = {
                "description": schema["description"],
                "allOf": [
                    {"$ref": f"#/components/schemas/{domain[0]}"},
                    {"type": "object", "properties": {"extra": {"type": "string"}}},
                ],
            }
        comps[name] = schema
    paths: dict[str, Any] = {}
    methods = ["get", "post", "put", "patch", "delete"]
    for op in range(operations):
        target = names[op % len(names)]
        domain_no = names.index(target) // per_domain
        path = f"/d{domain_no:02d}/{target.lower()}/{op // len(names)}"
        method = methods[op % len(methods)]
        body = {
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{target}"}}}
        }
        operation: dict[str, Any] = {
            "tags": [f"domain-{domain_no:02d}"],
            "operationId": f"{method}{target}V{op}",
            "summary": f"{method.upper()} {target} ({op})",
            "responses": {
                "200": {"description": "ok", **body},
                "default": {"description": "error"},
            },
        }
        if method in ("post", "put", "patch"):
            operation["requestBody"] = body
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Generated enterprise API", "version": "1.0.0"},
        "servers": [{"url": "https://api.example.com"}],
        "tags": [{"name": f"domain-{d:02d}", "description": f"Domain {d}"} for d in range(DOMAINS)],
        "paths": paths,
        "components": {"schemas": comps},
    }


@dataclass
class Run:
    """One harvest: wall time, history rows written, and the report."""

    seconds: float
    writes: int
    report: HarvestReport


async def _history(services: Services) -> int:
    async with services.store.read() as r:
        return int((await r.conn.execute(select(func.count()).select_from(history))).scalar_one())


async def harvest_once(url: str, path: Path) -> Run:
    """Harvest the spec at ``path`` into the catalog at ``url`` (services started outside the
    timing, as a running hub has them)."""
    services = await Services.start(settings_for(url), projections=False)
    try:
        await services.registry.apply_document(
            parse_document("nodes: [{id: system:bench, name: Bench system}]")
        )
        spec = SourceSpec.build(
            {
                "key": "bench",
                "name": "Bench API",
                "type": SourceType.OPENAPI,
                "location": str(path),
                "system": "system:bench",
            }
        )
        before = await _history(services)
        t0 = time.perf_counter()
        report = await services.harvest.harvest_location(spec, trusted=True)
        seconds = time.perf_counter() - t0
        return Run(seconds, await _history(services) - before, report)
    finally:
        await services.close()


def _line(label: str, runs: list[Run]) -> float:
    med = statistics.median(r.seconds for r in runs)
    r = runs[0].report
    print(
        f"{label:<22} {med:6.2f} s  ({len(r.added)} added, {len(r.updated)} updated, "
        f"{len(r.retired)} retired, {r.unchanged} unchanged, {r.relations_added} relations "
        f"added; {max(x.writes for x in runs)} history rows written)"
    )
    return med


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=1000)
    parser.add_argument("--schemas", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", help="an empty catalog database (default: SQLite files)")
    args = parser.parse_args(argv)

    doc = generate_spec(args.operations, args.schemas)
    text = orjson.dumps(doc).decode()
    ops = sum(len(v) for v in doc["paths"].values())
    print(
        f"spec: {ops} operations, {len(doc['components']['schemas'])} schemas, "
        f"{len(text) / 1e6:.1f} MB of JSON"
    )
    first: list[Run] = []
    again: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="capahub-harvest-") as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(text, encoding="utf-8")
        repeat = 1 if args.database else args.repeat
        for i in range(repeat):
            url = args.database or f"sqlite:///{tmp}/catalog-{i}.db"
            first.append(asyncio.run(harvest_once(url, path)))
            again.append(asyncio.run(harvest_once(url, path)))
    where = "the given database" if args.database else "SQLite file"
    print(f"\nmedian of {len(first)} runs, {where}, in-process:")
    t_first = _line("harvest into empty", first)
    t_again = _line("re-harvest unchanged", again)
    writes = max(r.writes for r in again)
    ok = t_first < FIRST_TARGET_S and t_again < AGAIN_TARGET_S and writes == 0
    print(
        f"\ntargets: first < {FIRST_TARGET_S:.0f} s, re-harvest < {AGAIN_TARGET_S:.0f} s with "
        f"0 writes: {'OK' if ok else 'MISSED'}"
    )
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()

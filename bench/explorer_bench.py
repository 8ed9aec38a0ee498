"""How fast the explorer draws on a large catalog, measured in Chromium with the Performance API.

    .venv/bin/python bench/explorer_bench.py [--capabilities 10000] [--runs 5] [--db-dir /tmp]

A synthetic catalog (bench/synth.py) of 2.5 nodes per capability, 10,000 capabilities by
default (25,000 nodes, ~270 L1, ~1,600 L2 and ~8,100 L3 capabilities), plus a 20-step journey
(``journey:bench-twenty``, 3 capabilities and 1-2 touchpoints per step) and a system that
provides 499 capabilities (``system:bench-hub``: its neighbourhood at depth 1 holds 500 nodes).
A real ``capahub serve`` (one worker, SQLite) serves it; headless Debian chromium opens each
view ``--runs`` times, each in a fresh browser context (nothing cached), and reads the measure
the page sets when its drawing is done (``explorer:<view>``: from navigation start to the
``explorer:<view>:drawn`` mark, so it includes loading the page, the GraphQL answer and the
layout). The targets of issue 13: the map within 2 s, the board within 1 s, the graph within 2 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from _util import CAPAHUB, code_note, machine_note, running_server, seeded_database
from synth import generate_document

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"map": 2000.0, "journey": 1000.0, "graph": 2000.0}
VIEWS = {
    "map": "#/map",
    "journey": "#/journey/journey:bench-twenty",
    "graph": "#/graph/system:bench-hub",
}
# Runs in node from the checkout (playwright-core from node_modules); prints one JSON object.
DRIVER = r"""
import { chromium } from 'playwright-core';
const { base, views, runs } = JSON.parse(process.argv[1]);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const out = {};
for (const [view, hash] of Object.entries(views)) {
  out[view] = { ms: [], detail: null, errors: [] };
  for (let i = 0; i < runs; i += 1) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('pageerror', (e) => out[view].errors.push(String(e.message)));
    page.on('console', (m) => { if (m.type() === 'error') out[view].errors.push(m.text()); });
    await page.goto(`${base}/${hash}`);
    await page.waitForSelector(`main[data-drawn="${view}"]`, { timeout: 60000 });
    out[view].ms.push(await page.evaluate((name) => performance.getEntriesByName(name, 'measure').pop().duration, `explorer:${view}`));
    out[view].detail = await page.evaluate(() => ({
      boxes: document.querySelectorAll('#capmap [data-id]').length,
      columns: document.querySelectorAll('#journey-board thead th[data-step]').length,
      graph: (document.querySelector('main p[role="status"]') || {}).textContent || null,
    }));
    await context.close();
  }
}
await browser.close();
process.stdout.write(JSON.stringify(out));
"""


def extra_document(doc: dict[str, Any]) -> dict[str, Any]:
    """The 20-step journey and the 500-node neighbourhood, on the synthetic catalog's nodes."""
    ids = [n["id"] for n in doc["nodes"]]
    leaves = [i for i in ids if i.startswith("capability:") and i.count(".") == 2]
    touchpoints = [i for i in ids if i.startswith("touchpoint:")]
    nodes: list[dict[str, Any]] = [
        {"id": "journey:bench-twenty", "name": "Twenty steps"},
        {"id": "system:bench-hub", "name": "Bench hub"},
    ]
    relations: list[dict[str, Any]] = []
    for i in range(1, 21):
        step = f"step:bench-twenty.s{i:02d}"
        nodes.append({"id": step, "name": f"Step {i}", "properties": {"order": i}})
        relations.append({"from": step, "type": "PART_OF", "to": "journey:bench-twenty"})
        for cap in leaves[i * 3 : i * 3 + 3]:
            relations.append({"from": step, "type": "USES", "to": cap})
        for tp in touchpoints[i % len(touchpoints) : i % len(touchpoints) + 1 + i % 2]:
            relations.append({"from": step, "type": "OCCURS_AT", "to": tp})
    for cap in leaves[1000:1499]:
        relations.append({"from": "system:bench-hub", "type": "PROVIDES", "to": cap})
    return {"nodes": nodes, "relations": relations}


def main(argv: list[str] | None = None) -> None:
    """Build the catalog, serve it, measure each view, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--capabilities", type=int, default=10_000, help="capabilities")
    parser.add_argument("--runs", type=int, default=5, help="page loads per view")
    parser.add_argument("--db-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    nodes = args.capabilities * 5 // 2
    seeded = seeded_database(nodes, 1, args.db_dir)
    work = Path(tempfile.mkdtemp(prefix="explorer-bench-"))
    database = work / "explorer.db"
    shutil.copyfile(seeded.removeprefix("sqlite:///"), database)
    url = f"sqlite:///{database}"
    extra = work / "extra.yaml"
    extra.write_text(yaml.safe_dump(extra_document(generate_document(nodes, seed=1))))
    subprocess.run([str(CAPAHUB), "apply", str(extra), "--database", url], check=True)
    with running_server(url, log=work / "serve.log", clean_env=True) as server:
        started = time.perf_counter()
        answer = httpx.post(
            f"{server.url}/graphql",
            json={"query": "{ capabilityMap(depth: 3) { level capability { id } } }"},
            timeout=60,
        ).json()
        api_ms = (time.perf_counter() - started) * 1000
        count = len(answer["data"]["capabilityMap"])
        done = subprocess.run(
            ["node", "--input-type=module", "-e", DRIVER, "--"]
            + [json.dumps({"base": server.url, "views": VIEWS, "runs": args.runs})],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if done.returncode:
        sys.exit(f"the browser driver failed:\n{done.stderr}")
    result = json.loads(done.stdout)
    print(
        f"catalog: {nodes} nodes, {count} capabilities on the map (capabilityMap alone: {api_ms:.0f} ms)"
    )
    print(machine_note())
    print(code_note())
    for view, seen in result.items():
        ms = sorted(seen["ms"])
        verdict = "met" if statistics.median(ms) <= TARGETS[view] else "MISSED"
        detail = {k: v for k, v in seen["detail"].items() if v}
        print(
            f"{view:8s} median {statistics.median(ms):7.0f} ms  max {ms[-1]:7.0f} ms  "
            f"min {ms[0]:7.0f} ms  target {TARGETS[view]:.0f} ms: {verdict}  {detail}"
            + (f"  errors: {seen['errors'][:2]}" if seen["errors"] else "")
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

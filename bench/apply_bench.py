"""Time applying a synthetic catalog document to an empty SQLite catalog, then re-applying it.

Measures, in-process (the code path of ``capahub apply``): parsing and validating the JSON
document, opening and migrating the database, and the apply transaction; then the same
document again, unchanged. Also times the ``capahub apply`` command end to end (a fresh
process, so interpreter and import time included). Target: under 10 s for 10,000 nodes.

    .venv/bin/python bench/apply_bench.py [--nodes 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from _util import CAPAHUB, code_note, machine_note, settings_for
from sqlalchemy import event
from synth import describe, generate_document

from catalog.services import Services
from catalog.specs import parse_document

TARGET_S = 10.0


@dataclass
class Timing:
    """Seconds spent in each phase of one apply, and what it did."""

    parse: float
    open: float
    apply: float
    statements: int
    report: str

    @property
    def total(self) -> float:
        """Parse + open + apply."""
        return self.parse + self.open + self.apply


async def apply_once(text: str, url: str) -> Timing:
    """Parse ``text`` and apply it to the catalog at ``url``, timing each phase."""
    t0 = time.perf_counter()
    doc = parse_document(text)
    t1 = time.perf_counter()
    # As `capahub apply` does: no in-memory projections (graph, search warm-up) for a one-shot run.
    services = await Services.start(settings_for(url), projections=False)
    t2 = time.perf_counter()
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(services.store.engine.sync_engine, "before_cursor_execute", count)
    try:
        report = await services.registry.apply_document(doc)
        t3 = time.perf_counter()
    finally:
        await services.close()
    summary = (
        f"{len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {report.relations_added} relations added"
    )
    return Timing(t1 - t0, t2 - t1, t3 - t2, statements, summary)


def cli_once(path: Path, url: str) -> float:
    """Wall time of ``capahub apply FILE --database URL`` in a fresh process."""
    t0 = time.perf_counter()
    subprocess.run(
        [str(CAPAHUB), "apply", str(path), "--database", url],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def _show(label: str, runs: list[Timing]) -> float:
    med = statistics.median
    total = med(t.total for t in runs)
    print(
        f"{label:<22} total {total:6.2f} s  (parse {med(t.parse for t in runs):5.2f} s, "
        f"open+migrate {med(t.open for t in runs):5.2f} s, "
        f"apply {med(t.apply for t in runs):5.2f} s; {runs[0].statements} SQL statements)  "
        f"-> {runs[0].report}"
    )
    return total


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print medians over ``--repeat`` runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure (median shown)")
    args = parser.parse_args(argv)

    doc = generate_document(args.nodes, seed=args.seed)
    text = orjson.dumps(doc).decode()
    print(f"document: {describe(doc)}; {len(text) / 1e6:.1f} MB of JSON")
    print(f"machine: {machine_note()}; {code_note()}")

    first: list[Timing] = []
    again: list[Timing] = []
    cli_first: list[float] = []
    cli_again: list[float] = []
    with tempfile.TemporaryDirectory(prefix="capahub-apply-") as tmp:
        path = Path(tmp) / "synth.json"
        path.write_text(text, encoding="utf-8")
        for i in range(args.repeat):
            url = f"sqlite:///{tmp}/inproc-{i}.db"
            first.append(asyncio.run(apply_once(text, url)))
            again.append(asyncio.run(apply_once(text, url)))
            url = f"sqlite:///{tmp}/cli-{i}.db"
            cli_first.append(cli_once(path, url))
            cli_again.append(cli_once(path, url))

    print(f"\nmedian of {args.repeat} runs, {args.nodes} nodes, SQLite file, in-process:")
    total = _show("apply to empty", first)
    _show("re-apply unchanged", again)
    print("`capahub apply` command, wall time (fresh process: imports and start-up included):")
    print(f"{'apply to empty':<22} total {statistics.median(cli_first):6.2f} s")
    print(f"{'re-apply unchanged':<22} total {statistics.median(cli_again):6.2f} s")
    verdict = "OK" if total < TARGET_S else "MISSED"
    print(f"machine: {machine_note()}")
    print(f"\ntarget: apply {args.nodes} nodes to an empty catalog < {TARGET_S:.0f} s: {verdict}")
    if total >= TARGET_S:
        sys.exit(1)


if __name__ == "__main__":
    main()

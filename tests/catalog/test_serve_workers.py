"""``capahub serve --workers N``: several processes on one catalog, each following the others."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import capahub_serve


def _workers(pid: int) -> list[int]:
    """Worker processes uvicorn spawned under ``pid`` (Linux /proc; not the resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    database = f"sqlite:///{tmp_path / 'c.db'}"
    env = {**os.environ, "CAPAHUB_LOG_LEVEL": "warning"}
    with capahub_serve(
        tmp_path, "--demo", "--workers", "2", "--database", database, env=env
    ) as srv:
        yield srv.base, srv.process


def _post(base: str, query: str) -> dict[str, object]:
    # A fresh connection per request, so the kernel spreads them over the workers.
    body: dict[str, object] = httpx.post(f"{base}/graphql", json={"query": query}).json()
    return body


def test_workers_share_the_catalog_and_follow_each_others_writes(
    two_workers: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, proc = two_workers
    deadline = time.monotonic() + 20
    workers = _workers(proc.pid)
    while len(workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        workers = _workers(proc.pid)
    assert len(workers) == 2

    counts = {str(_post(base, "{ systems { totalCount } }")) for _ in range(10)}
    assert len(counts) == 1  # the demo was loaded once, and every worker sees all of it
    assert "'totalCount': 0" not in counts.pop()

    created = _post(
        base, 'mutation { upsertNode(input: {id: "system:pos-2", name: "POS 2"}) { id } }'
    )
    assert created["data"] == {"upsertNode": {"id": "system:pos-2"}}
    query = '{ node(id: "system:pos-2") { id name } }'
    expected = {"node": {"id": "system:pos-2", "name": "POS 2"}}
    deadline = time.monotonic() + 5
    answers = [_post(base, query).get("data") for _ in range(10)]
    while any(a != expected for a in answers) and time.monotonic() < deadline:
        time.sleep(0.1)
        answers = [_post(base, query).get("data") for _ in range(10)]
    assert all(a == expected for a in answers), answers

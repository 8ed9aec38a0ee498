"""Helpers shared by the benchmarks: a seeded catalog file, a real server, statistics."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from synth import generate_document  # bench/ is on sys.path: the scripts run from it

from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import parse_document

BENCH = Path(__file__).resolve().parent
CAPAHUB = Path(sys.executable).with_name("capahub")
MIGRATIONS = BENCH.parent / "metadata" / "migrations" / "versions"

#: The discovery query of issue 2.
DISCOVERY_QUERY = (
    "query { capabilities(first: 100) { edges { node { id name providers { id name } "
    "reads { id name } writes { id name } parent { id } } } } }"
)


def settings_for(url: str) -> Settings:
    """Settings for ``url`` that ignore any ``.env`` in the working directory."""
    return Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]


async def _apply(url: str, text: str) -> None:
    services = await Services.start(settings_for(url))
    try:
        await services.registry.apply_document(parse_document(text))
    finally:
        await services.close()


def seeded_database(nodes: int, seed: int, directory: Path) -> str:
    """A SQLite catalog of ``nodes`` synthetic nodes under ``directory`` (built once, reused)."""
    # The generator and the migrations are part of the name: change either, get a fresh catalog
    # (a migration edited in place would otherwise leave the old file looking up to date).
    sources = [BENCH / "synth.py", *sorted(MIGRATIONS.glob("*.py"))]
    digest = hashlib.sha1(b"".join(p.read_bytes() for p in sources)).hexdigest()[:8]
    path = directory / f"capahub-bench-{nodes}-{seed}-{digest}.db"
    url = f"sqlite:///{path}"
    if not path.exists():
        print(f"building {path} ({nodes} nodes, seed {seed})...", file=sys.stderr)
        text = orjson.dumps(generate_document(nodes, seed=seed)).decode()
        tmp = path.with_suffix(".tmp.db")
        for leftover in tmp.parent.glob(tmp.name + "*"):
            leftover.unlink()
        asyncio.run(_apply(f"sqlite:///{tmp}", text))
        tmp.rename(path)
    return url


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """A running ``capahub serve`` subprocess."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def running_server(
    database: str,
    *,
    log: Path,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    clean_env: bool = False,
) -> Iterator[Server]:
    """Start ``capahub serve *args`` (one uvicorn worker) on a free port; wait for /healthz;
    stop it. ``clean_env``: no CAPAHUB_* setting of this shell reaches it, only ``env``."""
    port = free_port()
    cmd = [str(CAPAHUB), "serve", *args, "--database", database, "--port", str(port)]
    base = {k: v for k, v in os.environ.items() if not (clean_env and k.startswith("CAPAHUB_"))}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**base, **(env or {})}
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"capahub serve exited with {proc.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"capahub serve did not answer /healthz in 60 s; see {log}")
            time.sleep(0.1)
        yield Server(base, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_note() -> str:
    """CPU count and load average: other work on the machine skews wall-clock numbers."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.2f} (1 min) {five:.2f} (5 min)"


def code_note() -> str:
    """The commit measured, and how many files of the working tree differ from it."""
    root = BENCH.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout
    except OSError:
        return "code: unknown (no git)"
    dirty = len(status.splitlines())
    return f"code: commit {head}" + (f" + {dirty} modified files" if dirty else "")


@dataclass(frozen=True)
class Stats:
    """Summary of a series of durations, in milliseconds."""

    runs: int
    median: float
    p95: float
    mean: float
    minimum: float

    @classmethod
    def of(cls, seconds: list[float]) -> Stats:
        """Summarize durations given in seconds."""
        ms = sorted(s * 1000 for s in seconds)
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        return cls(len(ms), statistics.median(ms), p95, statistics.fmean(ms), ms[0])

    def __str__(self) -> str:
        return (
            f"median {self.median:7.2f} ms   p95 {self.p95:7.2f} ms   "
            f"mean {self.mean:7.2f} ms   min {self.minimum:7.2f} ms   ({self.runs} runs)"
        )


__all__ = [
    "BENCH",
    "CAPAHUB",
    "DISCOVERY_QUERY",
    "Server",
    "Stats",
    "code_note",
    "cpu_seconds",
    "free_port",
    "machine_note",
    "running_server",
    "seeded_database",
    "settings_for",
]

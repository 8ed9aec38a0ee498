"""A real ``capahub serve`` for tests: a free local port, the process, waiting for /healthz."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    """A running server: its base URL, its process and the file holding its output."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def capahub_serve(
    tmp: Path,
    *args: str,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    log_name: str = "serve.log",
    timeout: float = 60,
) -> Iterator[Served]:
    """Run ``capahub serve --port <free> *args`` (cwd ``tmp``, output in ``tmp / log_name``)
    until /healthz answers 200; stop it on exit. Fails the test with the server's output if it
    exits or never answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp / log_name
    cmd = [*(command or [sys.executable, "-m", "catalog.cli"]), "serve", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*cmd, *args], stdout=log, stderr=subprocess.STDOUT, cwd=tmp, env=env
        )
        served = Served(base, proc, log_path)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"capahub serve exited with {proc.returncode}: {served.output()}")
                with contextlib.suppress(httpx.TransportError):
                    # trust_env=False: no proxy from the environment between us and loopback
                    health = httpx.get(f"{base}/healthz", timeout=1, trust_env=False)
                    if health.status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"capahub serve did not answer /healthz: {served.output()}")
                time.sleep(0.1)
            yield served
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

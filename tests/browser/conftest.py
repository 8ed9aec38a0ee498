"""Shared fixtures for the browser tests: node, chromium and the playground's assets."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from strawberry.http.ides import get_graphql_ide_html

from catalog.playground import missing_assets

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary; the test is skipped without it or without chromium."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium; .ci/run does)")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is absent (apt-get install nodejs npm; .ci/run does)")
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is not installed: run `npm ci` (scripts/test does)")
    missing = missing_assets(get_graphql_ide_html("graphiql"))
    if missing:
        pytest.fail(
            f"{len(missing)} playground assets missing (e.g. {missing[0].relpath}): "
            "run `.venv/bin/python scripts/fetch-assets` (scripts/test does)"
        )
    return node


def run_driver(node: str, driver: Path, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a browser driver (``node DRIVER ARGS...``) and return the JSON report it prints;
    fails the test when it exits with an error."""
    done = subprocess.run(
        [node, str(driver), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{driver.name} failed ({done.returncode}):\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report

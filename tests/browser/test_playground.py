"""The playground in headless Debian chromium: it loads, runs a typed query, never leaves the host.

The real hub (`capahub serve --demo`) runs in a subprocess; ``playground.mjs`` drives chromium
through playwright-core, records every request the page makes and prints a JSON report.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from strawberry.http.ides import get_graphql_ide_html

from catalog.playground import EXAMPLE_TABS, vendor_assets
from tests.serving import capahub_serve

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("playground.mjs")


@pytest.fixture(scope="module")
def hub_url(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a real `capahub serve --demo` on a free loopback port."""
    tmp = tmp_path_factory.mktemp("hub")
    # No CAPAHUB_* from the caller's environment (e.g. a disabled IDE), no .env: cwd is tmp.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPAHUB_")}
    capahub = [str(Path(sys.executable).with_name("capahub"))]
    database = f"sqlite:///{tmp / 'x.db'}"
    with capahub_serve(
        tmp, "--demo", "--host", "127.0.0.1", "--database", database, env=env, command=capahub
    ) as srv:
        yield srv.base


@pytest.fixture(scope="module")
def report(node: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the browser driver saw on the playground page."""
    artifacts = tmp_path_factory.mktemp("browser")
    done = subprocess.run(
        [node, str(DRIVER), f"{hub_url}/graphql", str(artifacts)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"playground.mjs failed ({done.returncode}):\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["error"] is None, (
        f"{result['error']}\nscreenshot: {artifacts / 'playground-failure.png'}\n"
        f"report: {json.dumps(result, indent=2)}"
    )
    return result


def test_playground_opens_with_example_tabs(report: dict[str, Any]) -> None:
    operation = re.compile(r"^(?!#).*(?:query|mutation|subscription)\s+(\w+)", re.M)
    names = [m.group(1) for tab in EXAMPLE_TABS if (m := operation.search(tab["query"]))]
    assert len(names) == len(EXAMPLE_TABS)
    assert report["tabs"] == names
    assert report["pageErrors"] == []
    assert report["consoleErrors"] == []


def test_typed_query_runs_and_shows_its_result(report: dict[str, Any]) -> None:
    assert "systems(first: 3)" in report["editorText"]
    shown = report["resultShown"]
    assert '"totalCount"' in shown
    assert '"system:' in shown
    systems = json.loads(report["result"])["data"]["systems"]
    assert systems["totalCount"] > 3
    assert [e["node"]["id"] for e in systems["edges"]][0] in shown
    assert report["authNoticeVisible"] is False


def test_playground_loads_everything_from_the_hub(report: dict[str, Any], hub_url: str) -> None:
    assert report["offMachineRequests"] == []
    # ...and that silence means something: the recorder did see an off-machine probe.
    assert report["probeSeen"] is True
    loaded = set(report["localRequests"])
    for asset in vendor_assets(get_graphql_ide_html("graphiql")):
        assert f"{hub_url}/playground/vendor/{asset.relpath}" in loaded


def test_unloadable_bundle_shows_how_to_fetch_assets(report: dict[str, Any]) -> None:
    text = report["brokenPageText"]
    assert "did not load (GraphiQL)" in text
    assert "scripts/fetch-assets" in text

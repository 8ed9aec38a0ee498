"""The explorer's routes through the real app: the page, its files, its vendored libraries.

No browser here: what the hub serves at /, with which headers, and that every GraphQL
operation the page sends is valid against the served schema.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from graphql import parse, validate
from starlette.testclient import TestClient

from catalog.app import create_app
from catalog.explorer import EXPLORER_ASSETS, missing_explorer_assets
from catalog.explorer.routes import STATIC_DIR, explorer_page
from catalog.playground import VENDOR_DIR, integrity_matches
from catalog.settings import Settings

IMPORTMAP = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)
OPERATION = re.compile(r"`((?:query|mutation) Explorer\w+.*?)`", re.DOTALL)


def _client(sqlite_url: str, auth: str) -> Iterator[TestClient]:
    # The routes do not depend on the database: SQLite only, whatever CAPAHUB_TEST_* say.
    app = create_app(Settings(database_url=sqlite_url, auth=auth, _env_file=None))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def http(sqlite_url: str) -> Iterator[TestClient]:
    """The real app with access control off."""
    yield from _client(sqlite_url, "off")


@pytest.fixture
def http_auth(sqlite_url: str) -> Iterator[TestClient]:
    """The real app with access control on."""
    yield from _client(sqlite_url, "on")


def test_page_at_root_is_static_and_names_only_the_hub(http: TestClient) -> None:
    page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "https://" not in html and "http://" not in html  # no CDN, nothing off the host
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    importmap = IMPORTMAP.search(html)
    assert importmap is not None
    digest = base64.b64encode(hashlib.sha256(importmap.group(1).encode()).digest()).decode()
    assert (
        f"script-src 'self' 'sha256-{digest}'" in policy
    )  # the import map is the only inline script
    mapping = json.loads(importmap.group(1))
    for name, asset in EXPLORER_ASSETS.items():
        url = f"./explorer/vendor/{asset.relpath}"
        assert mapping["imports"][name] == url
        assert mapping["integrity"][url] == asset.integrity


def test_own_files_are_served_as_javascript_and_nothing_else(http: TestClient) -> None:
    app = http.get("/explorer/static/app.js")
    assert app.status_code == 200
    assert app.headers["content-type"].startswith("text/javascript")
    assert http.get("/explorer/static/explorer.css").headers["content-type"].startswith("text/css")
    for path in ("../routes.py", "..%2Froutes.py", "index.html", "nope.js"):
        refused = http.get(f"/explorer/static/{path}")
        assert refused.status_code == 404, path


def test_modules_import_only_their_neighbours_and_the_import_map() -> None:
    names = set(EXPLORER_ASSETS)
    for module in STATIC_DIR.glob("*.js"):
        text = module.read_text()
        for spec in re.findall(r"""(?:from\s+|import\()\s*['"]([^'"]+)['"]""", text):
            assert spec.startswith("./") or spec in names, f"{module.name} imports {spec}"


def test_vendored_libraries_are_served_only_when_listed(http: TestClient) -> None:
    missing = missing_explorer_assets()
    if missing:
        pytest.fail(f"explorer assets missing ({missing[0].relpath}): run scripts/fetch-assets")
    for asset in EXPLORER_ASSETS.values():
        served = http.get(f"/explorer/vendor/{asset.relpath}")
        assert served.status_code == 200
        assert served.headers["content-type"].startswith("text/javascript")
        assert "immutable" in served.headers["cache-control"]
        assert integrity_matches(served.content, asset.integrity)
    playground_file = next(p for p in VENDOR_DIR.rglob("*.js") if "cytoscape" not in str(p))
    other = http.get(f"/explorer/vendor/{playground_file.relative_to(VENDOR_DIR)}")
    assert other.status_code == 404
    assert "scripts/fetch-assets" in other.text


def test_page_says_which_libraries_are_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("catalog.explorer.assets.VENDOR_DIR", tmp_path)
    html, _ = explorer_page()
    config = json.loads(re.search(r'id="explorer-config">(.*?)</script>', html).group(1))  # type: ignore[union-attr]
    assert config["missingAssets"] == [a.relpath for a in EXPLORER_ASSETS.values()]
    assert config["fetchCommand"].endswith("scripts/fetch-assets")


def test_page_needs_no_token_while_the_api_does(http_auth: TestClient) -> None:
    assert http_auth.get("/").status_code == 200
    assert http_auth.get("/explorer/static/app.js").status_code == 200
    refused = http_auth.post("/graphql", json={"query": "{ nodes { totalCount } }"})
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_every_operation_of_the_page_is_valid_against_the_schema(http: TestClient) -> None:
    schema = http.app.state.schema._schema  # type: ignore[attr-defined]
    seen = []
    for module in STATIC_DIR.glob("*.js"):
        for text in OPERATION.findall(module.read_text()):
            if "${" in text:  # built from parts (the home page's counts): the browser test runs it
                continue
            errors = validate(schema, parse(text))
            assert not errors, f"{module.name}: {errors[0].message}\n{text}"
            seen.append(text.split("(", 1)[0].split("{", 1)[0].split()[1])
    assert {"ExplorerMap", "ExplorerJourney", "ExplorerNode", "ExplorerNeighbourhood"} <= set(seen)
    assert {"ExplorerRegisterCapability", "ExplorerEditNode", "ExplorerRelate"} <= set(seen)

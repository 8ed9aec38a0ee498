"""The playground page and its vendored files, through the real app; and scripts/fetch-assets."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import re
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from urllib.parse import urljoin

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from strawberry.http.ides import get_graphql_ide_html

from catalog.playground import (
    EXAMPLE_TABS,
    VENDOR_DIR,
    PlaygroundAssetError,
    integrity_matches,
    integrity_of,
    missing_assets,
    playground_html,
    playground_routes,
    vendor_assets,
)
from tests.conftest import GraphQLClient

ROOT = Path(__file__).resolve().parents[2]
STRAWBERRY_PAGE = get_graphql_ide_html("graphiql")
HTML = {"Accept": "text/html"}


def _asset_urls(page: str) -> list[str]:
    """The script and stylesheet URLs of a page, resolved against /graphql."""
    found = re.findall(r"""<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)\"""", page)
    return [urljoin("http://testserver/graphql", u) for u in found if not u.startswith("data:")]


def _app_on(vendor_dir: Path) -> TestClient:
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(playground_html(STRAWBERRY_PAGE, vendor_dir))

    return TestClient(Starlette(routes=[Route("/graphql", page), *playground_routes(vendor_dir)]))


@pytest.fixture
def fake_vendor(tmp_path: Path) -> Path:
    """A vendor directory holding a stand-in for every file strawberry's page loads."""
    for asset in vendor_assets(STRAWBERRY_PAGE):
        target = tmp_path / asset.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f"/* {asset.relpath} */".encode())
    return tmp_path


def test_vendor_assets_lists_every_cdn_file_with_its_hash() -> None:
    assets = vendor_assets(STRAWBERRY_PAGE)
    assert len(assets) == STRAWBERRY_PAGE.count("https://unpkg.com/") == 7
    assert {a.package for a in assets} >= {"react", "graphiql", "@graphiql/plugin-explorer"}
    assert all(a.integrity.startswith("sha384-") for a in assets)
    explorer = next(a for a in assets if a.url.endswith("index.umd.js"))
    assert explorer.relpath == "@graphiql/plugin-explorer@1.0.2/dist/index.umd.js"


def test_vendor_assets_refuses_a_cdn_file_without_integrity() -> None:
    page = '<script src="https://unpkg.com/react@18.2.0/umd/react.production.min.js"></script>'
    with pytest.raises(PlaygroundAssetError, match="no integrity"):
        vendor_assets(page)


def test_vendor_assets_refuses_an_unpinned_version() -> None:
    page = '<script src="https://unpkg.com/react@18/umd/react.js" integrity="sha384-x"></script>'
    with pytest.raises(PlaygroundAssetError, match="exact package version"):
        vendor_assets(page)


def test_integrity_matches_judges_by_the_strongest_hash() -> None:
    data = b"console.log(1)"
    assert integrity_matches(data, integrity_of(data))
    assert integrity_matches(data, f"{integrity_of(b'other', 'sha256')} {integrity_of(data)}")
    assert not integrity_matches(data, f"{integrity_of(data, 'sha256')} {integrity_of(b'x')}")
    assert not integrity_matches(data, "md5-abc")


def test_browser_get_serves_the_page_without_cdn(gql: GraphQLClient) -> None:
    response = gql.http.get("/graphql", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "unpkg.com" not in response.text
    if missing_assets(STRAWBERRY_PAGE):
        assert "scripts/fetch-assets" in response.text
    else:
        assert "playground/vendor/graphiql@" in response.text


def test_vendor_urls_serve_the_pinned_bytes(gql: GraphQLClient) -> None:
    if missing_assets(STRAWBERRY_PAGE):
        pytest.skip("playground assets not fetched: run .venv/bin/python scripts/fetch-assets")
    page = gql.http.get("/graphql", headers=HTML).text
    assets = {a.relpath: a for a in vendor_assets(STRAWBERRY_PAGE)}
    urls = _asset_urls(page)
    assert len(urls) == len(assets)
    for url in urls:
        relpath = url.split("/playground/vendor/", 1)[1]
        response = gql.http.get(url)
        assert response.status_code == 200, url
        assert response.content == (VENDOR_DIR / relpath).read_bytes()
        # The page keeps strawberry's integrity attributes: the browser checks these bytes.
        assert integrity_matches(response.content, assets[relpath].integrity)
        assert f'integrity="{assets[relpath].integrity}"' in page


def test_vendor_route_serves_files_with_type_and_long_cache(fake_vendor: Path) -> None:
    with _app_on(fake_vendor) as client:
        page = client.get("/graphql").text
        assert "unpkg.com" not in page
        for url in _asset_urls(page):
            response = client.get(url)
            assert response.status_code == 200, url
            relpath = url.split("/playground/vendor/", 1)[1]
            assert response.content == (fake_vendor / relpath).read_bytes()
            kind = "text/css" if url.endswith(".css") else "text/javascript"
            assert response.headers["content-type"].startswith(kind)
            assert "immutable" in response.headers["cache-control"]
            assert "max-age=31536000" in response.headers["cache-control"]


def test_page_preloads_the_example_operations(fake_vendor: Path) -> None:
    page = playground_html(STRAWBERRY_PAGE, fake_vendor)
    assert "defaultTabs: capahubTabs(parameters)" in page
    assert "parameters.q || CAPAHUB_TABS[0].query" in page
    tabs = json.loads(page.split("const CAPAHUB_TABS = ", 1)[1].split(";\n", 1)[0])
    assert tabs == EXAMPLE_TABS


def test_example_operations_run_against_the_demo(demo_gql: GraphQLClient) -> None:
    for tab in EXAMPLE_TABS:
        variables = json.loads(tab.get("variables") or "{}")
        data = demo_gql.data(tab["query"], variables)
        assert all(value for value in data.values()), tab["query"]
    capability = demo_gql.data('{ node(id: "capability:order-management.order-capture") { id } }')
    assert capability["node"] is not None


def test_missing_assets_page_says_to_run_fetch_assets(tmp_path: Path) -> None:
    with _app_on(tmp_path) as client:
        response = client.get("/graphql")
    assert response.status_code == 200
    assert "scripts/fetch-assets" in response.text
    assert "unpkg.com" not in response.text
    assert "<script" not in response.text
    for asset in vendor_assets(STRAWBERRY_PAGE):
        assert asset.relpath in response.text


def test_vendor_route_answers_404_with_a_hint(fake_vendor: Path) -> None:
    with _app_on(fake_vendor) as client:
        response = client.get("/playground/vendor/react@18.2.0/umd/nope.js")
    assert response.status_code == 404
    assert "scripts/fetch-assets" in response.text


def test_vendor_route_refuses_paths_outside_the_vendor_dir(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (tmp_path / "vendor").mkdir()
    with _app_on(tmp_path / "vendor") as client:
        for path in ("..%2Fsecret.txt", "%2E%2E/secret.txt", "%2Fetc%2Fpasswd"):
            response = client.get(f"/playground/vendor/{path}")
            assert response.status_code == 404, path
            assert "TOP SECRET" not in response.text


# scripts/fetch-assets, against a fake npm registry (a mirror) on 127.0.0.1.


def _load_fetch_assets() -> ModuleType:
    path = ROOT / "scripts" / "fetch-assets"
    loader = importlib.machinery.SourceFileLoader("fetch_assets", str(path))
    spec = importlib.util.spec_from_loader("fetch_assets", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class FakeRegistry:
    """An npm registry serving a few tarballs, counting the requests it gets."""

    def __init__(self) -> None:
        self.tarballs: dict[str, bytes] = {}
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests.append(self.path)
                body = registry.tarballs.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"not found")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mirror/"


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRegistry]:
    """A fake npm registry, configured as npm's registry for the test."""
    fake = FakeRegistry()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", fake.url)
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join()


JS = b"window.Widget = 1;\n"
PAGE = (
    '<script src="https://unpkg.com/@acme/widget@1.2.3/dist/widget.min.js" '
    f'integrity="{integrity_of(JS)}"></script>'
)


def test_fetch_assets_downloads_verifies_and_is_idempotent(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _load_fetch_assets()
    tarball_path = "/mirror/@acme/widget/-/widget-1.2.3.tgz"
    registry.tarballs[tarball_path] = _tarball({"dist/widget.min.js": JS, "README.md": b"hi"})

    assert script.fetch_assets(tmp_path, PAGE) == 1
    assert (tmp_path / "@acme/widget@1.2.3/dist/widget.min.js").read_bytes() == JS
    assert registry.requests == [tarball_path]

    assert script.fetch_assets(tmp_path, PAGE) == 0
    assert registry.requests == [tarball_path]
    out = capsys.readouterr().out
    assert "fetched  @acme/widget@1.2.3/dist/widget.min.js" in out
    assert "present  @acme/widget@1.2.3/dist/widget.min.js" in out


def test_fetch_assets_refuses_a_file_whose_hash_differs(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    script = _load_fetch_assets()
    tampered = _tarball({"dist/widget.min.js": b"window.Widget = 'evil';\n"})
    registry.tarballs["/mirror/@acme/widget/-/widget-1.2.3.tgz"] = tampered

    with pytest.raises(script.FetchError, match="does not match the page's integrity"):
        script.fetch_assets(tmp_path, PAGE)
    assert not (tmp_path / "@acme/widget@1.2.3/dist/widget.min.js").exists()


def test_fetch_assets_names_a_missing_tarball(registry: FakeRegistry, tmp_path: Path) -> None:
    script = _load_fetch_assets()
    with pytest.raises(script.FetchError, match=r"widget-1\.2\.3\.tgz: HTTP 404"):
        script.fetch_assets(tmp_path, PAGE)

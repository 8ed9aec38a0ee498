"""The explorer's routes: its page at ``/``, its own files and its vendored libraries.

Everything here is static: the page needs no token and holds no data. The browser asks the
public GraphQL API (``graphql``, relative, so a proxy may mount the hub under a prefix) for
everything it shows, with the caller's own token, so every right is the API's to grant.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from catalog.explorer.assets import EXPLORER_ASSETS, missing_explorer_assets
from catalog.playground import FETCH_COMMAND, VENDOR_DIR

STATIC_DIR = Path(__file__).parent / "static"
"""The explorer's own files: the page, its ES modules and its stylesheet."""

STATIC_URL = "explorer/static/"
VENDOR_URL = "explorer/vendor/"
_HEAD_MARK = "<!--capahub:head-->"
# Fixed rather than guessed: module scripts must come as JavaScript, and mimetypes reads the
# host's /etc/mime.types, which varies (and may not know .mjs).
_MEDIA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def explorer_page() -> tuple[str, str]:
    """The page's HTML and its Content-Security-Policy.

    The import map names each vendored library with its integrity hash; the config tells the
    page which of them are missing (the graph view then says how to install them).
    """
    template = (STATIC_DIR / "index.html").read_text()
    imports = {name: "./" + VENDOR_URL + a.relpath for name, a in EXPLORER_ASSETS.items()}
    integrity = {"./" + VENDOR_URL + a.relpath: a.integrity for a in EXPLORER_ASSETS.values()}
    importmap = json.dumps({"imports": imports, "integrity": integrity}, indent=2)
    config = {
        "missingAssets": [a.relpath for a in missing_explorer_assets()],
        "fetchCommand": FETCH_COMMAND,
    }
    config_json = json.dumps(config).replace("</", "<\\/")
    head = (
        f'<script type="importmap">{importmap}</script>\n'
        f'    <script type="application/json" id="explorer-config">{config_json}</script>'
    )
    # No inline script runs but the import map; nothing is loaded from anywhere but the hub.
    policy = "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' '{_sha256(importmap)}'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ]
    )
    return template.replace(_HEAD_MARK, head, 1), policy


def explorer_routes() -> list[BaseRoute]:
    """The page at ``/``, ``/explorer/static/...`` and ``/explorer/vendor/...``."""
    static_root = STATIC_DIR.resolve()
    vendored = {a.relpath for a in EXPLORER_ASSETS.values()}

    async def page(request: Request) -> Response:
        html, policy = explorer_page()
        headers = {
            "Content-Security-Policy": policy,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        return HTMLResponse(html, headers=headers)

    async def static_file(request: Request) -> Response:
        relpath = request.path_params["path"]
        file = (static_root / relpath).resolve()
        if not file.is_relative_to(static_root) or not file.is_file() or file.suffix == ".html":
            return PlainTextResponse(f"{relpath} is not one of the explorer's files", 404)
        # Revalidated (ETag) on every load: a new version of the hub serves new files at once.
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return FileResponse(file, headers=headers, media_type=_MEDIA_TYPES.get(file.suffix))

    async def vendor_file(request: Request) -> Response:
        relpath = request.path_params["path"]
        file = VENDOR_DIR / relpath
        if relpath not in vendored or not file.is_file():
            return PlainTextResponse(
                f"{relpath} is not among the explorer's installed files; on the hub's host, "
                f"run {FETCH_COMMAND} in the capahub checkout.",
                status_code=404,
            )
        # Each path names an exact package version, so its bytes never change.
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        }
        return FileResponse(file, headers=headers, media_type=_MEDIA_TYPES.get(file.suffix))

    return [
        Route("/", page, methods=["GET", "HEAD"]),
        Route(f"/{STATIC_URL}{{path:path}}", static_file, methods=["GET", "HEAD"]),
        Route(f"/{VENDOR_URL}{{path:path}}", vendor_file, methods=["GET", "HEAD"]),
    ]


__all__ = ["STATIC_DIR", "explorer_page", "explorer_routes"]

"""Fixtures of the harvest tests: fixture files, a real local HTTP server, catalog helpers."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from catalog.harvest import HarvestService
from catalog.services import Services
from catalog.specs import parse_document
from metadata.tables import history

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "harvest"

SYSTEMS = """
nodes:
  - {id: system:webshop, name: Webshop}
  - {id: system:erp, name: ERP}
  - {id: system:callcenter, name: Call center}
  - {id: system:portal, name: Developer portal}
  - {id: system:shopdb, name: Shop database}
  - {id: team:curators, name: Catalog curators}
"""


def fixture_text(name: str) -> str:
    """The text of a file under tests/fixtures/harvest."""
    return (FIXTURES / name).read_text(encoding="utf-8")


@dataclass
class Route:
    """What the test server answers on one path."""

    body: bytes = b""
    content_type: str = "application/json"
    status: int = 200
    delay: float = 0.0
    redirect: str | None = None
    require_auth: str | None = None
    truncate: bool = False  # announce the full length, send half, close


@dataclass
class FakeSite:
    """A real HTTP server on 127.0.0.1 with configurable routes; records request headers."""

    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)

    def url(self, path: str) -> str:
        """The absolute URL of ``path``."""
        return f"{self.base}{path}"

    def serve(self, path: str, body: str | bytes, **kw: Any) -> str:
        """Answer ``path`` with ``body``; returns its URL."""
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = Route(body=data, **kw)
        return self.url(path)


def _handler(site: FakeSite) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
            pass

        def _answer(self) -> None:
            site.seen.append({k.lower(): v for k, v in self.headers.items()})
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            route = site.routes.get(self.path.split("?", 1)[0])
            if route is None:
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if route.delay:
                time.sleep(route.delay)
            if route.require_auth and self.headers.get("authorization") != route.require_auth:
                body = b'{"errors": [{"message": "unauthenticated"}]}'
                self.send_response(401)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if route.redirect:
                self.send_response(302)
                self.send_header("location", route.redirect)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(route.status)
            self.send_header("content-type", route.content_type)
            self.send_header("content-length", str(len(route.body)))
            self.end_headers()
            if route.truncate:
                self.wfile.write(route.body[: len(route.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(route.body)

        do_GET = _answer
        do_POST = _answer

    return Handler


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that give up (timeouts, size limits) are part of the tests: stay quiet."""


@pytest.fixture
def site() -> Iterator[FakeSite]:
    """A real HTTP server on 127.0.0.1 (a free port) for URL harvests."""
    fake = FakeSite("")
    server = _Server(("127.0.0.1", 0), _handler(fake))
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
async def hub(services: Services) -> AsyncIterator[Services]:
    """Catalog services with a few systems and a team registered."""
    await services.registry.apply_document(parse_document(SYSTEMS))
    yield services


@pytest.fixture
def make_harvest(hub: Services) -> Callable[..., HarvestService]:
    """A harvest service on the hub's store with settings overridden (allowed hosts, roots...)."""

    def make(
        *, timeout: float = 10.0, max_bytes: int = 5_000_000, **settings: Any
    ) -> HarvestService:
        s = hub.settings.model_copy(update=settings)
        return HarvestService(hub.store, s, timeout=timeout, max_bytes=max_bytes)

    return make


async def history_count(services: Services) -> int:
    """How many history rows the catalog has (every write adds at least one)."""
    async with services.store.read() as r:
        return int((await r.conn.execute(select(func.count()).select_from(history))).scalar_one())


def as_json(value: Any) -> bytes:
    """JSON bytes of a value."""
    return json.dumps(value).encode()

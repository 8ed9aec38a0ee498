"""capahub in an Apollo Federation v2 supergraph, composed and served by Apollo's own tools.

The real hub (``capahub serve --demo``) and a small Node subgraph (``reviews-subgraph.mjs``,
which extends ``Capability`` with reviews) run on loopback ports. ``gateway.mjs`` reads both
subgraphs' ``_service { sdl }``, composes them with ``@apollo/composition`` and serves the
supergraph through ``@apollo/gateway``; the queries below go through that gateway.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
NODE_PACKAGES = (
    "@apollo/composition",
    "@apollo/gateway",
    "@apollo/server",
    "@apollo/subgraph",
    "graphql",
)
STARTUP_SECONDS = 60.0
NODE_TYPES = (
    "Domain",
    "Team",
    "System",
    "Capability",
    "DataEntity",
    "Journey",
    "JourneyStep",
    "Touchpoint",
    "Source",
)
CHANGE_ORDER = "capability:order-management.order-capture.change-order"
# What reviews-subgraph.mjs holds, by capability id: the stars of each review.
STARS = {
    "capability:campaign-management.campaign-execution.run-paid-social": [3],
    "capability:campaign-management.campaign-execution.send-email": [5, 4],
    CHANGE_ORDER: [2, 4],
}


@dataclass
class Server:
    """A server process started by this module and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """The end of what the process printed, for failure messages."""
        return f"--- {self.name} ({self.log}) ---\n{self.log.read_text(errors='replace')[-4000:]}"

    def read_events(self) -> list[dict[str, Any]]:
        """The JSON event lines the Node servers print (serve.mjs ``announce``)."""
        events: list[dict[str, Any]] = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith('{"event":'):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue  # a line still being written
        return events


def _environment() -> dict[str, str]:
    # No CAPAHUB_* settings (a disabled IDE, another database) and no APOLLO_* key that would
    # make the gateway report to Apollo's cloud: the servers see only what this test passes.
    return {k: v for k, v in os.environ.items() if not k.startswith(("CAPAHUB_", "APOLLO_"))}


def _start(name: str, command: list[str], tmp: Path) -> Server:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=tmp, env=_environment(), stdout=out, stderr=subprocess.STDOUT
        )
    return Server(name=name, process=process, log=log)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def _wait_for_event(server: Server, event: str) -> dict[str, Any] | None:
    """The first ``event`` line a Node server prints; None if it exited without printing it."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        exited = server.process.poll() is not None
        for found in server.read_events():
            if found["event"] == event:
                return found
        if exited:
            return None
        if time.monotonic() > deadline:
            pytest.fail(
                f"{server.name} printed no {event!r} in {STARTUP_SECONDS:.0f} s\n{server.output()}"
            )
        time.sleep(0.05)


def _wait_until_healthy(server: Server, base_url: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(trust_env=False, timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(
                    f"capahub serve exited with {server.process.returncode}\n{server.output()}"
                )
            try:
                if client.get(f"{base_url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(
        f"capahub serve did not answer /healthz in {STARTUP_SECONDS:.0f} s\n{server.output()}"
    )


def _post(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    with httpx.Client(trust_env=False, timeout=30) as client:
        resp = client.post(url, json={"query": query, "variables": variables or {}})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert not body.get("errors"), body["errors"]
    data: dict[str, Any] = body["data"]
    return data


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary; the module is skipped without it or without the npm test tools."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("`node` is not installed (apt-get install nodejs npm; .ci/run does)")
    missing = [
        p for p in NODE_PACKAGES if not (ROOT / "node_modules" / p / "package.json").exists()
    ]
    if missing:
        pytest.skip(f"node_modules lacks {', '.join(missing)}: run `npm ci` (scripts/test does)")
    return node


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's scratch directory: databases, logs, fetched SDL, the supergraph."""
    return tmp_path_factory.mktemp("federation")


@pytest.fixture(scope="module")
def capahub_url(node: str, tmp: Path) -> Iterator[str]:
    """The /graphql URL of a real ``capahub serve --demo`` on a free loopback port."""
    capahub = Path(sys.executable).with_name("capahub")
    if not capahub.exists():
        pytest.fail(f"{capahub} is missing: pip install -e '.[test]' (scripts/test does)")
    port = free_port()
    command = [str(capahub), "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--database", f"sqlite:///{tmp / 'f.db'}"]
    server = _start("capahub", command, tmp)
    try:
        _wait_until_healthy(server, f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        _stop(server)


@pytest.fixture(scope="module")
def reviews_url(node: str, tmp: Path) -> Iterator[str]:
    """The URL of the Node reviews subgraph on a free loopback port."""
    server = _start("reviews", [node, str(HERE / "reviews-subgraph.mjs"), "0"], tmp)
    try:
        listening = _wait_for_event(server, "listening")
        if listening is None:
            pytest.fail(
                f"the reviews subgraph exited with {server.process.returncode}\n{server.output()}"
            )
        yield str(listening["url"])
    finally:
        _stop(server)


@dataclass
class Supergraph:
    """What gateway.mjs made of the two subgraphs: the composition report and the gateway URL."""

    composition: dict[str, Any]
    url: str | None
    sdl: str
    server: Server

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a query through the gateway; it must succeed."""
        if self.url is None:
            pytest.fail(f"no gateway: composition failed: {self.composition['errors']}")
        return _post(self.url, query, variables)


@pytest.fixture(scope="module")
def supergraph(node: str, tmp: Path, capahub_url: str, reviews_url: str) -> Iterator[Supergraph]:
    """capahub and the reviews subgraph, composed and served by @apollo/gateway."""
    command = [node, str(HERE / "gateway.mjs"), capahub_url, reviews_url, str(tmp), "0"]
    server = _start("gateway", command, tmp)
    try:
        composed = _wait_for_event(server, "composed")
        if composed is None:
            pytest.fail(f"gateway.mjs exited with {server.process.returncode}\n{server.output()}")
        composition = json.loads((tmp / "composition.json").read_text())
        url = None
        if not composition["errors"]:
            listening = _wait_for_event(server, "listening")
            if listening is None:
                pytest.fail(
                    f"the gateway exited with {server.process.returncode}\n{server.output()}"
                )
            url = str(listening["url"])
        sdl_file = tmp / "supergraph.graphql"
        sdl = sdl_file.read_text() if sdl_file.exists() else ""
        yield Supergraph(composition=composition, url=url, sdl=sdl, server=server)
    finally:
        _stop(server)


def _type_header(sdl: str, name: str) -> str:
    """A type's definition line with its directives, up to the opening brace."""
    found = re.search(rf"^type {name}\b[^{{]*\{{", sdl, re.MULTILINE)
    assert found, f"type {name} is missing from the supergraph"
    return found.group(0)


def test_capahub_composes_with_a_second_subgraph_without_errors(
    supergraph: Supergraph, tmp: Path
) -> None:
    errors = supergraph.composition["errors"]
    assert errors == [], (
        "composition failed; capahub's SDL as the gateway fetched it is in "
        f"{tmp / 'capahub.graphql'}:\n" + "\n".join(f"[{e['code']}] {e['message']}" for e in errors)
    )
    assert '@join__graph(name: "capahub"' in supergraph.sdl
    assert '@join__graph(name: "reviews"' in supergraph.sdl
    for name in NODE_TYPES:
        assert '@join__type(graph: CAPAHUB, key: "id")' in _type_header(supergraph.sdl, name)
    assert '@join__type(graph: REVIEWS, key: "id")' in _type_header(supergraph.sdl, "Capability")


def test_capability_list_through_the_gateway_joins_reviews_to_catalog_fields(
    supergraph: Supergraph, capahub_url: str
) -> None:
    query = "{ capabilities(first: 5) { edges { node { id name providers { id name } %s } } } }"
    through_gateway = supergraph.data(query % "reviews { stars } averageRating")
    direct = _post(capahub_url, query % "")

    nodes = [e["node"] for e in through_gateway["capabilities"]["edges"]]
    assert len(nodes) == 5
    # capahub's own fields come through unchanged...
    catalog_fields = [{k: n[k] for k in ("id", "name", "providers")} for n in nodes]
    assert catalog_fields == [e["node"] for e in direct["capabilities"]["edges"]]
    assert all(n["name"] for n in nodes)
    assert any(n["providers"] for n in nodes)
    # ...and each capability carries what the reviews subgraph holds for its id.
    for n in nodes:
        stars = STARS.get(n["id"], [])
        assert [r["stars"] for r in n["reviews"]] == stars
        assert n["averageRating"] == (sum(stars) / len(stars) if stars else None)
    assert any(n["reviews"] for n in nodes)


def test_node_query_through_the_gateway_reaches_the_reviews_subgraph(
    supergraph: Supergraph,
) -> None:
    query = """query($id: ID!) {
      node(id: $id) {
        __typename id name
        ... on Capability { providers { id name } reviews { stars author } averageRating }
      }
    }"""
    node = supergraph.data(query, {"id": CHANGE_ORDER})["node"]
    assert node["__typename"] == "Capability"
    assert node["name"] == "Change Order"
    assert node["providers"] == [{"id": "system:webshop", "name": "Webshop"}]
    assert [r["stars"] for r in node["reviews"]] == STARS[CHANGE_ORDER]
    assert all(r["author"] for r in node["reviews"])
    assert node["averageRating"] == 3.0


def test_reviews_entry_point_gets_catalog_fields_from_capahub_entities(
    supergraph: Supergraph,
) -> None:
    # The reviews subgraph knows only ids: the gateway asks capahub's `_entities` for the rest.
    query = "{ reviewedCapabilities { id name kind domain { id } providers { id } averageRating } }"
    found = supergraph.data(query)["reviewedCapabilities"]
    assert [c["id"] for c in found] == sorted(STARS)
    by_id = {c["id"]: c for c in found}
    assert by_id[CHANGE_ORDER]["name"] == "Change Order"
    assert by_id[CHANGE_ORDER]["providers"] == [{"id": "system:webshop"}]
    assert all(c["kind"] == "CAPABILITY" and c["name"] for c in found)
    assert all(c["domain"] is not None for c in found)

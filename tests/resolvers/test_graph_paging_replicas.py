"""Graph answer cursors across replicas: keyed by the shared catalog version (the change id),
so that a page cut by one replica continues on another at the same version; a replica that is
behind waits for the cursor's version (docs/graph.md, "Paging graph answers")."""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import networkx as nx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from catalog.analysis import GraphAnalysis
from catalog.answers import AnswerFilter, AnswerPage, cursor_change, position
from catalog.discovery import encode_cursor
from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import NodeSpec, RelationSpec
from metadata.errors import InvalidInputError, UnavailableError
from metadata.graph import CatalogGraph, Step
from metadata.model import Kind
from resolvers import build_schema, make_context
from resolvers.graph import _relation_ident, _relation_order
from tests.conftest import PG_URL, TEST_HOSTS, _fresh_pg_database
from tests.resolvers.test_graph_paging import _n, catalogs
from tests.serving import capahub_serve

SCHEMA = build_schema()


def _reordered(graph: CatalogGraph, seed: int) -> CatalogGraph:
    """The same projection, its nodes, relations and relation types held in another order (as
    another replica holds them: loaded from the tables, from a snapshot, or built change by
    change)."""
    rng = random.Random(seed)
    g = graph.g
    nodes = list(g.nodes(data=True))
    rng.shuffle(nodes)
    edges = list(g.edges(data=True))
    rng.shuffle(edges)
    other: nx.DiGraph = nx.DiGraph()
    other.add_nodes_from((n, dict(d)) for n, d in nodes)
    for u, v, d in edges:
        rels = list(d["rels"].items())
        rng.shuffle(rels)
        other.add_edge(u, v, rels=dict(rels))
    copy = CatalogGraph()
    copy.replace(other, graph.last_change)
    return copy


def _walk(
    replicas: list[GraphAnalysis],
    cut: Callable[[GraphAnalysis, int, str | None], AnswerPage[Any]],
    sizes: Iterator[int],
) -> list[Any]:
    """Every page of one answer, each asked of the next replica in turn."""
    got: list[Any] = []
    after: str | None = None
    turn = 0
    while True:
        page = cut(replicas[turn % len(replicas)], next(sizes), after)
        turn += 1
        got.extend(page.items)
        if not page.has_next:
            return got
        assert page.items
        after = page.cursor(len(page.items) - 1)


def _first(item: tuple[Any, ...]) -> str:
    return str(item[0])


@hyp_settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    catalog=catalogs(),
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
    depth=st.integers(1, 4),
)
def test_pages_cut_by_replicas_holding_the_graph_in_other_orders_are_the_whole_answer(
    catalog: tuple[list[NodeSpec], list[RelationSpec]], sizes: list[int], seed: int, depth: int
) -> None:
    def cycle() -> Iterator[int]:
        while True:
            yield from sizes

    async def run(url: str) -> None:
        svc = await Services.start(
            Settings(database_url=url, allowed_hosts=TEST_HOSTS, _env_file=None)
        )
        try:
            await svc.registry.apply_batch(*catalog)
            graph = svc.graph
            # Three "replicas" at the same catalog version, each with its own kept answers.
            replicas = [GraphAnalysis(g) for g in (graph, _reordered(graph, seed), graph)]
            replicas[2] = GraphAnalysis(_reordered(graph, seed + 1))
            whole = replicas[0]
            none = AnswerFilter()
            got = _walk(replicas, lambda q, n, a: q.gaps_page(None, none, n, a), cycle())
            assert got == whole.gaps(None)
            owner = AnswerFilter.of(owner="team:t0", kinds=[Kind.SYSTEM, Kind.CAPABILITY])
            got = _walk(replicas, lambda q, n, a: q.redundancies_page(owner, n, a), cycle())
            assert got == whole.redundancies_page(owner, 10**6, None).items
            got = _walk(replicas, lambda q, n, a: q.hotspots_page(none, n, a), cycle())
            assert [h[0] for h in got] == [
                h[0] for h in whole.hotspots_page(none, 10**6, None).items
            ]
            assert [h[0] for h in got[:500]] == [
                h[0] for h in replicas[1].hotspots_page(none, 500, None).items
            ]

            def affected(q: GraphAnalysis, n: int, a: str | None) -> AnswerPage[Any]:
                result = q.impact("system:s0", depth, keep=True)
                question = (*result.question, "affected")
                return q.pager().page(question, result.affected, none, n, a, node=_first)

            got = _walk(replicas, affected, cycle())
            assert [(x[0], x[1]) for x in got] == [
                (x[0], x[1]) for x in whole.impact("system:s0", depth).affected
            ]

            def relations(q: GraphAnalysis, n: int, a: str | None) -> AnswerPage[Step]:
                result = q.neighborhood("system:s0", depth, None, keep=True)
                return q.pager().page(
                    (*result.question, "relations"),
                    result.relations,
                    none,
                    n,
                    a,
                    order=_relation_order,
                    ident=_relation_ident,
                )

            got = _walk(replicas, relations, cycle())
            want = whole.neighborhood("system:s0", depth, None).relations
            assert got == sorted(want, key=_relation_order)
        finally:
            await svc.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite:///{Path(tmp) / 'g.db'}"))


def _page(tag: str = "t", at: str = "c5", printed: str = "p", index: int = 0) -> AnswerPage[int]:
    return AnswerPage([1], index, 10, tag, at, printed)


def test_a_cursor_is_refused_unless_it_fits_this_answer_at_this_version() -> None:
    cursor = _page().cursor(0)
    assert position(cursor, "t", "c5", "p", 10) == 1
    assert cursor_change(cursor) == 5
    for tag, at, printed, error, words in (
        ("u", "c5", "p", InvalidInputError, "another question"),
        ("t", "c6", "p", InvalidInputError, "the catalog changed"),
        ("t", "c4", "p", UnavailableError, "not reached yet"),
        ("t", "p5", "p", InvalidInputError, "another instant"),
        ("t", "c5", "q", InvalidInputError, "is not the one"),
    ):
        with pytest.raises(error, match=words) as refused:
            position(cursor, tag, at, printed, 10)
        assert refused.value.field == "after"
    past = _page(at="p3").cursor(0)
    assert cursor_change(past) is None
    with pytest.raises(InvalidInputError, match="another instant"):
        position(past, "t", "p4", "p", 10)
    # The cursors of the hub before this one (a process epoch, then its own graph version).
    old = encode_cursor("at.3f9a1c.7.0")
    assert cursor_change(old) is None
    with pytest.raises(InvalidInputError) as refused:
        position(old, "t", "c5", "p", 10)
    assert refused.value.field == "after"


async def _data(svc: Services, query: str) -> dict[str, Any]:
    result = await SCHEMA.execute(query, context_value=make_context(svc))
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data


GAPS_PAGE = "{ gapsPage(first: 3%s) { edges { cursor node { node { id } reason } } pageInfo { hasNextPage endCursor } } }"  # noqa: E501


async def test_a_replica_behind_the_cursor_waits_for_its_version(tmp_path: Path) -> None:
    """A cursor cut by a replica that has seen a write, given to one that has not (on SQLite
    nothing tells it): it syncs, within CAPAHUB_VERSION_WAIT, and continues the same answer."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    base = Settings(
        database_url=url,
        allowed_hosts=TEST_HOSTS,
        read_sync_interval=3600,
        sync_interval=3600,
        version_wait=5,
        _env_file=None,
    )
    a = await Services.start(base)
    b = await Services.start(base)
    try:
        await a.registry.apply_batch([_n(f"capability:c{i:02}") for i in range(6)], [])
        assert b.graph.last_change < a.graph.last_change  # b has not looked at the log
        first = (await _data(a, GAPS_PAGE % ""))["gapsPage"]
        after = first["pageInfo"]["endCursor"]
        from_b = (await _data(b, GAPS_PAGE % f', after: "{after}"'))["gapsPage"]
        from_a = (await _data(a, GAPS_PAGE % f', after: "{after}"'))["gapsPage"]
        assert b.graph.last_change == a.graph.last_change
        assert from_b["edges"] == from_a["edges"] and from_b["edges"]
        # A write since: the cursor is of an older version on either replica.
        await b.registry.apply_batch([_n("system:late")], [])
        for svc in (a, b):
            await svc.sync()
            result = await SCHEMA.execute(
                GAPS_PAGE % f', after: "{after}"', context_value=make_context(svc)
            )
            assert result.errors and "the catalog changed" in result.errors[0].message
    finally:
        await a.close()
        await b.close()


async def test_a_cursor_ahead_of_anything_committed_waits_then_is_refused(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    svc = await Services.start(
        Settings(database_url=url, allowed_hosts=TEST_HOSTS, version_wait=0.3, _env_file=None)
    )
    try:
        await svc.registry.apply_batch([_n(f"capability:c{i}") for i in range(4)], [])
        cursor = (await _data(svc, GAPS_PAGE % ""))["gapsPage"]["pageInfo"]["endCursor"]
        raw = cursor_change(cursor)
        assert raw == svc.graph.last_change
        ahead = AnswerPage([1], 0, 10, "x", "c999999", "p").cursor(0)
        forged = encode_cursor("a" + ".".join([_tag_of(cursor), "c999999", *_rest_of(cursor)]))
        for after in (forged, ahead):
            loop = asyncio.get_running_loop()
            began = loop.time()
            result = await SCHEMA.execute(
                GAPS_PAGE % f', after: "{after}"', context_value=make_context(svc)
            )
            assert result.errors, after
            ext = result.errors[0].extensions or {}
            assert (ext.get("code"), ext.get("field")) == ("BAD_USER_INPUT", "after")
            assert "ahead of anything committed" in result.errors[0].message
            assert 0.25 <= loop.time() - began < 3
    finally:
        await svc.close()


def _parts(cursor: str) -> list[str]:
    import base64

    return base64.urlsafe_b64decode(cursor).decode()[3:].split(".")


def _tag_of(cursor: str) -> str:
    return _parts(cursor)[0]


def _rest_of(cursor: str) -> list[str]:
    return _parts(cursor)[2:]


# -- two real serve processes on one PostgreSQL -------------------------------------------------


def _landscape() -> str:
    """A catalog document with gaps, redundancies, dependencies and a hierarchy."""
    systems = [{"id": f"system:s{i:02}", "name": f"S{i}"} for i in range(12)]
    caps = [{"id": f"capability:c{i:02}", "name": f"C{i}"} for i in range(30)]
    ents = [{"id": f"entity:e{i:02}", "name": f"E{i}"} for i in range(8)]
    teams = [{"id": "team:t0", "name": "T0"}]
    rels: list[dict[str, str]] = []
    for i in range(1, 12):
        rels.append({"from": f"system:s{i:02}", "type": "DEPENDS_ON", "to": f"system:s{i // 3:02}"})
    for i in range(0, 30, 2):
        rels.append(
            {"from": f"system:s{i % 12:02}", "type": "PROVIDES", "to": f"capability:c{i:02}"}
        )
        rels.append(
            {"from": f"system:s{(i + 5) % 12:02}", "type": "PROVIDES", "to": f"capability:c{i:02}"}
        )
    for i in range(8):
        rels.append({"from": f"system:s{i:02}", "type": "MASTERS", "to": f"entity:e{i:02}"})
        rels.append({"from": f"system:s{i + 1:02}", "type": "MASTERS", "to": f"entity:e{i:02}"})
        rels.append({"from": f"capability:c{i:02}", "type": "READS", "to": f"entity:e{i:02}"})
    rels.append({"from": "team:t0", "type": "OWNS", "to": "system:s00"})
    return json.dumps({"nodes": [*systems, *caps, *ents, *teams], "relations": rels})


PAGED = {
    "gapsPage": (
        "{ gaps { node { id } reason } }",
        "gaps",
        "{ gapsPage(first: 7%s) { edges { node { node { id } reason } } pageInfo { hasNextPage endCursor } } }",  # noqa: E501
        "gapsPage",
    ),
    "redundanciesPage": (
        "{ redundancies { node { id } reason involved { id } } }",
        "redundancies",
        "{ redundanciesPage(first: 3%s) { edges { node { node { id } reason involved { id } } } pageInfo { hasNextPage endCursor } } }",  # noqa: E501
        "redundanciesPage",
    ),
    "hotspotsPage": (
        "{ hotspots(first: 500) { node { id } } }",
        "hotspots",
        "{ hotspotsPage(first: 9%s) { edges { node { node { id } } } pageInfo { hasNextPage endCursor } } }",  # noqa: E501
        "hotspotsPage",
    ),
    "affectedPage": (
        '{ impact(id: "system:s00", depth: 3) { affected { node { id } distance } } }',
        "impact.affected",
        '{ impact(id: "system:s00", depth: 3) { affectedPage(first: 4%s) { edges { node { node { id } distance } } pageInfo { hasNextPage endCursor } } } }',  # noqa: E501
        "impact.affectedPage",
    ),
    "relationPage": (
        '{ neighborhood(id: "system:s00", depth: 2) { relations { type from { id } to { id } } } }',  # noqa: E501
        "neighborhood.relations",
        '{ neighborhood(id: "system:s00", depth: 2) { relationPage(first: 5%s) { edges { node { type from { id } to { id } } } pageInfo { hasNextPage endCursor } } } }',  # noqa: E501
        "neighborhood.relationPage",
    ),
}


def _dig(data: Any, path: str) -> Any:
    for key in path.split("."):
        data = data[key]
    return data


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="CAPAHUB_TEST_DATABASE_URL is not set")
def test_paging_across_two_replicas_on_postgresql_gives_the_whole_answer(tmp_path: Path) -> None:
    """Two real ``capahub serve`` on one PostgreSQL: the first page from one, the next from the
    other, and so on; the pages together are the list answer, as either replica gives it. The
    second replica polls the change log only every 30 s (NOTIFY or the cursor's wait catch it
    up). After a write, a cursor cut before it is refused by both."""
    url = _fresh_pg_database()
    env = {**os.environ, "CAPAHUB_DATABASE_URL": url, "CAPAHUB_AUTH": "off"}
    slow = {**env, "CAPAHUB_SYNC_INTERVAL": "30", "CAPAHUB_READ_SYNC_INTERVAL": "30"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    apply = "mutation A($doc: String!) { applyCatalog(document: $doc) { added } }"
    with (
        capahub_serve(tmp_path / "a", env=env) as a,
        capahub_serve(tmp_path / "b", env=slow) as b,
        httpx.Client(trust_env=False, timeout=30) as http,
    ):

        def post(base: str, query: str, variables: dict[str, Any] | None = None) -> Any:
            body = http.post(f"{base}/graphql", json={"query": query, "variables": variables})
            return body.json()

        assert not post(b.base, "{ gaps { reason } }").get("errors")  # b trusts its state 30 s
        wrote = post(a.base, apply, {"doc": _landscape()})
        assert not wrote.get("errors"), wrote
        version = wrote["extensions"]["catalogVersion"]
        last: dict[str, str] = {}
        for name, (listed, list_path, paged, page_path) in PAGED.items():
            want = _dig(post(a.base, listed)["data"], list_path)
            assert len(want) > 4, (name, want)
            got: list[Any] = []
            after = None
            turn = 0
            while True:
                base = (a.base, b.base)[turn % 2]
                turn += 1
                body = post(base, paged % (f', after: "{after}"' if after else ""))
                assert not body.get("errors"), (name, base, body)
                assert body["extensions"]["catalogVersion"] >= version
                conn = _dig(body["data"], page_path)
                got.extend(e["node"] for e in conn["edges"])
                if not conn["pageInfo"]["hasNextPage"]:
                    break
                after = last[name] = conn["pageInfo"]["endCursor"]
            assert turn >= 3, name  # both replicas cut pages
            assert got == want, name
            assert _dig(post(b.base, listed)["data"], list_path) == want, name
        # A write through b: every cursor cut before it is of an older catalog version.
        wrote = post(b.base, 'mutation { upsertNode(input: {id: "team:late", name: "L"}) { id } }')
        newer = str(wrote["extensions"]["catalogVersion"])
        for name, (_, _, paged, _) in PAGED.items():
            for base in (b.base, a.base):
                body = http.post(
                    f"{base}/graphql",
                    json={"query": paged % f', after: "{last[name]}"'},
                    headers={"X-Capahub-Catalog-Version": newer},
                ).json()
                assert body.get("errors"), (name, base, body)
                ext = body["errors"][0]["extensions"]
                assert (ext["code"], ext.get("field")) == ("BAD_USER_INPUT", "after"), body
                assert "the catalog changed" in body["errors"][0]["message"]


def test_hotspots_of_tied_nodes_page_alike_whatever_order_a_replica_holds_them_in() -> None:
    """Twenty systems providing a hundred capabilities each: the capabilities of one system
    tie, and PageRank's last digits differ with the order a replica holds the graph in (the
    exact floats put the ties in another order on every one of ten orders tried); pages are
    ranked on 9 digits, then by id, so every replica cuts the same ones."""
    from metadata.model import Lifecycle
    from metadata.model import RelationType as R

    g: nx.DiGraph = nx.DiGraph()
    for h in range(20):
        g.add_node(f"system:h{h}", kind=Kind.SYSTEM, lifecycle=Lifecycle.ACTIVE, owner=None)
        for i in range(100):
            cap = f"capability:h{h}c{i}"
            g.add_node(cap, kind=Kind.CAPABILITY, lifecycle=Lifecycle.ACTIVE, owner=None)
            g.add_edge(f"system:h{h}", cap, rels={R.PROVIDES: None})
        if h:
            g.add_edge(f"system:h{h}", f"system:h{h - 1}", rels={R.DEPENDS_ON: None})
    graph = CatalogGraph()
    graph.replace(g, 7)
    replicas = [GraphAnalysis(graph), *(GraphAnalysis(_reordered(graph, s)) for s in range(3))]
    none = AnswerFilter()
    sizes = iter(lambda: 97, None)
    got = _walk(replicas, lambda q, n, a: q.hotspots_page(none, n, a), sizes)
    assert len(got) == 2020
    for replica in replicas:
        assert [h[0] for h in replica.hotspots_page(none, 3000, None).items] == [h[0] for h in got]


def test_through_the_app_a_replica_behind_answers_at_the_cursors_version(tmp_path: Path) -> None:
    """Two apps on one SQLite file, the second never polling the change log by itself: given
    a cursor of the first's newer version, it catches up, answers the next page and states
    that version in ``extensions.catalogVersion``."""
    from starlette.testclient import TestClient

    from catalog.app import create_app

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        allowed_hosts=TEST_HOSTS,
        auth="off",
        read_sync_interval=3600,
        sync_interval=3600,
        _env_file=None,
    )
    doc = json.dumps({"nodes": [{"id": f"capability:c{i:02}", "name": f"C{i}"} for i in range(9)]})
    apply = "mutation A($doc: String!) { applyCatalog(document: $doc) { added } }"
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        assert b.post("/graphql", json={"query": "{ gaps { reason } }"}).json()["data"]
        wrote = a.post("/graphql", json={"query": apply, "variables": {"doc": doc}}).json()
        version = wrote["extensions"]["catalogVersion"]
        first = a.post("/graphql", json={"query": GAPS_PAGE % ""}).json()
        after = first["data"]["gapsPage"]["pageInfo"]["endCursor"]
        stale = b.post("/graphql", json={"query": "{ gaps { reason } }"}).json()
        assert stale["data"]["gaps"] == [] and stale["extensions"]["catalogVersion"] < version
        nxt = b.post("/graphql", json={"query": GAPS_PAGE % f', after: "{after}"'}).json()
        assert not nxt.get("errors"), nxt
        assert nxt["extensions"]["catalogVersion"] == version
        same = a.post("/graphql", json={"query": GAPS_PAGE % f', after: "{after}"'}).json()
        assert nxt["data"] == same["data"]


async def test_a_replica_still_behind_after_the_wait_is_unavailable_naming_after() -> None:
    from catalog.answers import reach

    synced = 0

    async def sync() -> None:
        nonlocal synced
        synced += 1

    async def committed() -> int:
        return 9

    with pytest.raises(UnavailableError, match="has not reached after waiting") as refused:
        await reach(9, current=lambda: 7, sync=sync, committed=committed, wait=0.2)
    assert refused.value.field == "after" and refused.value.retry_after == 1
    assert synced > 1  # it kept looking at the change log while it waited
    await reach(7, current=lambda: 7, sync=sync, committed=committed, wait=0.2)  # reached

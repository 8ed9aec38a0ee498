"""Graph answers that page (gapsPage, redundanciesPage, hotspotsPage, Impact.affectedPage,
Subgraph.nodePage and relationPage): every walk of the pages gives the list answer."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from catalog.access.permissions import PERMISSIONS
from catalog.access.principal import Principal, Role
from catalog.analysis import GraphAnalysis
from catalog.app import create_app
from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import NodeSpec, RelationSpec
from resolvers import build_schema, make_context
from tests.conftest import TEST_HOSTS, GraphQLClient, StatementCounter

SCHEMA = build_schema()

#: Each connection: (the paged query, path to the connection, the list query, path to the
#: list, how an edge's node and a list item compare).
GAPS = ("{ gaps{args} { node { id } reason } }", "gaps")
GAPS_PAGE = "gapsPage{args} { totalCount edges { cursor node { node { id } reason } } pageInfo { hasNextPage endCursor } }"  # noqa: E501
REDUNDANCIES = "{ redundancies { node { id } reason involved { id } } }"
REDUNDANCIES_PAGE = "redundanciesPage{args} { totalCount edges { cursor node { node { id } reason involved { id } } } pageInfo { hasNextPage endCursor } }"  # noqa: E501
HOTSPOTS = "{ hotspots(first: 500) { node { id } score } }"
HOTSPOTS_PAGE = "hotspotsPage{args} { totalCount edges { cursor node { node { id } score } } pageInfo { hasNextPage endCursor } }"  # noqa: E501


def _edges(selection: str) -> str:
    """A connection's selection whose edges' nodes select ``selection``."""
    return (
        f"totalCount edges {{ cursor node {{ {selection} }} }} pageInfo {{ hasNextPage endCursor }}"  # noqa: E501
    )


# -- generated catalogs -------------------------------------------------------------------------


def _n(node_id: str, **kw: Any) -> NodeSpec:
    return NodeSpec.model_validate({"id": node_id, "name": node_id.split(":")[1], **kw})


def _r(src: str, rtype: str, dst: str) -> RelationSpec:
    return RelationSpec.model_validate({"from": src, "type": rtype, "to": dst})


DOMAINS = ["domain:d0", "domain:d1"]
TEAMS = ["team:t0", "team:t1"]


@st.composite
def catalogs(draw: st.DrawFn) -> tuple[list[NodeSpec], list[RelationSpec]]:
    """A small landscape: every kind, random owners and lifecycles, and random relations that
    the metamodel allows (hierarchies only upwards, so no PART_OF cycle)."""
    n_sys, n_cap, n_ent = (draw(st.integers(1, 6)) for _ in range(3))
    systems = [f"system:s{i}" for i in range(n_sys)]
    caps = [f"capability:c{i}" for i in range(n_cap)]
    ents = [f"entity:e{i}" for i in range(n_ent)]
    tps = ["touchpoint:web", "touchpoint:app"]
    steps = ["step:j.s0", "step:j.s1"]
    owner = st.one_of(st.none(), st.sampled_from(TEAMS))
    life = st.sampled_from(["ACTIVE", "ACTIVE", "PLANNED", "DEPRECATED", "RETIRED"])
    nodes = [_n(i) for i in (*DOMAINS, *TEAMS, "journey:j", *tps, *steps)]
    for i in (*systems, *caps, *ents):
        o = draw(owner)
        nodes.append(_n(i, lifecycle=draw(life), **({"owner": o} if o else {})))
    cands: list[tuple[str, str, str]] = []
    cands += [(s, "PART_OF", d) for s in systems for d in DOMAINS]
    cands += [(c, "PART_OF", d) for c in caps for d in DOMAINS]
    cands += [(e, "PART_OF", d) for e in ents for d in DOMAINS]
    cands += [(a, "PART_OF", b) for k in (systems, caps) for i, a in enumerate(k) for b in k[:i]]
    cands += [(s, t, c) for s in systems for c in caps for t in ("PROVIDES",)]
    cands += [(s, t, e) for s in systems for e in ents for t in ("MASTERS", "STORES")]
    cands += [(c, t, e) for c in caps for e in ents for t in ("READS", "WRITES")]
    cands += [(a, "DEPENDS_ON", b) for a in systems for b in systems if a != b]
    cands += [(a, t, b) for a in ents for b in ents if a != b for t in ("FLOWS_TO", "REPRESENTS")]
    cands += [(t, "OWNS", x) for t in TEAMS for x in (*systems, *caps)]
    cands += [(t, "STEWARDS", e) for t in TEAMS for e in ents]
    cands += [(p, "SERVED_BY", s) for p in tps for s in systems]
    cands += [(s, "USES", c) for s in steps for c in caps]
    cands += [(s, "OCCURS_AT", p) for s in steps for p in tps]
    cands += [(s, "PART_OF", "journey:j") for s in steps]
    chosen = draw(st.lists(st.sampled_from(cands), max_size=40, unique=True))
    # A capability or system is part of at most one parent (the hierarchy is a tree).
    parent: dict[str, str] = {}
    rels = []
    for f, t, to in chosen:
        if t == "PART_OF":
            if f in parent:
                continue
            parent[f] = to
        rels.append(_r(f, t, to))
    return nodes, rels


def _run(catalog: tuple[list[NodeSpec], list[RelationSpec]], check: Callable[..., Any]) -> None:
    async def run(url: str) -> None:
        svc = await Services.start(
            Settings(database_url=url, allowed_hosts=TEST_HOSTS, _env_file=None)
        )
        try:
            await svc.registry.apply_batch(*catalog)
            await check(svc)
        finally:
            await svc.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite:///{Path(tmp) / 'g.db'}"))


async def _data(svc: Services, query: str, principal: Principal | None = None) -> dict[str, Any]:
    context = make_context(svc) if principal is None else make_context(svc, principal=principal)
    result = await SCHEMA.execute(query, context_value=context)
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data


def _dig(data: Any, path: str) -> Any:
    for key in path.split("."):
        data = data[key]
    return data


async def _walk(
    svc: Services, template: str, path: str, sizes: Iterator[int]
) -> tuple[list[Any], int]:
    """Every page of the connection at ``path`` of ``template`` (its ``{args}`` the paging
    arguments), ``first`` drawn from ``sizes``; the edges' nodes in order and the
    totalCount (the same on every page)."""
    got: list[Any] = []
    after: str | None = None
    totals = set()
    while True:
        first = next(sizes)
        args = f"first: {first}" + (f', after: "{after}"' if after else "")
        conn = _dig(await _data(svc, template.replace("{args}", args)), path)
        totals.add(conn["totalCount"])
        got.extend(e["node"] for e in conn["edges"])
        assert len(conn["edges"]) <= first
        if not conn["pageInfo"]["hasNextPage"]:
            break
        assert len(conn["edges"]) == first
        after = conn["pageInfo"]["endCursor"]
    assert len(totals) == 1
    return got, totals.pop()


def _args(inner: str, extra: str = "") -> str:
    """The query of a root connection ``inner`` with ``extra`` arguments before the paging ones."""
    return inner.replace("{args}", f"({extra}{{args}})")


def _domains_in(catalog: tuple[list[NodeSpec], list[RelationSpec]]) -> Callable[[str], set[str]]:
    """The domains a node is part of, worked out from the generated relations."""
    up: dict[str, list[str]] = {}
    for r in catalog[1]:
        if r.type.name == "PART_OF":
            up.setdefault(r.from_, []).append(r.to)

    def domains(node: str) -> set[str]:
        found: set[str] = set()
        n: str | None = node
        while n is not None:
            parents = up.get(n, [])
            found.update(p for p in parents if p.startswith("domain:"))
            same = [p for p in parents if p.split(":")[0] == node.split(":")[0]]
            n = same[0] if same and node.split(":")[0] in ("system", "capability") else None
        return found

    return domains


def _owners_in(catalog: tuple[list[NodeSpec], list[RelationSpec]]) -> dict[str, set[str]]:
    owners: dict[str, set[str]] = {}
    for n in catalog[0]:
        if n.owner:
            owners.setdefault(n.id, set()).add(n.owner)
    for r in catalog[1]:
        if r.type.name == "OWNS":
            owners.setdefault(r.to, set()).add(r.from_)
    return owners


@hyp_settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    catalog=catalogs(),
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    kinds=st.lists(
        st.sampled_from(["SYSTEM", "CAPABILITY", "DATA_ENTITY", "JOURNEY_STEP", "TOUCHPOINT"]),
        max_size=2,
        unique=True,
    ),
    domain=st.sampled_from(DOMAINS),
    team=st.sampled_from(TEAMS),
    depth=st.integers(0, 4),
)
def test_walking_every_page_gives_the_list_answer(
    catalog: tuple[list[NodeSpec], list[RelationSpec]],
    sizes: list[int],
    kinds: list[str],
    domain: str,
    team: str,
    depth: int,
) -> None:
    def cycle() -> Iterator[int]:
        while True:
            yield from sizes

    domains, owners = _domains_in(catalog), _owners_in(catalog)
    kind_list = f"kinds: [{', '.join(kinds)}], " if kinds else ""

    async def check(svc: Services) -> None:
        # gaps: whole, of some kinds, and filtered by domain, owner and reason
        gaps = (await _data(svc, GAPS[0].replace("{args}", "")))["gaps"]
        paged, total = await _walk(svc, _args("{ " + GAPS_PAGE + " }"), "gapsPage", cycle())
        assert paged == gaps and total == len(gaps)
        some = await _data(svc, GAPS[0].replace("{args}", f"({kind_list[:-2]})" if kinds else ""))
        paged, total = await _walk(
            svc, _args("{ " + GAPS_PAGE + " }", kind_list), "gapsPage", cycle()
        )
        assert paged == some["gaps"] and total == len(paged)
        extra = f'domain: "{domain}", owner: "{team}", reason: "NO ", '
        paged, _ = await _walk(svc, _args("{ " + GAPS_PAGE + " }", extra), "gapsPage", cycle())
        assert paged == [
            g
            for g in gaps
            if domain in domains(g["node"]["id"])
            and team in owners.get(g["node"]["id"], set())
            and "no " in g["reason"].lower()
        ]
        # redundancies, whole and of some kinds
        red = (await _data(svc, REDUNDANCIES))["redundancies"]
        page = _args("{ " + REDUNDANCIES_PAGE + " }")
        paged, total = await _walk(svc, page, "redundanciesPage", cycle())
        assert paged == red and total == len(red)
        page = _args("{ " + REDUNDANCIES_PAGE + " }", kind_list)
        paged, _ = await _walk(svc, page, "redundanciesPage", cycle())
        prefixes = {k: p for k, p in (("CAPABILITY", "capability:"), ("DATA_ENTITY", "entity:"))}
        wanted = tuple(prefixes[k] for k in kinds if k in prefixes)
        assert paged == [r for r in red if not kinds or r["node"]["id"].startswith(wanted)]
        # hotspots: the list form's first 500 are all of them here
        hot = (await _data(svc, HOTSPOTS))["hotspots"]
        paged, total = await _walk(svc, _args("{ " + HOTSPOTS_PAGE + " }"), "hotspotsPage", cycle())
        assert paged == hot and total == len(hot)
        paged, _ = await _walk(
            svc,
            _args("{ " + HOTSPOTS_PAGE + " }", f'domain: "{domain}", '),
            "hotspotsPage",
            cycle(),
        )
        assert paged == [h for h in hot if domain in domains(h["node"]["id"])]
        # impact, neighborhood, lineage of a root
        for root in ("system:s0", "capability:c0"):
            impact = f'impact(id: "{root}", depth: {depth})'
            listed = await _data(svc, "{ " + impact + " { affected { node { id } distance } } }")
            want = listed["impact"]["affected"]
            q = (
                "{ "
                + impact
                + " { affectedPage({args}) { "
                + _edges("node { id } distance")
                + " } } }"
            )
            paged, total = await _walk(svc, q, "impact.affectedPage", cycle())
            assert paged == want and total == len(want)
            q = q.replace("affectedPage(", f'affectedPage(owner: "{team}", ')
            paged, _ = await _walk(svc, q, "impact.affectedPage", cycle())
            assert paged == [a for a in want if team in owners.get(a["node"]["id"], set())]
        for field in (
            f'neighborhood(id: "system:s0", depth: {depth})',
            f'lineage(id: "entity:e0", depth: {depth})',
        ):
            sub = await _data(
                svc, "{ " + field + " { nodes { id } relations { type from { id } to { id } } } }"
            )
            want_sub = next(iter(sub.values()))
            name = field.split("(")[0]
            q = "{ " + field + " { nodePage({args}) { " + _edges("id") + " } } }"
            paged, total = await _walk(svc, q, f"{name}.nodePage", cycle())
            assert paged == want_sub["nodes"] and total == len(paged)
            if kinds:
                q = (
                    "{ "
                    + field
                    + " { nodePage("
                    + kind_list
                    + "{args}) { "
                    + _edges("id")
                    + " } } }"
                )
                paged, _ = await _walk(svc, q, f"{name}.nodePage", cycle())
                assert [p["id"] for p in paged] == [
                    n["id"] for n in want_sub["nodes"] if _kind(n["id"]) in kinds
                ]
            rels = _edges("type from { id } to { id }")
            q = "{ " + field + " { relationPage({args}) { " + rels + " } } }"
            paged, total = await _walk(svc, q, f"{name}.relationPage", cycle())
            assert paged == want_sub["relations"] and total == len(paged)
            q = q.replace("relationPage(", "relationPage(types: [PART_OF, MASTERS], ")
            paged, _ = await _walk(svc, q, f"{name}.relationPage", cycle())
            assert paged == [
                r for r in want_sub["relations"] if r["type"] in ("PART_OF", "MASTERS")
            ]

    _run(catalog, check)


def _kind(node_id: str) -> str:
    return {
        "system": "SYSTEM", "capability": "CAPABILITY", "entity": "DATA_ENTITY",
        "domain": "DOMAIN", "team": "TEAM", "journey": "JOURNEY", "step": "JOURNEY_STEP",
        "touchpoint": "TOUCHPOINT", "source": "SOURCE",
    }[node_id.split(":")[0]]  # fmt: skip


# -- bad input ----------------------------------------------------------------------------------


def _code(body: dict[str, Any]) -> tuple[str, str | None]:
    assert body.get("errors"), body
    ext = body["errors"][0]["extensions"]
    return ext["code"], ext.get("field")


def _cursor(gql: GraphQLClient, query: str, path: str) -> str:
    conn = _dig(gql.data(query), path)
    assert conn["edges"], conn
    cursor: str = conn["edges"][0]["cursor"]
    return cursor


def test_a_cursor_of_another_question_or_arguments_is_refused(demo_gql: GraphQLClient) -> None:
    gaps = _cursor(demo_gql, "{ gapsPage(first: 1) { edges { cursor } } }", "gapsPage")
    systems = _cursor(
        demo_gql, "{ gapsPage(kinds: [SYSTEM], first: 1) { edges { cursor } } }", "gapsPage"
    )
    node = _cursor(demo_gql, "{ nodes(first: 1) { edges { cursor } } }", "nodes")
    affected = _cursor(
        demo_gql,
        '{ impact(id: "system:crm") { affectedPage(first: 1) { edges { cursor } } } }',
        "impact.affectedPage",
    )
    refused = [
        ("{ redundanciesPage(after: $a) { totalCount } }", gaps),
        ("{ hotspotsPage(after: $a) { totalCount } }", gaps),
        ("{ gapsPage(after: $a) { totalCount } }", systems),
        ('{ gapsPage(kinds: [SYSTEM], reason: "owner", after: $a) { totalCount } }', systems),
        ("{ gapsPage(after: $a) { totalCount } }", node),
        ("{ gapsPage(after: $a) { totalCount } }", affected),
        ('{ impact(id: "system:erp") { affectedPage(after: $a) { totalCount } } }', affected),
        (
            '{ impact(id: "system:crm", depth: 2) { affectedPage(after: $a) { totalCount } } }',
            affected,
        ),  # noqa: E501
        ('{ neighborhood(id: "system:crm") { nodePage(after: $a) { totalCount } } }', affected),
        ("{ gapsPage(after: $a) { totalCount } }", "not a cursor"),
    ]
    for query, cursor in refused:
        body = demo_gql.post(query.replace("{", "query($a: String) {", 1), {"a": cursor})
        assert _code(body) == ("BAD_USER_INPUT", "after"), (query, body)
        assert "after" in body["errors"][0]["message"]
    # The same cursor, where it belongs, is taken.
    assert demo_gql.data(
        "query($a: String) { gapsPage(kinds: [SYSTEM], after: $a) { totalCount } }", {"a": systems}
    )


def test_a_cursor_of_an_older_catalog_version_is_refused(demo_gql: GraphQLClient) -> None:
    queries = {
        "gapsPage": "{ gapsPage(first: 2%s) { edges { cursor } } }",
        "redundanciesPage": "{ redundanciesPage(first: 1%s) { edges { cursor } } }",
        "hotspotsPage": "{ hotspotsPage(first: 2%s) { edges { cursor } } }",
        "impact.affectedPage": '{ impact(id: "system:crm") { affectedPage(first: 2%s) { edges { cursor } } } }',  # noqa: E501
        "neighborhood.relationPage": '{ neighborhood(id: "system:crm") { relationPage(first: 2%s) { edges { cursor } } } }',  # noqa: E501
    }
    cursors = {path: _cursor(demo_gql, q % "", path) for path, q in queries.items()}
    for path, q in queries.items():  # still good at this version
        assert demo_gql.data(q % f', after: "{cursors[path]}"')
    demo_gql.data('mutation { upsertNode(input: {id: "team:paging", name: "Paging"}) { id } }')
    for path, q in queries.items():
        body = demo_gql.post(q % f', after: "{cursors[path]}"')
        assert _code(body) == ("BAD_USER_INPUT", "after"), path
        assert "the catalog changed" in body["errors"][0]["message"]


def test_first_beyond_the_page_limit_is_refused(app_factory: Callable[..., GraphQLClient]) -> None:
    gql = app_factory(demo=True, max_page_size=20)
    fields = [
        "gapsPage(first: %d) { totalCount }",
        "redundanciesPage(first: %d) { totalCount }",
        "hotspotsPage(first: %d) { totalCount }",
        'impact(id: "system:crm") { affectedPage(first: %d) { totalCount } }',
        'neighborhood(id: "system:crm") { nodePage(first: %d) { totalCount } }',
        'lineage(id: "entity:customer") { relationPage(first: %d) { totalCount } }',
    ]
    for f in fields:
        assert gql.data("{ %s }" % (f % 20))
        for bad in (21, -1):
            body = gql.post("{ %s }" % (f % bad))
            assert _code(body) == ("BAD_USER_INPUT", "first"), (f, body)
            assert "between 0 and 20" in body["errors"][0]["message"]


def test_malformed_filters_are_refused_naming_the_argument(demo_gql: GraphQLClient) -> None:
    for args, name in (
        ('domain: "team:sales"', "domain"),
        ('owner: "domain:sales"', "owner"),
        ('owner: "nonsense"', "owner"),
        (f'reason: "{"x" * 201}"', "reason"),
    ):
        body = demo_gql.post("{ gapsPage(" + args + ") { totalCount } }")
        assert _code(body) == ("BAD_USER_INPUT", name), body


# -- rights, time travel, cost, statements, the cache ------------------------------------------


def test_each_paged_form_has_the_rule_of_the_list_it_pages() -> None:
    for paged, listed in (
        ("gapsPage", "gaps"),
        ("redundanciesPage", "redundancies"),
        ("hotspotsPage", "hotspots"),
    ):
        assert PERMISSIONS[f"Query.{paged}"] == PERMISSIONS[f"Query.{listed}"]


async def test_a_caller_without_a_role_is_refused_the_pages_as_the_lists(
    services: Services,
) -> None:
    nobody = Principal(actor="user:nobody", role=None)
    viewer = Principal(actor="user:viewer", role=Role.VIEWER)
    for field in (
        "gaps",
        "gapsPage",
        "redundancies",
        "redundanciesPage",
        "hotspots",
        "hotspotsPage",
    ):
        selection = "{ totalCount }" if field.endswith("Page") else "{ __typename }"
        query = f"{{ {field} {selection} }}"
        refused = await SCHEMA.execute(
            query, context_value=make_context(services, principal=nobody)
        )
        assert refused.errors, field
        assert (refused.errors[0].extensions or {})["code"] == "FORBIDDEN", field
        assert field in refused.errors[0].message
        assert await _data(services, query, viewer) is not None


async def test_as_of_pages_the_past_answer(services: Services) -> None:
    from tests.changes.test_time_travel import Clock

    t1 = dt.datetime(2026, 1, 10, tzinfo=UTC)
    clock = Clock(t1)
    services.store.clock = clock
    reg = services.registry
    await reg.apply_batch([_n(f"capability:c{i}") for i in range(5)], [])
    clock.at = t1 + dt.timedelta(hours=1)
    await reg.apply_batch([_n(f"system:s{i}") for i in range(3)], [])
    clock.at = t1 + dt.timedelta(hours=2)
    past = (t1 + dt.timedelta(minutes=30)).isoformat()

    async def walk(query: str, path: str) -> list[Any]:
        got: list[Any] = []
        after = None
        while True:
            args = f'asOf: "{past}", first: 3' + (f', after: "{after}"' if after else "")
            conn = _dig(await _data(services, query.replace("{args}", args)), path)
            got.extend(e["node"] for e in conn["edges"])
            if not conn["pageInfo"]["hasNextPage"]:
                return got
            after = conn["pageInfo"]["endCursor"]

    then = (
        await _data(services, '{ gaps(asOf: "PAST") { node { id } reason } }'.replace("PAST", past))
    )["gaps"]
    now = (await _data(services, "{ gaps { node { id } reason } }"))["gaps"]
    assert len(now) > len(then) == 10  # five capabilities, each unprovided and unowned
    assert await walk("{ " + GAPS_PAGE.replace("{args}", "({args})") + " }", "gapsPage") == then
    hot = await _data(
        services,
        '{ hotspots(first: 500, asOf: "PAST") { node { id } score } }'.replace("PAST", past),
    )
    assert (
        await walk("{ " + HOTSPOTS_PAGE.replace("{args}", "({args})") + " }", "hotspotsPage")
        == hot["hotspots"]
    )
    # A past cursor is not one of the present.
    conn = await _data(
        services, '{ gapsPage(asOf: "PAST", first: 1) { edges { cursor } } }'.replace("PAST", past)
    )
    cursor = conn["gapsPage"]["edges"][0]["cursor"]
    result = await SCHEMA.execute(
        '{ gapsPage(after: "CURSOR") { totalCount } }'.replace("CURSOR", cursor),
        context_value=make_context(services),
    )
    assert result.errors and (result.errors[0].extensions or {})["field"] == "after"


def test_cost_counts_the_page_size() -> None:
    from graphql import parse

    from resolvers.cost import compile_cost, evaluate

    def cost(query: str) -> int:
        return evaluate(compile_cost(SCHEMA._schema, parse(query), None), {})

    gaps = "{ gapsPage(first: %d) { totalCount edges { cursor node { reason node { id } } } } }"
    # 500 for the question, 1 for the connection, per edge: the edge, the gap, its node
    assert cost(gaps % 10) == 500 + 1 + 10 * 3
    assert cost(gaps % 100) - cost(gaps % 10) == 90 * 3
    assert cost('{ gapsPage(asOf: "2026-01-01T00:00:00Z", first: 10) { totalCount } }') == 1_501
    hot = "{ hotspotsPage(first: %d) { edges { node { score } } } }"
    assert cost(hot % 40) == 500 + 1 + 40 * 2
    nested = '{ impact(id: "system:crm", depth: 1) { affectedPage(first: %d) { edges { node { distance } } } } }'  # noqa: E501
    assert cost(nested % 40) - cost(nested % 20) == 20 * 2
    sub = '{ neighborhood(id: "system:crm") { nodePage(first: %d) { edges { node { id } } } relationPage(first: %d) { edges { node { type } } } } }'  # noqa: E501
    assert cost(sub % (30, 10)) - cost(sub % (10, 10)) == 20 * 2
    assert cost(sub % (10, 30)) - cost(sub % (10, 10)) == 20 * 2


def _statements(client: TestClient, counter: StatementCounter, query: str) -> int:
    before = counter.count
    body = client.post("/graphql", json={"query": query}).json()
    assert not body.get("errors"), body
    return counter.count - before


def test_statements_do_not_grow_with_the_page_size(
    settings: Settings, count_statements: Callable[[Any], StatementCounter]
) -> None:
    # No background poll (the change log, the hub tokens' last use) during the counts.
    settings = settings.model_copy(
        update={"read_sync_interval": 3600, "sync_interval": 3600, "max_query_cost": 10**7}
    )
    queries = [
        "{ gapsPage(first: %d) { edges { node { reason node { id name owner { id } } } } } }",
        "{ redundanciesPage(first: %d) { edges { node { node { id name } involved { id name } } } } }",  # noqa: E501
        "{ hotspotsPage(first: %d) { edges { node { score node { id name } } } } }",
        '{ impact(id: "system:crm") { affectedPage(first: %d) { edges { node { node { id name } via { type } } } } } }',  # noqa: E501
        '{ neighborhood(id: "system:crm", depth: 2) { nodePage(first: %d) { edges { node { id name relations { type } } } } } }',  # noqa: E501
    ]
    with TestClient(create_app(settings, demo=True)) as client:
        if (
            settings.auth == "on"
        ):  # pragma: no cover - CAPAHUB_TEST_AUTH sets it on app_factory only
            pytest.skip("needs a token")
        client.post("/graphql", json={"query": "{ __typename }"})
        # Ready (the start's background work done) and settled: on PostgreSQL the demo's
        # commits come back as notifications whose catch-up sync must not fall into a count.
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        services = client.app.state.services  # type: ignore[attr-defined]
        client.portal.call(services.sync)  # type: ignore[union-attr]
        time.sleep(0.2)
        engine = services.store.engine
        for query in queries:
            counter = StatementCounter()
            sqlalchemy.event.listen(engine.sync_engine, "before_cursor_execute", counter)
            try:
                counts = {n: _statements(client, counter, query % n) for n in (1, 10, 100)}
            finally:
                sqlalchemy.event.remove(engine.sync_engine, "before_cursor_execute", counter)
            # The node records of a page come in one batch (none once cached): never one a node.
            assert max(counts.values()) <= 2, (query, counts)


async def test_the_whole_answer_is_computed_once_per_version(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = services.registry
    await reg.apply_batch([_n(f"capability:c{i:02}") for i in range(30)], [])
    calls = {"gaps": 0, "impact": 0}
    find_gaps, impact = GraphAnalysis._find_gaps, GraphAnalysis._impact

    def counted_gaps(self: GraphAnalysis, kinds: Any) -> Any:
        calls["gaps"] += 1
        return find_gaps(self, kinds)

    def counted_impact(self: GraphAnalysis, *args: Any) -> Any:
        calls["impact"] += 1
        return impact(self, *args)

    monkeypatch.setattr(GraphAnalysis, "_find_gaps", counted_gaps)
    monkeypatch.setattr(GraphAnalysis, "_impact", counted_impact)
    walked = 0
    after = None
    while True:
        args = "first: 7" + (f', after: "{after}"' if after else "")
        conn = (
            await _data(
                services,
                "{ gapsPage(ARGS) { edges { cursor } pageInfo { hasNextPage endCursor } } }".replace(
                    "ARGS", args
                ),
            )
        )["gapsPage"]  # noqa: E501
        walked += len(conn["edges"])
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert walked == 60 and calls["gaps"] == 1
    await _data(services, "{ gaps { reason } }")  # the list form reads the same answer
    q = '{ impact(id: "capability:c00") { affected { distance } affectedPage(first: 1) { totalCount } } }'  # noqa: E501
    await _data(services, q)
    await _data(services, q)
    assert calls == {"gaps": 1, "impact": 1}
    assert 0 < services.analysis.answers.bytes <= services.analysis.answers.max_bytes
    await reg.apply_batch([_n("system:s0")], [])  # a new version: computed again
    await _data(services, "{ gapsPage(first: 1) { totalCount } }")
    assert calls["gaps"] == 2


async def test_a_cursor_of_another_hub_process_at_the_same_version_is_taken(
    services: Services,
) -> None:
    from catalog.analysis import GraphAnalysis as Analysis
    from catalog.answers import AnswerFilter

    await services.registry.apply_batch([_n(f"capability:c{i}") for i in range(4)], [])
    graph = services.graph
    here, there = Analysis(graph), Analysis(graph)  # two processes on the same catalog version
    page = here.gaps_page(None, AnswerFilter(), 2, None)
    assert here.gaps_page(None, AnswerFilter(), 2, page.cursor(1)).start == 2
    assert there.gaps_page(None, AnswerFilter(), 2, page.cursor(1)).items == (
        here.gaps_page(None, AnswerFilter(), 2, page.cursor(1)).items
    )

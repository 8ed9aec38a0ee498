"""Time travel: answers at past instants equal catalogs built directly to those states."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from catalog.changes.asof import TimeTravel
from catalog.changes.snapshots import snapshot_now
from catalog.cli import app as cli_app
from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import NodeSpec, RelationSpec
from resolvers.context import make_context
from resolvers.schema import build_schema
from tests.conftest import TEST_HOSTS, GraphQLClient

UTC = dt.UTC
T1 = dt.datetime(2026, 1, 10, tzinfo=UTC)
T2 = dt.datetime(2026, 2, 10, tzinfo=UTC)
T3 = dt.datetime(2026, 3, 10, tzinfo=UTC)
NOW = dt.datetime(2026, 4, 1, tzinfo=UTC)
DAY = dt.timedelta(days=1)


def _n(node_id: str, name: str, **kw: Any) -> NodeSpec:
    return NodeSpec.model_validate({"id": node_id, "name": name, **kw})


def _r(src: str, rtype: str, dst: str) -> RelationSpec:
    return RelationSpec.model_validate({"from": src, "type": rtype, "to": dst})


BASE = [
    _n("team:a", "Team A"),
    _n("capability:sell", "Sell"),
    _n("capability:sell.online", "Sell online"),
    _n("entity:customer", "Customer"),
]
STATES: list[tuple[list[NodeSpec], list[RelationSpec]]] = [
    (
        [*BASE, _n("system:crm", "CRM", owner="team:a"), _n("system:erp", "ERP")],
        [
            _r("system:crm", "PROVIDES", "capability:sell"),
            _r("system:crm", "MASTERS", "entity:customer"),
            _r("capability:sell.online", "PART_OF", "capability:sell"),
        ],
    ),
    (
        [
            *BASE,
            _n("system:crm", "CRM v2", owner="team:a", tags=["core"]),
            _n("system:erp", "ERP"),
            _n("system:shop", "Shop", description="the webshop"),
        ],
        [
            _r("system:crm", "PROVIDES", "capability:sell"),
            _r("system:erp", "PROVIDES", "capability:sell.online"),
            _r("system:erp", "MASTERS", "entity:customer"),
            _r("capability:sell.online", "PART_OF", "capability:sell"),
        ],
    ),
    (
        [
            *BASE,
            _n("system:crm", "CRM v2", owner="team:a", tags=["core"], lifecycle="RETIRED"),
            _n("system:erp", "ERP", tags=["core", "finance"]),
            _n("system:shop", "Shop", description="the webshop"),
        ],
        [
            _r("system:crm", "PROVIDES", "capability:sell"),
            _r("system:erp", "PROVIDES", "capability:sell.online"),
            _r("system:erp", "MASTERS", "entity:customer"),
            _r("system:shop", "DEPENDS_ON", "system:erp"),
            _r("capability:sell.online", "PART_OF", "capability:sell"),
        ],
    ),
]

#: Root fields compared at each instant ({asOf} becomes `, asOf: "..."` or nothing).
QUERIES = {
    "nodes": """{ nodes(first: 100{asOf}) { totalCount edges { cursor node {
        id name description tags lifecycle owner { id }
        ... on System { provides { id } masters { id } dependsOn { id } dependents { id } }
        ... on Capability { parent { id } children { id } providers { id } }
        ... on DataEntity { masteredBy { id } }
        relations { type from { id } to { id } } } } } }""",
    "systems": """{ systems(first: 2{asOf}) { totalCount pageInfo { hasNextPage endCursor }
        edges { node { id name } } } }""",
    "node": """{ node(id: "system:crm"{asOf}) { id name lifecycle tags
        ... on System { provides { id name } masters { id } } } }""",
    "impact": """{ impact(id: "system:erp", depth: 3{asOf}) { root { id name }
        affected { distance node { id name } via { type } }
        unprovidedCapabilities { id } orphanedEntities { id } } }""",
    "gaps": """{ gaps{args} { node { id } reason } }""",
    "redundancies": """{ redundancies{args} { node { id } involved { id } } }""",
    "capabilityMap": """{ capabilityMap{args} { capability { id } level coveredLeaves
        uncoveredLeaves providers { id } } }""",
    "path": """{ path(from: "system:shop", to: "capability:sell"{asOf}) { type } }""",
    "neighborhood": """{ neighborhood(id: "entity:customer", depth: 2{asOf}) { nodes { id }
        relations { type } } }""",
}


def _query(name: str, at: dt.datetime | None) -> str:
    text = QUERIES[name]
    as_of = f', asOf: "{at.isoformat()}"' if at is not None else ""
    args = f'(asOf: "{at.isoformat()}")' if at is not None else ""
    return text.replace("{asOf}", as_of).replace("{args}", args)


def _canonical(value: Any) -> Any:
    """``relations`` lists in a fixed order: a node's relations come in the order the
    projection's adjacency holds them, which follows the order they were written in."""
    if isinstance(value, dict):
        return {
            k: sorted(map(repr, v)) if k == "relations" else _canonical(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


async def _answer(services: Services, query: str) -> dict[str, Any]:
    """Data and errors (message, code) of a query."""
    result = await _schema().execute(query, context_value=make_context(services))
    errors = [(e.message, (e.extensions or {}).get("code")) for e in result.errors or ()]
    return {"data": result.data, "errors": errors}


async def _ask(services: Services, query: str) -> dict[str, Any]:
    schema = _schema()
    result = await schema.execute(query, context_value=make_context(services))
    assert not result.errors, result.errors
    assert result.data is not None
    data: dict[str, Any] = result.data
    return data


_SCHEMAS: list[Any] = []


def _schema() -> Any:
    if not _SCHEMAS:
        _SCHEMAS.append(build_schema())
    return _SCHEMAS[0]


async def _error(services: Services, query: str) -> dict[str, Any]:
    result = await _schema().execute(query, context_value=make_context(services))
    assert result.errors, result.data
    err = result.errors[0]
    return {"message": err.message, **(err.extensions or {})}


class Clock:
    """The store's clock, set by the test."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


async def _write_history(services: Services) -> Clock:
    clock = Clock(T1)
    services.store.clock = clock
    for at, (nodes, rels) in zip((T1, T2, T3), STATES, strict=True):
        clock.at = at
        await services.registry.apply_batch(nodes, rels, prune=True)
    clock.at = NOW
    return clock


async def _direct(tmp_path: Path, index: int) -> Services:
    url = f"sqlite:///{tmp_path / f'direct{index}.db'}"
    svc = await Services.start(Settings(database_url=url, allowed_hosts=TEST_HOSTS, _env_file=None))
    nodes, rels = STATES[index]
    await svc.registry.apply_batch(nodes, rels, prune=True)
    return svc


async def test_answers_at_three_instants_equal_catalogs_built_to_those_states(
    services: Services, tmp_path: Path
) -> None:
    await _write_history(services)
    for index, at in enumerate((T1 + DAY, T2 + DAY, T3 + DAY)):
        direct = await _direct(tmp_path, index)
        try:
            for name in QUERIES:
                want = await _answer(direct, _query(name, None))
                got = await _answer(services, _query(name, at))
                assert _canonical(got) == _canonical(want), (name, at)
        finally:
            await direct.close()
    # The present is unchanged by the questions about the past.
    assert (await _ask(services, _query("node", None)))["node"]["lifecycle"] == "RETIRED"


async def test_past_node_answers_from_the_history_index_without_a_graph(
    services: Services,
) -> None:
    await _write_history(services)
    data = await _ask(services, _query("node", T1 + DAY))
    assert data["node"]["name"] == "CRM"
    assert data["node"]["lifecycle"] == "ACTIVE"
    assert data["node"]["masters"] == [{"id": "entity:customer"}]
    missing = await _ask(services, f'{{ node(id: "system:shop", asOf: "{T1 + DAY}") {{ id }} }}')
    assert missing == {"node": None}
    # An instant between two changes stands at the earlier one; exactly at one includes it.
    exact = await _ask(
        services, f'{{ node(id: "system:crm", asOf: "{T2.isoformat()}") {{ name }} }}'
    )
    assert exact["node"]["name"] == "CRM v2"


async def test_past_search_finds_the_names_of_then(services: Services) -> None:
    await _write_history(services)
    q = '{ search(query: "crm"%s) { totalCount hits { node { id name lifecycle } } } }'
    then = await _ask(services, q % f', asOf: "{(T1 + DAY).isoformat()}"')
    assert then["search"]["hits"] == [
        {"node": {"id": "system:crm", "name": "CRM", "lifecycle": "ACTIVE"}}
    ]
    shop = await _ask(services, q.replace("crm", "webshop") % f', asOf: "{T1 + DAY}"')
    assert shop["search"]["totalCount"] == 0


async def test_catalog_diff_lists_added_changed_retired_and_removed(services: Services) -> None:
    await _write_history(services)
    query = """query($from: DateTime!, $to: DateTime, $after: String) {
      catalogDiff(from: $from, to: $to, first: 3, after: $after) {
        totalCount fromChange toChange pageInfo { hasNextPage endCursor }
        edges { node { target id change versionBefore versionAfter
          fields { field before after } } } } }"""
    entries: list[dict[str, Any]] = []
    after = None
    while True:
        schema = _schema()
        result = await schema.execute(
            query,
            variable_values={"from": (T1 + DAY).isoformat(), "after": after},
            context_value=make_context(services),
        )
        assert not result.errors, result.errors
        assert result.data is not None
        page = result.data["catalogDiff"]
        entries.extend(e["node"] for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert page["totalCount"] == len(entries)
    by_id = {e["id"]: e for e in entries}
    assert by_id["system:crm"]["change"] == "RETIRED"
    assert {f["field"]: (f["before"], f["after"]) for f in by_id["system:crm"]["fields"]} == {
        "name": ("CRM", "CRM v2"),
        "tags": (None, ["core"]),
        "lifecycle": ("ACTIVE", "RETIRED"),
    }
    assert by_id["system:shop"]["change"] == "ADDED"
    assert by_id["system:erp"]["change"] == "CHANGED"
    assert by_id["system:crm|MASTERS|entity:customer"]["change"] == "REMOVED"
    assert by_id["system:shop|DEPENDS_ON|system:erp"]["change"] == "ADDED"
    assert "team:a" not in by_id  # unchanged
    # Up to T2 + 1 day only: the retirement is not in it.
    result = await _schema().execute(
        query,
        variable_values={"from": (T1 + DAY).isoformat(), "to": (T2 + DAY).isoformat()},
        context_value=make_context(services),
    )
    assert result.data is not None
    page = result.data["catalogDiff"]
    assert page["totalCount"] < len(entries)


async def test_bad_instants_are_coded_errors_naming_the_argument(services: Services) -> None:
    empty = await _error(
        services, '{ node(id: "system:crm", asOf: "2026-01-01T00:00:00Z") { id } }'
    )
    assert empty["code"] == "BAD_USER_INPUT" and "no recorded change" in empty["message"]
    await _write_history(services)
    cases = {
        '{ node(id: "system:crm", asOf: "2025-01-01T00:00:00Z") { id } }': (
            "asOf",
            "before the first recorded change",
        ),
        '{ impact(id: "system:crm", asOf: "2027-01-01T00:00:00Z") { root { id } } }': (
            "asOf",
            "in the future",
        ),
        '{ nodes(asOf: "2026-02-01T00:00:00") { totalCount } }': ("asOf", "no timezone offset"),
        '{ search(query: "crm", asOf: "2026-02-01T00:00:00+05:00") { totalCount } '
        'gaps(asOf: "2026-02-01T00:00:00") { reason } }': ("asOf", "one instant"),
        '{ catalogDiff(from: "2026-03-01T00:00:00Z", to: "2026-02-01T00:00:00Z") { totalCount } }': (
            "from",
            "is after to",
        ),
        '{ catalogDiff(from: "2026-03-01T00:00:00") { totalCount } }': ("from", "no timezone"),
        '{ catalogDiff(from: "2026-03-01T00:00:00Z", after: "bm9wZQ==") { totalCount } }': (
            "after",
            "not a cursor",
        ),
        """{ a: node(id: "system:crm", asOf: "2026-02-01T00:00:00Z") { id }
             b: node(id: "system:crm") { id } }""": ("asOf", "one instant"),
        """{ a: node(id: "system:crm", asOf: "2026-02-01T00:00:00Z") { id }
             b: gaps(asOf: "2026-03-01T00:00:00Z") { reason } }""": ("asOf", "one instant"),
    }
    for query, (field, words) in cases.items():
        err = await _error(services, query)
        assert err["code"] == "BAD_USER_INPUT", (query, err)
        assert err.get("field") == field, (query, err)
        assert words in err["message"], (query, err)
    # Text that is no DateTime at all is the scalar's own coded refusal.
    err = await _error(services, '{ node(id: "system:crm", asOf: "yesterday") { id } }')
    assert err["code"] == "BAD_USER_INPUT" and "DateTime" in err["message"]
    # The same instant through a variable and a literal is one instant.
    ok = await _schema().execute(
        """query($t: DateTime) { a: node(id: "system:crm", asOf: $t) { name }
             b: node(id: "system:erp", asOf: "2026-01-11T00:00:00+00:00") { name } }""",
        variable_values={"t": "2026-01-11T01:00:00+01:00"},
        context_value=make_context(services),
    )
    assert not ok.errors, ok.errors
    assert ok.data == {"a": {"name": "CRM"}, "b": {"name": "ERP"}}


async def test_snapshot_plus_log_equals_replay_and_undo(services: Services) -> None:
    await _write_history(services)
    tt = TimeTravel(services.store)
    async with services.store.read() as r:
        last = await r.last_change_id()
    mid = await tt.resolve(T2 + DAY)
    assert 0 < mid < last
    await snapshot_now(services.store)  # a snapshot of the present
    # and one in the middle, as the service writes after a long replay
    from catalog.changes.snapshots import write_snapshot

    early = await tt.resolve(T1 + DAY)
    await write_snapshot(services.store, await tt.rebuild(early, "replay"))
    for change_id in range(1, last + 1):
        replay = await tt.rebuild(change_id, "replay")
        undo = await tt.rebuild(change_id, "undo")
        snap = await tt.rebuild(change_id, "snapshot")
        assert replay.nodes == undo.nodes == snap.nodes, change_id
        assert replay.relations == undo.relations == snap.relations, change_id
    # The present rebuilt from the history equals the tables.
    assert (await tt.rebuild(last, "replay")).records() == (
        await tt.rebuild(last, "undo")
    ).records()


def test_export_as_of_round_trips_to_the_past_state(
    tmp_path: Path, run_async: Callable[..., Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"

    async def build() -> None:
        svc = await Services.start(
            Settings(database_url=url, allowed_hosts=TEST_HOSTS, _env_file=None)
        )
        try:
            await _write_history(svc)
        finally:
            await svc.close()

    run_async(build())
    runner = CliRunner()
    out = tmp_path / "past.yaml"
    result = runner.invoke(
        cli_app, ["export", "--as-of", (T2 + DAY).isoformat(), "--database", url, "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = runner.invoke(cli_app, ["apply", str(out), "--database", fresh])
    assert result.exit_code == 0, result.output

    async def compare() -> None:
        a = await Services.start(
            Settings(database_url=fresh, allowed_hosts=TEST_HOSTS, _env_file=None)
        )
        b = await Services.start(
            Settings(database_url=url, allowed_hosts=TEST_HOSTS, _env_file=None)
        )
        b.store.clock = Clock(NOW)
        try:
            for name in ("nodes", "impact", "gaps"):
                want = await _ask(b, _query(name, T2 + DAY))
                assert await _ask(a, _query(name, None)) == want, name
        finally:
            await a.close()
            await b.close()

    run_async(compare())
    for bad, words in (("2026-02-11T00:00:00", "no timezone offset"), ("yesterday", "ISO 8601")):
        result = runner.invoke(cli_app, ["export", "--as-of", bad, "--database", url])
        assert result.exit_code == 1
        assert words in result.output
    result = runner.invoke(cli_app, ["export", "--as-of", "2020-01-01", "--database", url])
    assert result.exit_code == 1 and "before the first recorded change" in result.output


@pytest.fixture
def run_async() -> Callable[..., Any]:
    """Run a coroutine to completion in a loop of its own."""
    import asyncio

    return asyncio.run


# -- every intermediate state of random write sequences --------------------------------------

_SYSTEMS = ["system:s0", "system:s1", "system:s2"]
_CAPS = ["capability:c0", "capability:c1", "capability:c2"]
_ENTITIES = ["entity:e0", "entity:e1"]
_IDS = [*_SYSTEMS, *_CAPS, *_ENTITIES, "team:t0"]
_RELATIONS = [
    *((s, "PROVIDES", c) for s in _SYSTEMS for c in _CAPS),
    *((s, "MASTERS", e) for s in _SYSTEMS for e in _ENTITIES),
    *((c, "READS", e) for c in _CAPS for e in _ENTITIES),
    ("system:s0", "DEPENDS_ON", "system:s1"),
    ("system:s1", "DEPENDS_ON", "system:s2"),
    ("capability:c1", "PART_OF", "capability:c0"),
    ("capability:c2", "PART_OF", "capability:c1"),
]

_write = st.one_of(
    st.tuples(
        st.just("upsert"),
        st.sampled_from(_IDS),
        st.sampled_from(["A", "B", "C"]),
        st.lists(st.sampled_from(["x", "y"]), max_size=2, unique=True),
        st.sampled_from(["PLANNED", "ACTIVE", "DEPRECATED"]),
    ),
    st.tuples(st.just("relate"), st.sampled_from(_RELATIONS)),
    st.tuples(st.just("unrelate"), st.sampled_from(_RELATIONS)),
    st.tuples(st.just("retire"), st.sampled_from(_IDS)),
)

_STATE_QUERIES = [
    QUERIES["nodes"].replace("{asOf}", "{as_of}"),
    """{ impact(id: "system:s0", depth: 4{as_of}) { affected { distance node { id } }
        unprovidedCapabilities { id } orphanedEntities { id } } }""",
    """{ gaps{args} { node { id } reason } redundancies{args} { node { id } involved { id } }
        capabilityMap{args} { capability { id } level coveredLeaves uncoveredLeaves } }""",
    """{ lineage(id: "entity:e0"{as_of}) { nodes { id } }
        neighborhood(id: "capability:c0", depth: 2{as_of}) { nodes { id lifecycle } } }""",
]


def _state_query(text: str, at: dt.datetime | None) -> str:
    as_of = f', asOf: "{at.isoformat()}"' if at else ""
    return text.replace("{as_of}", as_of).replace(
        "{args}", f'(asOf: "{at.isoformat()}")' if at else ""
    )


async def _apply_write(services: Services, write: tuple[Any, ...]) -> None:
    from metadata.errors import CatalogError

    reg = services.registry
    try:
        if write[0] == "upsert":
            _, node_id, name, tags, lifecycle = write
            await reg.apply_batch(
                [_n(node_id, f"{node_id} {name}", tags=tags, lifecycle=lifecycle)], []
            )
        elif write[0] == "relate":
            await reg.relate(_r(*write[1]))
        elif write[0] == "unrelate":
            await reg.unrelate(_r(*write[1]))
        else:
            await reg.retire(write[1])
    except CatalogError:
        pass  # refused (a missing end, a PART_OF cycle...): nothing was written


@hyp_settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(writes=st.lists(_write, min_size=1, max_size=14))
def test_every_intermediate_state_answers_as_the_catalog_did_then(
    writes: list[tuple[Any, ...]],
) -> None:
    import asyncio

    async def run(url: str) -> None:
        svc = await Services.start(
            Settings(database_url=url, allowed_hosts=TEST_HOSTS, _env_file=None)
        )
        clock = Clock(T1)
        svc.store.clock = clock
        seen: list[tuple[dt.datetime, list[dict[str, Any]]]] = []
        try:
            await svc.registry.apply_batch([_n("team:t0", "T0")], [])
            for i, write in enumerate(writes):
                clock.at = T1 + dt.timedelta(hours=i + 1)
                await _apply_write(svc, write)
                answers = [await _answer(svc, _state_query(q, None)) for q in _STATE_QUERIES]
                seen.append((clock.at + dt.timedelta(minutes=30), answers))
            clock.at = NOW
            for at, answers in seen:
                for text, want in zip(_STATE_QUERIES, answers, strict=True):
                    got = await _answer(svc, _state_query(text, at))
                    assert _canonical(got) == _canonical(want), (at, text)
        finally:
            await svc.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite:///{Path(tmp) / 'h.db'}"))


def test_past_answers_obey_the_permission_table(
    app_factory: Callable[..., GraphQLClient],
) -> None:
    import functools

    gql = app_factory(auth="on")
    client = gql.http
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    portal: Any = client.portal

    async def history() -> None:
        await _write_history(services)

    portal.call(history)
    client.headers.pop("Authorization", None)
    diff = '{ catalogDiff(from: "2026-01-11T00:00:00Z") { totalCount } }'
    assert client.post("/graphql", json={"query": diff}).status_code == 401
    _, viewer = portal.call(
        functools.partial(services.tokens.create, "tt-viewer", "viewer", created_by="tests")
    )
    client.headers["Authorization"] = f"Bearer {viewer}"
    assert gql.data(diff)["catalogDiff"]["totalCount"] > 0
    # Live records of an entity as it was: the records right, as in the present.
    records = """{ node(id: "entity:customer", asOf: "2026-01-11T00:00:00Z") {
        ... on DataEntity { name records { totalCount } } } }"""
    err = gql.error(records)
    assert err["extensions"]["code"] == "FORBIDDEN", err


async def test_root_fragments_are_checked_for_one_instant(services: Services) -> None:
    await _write_history(services)
    same = """query { ...Then b: node(id: "system:erp", asOf: "2026-01-11T00:00:00Z") { name } }
      fragment Then on Query { a: node(id: "system:crm", asOf: "2026-01-11T00:00:00Z") { name } }"""
    assert await _ask(services, same) == {"a": {"name": "CRM"}, "b": {"name": "ERP"}}
    mixed = """query { ...Now b: node(id: "system:erp", asOf: "2026-01-11T00:00:00Z") { name } }
      fragment Now on Query { a: node(id: "system:crm") { name } }"""
    err = await _error(services, mixed)
    assert err["code"] == "BAD_USER_INPUT" and err["field"] == "asOf"


async def test_as_of_costs_more_than_the_present(services: Services) -> None:
    await _write_history(services)
    at = (T2 + DAY).isoformat()
    for name in ("node", "impact", "nodes"):
        now = await _schema().execute(_query(name, None), context_value=make_context(services))
        then = await _schema().execute(_query(name, T2 + DAY), context_value=make_context(services))
        assert now.extensions and then.extensions
        assert then.extensions["cost"] > now.extensions["cost"], (name, at)


async def test_the_serving_process_writes_snapshots_as_the_log_grows(
    settings: Settings, tmp_path: Path
) -> None:
    import asyncio

    from catalog.changes.snapshots import last_snapshot_id

    svc = await Services.start(settings.model_copy(update={"snapshot_every": 5}))
    try:
        await _write_history(svc)
        await svc.sync()
        for _ in range(100):
            if await last_snapshot_id(svc.store):
                break
            await asyncio.sleep(0.05)
        snap = await last_snapshot_id(svc.store)
        async with svc.store.read() as r:
            # at the change the projection stood at when it synced (another sync, e.g. on a
            # PostgreSQL notification, may have started it before the last write)
            assert 5 <= snap <= await r.last_change_id()
        # A past state is then rebuilt from the nearest snapshot, and equals the replay.
        tt = TimeTravel(svc.store)
        mid = await tt.resolve(T2 + DAY)
        assert (await tt.rebuild(mid, "snapshot")).nodes == (await tt.rebuild(mid, "replay")).nodes
    finally:
        await svc.close()


async def test_past_listings_read_a_fixed_number_of_statements(
    services: Services, count_statements: Callable[[Any], Any]
) -> None:
    await _write_history(services)
    at = (T2 + DAY).isoformat()
    query = """{ nodes(first: %d, asOf: "%s") { edges { node { id name owner { id name }
        ... on System { provides { id name providers { id name } } } } } } }"""
    await _ask(services, query % (1, at))  # builds the past graph once
    counts = []
    for first in (1, 3, 8):
        counter = count_statements(services.store.engine)
        await _ask(services, query % (first, at))
        counts.append(counter.count)
    # One statement per level of records (page, owners and providers, their providers) and
    # the instant: never one per item (at 8 the page already holds the next level's nodes).
    assert max(counts) == counts[0] <= 4, counts

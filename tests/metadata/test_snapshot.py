"""Graph snapshots: a replica started from one plus the changes after it equals a full rebuild;
a snapshot that is corrupt, foreign, stale or ahead is ignored with a warning, never served."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import delete

from catalog.registry import Registry
from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import NodeSpec, RelationSpec
from metadata.errors import CatalogError
from metadata.graph import CatalogGraph
from metadata.snapshot import (
    Anchor,
    ProjectionSnapshots,
    SnapshotIdentity,
    decode_header,
    encode,
    seal,
    write_atomically,
)
from metadata.store import Store
from metadata.tables import history
from resolvers.context import make_context
from resolvers.schema import build_schema
from tests.conftest import TEST_HOSTS

CAPAHUB = Path(sys.executable).with_name("capahub")


def _n(node_id: str, name: str | None = None, **kw: Any) -> NodeSpec:
    return NodeSpec.model_validate({"id": node_id, "name": name or node_id, **kw})


def _r(src: str, rtype: str, dst: str, **props: Any) -> RelationSpec:
    return RelationSpec.model_validate(
        {"from": src, "type": rtype, "to": dst, "properties": props or None}
    )


BASE_NODES = [
    _n("team:a"),
    _n("team:b"),
    _n("domain:sales"),
    _n("system:crm", owner="team:a"),
    _n("system:erp", owner="team:b", lifecycle="DEPRECATED"),
    _n("capability:sell"),
    _n("capability:sell.online", owner="team:a"),
    _n("entity:customer"),
    _n("entity:order"),
]
BASE_RELATIONS = [
    _r("system:crm", "PROVIDES", "capability:sell"),
    _r("system:crm", "MASTERS", "entity:customer"),
    _r("system:crm", "STORES", "entity:customer"),  # two types between one pair
    _r("system:erp", "DEPENDS_ON", "system:crm", reason="orders"),
    _r("capability:sell.online", "PART_OF", "capability:sell"),
    _r("capability:sell", "PART_OF", "domain:sales"),
    _r("capability:sell", "READS", "entity:customer", fields=["email", "name"]),
    _r("capability:sell.online", "WRITES", "entity:order"),
    _r("entity:order", "REFERENCES", "entity:customer", columns={"customer_id": "id"}),
]

QUERIES = [
    """{ impact(id: "system:crm", depth: 4) { affected { distance node { id } }
         unprovidedCapabilities { id } orphanedEntities { id } } }""",
    "{ gaps { node { id } reason } redundancies { node { id } involved { id } } }",
    """{ neighborhood(id: "capability:sell", depth: 2) { nodes { id lifecycle } } }""",
    """{ node(id: "entity:customer") { id relations { type from { id } to { id }
         properties } } }""",
]

_SCHEMAS: list[Any] = []


def _settings(url: str, snapshot_dir: Path | str, **kw: Any) -> Settings:
    return Settings(
        database_url=url,
        projection_snapshot_dir=str(snapshot_dir),
        projection_snapshot_interval=0,
        allowed_hosts=TEST_HOSTS,
        _env_file=None,
        **kw,
    )


async def _start(url: str, snapshot_dir: Path | str) -> Services:
    return await Services.start(_settings(url, snapshot_dir))


def projection(graph: CatalogGraph) -> tuple[dict[str, Any], dict[tuple[str, str, str], Any]]:
    """Every node's facts and every relation with its properties."""
    g = graph.g
    nodes = {n: (d["kind"], d["lifecycle"], d["owner"]) for n, d in g.nodes(data=True)}
    edges = {
        (u, t.value, v): orjson.dumps(p, option=orjson.OPT_SORT_KEYS)
        for u, v, d in g.edges(data=True)
        for t, p in d["rels"].items()
    }
    # both sides of the adjacency agree
    assert {(u, v) for u in g.pred for v in g.pred[u]} == {(v, u) for u, v in g.edges}
    return nodes, edges


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((_canonical(v) for v in value), key=repr)
    return value


async def answers(services: Services) -> list[Any]:
    """The answers of a few graph questions and a node's relations."""
    if not _SCHEMAS:
        _SCHEMAS.append(build_schema())
    out = []
    for q in QUERIES:
        result = await _SCHEMAS[0].execute(q, context_value=make_context(services))
        errors = [(e.message, (e.extensions or {}).get("code")) for e in result.errors or ()]
        out.append((_canonical(result.data), errors))
    return out


async def assert_equals_rebuild(url: str, started: Services) -> None:
    """``started`` holds what a projection built from the tables holds, and answers alike."""
    reference = await _start(url, "off")
    try:
        assert reference.snapshots is None
        assert projection(started.graph) == projection(reference.graph)
        assert started.graph.last_change == reference.graph.last_change
        assert await answers(started) == await answers(reference)
    finally:
        await reference.close()


async def _seeded(url: str, snapshot_dir: Path) -> Path:
    """A catalog with the base landscape and its snapshot written (at close)."""
    svc = await _start(url, snapshot_dir)
    try:
        assert svc.snapshots is not None
        assert svc.snapshots.source == "tables"
        await svc.registry.apply_batch(BASE_NODES, BASE_RELATIONS)
    finally:
        await svc.close()
    path = svc.snapshots.files.path
    assert path.exists()
    return path


async def _write_elsewhere(url: str) -> None:
    """Writes through a store of its own (as another process writes)."""
    other = await Store.open(url)
    try:
        reg = Registry(other)
        await reg.apply_batch(
            [_n("system:shop", owner="team:b"), _n("capability:pay"), _n("team:a", "Team A!")],
            [
                _r("system:shop", "PROVIDES", "capability:pay"),
                _r("system:shop", "DEPENDS_ON", "system:erp", reason="stock"),
                _r("capability:sell", "READS", "entity:customer", fields=["email"]),
            ],
        )
        await reg.unrelate(_r("system:crm", "STORES", "entity:customer"))
        await reg.retire("system:erp")
        await reg.upsert_node(_n("entity:order", owner="team:a"))
    finally:
        await other.close()


async def test_snapshot_plus_replay_equals_a_rebuild_across_other_processes(
    db_url: str, tmp_path: Path
) -> None:
    snapshots = tmp_path / "snapshots"
    await _seeded(db_url, snapshots)
    await _write_elsewhere(db_url)
    doc = tmp_path / "more.yaml"
    doc.write_text(
        "nodes:\n  - {id: system:cdp, name: CDP, owner: team:a}\n"
        "relations:\n  - {from: system:cdp, type: STORES, to: entity:order}\n"
        "  - {from: system:cdp, type: DEPENDS_ON, to: system:shop, properties: {via: kafka}}\n"
    )
    subprocess.run(
        [str(CAPAHUB), "apply", str(doc), "--database", db_url], check=True, capture_output=True
    )
    svc = await _start(db_url, snapshots)
    try:
        assert svc.snapshots is not None
        assert svc.snapshots.source == "snapshot"
        assert svc.snapshots.replayed > 0
        assert svc.graph.has("system:cdp") and not svc.graph.active("system:erp")
        await assert_equals_rebuild(db_url, svc)
        # it goes on following this process's writes and others' as before
        await svc.registry.relate(_r("system:cdp", "PROVIDES", "capability:pay"))
        await _write_elsewhere(db_url)
        await svc.sync()
        await assert_equals_rebuild(db_url, svc)
    finally:
        await svc.close()
    # the last state was written at close: the next start replays nothing
    again = await _start(db_url, snapshots)
    try:
        assert again.snapshots is not None
        assert (again.snapshots.source, again.snapshots.replayed) == ("snapshot", 0)
        await assert_equals_rebuild(db_url, again)
    finally:
        await again.close()


def _rewrite_header(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    header, body = decode_header(path.read_bytes())
    change(header)
    path.write_bytes(seal(orjson.dumps(header), bytes(body)))


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _bad_checksum(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _old_format(path: Path) -> None:
    _rewrite_header(path, lambda h: h.update(format=0))


def _other_revision(path: Path) -> None:
    _rewrite_header(path, lambda h: h.update(revision="0001"))


def _ahead(path: Path) -> None:
    def change(h: dict[str, Any]) -> None:
        h["anchor"]["change_id"] += 1_000

    _rewrite_header(path, change)


def _other_anchor(path: Path) -> None:
    def change(h: dict[str, Any]) -> None:
        h["anchor"]["at"] = "2001-01-01T00:00:00+00:00"

    _rewrite_header(path, change)


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x80\x04\x95 not a snapshot at all" * 10)


def _garbage_body(path: Path) -> None:
    header, _ = decode_header(path.read_bytes())
    path.write_bytes(seal(orjson.dumps(header), b"x\x9c not zlib"))


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_flip_byte, "checksum mismatch"),
        (_bad_checksum, "checksum mismatch"),
        (_truncate, "checksum mismatch"),
        (_garbage, "wrong magic"),
        (_garbage_body, "unreadable body"),
        (_old_format, "format 0"),
        (_other_revision, "migration '0001'"),
        (_ahead, "ahead of the database"),
        (_other_anchor, "is not the one it was written at"),
    ],
)
async def test_a_spoiled_snapshot_is_ignored_with_a_warning_and_rebuilt(
    sqlite_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    spoil: Callable[[Path], None],
    reason: str,
) -> None:
    snapshots = tmp_path / "snapshots"
    path = await _seeded(sqlite_url, snapshots)
    await _write_elsewhere(sqlite_url)
    spoil(path)
    with caplog.at_level(logging.WARNING, logger="capahub.snapshot"):
        svc = await _start(sqlite_url, snapshots)
    try:
        assert svc.snapshots is not None and svc.snapshots.source == "tables"
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(reason in m and "ignored" in m for m in warned), warned
        await assert_equals_rebuild(sqlite_url, svc)
    finally:
        await svc.close()
    # rebuilt, and a good snapshot replaces the spoiled one
    again = await _start(sqlite_url, snapshots)
    try:
        assert again.snapshots is not None and again.snapshots.source == "snapshot"
    finally:
        await again.close()


async def test_a_snapshot_of_another_database_is_not_used(tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    url_a, url_b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    path_a = await _seeded(url_a, snapshots)
    svc = await _start(url_b, snapshots)
    try:
        await svc.registry.apply_batch([_n("system:other")], [])
    finally:
        await svc.close()
    path_b = ProjectionSnapshots(snapshots, url_b).path
    assert path_b != path_a
    shutil.copyfile(path_a, path_b)  # a's file where b's belongs
    svc = await _start(url_b, snapshots)
    try:
        assert svc.snapshots is not None and svc.snapshots.source == "tables"
        assert svc.graph.has("system:other") and not svc.graph.has("system:crm")
        await assert_equals_rebuild(url_b, svc)
    finally:
        await svc.close()


async def test_a_database_recreated_at_the_same_path_is_not_served_the_old_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshots = tmp_path / "snapshots"
    db = tmp_path / "catalog.db"
    url = f"sqlite:///{db}"
    await _seeded(url, snapshots)
    for leftover in tmp_path.glob("catalog.db*"):
        leftover.unlink()
    # as many changes again, and more: the snapshot's change id exists, but is another change
    other = await Store.open(url)
    try:
        reg = Registry(other)
        await reg.apply_batch([_n(f"system:s{i}") for i in range(30)], [])
    finally:
        await other.close()
    with caplog.at_level(logging.WARNING, logger="capahub.snapshot"):
        svc = await _start(url, snapshots)
    try:
        assert svc.snapshots is not None and svc.snapshots.source == "tables"
        assert "not the one it was written at" in caplog.text
        assert not svc.graph.has("system:crm")
        await assert_equals_rebuild(url, svc)
    finally:
        await svc.close()


async def test_a_snapshot_whose_changes_were_compacted_away_is_rebuilt(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshots = tmp_path / "snapshots"
    path = await _seeded(sqlite_url, snapshots)
    await _write_elsewhere(sqlite_url)
    header, _ = decode_header(path.read_bytes())
    store = await Store.open(sqlite_url)
    try:  # a compaction that dropped the log up to the snapshot's change
        async with store.engine.begin() as conn:
            await conn.execute(delete(history).where(history.c.id <= header["anchor"]["change_id"]))
    finally:
        await store.close()
    with caplog.at_level(logging.WARNING, logger="capahub.snapshot"):
        svc = await _start(sqlite_url, snapshots)
    try:
        assert svc.snapshots is not None and svc.snapshots.source == "tables"
        assert "compacted" in caplog.text
        await assert_equals_rebuild(sqlite_url, svc)
    finally:
        await svc.close()


async def test_a_snapshot_far_behind_the_log_is_not_replayed(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshots = tmp_path / "snapshots"
    await _seeded(sqlite_url, snapshots)
    other = await Store.open(sqlite_url)
    try:  # more changes than the snapshot has nodes and relations
        await Registry(other).apply_batch([_n(f"system:s{i}") for i in range(40)], [])
    finally:
        await other.close()
    with caplog.at_level(logging.INFO, logger="capahub.snapshot"):
        svc = await _start(sqlite_url, snapshots)
    try:
        assert svc.snapshots is not None and svc.snapshots.source == "tables"
        assert "changes behind" in caplog.text
        await assert_equals_rebuild(sqlite_url, svc)
    finally:
        await svc.close()


async def test_snapshots_live_beside_a_sqlite_file_by_default_and_are_off_on_request(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    svc = await Services.start(Settings(database_url=url, _env_file=None))
    try:
        assert svc.snapshots is not None
        assert svc.snapshots.files.directory == tmp_path / "hub-projections"
        await svc.registry.apply_batch(BASE_NODES, [])
    finally:
        await svc.close()
    assert list((tmp_path / "hub-projections").glob("graph-*.snapshot"))
    off = await Services.start(
        Settings(database_url=url, projection_snapshot_dir="off", _env_file=None)
    )
    try:
        assert off.snapshots is None and off.graph.has("team:a")
    finally:
        await off.close()
    pg = "postgresql://u@localhost/db"
    assert Settings(database_url=pg, _env_file=None).projection_snapshot_dir == ""


async def test_the_server_writes_a_fresh_snapshot_periodically_only_after_changes(
    sqlite_url: str, tmp_path: Path
) -> None:
    snapshots = tmp_path / "snapshots"
    await _seeded(sqlite_url, snapshots)
    svc = await Services.start(
        _settings(sqlite_url, snapshots).model_copy(update={"projection_snapshot_interval": 0.05})
    )
    try:
        snap = svc.snapshots
        assert snap is not None and snap.source == "snapshot"
        written = snap.written
        await asyncio.sleep(0.2)
        assert snap.written == written  # nothing changed: nothing written
        await svc.registry.apply_batch([_n("system:new")], [])
        for _ in range(100):
            await asyncio.sleep(0.05)
            if snap.written == svc.graph.last_change:
                break
        assert snap.written == svc.graph.last_change > written
    finally:
        await svc.close()


async def test_an_unwritable_directory_is_a_warning_not_a_failure(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the directory should be")
    svc = await _start(sqlite_url, blocked)
    try:
        await svc.registry.apply_batch(BASE_NODES, [])
    finally:
        with caplog.at_level(logging.WARNING, logger="capahub.snapshot"):
            await svc.close()
    assert "cannot be written" in caplog.text


async def test_write_atomically_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        await Registry(store).apply_batch(BASE_NODES, BASE_RELATIONS)
        graph = CatalogGraph()
        await graph.load(store)
        async with store.read() as r:
            identity = await SnapshotIdentity.of(str(store.engine.url), r)
            anchor = await Anchor.read(r, graph.last_change)
        assert anchor is not None
        target = tmp_path / "s" / "graph.snapshot"
        write_atomically(target, encode(graph.snapshot(), identity, anchor))
        write_atomically(target, encode(graph.snapshot(), identity, anchor))
        assert [p.name for p in target.parent.iterdir()] == ["graph.snapshot"]
    finally:
        await store.close()


# -- random writes between the snapshot and the start ------------------------------------------

_SYSTEMS = ["system:s0", "system:s1", "system:s2"]
_CAPS = ["capability:c0", "capability:c1", "capability:c2"]
_ENTITIES = ["entity:e0", "entity:e1"]
_TEAMS = ["team:t0", "team:t1"]
_IDS = [*_SYSTEMS, *_CAPS, *_ENTITIES, *_TEAMS]
_RELATIONS = [
    *((s, "PROVIDES", c) for s in _SYSTEMS for c in _CAPS),
    *((s, "MASTERS", e) for s in _SYSTEMS for e in _ENTITIES),
    *((s, "STORES", e) for s in _SYSTEMS[:1] for e in _ENTITIES),
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
        st.sampled_from(["PLANNED", "ACTIVE", "DEPRECATED"]),
        st.sampled_from([None, *_TEAMS]),
    ),
    st.tuples(st.just("relate"), st.sampled_from(_RELATIONS), st.sampled_from([None, 1, "x"])),
    st.tuples(st.just("unrelate"), st.sampled_from(_RELATIONS)),
    st.tuples(st.just("retire"), st.sampled_from(_IDS)),
)


async def _apply_write(reg: Registry, write: tuple[Any, ...]) -> None:
    try:
        if write[0] == "upsert":
            _, node_id, lifecycle, owner = write
            await reg.upsert_node(_n(node_id, lifecycle=lifecycle, owner=owner))
        elif write[0] == "relate":
            (src, rtype, dst), value = write[1], write[2]
            props = {"v": value} if value is not None else {}
            await reg.relate(_r(src, rtype, dst, **props))
        elif write[0] == "unrelate":
            await reg.unrelate(_r(*write[1]))
        else:
            await reg.retire(write[1])
    except CatalogError:
        pass  # refused (a missing end, a PART_OF cycle...): nothing was written


@hyp_settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    before=st.lists(_write, max_size=10),
    after=st.lists(_write, min_size=1, max_size=8),  # fewer changes than the snapshot has rows
)
def test_random_writes_after_the_snapshot_replay_to_the_rebuilt_state(
    before: list[tuple[Any, ...]], after: list[tuple[Any, ...]]
) -> None:
    async def run(url: str, snapshots: Path) -> None:
        svc = await _start(url, snapshots)
        try:
            await svc.registry.apply_batch([_n(i) for i in _IDS], [])
            for w in before:
                await _apply_write(svc.registry, w)
        finally:
            await svc.close()  # the snapshot, at the last change
        other = await Store.open(url)
        try:
            reg = Registry(other)
            for w in after:
                await _apply_write(reg, w)
        finally:
            await other.close()
        started = await _start(url, snapshots)
        try:
            assert started.snapshots is not None
            assert started.snapshots.source == "snapshot"
            await assert_equals_rebuild(url, started)
        finally:
            await started.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite:///{Path(tmp) / 'h.db'}", Path(tmp) / "snapshots"))

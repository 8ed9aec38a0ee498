"""Search projection snapshots: a replica that starts from one (plus the documents written
after it, by other processes too) answers every search as one that built its projection from
the index; a corrupt, foreign, ahead or inconsistent snapshot is ignored with a warning."""

from __future__ import annotations

import io
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from catalog.registry import Registry
from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import NodeSpec, RelationSpec
from metadata.search.snapshot import MAGIC, SearchSnapshots
from metadata.snapshot import decode_header, seal
from metadata.store import Store
from tests.conftest import TEST_HOSTS

NAMES = ["customer", "order", "invoice", "payment", "shipment", "refund", "loyalty", "address"]


def _n(node_id: str, name: str, **kw: Any) -> NodeSpec:
    return NodeSpec.model_validate({"id": node_id, "name": name, **kw})


def _landscape(prefix: str, count: int) -> list[NodeSpec]:
    """Teams, domains, systems, capabilities and entities with names, tags and descriptions."""
    nodes = [_n("team:a", "Team A"), _n("team:b", "Team B"), _n("domain:sales", "Sales")]
    for i in range(count):
        word = NAMES[i % len(NAMES)]
        nodes.append(
            _n(
                f"capability:{prefix}{i}",
                f"{word.title()} {prefix} management {i}",
                owner="team:a" if i % 3 else "team:b",
                tags=[word, f"t{i % 4}"],
                description=f"Handles the {word} of a customer in {prefix}",
            )
        )
        nodes.append(_n(f"entity:{prefix}{i}", f"{word.title()} record {i}", tags=["pii"]))
    return nodes


QUERIES: list[dict[str, Any]] = [
    {"query": "customer"},
    {"query": "order"},
    {"query": "manag*"},
    {"query": "customer order"},
    {"query": "record", "tags": ["pii"]},
    {"query": "payment", "first": 2, "after": None},
    {"query": '"customer in"'},
    {"query": "refund loyalty"},
    {"query": "extra"},
]


async def answers(services: Services) -> list[Any]:
    out = []
    for q in QUERIES:
        page = await services.search.search(**q)
        out.append(
            (
                [(h.node.id, h.node.version, round(h.score, 9), h.highlight) for h in page.hits],
                page.total,
                page.facets,
            )
        )
    return out


def _settings(url: str, snapshot_dir: Path | str) -> Settings:
    return Settings(
        database_url=url,
        projection_snapshot_dir=str(snapshot_dir),
        projection_snapshot_interval=0,
        allowed_hosts=TEST_HOSTS,
        _env_file=None,
    )


async def _start(url: str, snapshot_dir: Path | str) -> Services:
    return await Services.start(_settings(url, snapshot_dir))


async def assert_equals_rebuild(url: str, started: Services) -> None:
    reference = await _start(url, "off")
    try:
        assert reference.search_snapshots is None
        assert await answers(started) == await answers(reference)
    finally:
        await reference.close()


async def _seeded(url: str, snapshot_dir: Path) -> Path:
    svc = await _start(url, snapshot_dir)
    try:
        assert svc.search_snapshots is not None and svc.search_snapshots.source == "index"
        await svc.registry.apply_batch(_landscape("crm", 40), [])
        await svc.search.search(query="customer")  # the projection follows the write
    finally:
        await svc.close()
    path = svc.search_snapshots.files.path
    assert path.exists()
    return path


async def _write_elsewhere(url: str) -> None:
    """New documents (new nodes, renamed and retired ones) written by another store."""
    other = await Store.open(url)
    try:
        reg = Registry(other)
        await reg.apply_batch(
            [
                *_landscape("erp", 6),
                _n("capability:crm1", "Extra customer refunds"),
                _n("capability:crm2", "Order extra"),
            ],
            [
                RelationSpec.model_validate(
                    {"from": "capability:crm3", "type": "PART_OF", "to": "domain:sales"}
                )
            ],
        )
        await reg.retire("capability:crm5")
    finally:
        await other.close()


async def test_a_start_from_the_snapshot_answers_as_a_rebuild(db_url: str, tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    await _seeded(db_url, snapshots)
    await _write_elsewhere(db_url)
    svc = await _start(db_url, snapshots)
    try:
        assert svc.search_snapshots is not None
        assert svc.search_snapshots.source == "snapshot"
        await assert_equals_rebuild(db_url, svc)
        # and it goes on following this process's writes and others'
        await svc.registry.upsert_node(_n("entity:crm7", "Loyalty extra points"))
        await _write_elsewhere(db_url)
        await svc.sync()
        await assert_equals_rebuild(db_url, svc)
    finally:
        await svc.close()
    again = await _start(db_url, snapshots)  # written at close, with everything
    try:
        assert again.search_snapshots is not None and again.search_snapshots.source == "snapshot"
        assert again.search_snapshots.written >= svc.search_snapshots.written
        await assert_equals_rebuild(db_url, again)
    finally:
        await again.close()


def _reseal(path: Path, change: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    """Rewrite the snapshot with a changed header or arrays and a valid checksum."""
    header, body = decode_header(path.read_bytes(), MAGIC)
    with np.load(io.BytesIO(body), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    change(header, arrays)
    out = io.BytesIO()
    np.savez(out, **arrays)
    path.write_bytes(seal(orjson.dumps(header), out.getvalue(), MAGIC))


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _ahead(path: Path) -> None:
    _reseal(path, lambda h, a: h.update(last=h["last"] + 10_000))


def _other_revision(path: Path) -> None:
    _reseal(path, lambda h, a: h.update(revision="0001"))


def _position_out_of_range(path: Path) -> None:
    def change(h: dict[str, Any], a: dict[str, Any]) -> None:
        a["t_pos"] = a["t_pos"].copy()
        a["t_pos"][-1] = h["size"] + 5

    _reseal(path, change)


def _unknown_owner_code(path: Path) -> None:
    def change(h: dict[str, Any], a: dict[str, Any]) -> None:
        a["owner"] = a["owner"].copy()
        a["owner"][0] = 10_000

    _reseal(path, change)


def _short_names(path: Path) -> None:
    def change(h: dict[str, Any], a: dict[str, Any]) -> None:
        strings = orjson.loads(a["strings"].tobytes())
        strings["name_norm"].pop()
        a["strings"] = np.frombuffer(orjson.dumps(strings), dtype=np.uint8)

    _reseal(path, change)


def _without_text(path: Path) -> None:
    # As a process without the in-memory ranking writes it: no text index. Was used silently.
    _reseal(path, lambda h, a: h.update(text=None))


def _pickled_array(path: Path) -> None:
    def change(h: dict[str, Any], a: dict[str, Any]) -> None:
        a["kind"] = np.array([object()] * h["size"], dtype=object)

    header, body = decode_header(path.read_bytes(), MAGIC)
    with np.load(io.BytesIO(body), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    change(header, arrays)
    out = io.BytesIO()
    np.savez(out, **arrays)  # an object array is pickled into the file
    path.write_bytes(seal(orjson.dumps(header), out.getvalue(), MAGIC))


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_flip_byte, "checksum mismatch"),
        (_ahead, "ahead of the index"),
        (_other_revision, "written at migration"),
        (_position_out_of_range, "t_pos: values outside"),
        (_unknown_owner_code, "owner: values outside"),
        (_short_names, "do not match the documents"),
        (_pickled_array, "unreadable body"),
        (_without_text, "without the in-memory ranking's text index"),
    ],
)
async def test_a_spoiled_snapshot_is_ignored_with_a_warning(
    sqlite_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    spoil: Callable[[Path], None],
    reason: str,
) -> None:
    snapshots = tmp_path / "snapshots"
    path = await _seeded(sqlite_url, snapshots)
    spoil(path)
    with caplog.at_level(logging.WARNING, logger="capahub.snapshot"):
        svc = await _start(sqlite_url, snapshots)
    try:
        assert svc.search_snapshots is not None and svc.search_snapshots.source == "index"
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(reason in m and "search snapshot" in m for m in warned), warned
        await assert_equals_rebuild(sqlite_url, svc)
    finally:
        await svc.close()


async def test_a_snapshot_of_another_database_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshots = tmp_path / "snapshots"
    url_a, url_b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    path_a = await _seeded(url_a, snapshots)
    svc = await _start(url_b, snapshots)
    try:
        await svc.registry.apply_batch(_landscape("other", 3), [])
    finally:
        await svc.close()
    path_b = SearchSnapshots(snapshots, url_b).path
    assert path_b != path_a and path_b.exists()
    shutil.copyfile(path_a, path_b)  # a's file where b's belongs
    with caplog.at_level(logging.WARNING, logger="capahub.snapshot"):
        svc = await _start(url_b, snapshots)
    try:
        assert svc.search_snapshots is not None and svc.search_snapshots.source == "index"
        assert any("another database" in r.getMessage() for r in caplog.records)
        await assert_equals_rebuild(url_b, svc)
    finally:
        await svc.close()


async def test_search_snapshots_are_off_with_the_graphs(sqlite_url: str) -> None:
    svc = await Services.start(
        Settings(database_url=sqlite_url, projection_snapshot_dir="off", _env_file=None)
    )
    try:
        assert svc.search_snapshots is None and svc.snapshots is None
    finally:
        await svc.close()

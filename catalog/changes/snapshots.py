"""Catalog snapshots: the whole state after one change id, compressed, beside the change log.

A past state far from the present is rebuilt from the nearest snapshot at or before it plus the
changes between (``catalog.changes.asof``), never from the first change. Snapshots are written
on demand (``write_snapshot``), by the time-travel service after a long replay, and by the
serving process when the log has grown by ``snapshot_every`` changes (and by at least as many
rows as the catalog holds) since the last one, so snapshots take at most about as much room as
the log itself.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from metadata.store import Reader, Store
from metadata.tables import history, history_snapshots

if TYPE_CHECKING:
    from catalog.changes.asof import CatalogState

#: zlib level: 6 packs a catalog's JSON about 6:1 at some 50 MB/s.
LEVEL = 6


def encode_state(state: CatalogState) -> bytes:
    """A state as compressed JSON (node images and relation contents)."""
    doc = {"nodes": list(state.nodes.values()), "relations": list(state.relations.values())}
    return zlib.compress(orjson.dumps(doc), LEVEL)


def decode_state(change_id: int, data: bytes) -> CatalogState:
    """The state ``encode_state`` wrote."""
    from catalog.changes.asof import CatalogState

    doc = orjson.loads(zlib.decompress(data))
    state = CatalogState(change_id)
    state.nodes = {n["id"]: n for n in doc["nodes"]}
    state.relations = {f"{c['from']}|{c['type']}|{c['to']}": c for c in doc["relations"]}
    return state


async def latest_snapshot(r: Reader, change_id: int) -> tuple[int, int, CatalogState] | None:
    """The newest snapshot at or before ``change_id``: (its change id, rows, state), or None."""
    s = history_snapshots.c
    row = (
        await r.conn.execute(
            select(s.change_id, s.nodes, s.relations, s.data)
            .where(s.change_id <= change_id)
            .order_by(s.change_id.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return int(row[0]), int(row[1]) + int(row[2]), decode_state(int(row[0]), bytes(row[3]))


async def last_snapshot_id(store: Store) -> int:
    """The change id of the newest snapshot (0: none)."""
    async with store.read() as r:
        value = (await r.conn.execute(select(func.max(history_snapshots.c.change_id)))).scalar()
    return int(value or 0)


async def write_snapshot(store: Store, state: CatalogState) -> bool:
    """Store ``state`` as the snapshot of its change id; False when one is there already
    (another process wrote it first)."""
    data = encode_state(state)
    async with store.read() as r:
        at = (
            await r.conn.execute(select(history.c.at).where(history.c.id == state.change_id))
        ).scalar()
    if at is None:
        return False
    row: dict[str, Any] = {
        "change_id": state.change_id,
        "at": at,
        "nodes": len(state.nodes),
        "relations": len(state.relations),
        "data": data,
    }
    try:
        async with store.engine.begin() as conn:
            await conn.execute(insert(history_snapshots), [row])
    except IntegrityError:
        return False
    return True


async def snapshot_now(store: Store) -> int:
    """Write a snapshot of the catalog as it is; returns its change id (0: empty catalog)."""
    from catalog.changes.asof import TimeTravel

    async with store.read() as r:
        last = await r.last_change_id()
    if not last:
        return 0
    state = await TimeTravel(store).state_at(last)
    await write_snapshot(store, state)
    return last


__all__ = [
    "decode_state",
    "encode_state",
    "last_snapshot_id",
    "latest_snapshot",
    "snapshot_now",
    "write_snapshot",
]

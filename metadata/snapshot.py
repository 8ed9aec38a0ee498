"""Snapshots of the graph projection on disk, so a replica starts without reading every row.

A snapshot is the projection as it stood after one change id of the change log, in one file:

    magic (8 bytes) | header length (4 bytes, big-endian) | header (JSON) | body | SHA-256

The header says what the snapshot is of (``SnapshotIdentity``: a hash of the database's URL,
its migration revision and this format's version), the change id, the history row at that id
(its time, target and operation: the *anchor*), the enumerations' values in the order the body
codes them, and the body's size and compression. The body is zlib-compressed JSON of flat arrays:
node ids, kind, lifecycle and owner codes per node, and (from, type, to, properties) per
relation, endpoints as positions in the node array. The trailing SHA-256 covers everything
before it. No pickle: a file in a directory someone else can write is only ever data.

A snapshot is used only when all of it holds; otherwise it is ignored with a warning and the
projection is built from the tables (``SnapshotRejectedError`` says why):

- the checksum matches and the header and body decode;
- format version, URL hash and migration revision are this database's;
- its change id is not ahead of the database's newest, and the history row at that id is still
  there with the same time, target and operation (so the database is the one it was written
  from, not one recreated at the same path, and the changes after it were not compacted away).

Then the changes after its change id are replayed as every sync replays them
(``CatalogGraph.sync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import networkx as nx
import orjson
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from metadata.graph import PLAIN_EDGES, CatalogGraph, GraphView, edge_data, node_attrs
from metadata.model import Kind, Lifecycle, RelationType
from metadata.store import Reader, Store, normalize_url
from metadata.tables import history

log = logging.getLogger("capahub.snapshot")

#: Bump when the body's layout or meaning changes: older files are then rejected.
FORMAT_VERSION = 1
MAGIC = b"CPHGRAF\x01"
_LENGTH = struct.Struct(">I")
_DIGEST = 32
#: zlib level 1: a third of the size of plain JSON, and inflating costs ~10 % of the load.
_LEVEL = 1


class SnapshotRejectedError(Exception):
    """A snapshot file cannot be used (corrupt, of another database, stale or ahead); never
    shown to a client: the projection is built from the tables instead."""


@dataclass(frozen=True, slots=True)
class SnapshotIdentity:
    """What a snapshot must have been written from: a hash of the database's URL (password
    left out) and its migration revision; with ``FORMAT_VERSION``."""

    database: str
    revision: str

    @classmethod
    async def of(cls, url: str, reader: Reader) -> SnapshotIdentity:
        """The identity of the database at ``url``, read through ``reader``."""
        revision = (
            await reader.conn.execute(text("SELECT version_num FROM alembic_version"))
        ).all()
        return cls(database_hash(url), ",".join(sorted(str(r[0]) for r in revision)))


def database_hash(url: str) -> str:
    """A stable hash of a database URL: the driver normalized, the password left out, and a
    SQLite file's path made absolute (so the working directory does not matter)."""
    u = make_url(normalize_url(url))
    if u.drivername.startswith("sqlite") and u.database and u.database != ":memory:":
        u = u.set(database=str(Path(u.database).expanduser().resolve()))
    return hashlib.sha256(u.render_as_string(hide_password=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Anchor:
    """The history row a snapshot was written at: present and equal in the database it was
    written from, as long as the log has not been compacted past it."""

    change_id: int
    at: str
    target_id: str
    op: str

    @classmethod
    async def read(cls, reader: Reader, change_id: int) -> Anchor | None:
        """The row at ``change_id``, or None when there is none."""
        row = (
            await reader.conn.execute(
                select(history.c.at, history.c.target_id, history.c.op).where(
                    history.c.id == change_id
                )
            )
        ).first()
        if row is None:
            return None
        at: datetime = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
        return cls(change_id, at.astimezone(UTC).isoformat(), row.target_id, row.op)


@dataclass(frozen=True, slots=True)
class GraphSnapshot:
    """A decoded snapshot: the graph and the change id it stands at."""

    graph: nx.DiGraph
    change_id: int
    relations: int


# -- writing ----------------------------------------------------------------------------------


def encode(view: GraphView, identity: SnapshotIdentity, anchor: Anchor) -> bytes:
    """The file's bytes for a frozen ``view`` standing at ``anchor.change_id``.

    ``view`` must not change while this runs (a ``CatalogGraph.snapshot()``); any thread may
    call it.
    """
    g = view.g
    kinds = {k: i for i, k in enumerate(Kind)}
    lifecycles = {lc: i for i, lc in enumerate(Lifecycle)}
    types = {t: i for i, t in enumerate(RelationType)}
    ids = list(g._node)
    position = {n: i for i, n in enumerate(ids)}
    extra: list[str] = []  # owners that are not nodes here (not expected: a foreign key)
    kind_codes, lifecycle_codes, owner_codes = [], [], []
    for attrs in g._node.values():
        kind_codes.append(kinds[attrs["kind"]])
        lifecycle_codes.append(lifecycles[attrs["lifecycle"]])
        owner = attrs["owner"]
        if owner is None:
            owner_codes.append(-1)
        elif (p := position.get(owner)) is not None:
            owner_codes.append(p)
        else:
            extra.append(owner)
            owner_codes.append(-1 - len(extra))
    froms, tos, type_codes, props = [], [], [], []
    for f, adjacent in g._succ.items():
        pf = position[f]
        for to, data in adjacent.items():
            pt = position[to]
            for t, p in data["rels"].items():
                froms.append(pf)
                tos.append(pt)
                type_codes.append(types[t])
                props.append(p)
    body = zlib.compress(
        orjson.dumps(
            {
                "ids": ids,
                "kind": kind_codes,
                "lifecycle": lifecycle_codes,
                "owner": owner_codes,
                "owners": extra,
                "from": froms,
                "type": type_codes,
                "to": tos,
                "properties": props,
            },
            option=orjson.OPT_NON_STR_KEYS,
        ),
        _LEVEL,
    )
    header = orjson.dumps(
        {
            "format": FORMAT_VERSION,
            "database": identity.database,
            "revision": identity.revision,
            "anchor": {
                "change_id": anchor.change_id,
                "at": anchor.at,
                "target_id": anchor.target_id,
                "op": anchor.op,
            },
            "kinds": [k.value for k in Kind],
            "lifecycles": [lc.value for lc in Lifecycle],
            "types": [t.value for t in RelationType],
            "nodes": len(ids),
            "relations": len(froms),
            "body": len(body),
            "compression": "zlib",
            "written": datetime.now(UTC).isoformat(),
        }
    )
    return seal(header, body)


def seal(header: bytes, body: bytes, magic: bytes = MAGIC) -> bytes:
    """A snapshot file's bytes from its encoded header and body: framed, with the checksum
    (``magic``: what kind of snapshot; the search projection's has its own)."""
    head = magic + _LENGTH.pack(len(header)) + header
    return head + body + hashlib.sha256(head + body).digest()


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file in the same directory,
    flushed to disk, then renamed over ``path`` (readers see the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- reading ----------------------------------------------------------------------------------


def decode_header(data: bytes, magic: bytes = MAGIC) -> tuple[dict[str, Any], memoryview]:
    """Check the checksum and split the file into its header and (compressed) body."""
    if len(data) < len(magic) + _LENGTH.size + _DIGEST or not data.startswith(magic):
        raise SnapshotRejectedError("not a snapshot of this kind and format (wrong magic or size)")
    content = memoryview(data)[:-_DIGEST]
    if hashlib.sha256(content).digest() != data[-_DIGEST:]:
        raise SnapshotRejectedError("checksum mismatch (a corrupt or truncated file)")
    (length,) = _LENGTH.unpack_from(data, len(magic))
    start = len(magic) + _LENGTH.size
    try:
        header = orjson.loads(content[start : start + length])
    except orjson.JSONDecodeError as err:
        raise SnapshotRejectedError(f"unreadable header: {err}") from None
    if not isinstance(header, dict):
        raise SnapshotRejectedError("unreadable header: not an object")
    return header, content[start + length :]


def check_header(
    header: dict[str, Any], identity: SnapshotIdentity, last_change: int
) -> tuple[int, Anchor]:
    """The snapshot's change id and anchor, once the header is this database's and not ahead."""
    if header.get("format") != FORMAT_VERSION:
        raise SnapshotRejectedError(
            f"format {header.get('format')!r}, this version reads {FORMAT_VERSION}"
        )
    if header.get("database") != identity.database:
        raise SnapshotRejectedError("written from another database (its URL differs)")
    if header.get("revision") != identity.revision:
        raise SnapshotRejectedError(
            f"written at migration {header.get('revision')!r}, the database is at "
            f"{identity.revision!r}"
        )
    try:
        a = header["anchor"]
        anchor = Anchor(int(a["change_id"]), str(a["at"]), str(a["target_id"]), str(a["op"]))
    except (KeyError, TypeError, ValueError):
        raise SnapshotRejectedError("unreadable header: no anchor") from None
    if anchor.change_id > last_change:
        raise SnapshotRejectedError(
            f"stands at change {anchor.change_id}, ahead of the database's newest {last_change}"
        )
    return anchor.change_id, anchor


def decode_graph(header: dict[str, Any], body: memoryview) -> GraphSnapshot:
    """Build the graph from a checked snapshot's body.

    The cyclic collector is paused meanwhile (synchronous work, no ``await``): the millions
    of dicts made here set off full collections that walked them over and over (3.6 s instead
    of 1.0 s for 100,000 nodes and 500,000 relations).
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return _decode_graph(header, body)
    finally:
        if paused:
            gc.enable()


def _decode_graph(header: dict[str, Any], body: memoryview) -> GraphSnapshot:
    try:
        kinds = [Kind(v) for v in header["kinds"]]
        lifecycles = [Lifecycle(v) for v in header["lifecycles"]]
        types = [RelationType(v) for v in header["types"]]
        arrays = orjson.loads(zlib.decompress(body))
        ids: list[str] = arrays["ids"]
        owners: list[str] = arrays["owners"]
        node: dict[str, dict[str, Any]] = {}
        for n, k, lc, o in zip(
            ids, arrays["kind"], arrays["lifecycle"], arrays["owner"], strict=True
        ):
            owner = None if o == -1 else ids[o] if o >= 0 else owners[-1 - o]
            node[n] = node_attrs(kinds[k], lifecycles[lc], owner)
        if len(node) != len(ids) or len(ids) != header["nodes"]:
            raise SnapshotRejectedError("node count or ids disagree with the header")
        succ: dict[str, dict[str, Any]] = {n: {} for n in ids}
        pred: dict[str, dict[str, Any]] = {n: {} for n in ids}
        # Whole columns first (list comprehensions), then one pass: a fifth faster than
        # looking each end up inside the loop.
        froms = [ids[f] for f in arrays["from"]]
        tos = [ids[t] for t in arrays["to"]]
        rtypes = [types[t] for t in arrays["type"]]
        count = len(froms)
        # A pair's relations share one data dict, on both sides, as networkx and
        # CatalogGraph share it; plain pairs of one type share one (metadata.graph.edge_data).
        plain = PLAIN_EDGES
        for a, b, t, p in zip(froms, tos, rtypes, arrays["properties"], strict=True):
            adjacent = succ[a]
            data = adjacent.get(b)
            if data is None and p is None:  # most pairs
                adjacent[b] = pred[b][a] = plain[t]
            else:
                adjacent[b] = pred[b][a] = edge_data({**data["rels"], t: p} if data else {t: p})
        if count != header["relations"]:
            raise SnapshotRejectedError("relation count disagrees with the header")
    except SnapshotRejectedError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, zlib.error, orjson.JSONDecodeError) as err:
        raise SnapshotRejectedError(f"unreadable body ({type(err).__name__}: {err})") from None
    g = nx.DiGraph()
    g._node = node
    g._adj = succ  # networkx keeps _succ the same dict as _adj
    g._pred = pred
    return GraphSnapshot(g, int(header["anchor"]["change_id"]), count)


# -- the directory ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedSnapshot:
    """A snapshot found valid for this database, and what reading it cost."""

    snapshot: GraphSnapshot
    seconds: float
    size: int


class ProjectionSnapshots:
    """The snapshot file of one database's graph projection in a directory: found, checked,
    read and written (atomically)."""

    def __init__(self, directory: Path, url: str) -> None:
        self.directory = directory
        self.url = url
        self.path = directory / f"graph-{database_hash(url)[:16]}.snapshot"

    async def load(self, reader: Reader) -> LoadedSnapshot | None:
        """The valid snapshot of this database, or None (no file; or one rejected, with a
        warning that says why)."""
        t = time.perf_counter()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            log.warning(
                "graph snapshot %s: cannot be read (%s); building from the tables", self.path, err
            )
            return None
        try:
            header, body = decode_header(data)
            identity = await SnapshotIdentity.of(self.url, reader)
            last = int((await reader.conn.execute(select(func.max(history.c.id)))).scalar() or 0)
            change_id, anchor = check_header(header, identity, last)
            found = await Anchor.read(reader, change_id)
            if found != anchor:
                raise SnapshotRejectedError(
                    f"the change log's row {change_id} is not the one it was written at "
                    "(another database at the same address, or the log was compacted past it)"
                )
            snapshot = decode_graph(header, body)
        except SnapshotRejectedError as err:
            log.warning(
                "graph snapshot %s ignored: %s; building the projection from the tables",
                self.path,
                err,
            )
            return None
        return LoadedSnapshot(snapshot, time.perf_counter() - t, len(data))

    async def anchor(
        self, reader: Reader, change_id: int
    ) -> tuple[SnapshotIdentity, Anchor] | None:
        """What a snapshot at ``change_id`` is written with (None: nothing to anchor it to,
        e.g. an empty change log)."""
        found = await Anchor.read(reader, change_id) if change_id > 0 else None
        if found is None:
            return None
        return await SnapshotIdentity.of(self.url, reader), found

    def write(self, view: GraphView, identity: SnapshotIdentity, anchor: Anchor) -> int:
        """Encode ``view`` (frozen, at ``anchor.change_id``) and replace the file with it;
        returns the bytes written. Blocking: run it on a worker thread."""
        data = encode(view, identity, anchor)
        write_atomically(self.path, data)
        return len(data)


class GraphSnapshotter:
    """When the graph projection is read from its snapshot and when a new one is written.

    At start (``start``): the snapshot if it is valid and the change log has not grown past it
    by more changes than the projection has rows (replaying those would cost more than reading
    the tables), then the changes after it; else the tables. Later (``run``), a new snapshot at
    most every ``interval`` seconds, and only when the projection has moved past the last one;
    at once when the projection was built from the tables (or the replay was long); and once
    more on ``close``. Writing encodes a frozen version of the projection on a worker thread.
    """

    def __init__(
        self, files: ProjectionSnapshots, graph: CatalogGraph, store: Store, *, interval: float
    ) -> None:
        self.files = files
        self.graph = graph
        self.store = store
        self.interval = interval
        #: The change id of the newest snapshot known on disk (0: none).
        self.written = 0
        #: How the projection was made at start: "snapshot" or "tables".
        self.source = ""
        #: Changes replayed on top of the snapshot at start.
        self.replayed = 0
        self._due = False
        self._task: asyncio.Task[None] | None = None
        self._saving: asyncio.Task[int | None] | None = None

    async def start(self) -> None:
        """Make the projection: from the snapshot plus the changes after it, or from the tables."""
        graph, store = self.graph, self.store
        async with store.read() as r:
            loaded = await self.files.load(r)
            last = await r.last_change_id() if loaded is not None else 0
        if loaded is not None:
            snap = loaded.snapshot
            # Counted before the replay, which changes snap.graph (it becomes the live one).
            node_count = snap.graph.number_of_nodes()
            rows = node_count + snap.relations
            behind = last - snap.change_id
            if behind > rows:
                log.info(
                    "graph snapshot %s: %d changes behind, more than its %d rows; building "
                    "the projection from the tables",
                    self.files.path,
                    behind,
                    rows,
                )
                loaded = None
            else:
                graph.replace(snap.graph, snap.change_id)
                self.written = snap.change_id
                self.replayed = await graph.sync(store)
                self.source = "snapshot"
                self._due = self.replayed > rows // 10
                log.info(
                    "graph projection read from %s (change %d, %d nodes, %d relations, %.1f MB) "
                    "in %.2f s; %d later changes replayed",
                    self.files.path,
                    snap.change_id,
                    node_count,
                    snap.relations,
                    loaded.size / 1e6,
                    loaded.seconds,
                    self.replayed,
                )
        if loaded is None:
            await graph.load(store)
            self.source = "tables"
            self._due = True

    def run(self) -> None:
        """Start writing snapshots in the background (call on the event loop, after ``start``)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        if self._due:
            await asyncio.shield(self._save())
        while self.interval > 0:
            await asyncio.sleep(self.interval)
            await asyncio.shield(self._save())

    def _save(self) -> asyncio.Task[int | None]:
        # One write at a time; a caller that arrives meanwhile waits for the write in progress.
        if self._saving is None or self._saving.done():
            self._saving = asyncio.get_running_loop().create_task(self.save())
        return self._saving

    async def save(self) -> int | None:
        """Write a snapshot of the projection as it stands, unless the newest on disk already
        holds it; returns the change id written (None: nothing written). Never raises: a
        snapshot that cannot be written is a warning (the next start reads the tables)."""
        graph = self.graph
        change_id = graph.last_change
        if change_id <= self.written:
            return None
        view = graph.snapshot()  # with its change id, on the loop's thread: the same moment
        try:
            async with self.store.read() as r:
                anchored = await self.files.anchor(r, change_id)
            if anchored is None:
                return None
            t = time.perf_counter()
            size = await asyncio.to_thread(self.files.write, view, *anchored)
        except Exception as err:  # a full disk, a lost database: the next start reads the tables
            log.warning("graph snapshot %s: cannot be written (%s)", self.files.path, err)
            return None
        self.written = change_id
        log.info(
            "graph snapshot %s written at change %d (%.1f MB, %.2f s)",
            self.files.path,
            change_id,
            size / 1e6,
            time.perf_counter() - t,
        )
        return change_id

    async def close(self) -> None:
        """Stop the background writes (a write in progress is finished) and write a last
        snapshot when the projection has moved past the newest one."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        saving = self._saving
        if saving is not None and not saving.done():
            with contextlib.suppress(Exception):
                await saving
        if self.source:
            await self.save()


__all__ = [
    "FORMAT_VERSION",
    "Anchor",
    "GraphSnapshotter",
    "GraphSnapshot",
    "LoadedSnapshot",
    "ProjectionSnapshots",
    "SnapshotIdentity",
    "SnapshotRejectedError",
    "database_hash",
    "decode_graph",
    "decode_header",
    "encode",
    "seal",
    "write_atomically",
]

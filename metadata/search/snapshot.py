"""Snapshots of the search projection on disk, so a replica starts without reading the index.

The search projection (``metadata.search.projection``: facet codes, ranking keys and node ids
per document position; on SQLite also ``TextIndex``, the projection of the FTS5 index that the
in-memory bm25 ranks with) is otherwise built at every start from ``search_docs`` and an
``fts5vocab`` scan of every word's occurrences: about 3 s for 100,000 nodes, and it grows with
the catalog. A snapshot is that projection at one point of the index (the highest document id
it holds, ``last``) in one file:

    magic (8 bytes) | header length (4 bytes, big-endian) | header (JSON) | body | SHA-256

framed and checked as the graph's snapshot is (``metadata.snapshot``). The header says what it
is of (the database's URL hash and migration revision, a history row it was written beside:
the *anchor*), ``last``, the FTS5 totals the text index agrees with, and each facet's values in
code order; the body is an uncompressed NumPy ``.npz`` of flat arrays (loaded with
``allow_pickle=False``: a file in a directory someone else can write is only ever data): the
projection's arrays, the postings of every word concatenated with their offsets, and the
strings (node ids, normalized names and keys, the words) as UTF-8 JSON.

A snapshot is used only when all of it holds; otherwise it is ignored with a warning and the
projection is built from the index as before (``SnapshotRejectedError`` says why): checksum,
format, database and revision, the anchor row still there and equal, ``last`` and the text
index's version not ahead of the index's ``next_doc_id``, and every array of the sizes and
bounds the others imply. Loading it is then the same as having synced up to ``last``: search
documents are never changed in place (a change writes a new one with a higher id, and ids are
never reused), so the next sync reads only the documents above ``last``, and a document deleted
since is found by the FTS5 totals check every search makes (``DocProjection.sync_text``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import func, select, text

from metadata.search.bm25 import COLUMNS, FtsStats, Postings, TextIndex
from metadata.search.projection import FACETS, DocProjection, ProjectionState, Values
from metadata.snapshot import (
    Anchor,
    SnapshotIdentity,
    SnapshotRejectedError,
    database_hash,
    decode_header,
    seal,
    write_atomically,
)
from metadata.store import Reader, Store
from metadata.tables import history

log = logging.getLogger("capahub.snapshot")

#: Bump when the body's layout or meaning changes: older files are then rejected.
FORMAT_VERSION = 1
MAGIC = b"CPHSRCH\x01"

#: The projection's per-position arrays and their dtypes, as ``ProjectionState`` holds them.
_STATE_ARRAYS = {
    "doc_ids": np.int64,
    "kind": np.int32,
    "lifecycle": np.int32,
    "owner": np.int32,
    "name_len": np.int32,
    "name_head": np.uint64,
    "key_len": np.int32,
    "leaf_len": np.int32,
}
#: (position, code) pairs: facets with several values per document.
_PAIR_ARRAYS = {"tag": ("tag_doc", "tag_val"), "domain": ("domain_doc", "domain_val")}


@dataclass(frozen=True, slots=True)
class SearchSnapshot:
    """A decoded snapshot: the projection as it stood with every document up to ``last``."""

    state: ProjectionState
    text: TextIndex | None
    last: int
    #: Documents in the index when the projection last counted them.
    live: int


# -- writing ----------------------------------------------------------------------------------


def encode(snapshot: SearchSnapshot, identity: SnapshotIdentity, anchor: Anchor) -> bytes:
    """The snapshot file's bytes (blocking: run it on a worker thread)."""
    state, txt = snapshot.state, snapshot.text
    arrays: dict[str, Any] = {name: getattr(state, name) for name in _STATE_ARRAYS}
    for doc, val in _PAIR_ARRAYS.values():
        arrays[doc], arrays[val] = getattr(state, doc), getattr(state, val)
    strings: dict[str, Any] = {
        # The lists may be longer than the state (metadata.search.projection, "Appending").
        "node_id": state.node_id[: state.size],
        "name_norm": state.name_norm[: state.size],
        "key_norm": state.key_norm[: state.size],
    }
    header: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "database": identity.database,
        "revision": identity.revision,
        "anchor": {
            "change_id": anchor.change_id,
            "at": anchor.at,
            "target_id": anchor.target_id,
            "op": anchor.op,
        },
        "last": snapshot.last,
        "live": snapshot.live,
        "size": state.size,
        "facets": {f: state.values[f].names for f in FACETS},
        "text": None,
        "written": datetime.now(UTC).isoformat(),
    }
    if txt is not None:
        words = list(txt.postings)
        postings = [txt.postings[w] for w in words]
        for part, dtype in (("pos", np.int32), ("freq", np.float32)):
            for prefix in ("", "name_"):
                pieces = [getattr(p, prefix + part) for p in postings]
                arrays[f"t_{prefix}{part}"] = (
                    np.concatenate(pieces).astype(dtype, copy=False)
                    if pieces
                    else np.zeros(0, dtype)
                )
        arrays["t_offsets"] = np.cumsum([0, *(len(p.pos) for p in postings)], dtype=np.int64)
        arrays["t_name_offsets"] = np.cumsum(
            [0, *(len(p.name_pos) for p in postings)], dtype=np.int64
        )
        arrays["t_columns"] = txt.columns
        arrays["t_live"] = txt.live
        strings["words"] = words
        strings["vocab"] = txt.vocab
        header["text"] = {
            "version": txt.version,
            "rows": txt.stats.rows,
            "columns": list(txt.stats.columns),
        }
    arrays["strings"] = np.frombuffer(orjson.dumps(strings), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return seal(orjson.dumps(header), out.getvalue(), MAGIC)


# -- reading ----------------------------------------------------------------------------------


def check(header: dict[str, Any], identity: SnapshotIdentity, next_doc_id: int) -> Anchor:
    """The snapshot's anchor, once the header is this database's and not ahead of its index."""
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
        last = int(header["last"])
        version = int(header["text"]["version"]) if header.get("text") else 0
    except (KeyError, TypeError, ValueError):
        raise SnapshotRejectedError("unreadable header") from None
    if max(last, version - 1) >= next_doc_id:
        raise SnapshotRejectedError(
            f"holds documents up to {max(last, version - 1)}, ahead of the index's newest "
            f"({next_doc_id - 1})"
        )
    return anchor


def decode(header: dict[str, Any], body: memoryview) -> SearchSnapshot:
    """Build the projection from a checked snapshot's body; every array is checked against
    the sizes and bounds the others imply (``SnapshotRejectedError`` when one is not)."""
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        strings = orjson.loads(arrays.pop("strings").tobytes())
        return _decode(header, arrays, strings)
    except SnapshotRejectedError:
        raise
    except (KeyError, TypeError, ValueError, OSError, orjson.JSONDecodeError) as err:
        raise SnapshotRejectedError(f"unreadable body: {err}") from None


def _decode(
    header: dict[str, Any], arrays: dict[str, Any], strings: dict[str, Any]
) -> SearchSnapshot:
    size = int(header["size"])

    def array(name: str, dtype: Any, length: int | None = None) -> Any:
        a = arrays[name]
        if a.dtype != np.dtype(dtype) or a.ndim != 1 or (length is not None and len(a) != length):
            raise SnapshotRejectedError(f"array {name}: {a.dtype}{a.shape}, not {dtype}[{length}]")
        return a

    values: dict[str, Values] = {}
    for f in FACETS:
        names = [str(v) for v in header["facets"][f]]
        values[f] = Values(names, {v: i for i, v in enumerate(names)})
    fields: dict[str, Any] = {n: array(n, t, size) for n, t in _STATE_ARRAYS.items()}
    for facet in ("kind", "lifecycle", "owner"):
        _bounded(fields[facet], -1 if facet == "owner" else 0, len(values[facet].names), facet)
    for facet, (doc, val) in _PAIR_ARRAYS.items():
        fields[doc] = array(doc, np.int32)
        fields[val] = array(val, np.int32, len(fields[doc]))
        _bounded(fields[doc], 0, size, doc)
        _bounded(fields[val], 0, len(values[facet].names), val)
    if len(fields["doc_ids"]) > 1 and not bool(np.all(np.diff(fields["doc_ids"]) > 0)):
        raise SnapshotRejectedError("doc_ids do not rise")
    lists = {k: [str(v) for v in strings[k]] for k in ("node_id", "name_norm", "key_norm")}
    if any(len(v) != size for v in lists.values()):
        raise SnapshotRejectedError("node ids, names or keys do not match the documents")
    state = ProjectionState(
        **fields,
        node_id=lists["node_id"],
        name_norm=lists["name_norm"],
        key_norm=lists["key_norm"],
        values=values,
    )
    last = int(header["last"])
    if size and int(fields["doc_ids"][-1]) > last:
        raise SnapshotRejectedError("a document above the snapshot's last id")
    txt = None
    if header.get("text"):
        txt = _decode_text(header["text"], arrays, strings, size, array)
    return SearchSnapshot(state, txt, last, int(header["live"]))


def _decode_text(
    head: dict[str, Any], arrays: dict[str, Any], strings: dict[str, Any], size: int, array: Any
) -> TextIndex:
    words = [str(w) for w in strings["words"]]
    vocab = [str(w) for w in strings["vocab"]]
    if sorted(words) != vocab:
        raise SnapshotRejectedError("the words and the vocabulary differ")
    offsets = array("t_offsets", np.int64, len(words) + 1)
    name_offsets = array("t_name_offsets", np.int64, len(words) + 1)
    pos = array("t_pos", np.int32, int(offsets[-1]) if len(offsets) else 0)
    freq = array("t_freq", np.float32, len(pos))
    name_pos = array("t_name_pos", np.int32, int(name_offsets[-1]) if len(name_offsets) else 0)
    name_freq = array("t_name_freq", np.float32, len(name_pos))
    for o in (offsets, name_offsets):
        if o[0] != 0 or bool(np.any(np.diff(o) < 0)):
            raise SnapshotRejectedError("postings offsets do not rise from 0")
    _bounded(pos, 0, size, "t_pos")
    _bounded(name_pos, 0, size, "t_name_pos")
    columns = arrays["t_columns"]
    if columns.dtype != np.int32 or columns.shape != (size, len(COLUMNS)):
        raise SnapshotRejectedError(f"array t_columns: {columns.dtype}{columns.shape}")
    live = arrays["t_live"]
    if live.dtype != np.bool_ or live.shape != (size,):
        raise SnapshotRejectedError(f"array t_live: {live.dtype}{live.shape}")
    postings = {
        w: Postings(
            pos[offsets[i] : offsets[i + 1]],
            freq[offsets[i] : offsets[i + 1]],
            name_pos[name_offsets[i] : name_offsets[i + 1]],
            name_freq[name_offsets[i] : name_offsets[i + 1]],
        )
        for i, w in enumerate(words)
    }
    stats = FtsStats(int(head["rows"]), tuple(int(c) for c in head["columns"]))
    if len(stats.columns) != len(COLUMNS):
        raise SnapshotRejectedError("FTS5 totals of another number of columns")
    return TextIndex(postings, vocab, columns, live, int(head["version"]), stats)


def _bounded(a: Any, low: int, high: int, name: str) -> None:
    if len(a) and (int(a.min()) < low or int(a.max()) >= high):
        raise SnapshotRejectedError(f"array {name}: values outside [{low}, {high})")


# -- the directory ------------------------------------------------------------------------------


class SearchSnapshots:
    """The search projection's snapshot file of one database in a directory: found, checked,
    read and written (atomically), beside the graph's (``metadata.snapshot``)."""

    def __init__(self, directory: Path, url: str) -> None:
        self.directory = directory
        self.url = url
        self.path = directory / f"search-{database_hash(url)[:16]}.snapshot"

    async def load(self, reader: Reader) -> SearchSnapshot | None:
        """The valid snapshot of this database, or None (no file; or one rejected, with a
        warning that says why)."""
        t = time.perf_counter()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            log.warning("search snapshot %s: cannot be read (%s); building it", self.path, err)
            return None
        try:
            header, body = decode_header(data, MAGIC)
            identity = await SnapshotIdentity.of(self.url, reader)
            next_doc_id = int(
                (
                    await reader.conn.execute(
                        text("SELECT next_doc_id FROM search_state WHERE id = 1")
                    )
                ).scalar()
                or 1
            )
            anchor = check(header, identity, next_doc_id)
            if await Anchor.read(reader, anchor.change_id) != anchor:
                raise SnapshotRejectedError(
                    f"the change log's row {anchor.change_id} is not the one it was written "
                    "beside (another database at the same address, or a compacted log)"
                )
            snapshot = decode(header, body)
        except SnapshotRejectedError as err:
            log.warning(
                "search snapshot %s ignored: %s; building the projection from the index",
                self.path,
                err,
            )
            return None
        log.info(
            "search projection read from %s (%d documents up to id %d, %.1f MB) in %.2f s",
            self.path,
            snapshot.state.size,
            snapshot.last,
            len(data) / 1e6,
            time.perf_counter() - t,
        )
        return snapshot

    async def anchor(self, reader: Reader) -> tuple[SnapshotIdentity, Anchor] | None:
        """What a snapshot written now is written beside: the newest history row (None: an
        empty change log, nothing to anchor it to)."""
        newest = (await reader.conn.execute(select(func.max(history.c.id)))).scalar()
        found = await Anchor.read(reader, int(newest)) if newest else None
        if found is None:
            return None
        return await SnapshotIdentity.of(self.url, reader), found

    def write(self, snapshot: SearchSnapshot, identity: SnapshotIdentity, anchor: Anchor) -> int:
        """Replace the file with ``snapshot``; the bytes written. Blocking: run it on a worker
        thread."""
        data = encode(snapshot, identity, anchor)
        write_atomically(self.path, data)
        return len(data)


class SearchSnapshotter:
    """When the search projection is read from its snapshot and when a new one is written:
    at start (``load``) the snapshot if it is valid; later (``run``) a new one at most every
    ``interval`` seconds when the projection has moved past the last one written (at once
    when it was built from the index), and once more on ``close``. Writing encodes the
    projection as it stands (it is never changed in place) on a worker thread."""

    def __init__(
        self,
        files: SearchSnapshots,
        projection: DocProjection,
        store: Store,
        *,
        interval: float,
        with_text: bool,
    ) -> None:
        self.files = files
        self.projection = projection
        self.store = store
        self.interval = interval
        #: SQLite's in-memory ranking: a snapshot without the text index is not worth writing.
        self.with_text = with_text
        #: The ``last`` document id of the newest snapshot known on disk (-1: none).
        self.written = -1
        #: How the projection was made at start: "snapshot" or "index".
        self.source = ""
        self._task: asyncio.Task[None] | None = None
        self._saving: asyncio.Task[int | None] | None = None

    async def load(self) -> None:
        """Install the snapshot into the projection, if there is a valid one; the caller then
        syncs the projection as always (reading only the documents above the snapshot)."""
        async with self.store.read() as r:
            loaded = await self.files.load(r)
        if loaded is not None and self.with_text and loaded.text is None:
            log.warning(
                "search snapshot %s ignored: written without the in-memory ranking's text "
                "index, which this process uses; building the projection from the index",
                self.files.path,
            )
            loaded = None
        if loaded is None:
            self.source = "index"
            return
        self.projection.install(loaded.state, loaded.text, loaded.last, loaded.live)
        self.written = loaded.last
        self.source = "snapshot"

    def run(self) -> None:
        """Start writing snapshots in the background (on the event loop, after ``load``)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        if self.source == "index":
            await asyncio.shield(self._save())
        while self.interval > 0:
            await asyncio.sleep(self.interval)
            await asyncio.shield(self._save())

    def _save(self) -> asyncio.Task[int | None]:
        if self._saving is None or self._saving.done():
            self._saving = asyncio.get_running_loop().create_task(self.save())
        return self._saving

    async def save(self) -> int | None:
        """Write a snapshot of the projection as it stands unless the newest on disk holds it;
        the last document id written (None: nothing written). Never raises: a snapshot that
        cannot be written is a warning (the next start builds the projection)."""
        current = self.projection.current()  # one consistent moment, on the loop's thread
        if current is None:
            return None
        state, txt, last, live = current
        if last <= self.written or (self.with_text and txt is None):
            return None
        try:
            async with self.store.read() as r:
                anchored = await self.files.anchor(r)
            if anchored is None:
                return None
            t = time.perf_counter()
            snapshot = SearchSnapshot(state, txt, last, live)
            size = await asyncio.to_thread(self.files.write, snapshot, *anchored)
        except Exception as err:  # a full disk, a lost database: the next start builds it
            log.warning("search snapshot %s: cannot be written (%s)", self.files.path, err)
            return None
        self.written = last
        log.info(
            "search snapshot %s written at document %d (%.1f MB, %.2f s)",
            self.files.path,
            last,
            size / 1e6,
            time.perf_counter() - t,
        )
        return last

    async def close(self) -> None:
        """Stop the background writes and write a last snapshot when the projection has moved
        past the newest one."""
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
    "SearchSnapshot",
    "SearchSnapshots",
    "SearchSnapshotter",
    "check",
    "decode",
    "encode",
]

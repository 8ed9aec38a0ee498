"""Read side of the catalog: batched lookups and paged listings that resolvers call."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from metadata.errors import InvalidInputError
from metadata.model import NodeRecord, RelationRecord, Touching
from metadata.store import Change, NodeFilter, Store

if TYPE_CHECKING:  # annotations only: networkx stays out of `capahub apply`
    from metadata.graph import CatalogGraph

#: Node records kept in memory at most (about 1 KB each); the cache starts over past it.
MAX_CACHED_NODES = 200_000
#: Node counts per listing filter kept at most.
MAX_CACHED_COUNTS = 1_000


@dataclass(frozen=True)
class Page:
    """One page of a listing plus what a Relay connection needs around it."""

    items: list[NodeRecord]
    has_next: bool
    total: int


def encode_cursor(value: str) -> str:
    """An opaque cursor for a position in an ordered listing."""
    return base64.urlsafe_b64encode(f"c:{value}".encode()).decode()


def decode_cursor(cursor: str, *, field: str = "after") -> str:
    """Read a cursor made by ``encode_cursor``, or raise ``InvalidInputError``."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raw = ""
    if not raw.startswith("c:"):
        raise InvalidInputError(
            f"{field}: {cursor[:40]!r} is not a cursor returned by this API", field=field
        )
    return raw[2:]


class Discovery:
    """Lookups over the store, each one SQL statement per batch of keys."""

    def __init__(self, store: Store, *, max_page_size: int = 500) -> None:
        self.store = store
        self.max_page_size = max_page_size
        self._cache: dict[str, NodeRecord] | None = None
        self._graph: CatalogGraph | None = None
        # filter -> (graph version, node count): counting thousands of rows per page is waste
        self._counts: dict[tuple[object, ...], tuple[int, int]] = {}

    def check_first(self, first: int, field: str = "first") -> None:
        """Refuse a page size outside 0..max_page_size."""
        if not 0 <= first <= self.max_page_size:
            raise InvalidInputError(
                f"{field}: must be between 0 and {self.max_page_size}, got {first}", field=field
            )

    def enable_cache(self, graph: CatalogGraph) -> None:
        """Keep node records in memory, dropping each one when a change of it is applied.

        The graph projection reports every change it applies, this process's commits at once
        and other processes' within the sync interval, so the cache is never staler than the
        projection itself.
        """
        self._cache = {}
        self._graph = graph

        def forget(changes: Sequence[Change]) -> None:
            cache = self._cache
            if cache is None:
                return
            for c in changes:
                if c.target == "node":
                    cache.pop(c.target_id, None)

        graph.follow(forget)

    def cached(self, node_id: str) -> NodeRecord | None:
        """The node's record when the in-memory cache holds it (None: not held, or no cache)."""
        cache = self._cache
        return cache.get(node_id) if cache is not None else None

    def touching_now(self, node_id: str) -> Touching | None:
        """The node's relations from the graph projection, or None without one."""
        graph = self._graph
        return graph.touching(node_id) if graph is not None else None

    async def get_nodes(self, ids: Sequence[str]) -> dict[str, NodeRecord]:
        """Nodes by id (absent ids are missing from the result)."""
        cache = self._cache
        if cache is None:
            async with self.store.read() as r:
                return await r.get_nodes(ids)
        out = {i: cache[i] for i in ids if i in cache}
        missing = [i for i in ids if i not in out]
        if missing:
            version = self._graph.version if self._graph is not None else -1
            async with self.store.read() as r:
                found = await r.get_nodes(missing)
            # A change applied while the read was in flight may be newer than what was read:
            # then the rows are used for this request but not remembered.
            if self._graph is not None and self._graph.version == version:
                if len(cache) + len(found) > MAX_CACHED_NODES:
                    cache.clear()
                cache.update(found)
            out.update(found)
        return out

    async def relations_from(self, ids: Sequence[str]) -> list[RelationRecord]:
        """Outgoing relations of these nodes."""
        async with self.store.read() as r:
            return await r.relations_from(ids)

    async def relations_touching(self, ids: Sequence[str]) -> list[RelationRecord]:
        """Incoming and outgoing relations of these nodes: from the graph projection when the
        cache is on (it holds every relation), else in one query."""
        if self._graph is not None:
            return self._graph.relations_touching(ids)
        async with self.store.read() as r:
            return await r.relations_touching(ids)

    async def owned_by(self, team_ids: Sequence[str]) -> list[NodeRecord]:
        """Nodes owned by these teams."""
        async with self.store.read() as r:
            return await r.nodes_owned_by(team_ids)

    async def page(self, flt: NodeFilter, *, first: int | None, after: str | None) -> Page:
        """A page of nodes ordered by id, with the total count of the filter (``first`` 50)."""
        first = 50 if first is None else first
        self.check_first(first)
        start = decode_cursor(after) if after else None
        if self._cache is None:
            async with self.store.read() as r:
                items = await r.list_nodes(flt, after=start, limit=first + 1)
                total = await r.count_nodes(flt)
            return Page(items[:first], len(items) > first, total)
        # With the cache, only the page's ids are read; the records mostly come from memory,
        # and the count is read again only after the catalog changed.
        graph = self._graph
        assert graph is not None
        version = graph.version
        key = (tuple(flt.kinds), tuple(flt.tags), tuple(flt.lifecycle))
        counted = self._counts.get(key)
        async with self.store.read() as r:
            ids = await r.list_node_ids(flt, after=start, limit=first + 1)
            if counted is not None and counted[0] == version:
                total = counted[1]
            else:
                total = await r.count_nodes(flt)
                if graph.version == version:
                    if len(self._counts) >= MAX_CACHED_COUNTS:
                        self._counts.clear()
                    self._counts[key] = (version, total)
        found = await self.get_nodes(ids[:first])
        # A node deleted between the two reads is left out.
        return Page([found[i] for i in ids[:first] if i in found], len(ids) > first, total)

    async def history(self, target_id: str, *, first: int) -> list[Change]:
        """The latest changes of one node, newest first."""
        self.check_first(first)
        async with self.store.read() as r:
            return await r.history_of(target_id, limit=first)

    async def audit(
        self, *, actor: str | None, since: datetime | None, first: int, after: str | None
    ) -> tuple[list[Change], bool]:
        """Recorded changes newest first, by actor and time; and whether more follow."""
        self.check_first(first)
        before = None
        if after is not None:
            raw = decode_cursor(after)
            if not raw.startswith("h") or not raw[1:].isdigit():
                raise InvalidInputError("after: not a cursor of the audit log", field="after")
            before = int(raw[1:])
        if actor is not None and not 0 < len(actor) <= 200:
            raise InvalidInputError("actor: 1-200 characters, e.g. token:ci or user:ada")
        async with self.store.read() as r:
            rows = await r.audit_log(actor=actor, since=since, before_id=before, limit=first + 1)
        return rows[:first], len(rows) > first


def change_cursor(change: Change) -> str:
    """The cursor of a change in the audit log."""
    return encode_cursor(f"h{change.id}")


__all__ = ["Discovery", "Page", "change_cursor", "decode_cursor", "encode_cursor"]

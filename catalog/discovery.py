"""Read side of the catalog: batched lookups and paged listings that resolvers call."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from metadata.errors import InvalidInputError
from metadata.model import NodeRecord, RelationRecord
from metadata.store import Change, NodeFilter, Store


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

    def check_first(self, first: int, field: str = "first") -> None:
        """Refuse a page size outside 0..max_page_size."""
        if not 0 <= first <= self.max_page_size:
            raise InvalidInputError(
                f"{field}: must be between 0 and {self.max_page_size}, got {first}", field=field
            )

    async def get_nodes(self, ids: Sequence[str]) -> dict[str, NodeRecord]:
        """Nodes by id (absent ids are missing from the result)."""
        async with self.store.read() as r:
            return await r.get_nodes(ids)

    async def relations_from(self, ids: Sequence[str]) -> list[RelationRecord]:
        """Outgoing relations of these nodes."""
        async with self.store.read() as r:
            return await r.relations_from(ids)

    async def relations_to(self, ids: Sequence[str]) -> list[RelationRecord]:
        """Incoming relations of these nodes."""
        async with self.store.read() as r:
            return await r.relations_to(ids)

    async def relations_touching(self, ids: Sequence[str]) -> list[RelationRecord]:
        """Incoming and outgoing relations of these nodes, in one query."""
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
        async with self.store.read() as r:
            items = await r.list_nodes(flt, after=start, limit=first + 1)
            total = await r.count_nodes(flt)
        return Page(items[:first], len(items) > first, total)

    async def history(self, target_id: str, *, first: int) -> list[Change]:
        """The latest changes of one node, newest first."""
        self.check_first(first)
        async with self.store.read() as r:
            return await r.history_of(target_id, limit=first)


__all__ = ["Discovery", "Page", "decode_cursor", "encode_cursor"]

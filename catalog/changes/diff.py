"""What changed between two change ids: nodes and relations added, changed, removed, retired.

Each node or relation changed in the range is compared as it stood at the two ends (the
before-image of its first change in the range, the after-image of its last); one that ends as
it began (changed, then changed back) is not listed. The history is immutable, so the list for
two change ids never changes: it is worked out once and kept (LRU) for paging.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from sqlalchemy import select

from metadata.errors import InvalidInputError
from metadata.store import Store
from metadata.tables import history

#: Node fields compared (``version`` and the timestamps change with every change: not listed).
NODE_FIELDS = ("name", "description", "tags", "lifecycle", "owner", "properties", "attributes")
RELATION_FIELDS = ("from", "type", "to", "properties")
#: Most history rows one diff reads; a longer range is refused (ask for a shorter one).
MAX_DIFF_ROWS = 2_000_000
_BATCH = 20_000


class DiffKind(enum.Enum):
    """How a node or relation differs between the two instants."""

    ADDED = "ADDED"
    CHANGED = "CHANGED"
    RETIRED = "RETIRED"
    REMOVED = "REMOVED"


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One field that differs: its value at the start and at the end (None: absent)."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class DiffEntry:
    """One node or relation that differs between the two instants."""

    target: str  # "node" | "relation"
    target_id: str
    kind: DiffKind
    fields: tuple[FieldDiff, ...]
    version_before: int | None
    version_after: int | None


def _value(image: dict[str, Any] | None, name: str) -> Any:
    if image is None:
        return None
    value = image.get(name)
    return None if value in ({}, []) else value


def compare(
    target: str, target_id: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> DiffEntry | None:
    """The entry for one node or relation (None when it is the same at both ends)."""
    if before is None and after is None:
        return None
    names = NODE_FIELDS if target == "node" else RELATION_FIELDS
    fields = tuple(
        FieldDiff(n, _value(before, n), _value(after, n))
        for n in names
        if _value(before, n) != _value(after, n)
    )
    if before is None:
        kind = DiffKind.ADDED
    elif after is None:
        kind = DiffKind.REMOVED
    elif not fields:
        return None
    elif target == "node" and after.get("lifecycle") == "RETIRED":
        kind = DiffKind.RETIRED
    else:
        kind = DiffKind.CHANGED
    return DiffEntry(
        target,
        target_id,
        kind,
        fields,
        (before or {}).get("version") if target == "node" else None,
        (after or {}).get("version") if target == "node" else None,
    )


class CatalogDiffs:
    """Diffs between change ids, each worked out once (``cache_size`` kept)."""

    def __init__(self, store: Store, *, cache_size: int = 8) -> None:
        self.store = store
        self._cache: LRUCache[tuple[int, int], list[DiffEntry]] = LRUCache(maxsize=cache_size)

    async def between(self, start: int, end: int) -> list[DiffEntry]:
        """Every difference between the catalog after change ``start`` and after ``end``:
        nodes first, then relations, each by id."""
        found = self._cache.get((start, end))
        if found is not None:
            return found
        if end - start > MAX_DIFF_ROWS:
            raise InvalidInputError(
                f"from: the range holds {end - start} changes, more than {MAX_DIFF_ROWS} one "
                "diff reads; ask about a shorter range",
                field="from",
            )
        first: dict[tuple[str, str], dict[str, Any] | None] = {}
        last: dict[tuple[str, str], dict[str, Any] | None] = {}
        h = history.c
        after = start
        async with self.store.read() as r:
            while after < end:
                rows = (
                    await r.conn.execute(
                        select(h.id, h.target, h.target_id, h.before, h.after)
                        .where(h.id > after, h.id <= end)
                        .order_by(h.id)
                        .limit(_BATCH)
                    )
                ).all()
                if not rows:
                    break
                for _, target, target_id, before, image in rows:
                    key = (target, target_id)
                    if key not in first:
                        first[key] = before
                    last[key] = image
                after = rows[-1][0]
        entries = [
            e
            for key in sorted(first, key=lambda k: (k[0] != "node", k[1]))
            if (e := compare(key[0], key[1], first[key], last[key])) is not None
        ]
        self._cache[(start, end)] = entries
        return entries


__all__ = ["CatalogDiffs", "DiffEntry", "DiffKind", "FieldDiff", "compare"]

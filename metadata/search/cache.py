"""What recent searches asked the index, kept per index version: the matches of a query and the
relevance of its ranking stages.

The index's version (``SearchIndex.version``) moves with every transaction that changes a
document, in this process or any other, and a search reads it in the same snapshot as
everything else: an answer cached under the version a search reads is exactly what the index
would answer, so the cache is never stale. Entries of older versions are dropped when a newer
version is seen. Facets, filters, tiers and pages are computed on every search from these
answers (see ``metadata.search.ranking``); only the index's work is saved, which is most of a
search's time for a word in thousands of documents (bm25 or ts_rank over every match).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from metadata.search.index import Matches, Relevance
from metadata.search.query import ParsedQuery


class IndexAnswers(Protocol):
    """What the cache keeps answers of: ``SearchIndex`` (FTS5, PostgreSQL), or the projection
    of the FTS5 index (``metadata.search.bm25.TextQuery.answers``), which answers the same."""

    async def match(self, reader: Any, q: ParsedQuery) -> Matches:
        """See ``SearchIndex.match``."""
        ...

    async def relevance(
        self, reader: Any, q: ParsedQuery, part: str, limit: int | None
    ) -> Relevance:
        """See ``SearchIndex.relevance``."""
        ...


@dataclass(slots=True)
class _Entry:
    matches: Matches | None = None
    name: Relevance | None = None
    all: Relevance | None = None

    @property
    def nbytes(self) -> int:
        out = 0
        if self.matches is not None:
            out += self.matches.all.nbytes + self.matches.name.nbytes
        for r in (self.name, self.all):
            if r is not None:
                out += r.ids.nbytes + r.x.nbytes
        return out


class SearchCache:
    """Answers of the index for recent queries, least recently used dropped first beyond
    ``max_bytes`` (0: no cache)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.version = -1
        self._entries: OrderedDict[ParsedQuery, _Entry] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def source(self, index: IndexAnswers, version: int) -> CachedSource:
        """What one search asks through, at the index ``version`` it read."""
        if version > self.version:
            self._entries.clear()
            self._bytes = 0
            self.version = version
        return CachedSource(index, self, version)

    def _get(self, q: ParsedQuery) -> _Entry | None:
        entry = self._entries.get(q)
        if entry is not None:
            self._entries.move_to_end(q)
        return entry

    def _put(self, q: ParsedQuery, version: int, entry: _Entry) -> None:
        if version != self.version or self.max_bytes <= 0:
            return  # an older snapshot's answer (a newer version was seen meanwhile)
        old = self._entries.pop(q, None)
        if old is not None:
            self._bytes -= old.nbytes
        size = entry.nbytes
        if size > self.max_bytes:
            return
        self._entries[q] = entry
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.nbytes


class CachedSource:
    """The index's ``match`` and ``relevance`` for one search, through the cache."""

    def __init__(self, index: IndexAnswers, cache: SearchCache, version: int) -> None:
        self.index = index
        self.cache = cache
        self.version = version

    def _entry(self, q: ParsedQuery) -> _Entry:
        if self.version == self.cache.version:
            found = self.cache._get(q)
            if found is not None:
                return _Entry(found.matches, found.name, found.all)
        return _Entry()

    async def match(self, reader: Any, q: ParsedQuery) -> Matches:
        """``SearchIndex.match``, from the cache when it has it."""
        entry = self._entry(q)
        if entry.matches is not None:
            self.cache.hits += 1
            return entry.matches
        self.cache.misses += 1
        entry.matches = await self.index.match(reader, q)
        self.cache._put(q, self.version, entry)
        return entry.matches

    async def relevance(
        self, reader: Any, q: ParsedQuery, part: str, limit: int | None
    ) -> Relevance:
        """``SearchIndex.relevance``, from the cache when it holds at least as many of the best
        matches (more is as good: they are the best ones)."""
        entry = self._entry(q)
        known = entry.name if part == "name" else entry.all
        if known is not None and (
            known.complete or (limit is not None and len(known.ids) >= limit)
        ):
            self.cache.hits += 1
            return known
        self.cache.misses += 1
        found = await self.index.relevance(reader, q, part, limit)
        if part == "name":
            entry.name = found
        else:
            entry.all = found
        self.cache._put(q, self.version, entry)
        return found


__all__ = ["CachedSource", "IndexAnswers", "SearchCache"]

"""Discovery search: checks the arguments, runs the index and highlights what matched."""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.exc import DBAPIError

from catalog._search_upkeep import IndexUpkeep
from catalog.discovery import decode_cursor, encode_cursor
from metadata.errors import InvalidInputError
from metadata.model import Kind, Lifecycle, NodeRecord, parse_id
from metadata.search import (
    FACETS,
    DocProjection,
    ParsedQuery,
    Progress,
    SearchCache,
    SearchFilter,
    SearchIndex,
    SqliteSearchIndex,
    normalize,
    parse_query,
    rank,
)
from metadata.search.ranking import RelevanceOf
from metadata.store import Reader, Store

log = logging.getLogger("capahub.search")

#: Most tags one search may filter on, and the longest tag.
MAX_TAGS = 50
MAX_TAG_LENGTH = 200
#: Furthest position a cursor may point to (deeper pages: narrow the query instead).
MAX_OFFSET = 100_000
#: Memory for the index's answers to recent queries (``SearchCache``), in MB, when the caller
#: does not say (the server passes ``Settings.search_cache_mb``); 0 turns the cache off.
CACHE_MB = 32.0
#: Characters of context a highlight shows around the first match.
SNIPPET_LENGTH = 160

_WORD = re.compile(r"[^\W_]+")
_SUFFIXES = ("ations", "ation", "ings", "ing", "ers", "er", "ies", "es", "ed", "s")


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked node with its score and an HTML highlight (``<mark>`` around matches)."""

    node: NodeRecord
    score: float
    highlight: str | None


@dataclass(frozen=True, slots=True)
class SearchPage:
    """A page of hits, where it starts, the total and the facets over the whole result."""

    hits: list[Hit]
    offset: int
    total: int
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @property
    def has_next(self) -> bool:
        """True when more hits follow this page."""
        return self.offset + len(self.hits) < self.total

    def cursor(self, index: int) -> str:
        """The opaque cursor of the ``index``-th hit of this page."""
        return encode_cursor(f"s{self.offset + index}")


class Search:
    """The search service: one index per store, kept in step by a transaction hook."""

    def __init__(
        self,
        store: Store,
        *,
        max_page_size: int = 500,
        cache_mb: float | None = None,
        memory_ranking: bool = True,
    ) -> None:
        self.store = store
        self.index = SearchIndex.for_dialect(store.dialect)
        #: SQLite: match and rank words in memory (``metadata.search.bm25``); False asks FTS5
        #: for everything (the reference the tests compare with).
        self.memory_ranking = memory_ranking and isinstance(self.index, SqliteSearchIndex)
        path = store.engine.url.database
        if self.memory_ranking and path and path != ":memory:" and not path.startswith("file:"):
            assert isinstance(self.index, SqliteSearchIndex)
            self.index.open_now(path)
        self.projection = DocProjection(self.index)
        self.max_page_size = max_page_size
        if cache_mb is None:
            cache_mb = CACHE_MB
        self.cache = SearchCache(int(cache_mb * 2**20))
        #: Searches answered from the projection (the others asked FTS5 or PostgreSQL).
        self.memory_answers = 0

    def close(self) -> None:
        """Close the search's own read-only connections (SQLite); the store closes its own."""
        if isinstance(self.index, SqliteSearchIndex):
            self.index.close_now()

    def attach(self) -> None:
        """Update the index inside every write transaction of the store, before it commits."""
        # In parts when a bulk write flushes (``catalog._search_upkeep``), whole otherwise.
        self.store.add_transaction_hook(IndexUpkeep(self.index))

    async def ensure_built(self) -> bool:
        """Rebuild the index when some node has no document; True when it did."""
        async with self.store.read() as r:
            stale = await self.index.is_stale(r)
        if stale:
            log.info("search index incomplete: rebuilding it")
            await self.rebuild()
        return stale

    async def warm(self) -> None:
        """Load the projection now rather than on the first search (about 1 s for 100,000
        nodes)."""
        async with self.store.read() as r:
            if self.memory_ranking and isinstance(self.index, SqliteSearchIndex):
                await self.projection.sync_text(r, *await self.index.stats(r))
            else:
                await self.projection.sync(r, 2**62)

    async def rebuild(self, progress: Progress | None = None) -> int:
        """Index every node again in one transaction; returns how many nodes were indexed."""
        async with self.store.transaction() as tx:
            return await self.index.rebuild(tx, progress)

    async def search(
        self,
        query: str,
        *,
        kinds: Sequence[Kind] = (),
        tags: Sequence[str] = (),
        domain: str | None = None,
        lifecycle: Sequence[Lifecycle] = (),
        first: int | None = 20,
        after: str | None = None,
        facets: Collection[str] = FACETS,
    ) -> SearchPage:
        """Ranked hits for ``query``, the total and the ``facets`` over the whole filtered result.

        Raises:
            InvalidInputError: a too long query, a bad cursor, page size, tag or domain id.
        """
        q = parse_query(query, field="query")
        first = 20 if first is None else first
        if not 0 <= first <= self.max_page_size:
            raise InvalidInputError(
                f"first: must be between 0 and {self.max_page_size}, got {first}", field="first"
            )
        offset = _offset(after)
        _check_tags(tags)
        if domain is not None:
            kind, _ = parse_id(domain, field="domain")
            if kind is not Kind.DOMAIN:
                raise InvalidInputError(
                    f"domain: {domain!r} is not a domain id; use 'domain:<key>', e.g. "
                    "'domain:sales'",
                    field="domain",
                )
        flt = SearchFilter(kinds=kinds, tags=tags, lifecycle=lifecycle, domain=domain)
        wanted = [f for f in FACETS if f in facets]
        empty = SearchPage([], offset, 0, {f: [] for f in wanted})
        if q.empty:
            return empty
        if self.memory_ranking:
            found = await self._search_now(q, flt, wanted, first, offset)
            if found is not None:
                return found or empty
        async with self.store.read() as r:
            await self.index.begin_search(r)
            return await self._search(r, q, flt, wanted, first, offset) or empty

    async def _search_now(
        self, q: ParsedQuery, flt: SearchFilter, wanted: list[str], first: int, offset: int
    ) -> SearchPage | Literal[False] | None:
        """The search from the projection, its two statements read synchronously
        (``SqliteSearchIndex.read_now``); False: nothing matches; None: the projection is not of
        the index's version (it syncs on the async path) or FTS5 must answer."""
        index = self.index
        assert isinstance(index, SqliteSearchIndex)
        with index.read_now() as conn:
            if conn is None:
                return None
            try:
                version, stats = index.stats_now(conn)
            except DBAPIError:  # e.g. locked beyond NOW_BUSY_MS: the async path waits
                return None
            state, text = self.projection.state, self.projection.text
            if text is None or text.version != version or text.stats != stats:
                return None
            fast = text.query(q, index.tokenizer, state.doc_ids)
            if fast is None:
                return None
            self.memory_answers += 1
            # Never suspends: matches and relevance are computed here, or come from the cache
            # (no other search may run while this one holds the connection).
            source: RelevanceOf = fast.relevance
            if self.cache.max_bytes > 0:
                cached = self.cache.source(fast.answers, version)
                source = functools.partial(cached.relevance, None, q)
                matches = await cached.match(None, q)
            else:
                matches = fast.matches()
            if not matches.all.size:
                return False
            sel = state.select(matches, flt)
            counts = {f: state.count(f, sel) for f in wanted}
            ranked = await rank(source, q, state, sel, limit=first, offset=offset)
            rows = index.page_rows_now(conn, [doc_id for _, doc_id in ranked])
        return self._page(q, ranked, rows, offset, sel.total, counts)

    async def _search(
        self,
        r: Reader,
        q: ParsedQuery,
        flt: SearchFilter,
        wanted: list[str],
        first: int,
        offset: int,
    ) -> SearchPage | None:
        source: RelevanceOf
        version = None
        fast = None
        if self.memory_ranking and isinstance(self.index, SqliteSearchIndex):
            # The projection of the FTS5 index matches and ranks words in memory when it is
            # of this snapshot's index (``metadata.search.bm25``); phrases go to FTS5.
            version, stats = await self.index.stats(r)
            state, text = await self.projection.sync_text(r, version, stats)
            if text is not None:
                fast = text.query(q, self.index.tokenizer, state.doc_ids)
        if fast is not None:
            source = fast.relevance
            matches = fast.matches()
            self.memory_answers += 1
        else:
            if self.cache.max_bytes > 0:
                if version is None:
                    version = await self.index.version(r)
                cached = self.cache.source(self.index, version)
                source, matches = (
                    functools.partial(cached.relevance, r, q),
                    await cached.match(r, q),
                )
            else:
                source = functools.partial(self.index.relevance, r, q)
                matches = await self.index.match(r, q)
            if matches.all.size:
                state = await self.projection.sync(r, int(matches.all.max()))
        if not matches.all.size:
            return None
        sel = state.select(matches, flt)
        # The ranking's SQL runs in the driver's thread while the facets are counted here.
        ranking = asyncio.ensure_future(rank(source, q, state, sel, limit=first, offset=offset))
        await asyncio.sleep(0)
        try:
            counts = {f: state.count(f, sel) for f in wanted}
        except BaseException:
            ranking.cancel()
            raise
        ranked = await ranking
        rows = await self.index.page_rows(r, [doc_id for _, doc_id in ranked])
        return self._page(q, ranked, rows, offset, sel.total, counts)

    @staticmethod
    def _page(
        q: ParsedQuery,
        ranked: list[tuple[float, int]],
        rows: dict[int, tuple[NodeRecord, str]],
        offset: int,
        total: int,
        counts: dict[str, list[tuple[str, int]]],
    ) -> SearchPage:
        hits = [
            Hit(rows[d][0], score, highlight(rows[d][0], rows[d][1], q))
            for score, d in ranked
            if d in rows
        ]
        return SearchPage(hits, offset, total, counts)


def _offset(after: str | None) -> int:
    if after is None:
        return 0
    raw = decode_cursor(after, field="after")
    if not (raw.startswith("s") and raw[1:].isdigit() and len(raw) < 12):
        raise InvalidInputError(
            f"after: {after[:40]!r} is not a cursor of a search result", field="after"
        )
    position = int(raw[1:])
    if position >= MAX_OFFSET:
        raise InvalidInputError(
            f"after: pages end at hit {MAX_OFFSET}; narrow the query or add filters",
            field="after",
        )
    return position + 1


def _check_tags(tags: Sequence[str]) -> None:
    if len(tags) > MAX_TAGS:
        raise InvalidInputError(
            f"tags: {len(tags)} tags is too many; filter on at most {MAX_TAGS}", field="tags"
        )
    for i, tag in enumerate(tags):
        if not tag or len(tag) > MAX_TAG_LENGTH or "\x00" in tag:
            raise InvalidInputError(
                f"tags[{i}]: a tag is 1-{MAX_TAG_LENGTH} characters without NUL", field="tags"
            )


# -- highlights ---------------------------------------------------------------------------------


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


class _Matcher:
    """Which words of a text match a query's words: equal, same stem, or by prefix. Remembers
    its answer per word (texts repeat words: attribute names, related names)."""

    __slots__ = ("exact", "prefixes", "seen", "stems")

    def __init__(self, q: ParsedQuery) -> None:
        self.exact = {w for t in q.terms for w in t.words}
        self.stems = {_stem(w) for w in self.exact}
        self.prefixes = tuple(w for t in q.terms if t.prefix for w in t.words)
        self.seen: dict[str, str | None] = {}

    def match(self, word: str) -> str | None:
        """The matching part of ``word`` (a run of letters and digits), or None."""
        try:
            return self.seen[word]
        except KeyError:
            pass
        found = None
        for part in _WORD.findall(normalize(word)):
            if (
                part in self.exact
                or _stem(part) in self.stems
                or (self.prefixes and part.startswith(self.prefixes))
            ):
                found = part
                break
        if len(self.seen) < 10_000:
            self.seen[word] = found
        return found


@functools.lru_cache(maxsize=32)
def _matcher(q: ParsedQuery) -> _Matcher:
    return _Matcher(q)


def _matches(text: str, m: _Matcher) -> list[tuple[int, int, str]]:
    """Spans of ``text`` whose word matches a query word: equal, same stem, or by prefix."""
    out = []
    for found in _WORD.finditer(text):
        part = m.match(found.group())
        if part is not None:
            out.append((found.start(), found.end(), part))
    return out


def highlight(rec: NodeRecord, related_names: str, q: ParsedQuery) -> str | None:
    """An HTML-escaped excerpt with ``<mark>`` around the matched words, or None.

    Looks at the description, the attributes, the related names, the name, the tags and the
    id, and
    picks the text where the most distinct query words matched (earlier ones on a tie).
    """
    m = _matcher(q)
    attrs = ", ".join(
        f"{a.get('name')} ({a['classification']})"
        if a.get("classification")
        else str(a.get("name"))
        for a in rec.attributes
    )
    texts = [
        rec.description or "",
        f"Attributes: {attrs}" if attrs else "",
        f"Related: {related_names}" if related_names else "",
        rec.name,
        f"Tags: {', '.join(rec.tags)}" if rec.tags else "",
        rec.id,
    ]
    best: tuple[int, str, list[tuple[int, int, str]]] | None = None
    for candidate in texts:
        spans = _matches(candidate, m)
        distinct = len({s[2] for s in spans})
        if spans and (best is None or distinct > best[0]):
            best = (distinct, candidate, spans)
    if best is None:
        return None
    _, chosen, spans = best
    return _excerpt(chosen, spans)


def _excerpt(value: str, spans: list[tuple[int, int, str]]) -> str:
    start = 0
    if len(value) > SNIPPET_LENGTH:
        start = max(0, spans[0][0] - SNIPPET_LENGTH // 3)
        while start > 0 and not value[start - 1].isspace():
            start -= 1
    end = min(len(value), start + SNIPPET_LENGTH)
    while end < len(value) and not value[end].isspace() and end - start < SNIPPET_LENGTH + 30:
        end += 1
    out = ["…" if start > 0 else ""]
    pos = start
    for s, e, _ in spans:
        if s < start or e > end:
            continue
        out.append(html.escape(value[pos:s]))
        out.append(f"<mark>{html.escape(value[s:e])}</mark>")
        pos = e
    out.append(html.escape(value[pos:end]))
    out.append("…" if end < len(value) else "")
    return "".join(out)


__all__ = ["FACETS", "Hit", "Search", "SearchPage", "highlight"]

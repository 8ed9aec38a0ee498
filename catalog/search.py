"""Discovery search: checks the arguments, runs the index and highlights what matched."""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections import Counter, defaultdict, deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

from catalog.discovery import decode_cursor, encode_cursor
from metadata.errors import InvalidInputError
from metadata.model import Kind, Lifecycle, NodeRecord, parse_id
from metadata.search import (
    FacetRow,
    ParsedQuery,
    Progress,
    SearchFilter,
    SearchIndex,
    normalize,
    parse_query,
)
from metadata.store import Reader, Store

log = logging.getLogger("capahub.search")

#: Most tags one search may filter on, and the longest tag.
MAX_TAGS = 50
MAX_TAG_LENGTH = 200
#: Furthest position a cursor may point to (deeper pages: narrow the query instead).
MAX_OFFSET = 100_000
#: Characters of context a highlight shows around the first match.
SNIPPET_LENGTH = 160
#: The facets of a result, in the order the API lists them.
FACETS = ("kind", "tag", "domain", "lifecycle", "owner")
#: Most values listed per facet (the most frequent ones).
MAX_FACET_VALUES = 50

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

    def __init__(self, store: Store, *, max_page_size: int = 500) -> None:
        self.store = store
        self.index = SearchIndex.for_dialect(store.dialect)
        self.facets = FacetProjection(self.index)
        self.max_page_size = max_page_size

    def attach(self) -> None:
        """Update the index inside every write transaction of the store, before it commits."""
        self.store.add_transaction_hook(self.index.update)

    async def ensure_built(self) -> bool:
        """Rebuild the index when some node has no document; True when it did."""
        async with self.store.read() as r:
            stale = await self.index.is_stale(r)
        if stale:
            log.info("search index incomplete: rebuilding it")
            await self.rebuild()
        return stale

    async def warm(self) -> None:
        """Load the facet projection now rather than on the first search (about 1 s for
        100,000 nodes)."""
        async with self.store.read() as r:
            await self.facets.sync(r, await self.index.last_doc_id(r))

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
        async with self.store.read() as r:
            await self.index.begin_search(r)
            ids = await self.index.match_ids(r, q)
            if not ids:
                return empty
            name_ids = await self.index.match_ids(r, q, "name")
            await self.facets.sync(r, max(ids))
            # Masks and positions are taken from one state of the projection (no await between).
            p = self.facets
            positions = p.positions(ids)
            matched = p.narrow(p.mask(positions), flt)
            in_name = p.mask(p.positions(name_ids)) & matched
            retired = p.values["lifecycle"].get("RETIRED", 0)
            sizes = [
                (in_name & ~retired).bit_count(),
                (matched & ~in_name & ~retired).bit_count(),
                (in_name & retired).bit_count(),
                (matched & ~in_name & retired).bit_count(),
            ]
            view = p.view()
            # The ranking's SQL runs in the driver's thread while the facets are counted here.
            ranking = asyncio.ensure_future(
                self.index.ranked(r, q, flt, sizes=sizes, limit=first, offset=offset)
            )
            await asyncio.sleep(0)
            try:
                if flt != SearchFilter():
                    positions = p.within(matched, positions)
                counts = {f: view.count(f, matched, positions) for f in wanted}
            except BaseException:
                ranking.cancel()
                raise
            ranked = await ranking
            recs = await r.get_nodes([node_id for _, node_id, _ in ranked])
        hits = [
            Hit(recs[i], score, highlight(recs[i], related, q))
            for score, i, related in ranked
            if i in recs
        ]
        return SearchPage(hits, offset, matched.bit_count(), counts)


def _bits(positions: Collection[int], size: int) -> int:
    """A bitset (an int) with the bits at ``positions`` (all below ``size``) set."""
    if len(positions) < size >> 6:
        buf = bytearray((size >> 3) + 1)
        for i in positions:
            buf[i >> 3] |= 1 << (i & 7)
        return int.from_bytes(buf, "little")
    # Many bits: write ASCII digits in C (map + deque), parse them as a base-2 number.
    digits = bytearray(b"0") * size
    deque(map(digits.__setitem__, positions, repeat(49)), maxlen=0)
    digits.reverse()
    return int(digits, 2) if size else 0


class FacetProjection:
    """The facet values of every search document, in memory, to count facets without SQL.

    SQL would join and group every matched row: 30 ms for a word that matches 30,000 documents.
    Here each document has a position; each value of a facet with few values (kinds, stages,
    tags) a bitset (an int, a bit per position): counting is an AND and a popcount per value,
    and filters are ANDs too. Facets with many values (owners, domains) are counted from a list
    of each position's value instead. Documents never change (a change writes a new one with a
    higher id), so reading the rows above the highest id seen keeps the projection in step, with
    other processes' writes too. Positions of replaced documents stay, but no match returns
    those documents; when they outnumber the live ones, the projection reloads.
    """

    #: Facets with bitsets (the filters need them); counted through them when they have at
    #: most ``BITSET_VALUES`` values.
    BITSETS = ("kind", "lifecycle", "tag", "domain")
    BITSET_VALUES = 64
    MULTI = ("tag", "domain")

    def __init__(self, index: SearchIndex) -> None:
        self.index = index
        self.last = 0
        self._live = 0  # documents in the index when last counted
        self._lock = asyncio.Lock()
        self._reset()

    def _reset(self) -> None:
        self.position: dict[int, int] = {}  # doc_id -> position
        self.values: dict[str, dict[str, int]] = {f: {} for f in self.BITSETS}
        self.codes: dict[str, list[Any]] = {f: [] for f in FACETS}
        self._interned: dict[str, str] = {}

    async def sync(self, reader: Reader, upto: int) -> None:
        """Load the documents up to id ``upto`` (and any other new ones) not seen yet."""
        if upto <= self.last:
            return
        async with self._lock:
            if upto <= self.last:
                return
            rows = await self.index.facet_rows(reader, self.last)
            if len(self.position) + len(rows) > 2 * self._live + 1000:
                self._live = await self.index.count_docs(reader)
                if len(self.position) + len(rows) > 2 * self._live + 1000:
                    rows = await self.index.facet_rows(reader, 0)
                    self._reset()
                    self._live = len(rows)
            self._add(rows)

    def _add(self, rows: Sequence[FacetRow]) -> None:
        if not rows:
            return
        intern = self._interned.setdefault
        new: dict[str, dict[str, list[int]]] = {f: defaultdict(list) for f in self.BITSETS}
        codes = self.codes
        for pos, row in enumerate(rows, len(self.position)):
            self.position[row.doc_id] = pos
            kind, lifecycle = intern(row.kind, row.kind), intern(row.lifecycle, row.lifecycle)
            tags = tuple(intern(t, t) for t in row.tags)
            domains = tuple(intern(d, d) for d in row.domains)
            codes["kind"].append(kind)
            codes["lifecycle"].append(lifecycle)
            codes["owner"].append(intern(row.owner_id, row.owner_id) if row.owner_id else None)
            codes["tag"].append(tags)
            codes["domain"].append(domains)
            new["kind"][kind].append(pos)
            new["lifecycle"][lifecycle].append(pos)
            for value in tags:
                new["tag"][value].append(pos)
            for value in domains:
                new["domain"][value].append(pos)
        size = len(self.position)
        for facet, values in new.items():
            current = self.values[facet]
            for value, positions in values.items():
                current[value] = current.get(value, 0) | _bits(positions, size)
        self.last = max(self.last, rows[-1].doc_id)

    def positions(self, doc_ids: Sequence[int]) -> list[int]:
        """Positions of these documents (unknown ids, e.g. FTS rows without a document, are
        left out)."""
        try:
            return list(map(self.position.__getitem__, doc_ids))
        except KeyError:
            return [p for p in map(self.position.get, doc_ids) if p is not None]

    def mask(self, positions: Collection[int]) -> int:
        """The bitset of these positions."""
        return _bits(positions, len(self.position))

    def narrow(self, mask: int, flt: SearchFilter) -> int:
        """Keep the documents that pass the filter (values within one filter: any of)."""

        def any_of(facet: str, values: Iterable[str]) -> int:
            out = 0
            for v in values:
                out |= self.values[facet].get(v, 0)
            return out

        if flt.kinds:
            mask &= any_of("kind", (k.value for k in flt.kinds))
        if flt.lifecycle:
            mask &= any_of("lifecycle", (lc.value for lc in flt.lifecycle))
        if flt.tags:
            mask &= any_of("tag", flt.tags)
        if flt.domain is not None:
            mask &= self.values["domain"].get(flt.domain, 0)
        return mask

    @staticmethod
    def within(mask: int, positions: list[int]) -> list[int]:
        """The positions whose bit is set in ``mask``."""
        raw = mask.to_bytes((mask.bit_length() >> 3) + 1, "little")
        size = len(raw) << 3
        return [p for p in positions if p < size and raw[p >> 3] >> (p & 7) & 1]

    def view(self) -> FacetView:
        """The current state for counting; later syncs do not change what it counts."""
        return FacetView(self.values, self.codes)


@dataclass(frozen=True, slots=True)
class FacetView:
    """The projection's structures at one moment: a sync appends positions (which a mask
    taken before does not cover) or, when it reloads, replaces the structures."""

    values: dict[str, dict[str, int]]
    codes: dict[str, list[Any]]

    def count(self, facet: str, mask: int, positions: list[int]) -> list[tuple[str, int]]:
        """The most frequent values of ``facet`` among the documents of ``mask`` (whose
        positions are ``positions``)."""
        bitsets = self.values.get(facet)
        if bitsets is not None and len(bitsets) <= FacetProjection.BITSET_VALUES:
            counted = [(v, n) for v, bits in bitsets.items() if (n := (mask & bits).bit_count())]
        else:
            column = self.codes[facet]
            picked = map(column.__getitem__, positions)
            counter = Counter(
                chain.from_iterable(picked) if facet in FacetProjection.MULTI else picked
            )
            counter.pop(None, None)
            counted = list(counter.items())
        counted.sort()  # by value, then (stable) by count, most first: two sorts in C
        counted.sort(key=itemgetter(1), reverse=True)
        return counted[:MAX_FACET_VALUES]


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


def _matcher(q: ParsedQuery) -> tuple[set[str], set[str], tuple[str, ...]]:
    exact = {w for t in q.terms for w in t.words}
    stems = {_stem(w) for w in exact}
    prefixes = tuple(w for t in q.terms if t.prefix for w in t.words)
    return exact, stems, prefixes


def _matches(
    text: str, m: tuple[set[str], set[str], tuple[str, ...]]
) -> list[tuple[int, int, str]]:
    """Spans of ``text`` whose word matches a query word: equal, same stem, or by prefix."""
    exact, stems, prefixes = m
    out = []
    for found in _WORD.finditer(text):
        for part in _WORD.findall(normalize(found.group())):
            if part in exact or _stem(part) in stems or (prefixes and part.startswith(prefixes)):
                out.append((found.start(), found.end(), part))
                break
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


__all__ = ["FACETS", "FacetProjection", "FacetView", "Hit", "Search", "SearchPage", "highlight"]

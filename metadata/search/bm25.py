"""FTS5's matching and bm25 ranking, computed in memory from a projection of the FTS5 index.

SQLite's ``bm25()`` costs about a microsecond per match plus a pass over every document of each
query word (to count how rare it is), and the matches' ids take a statement of their own: for
a word in 20,000 documents that is most of a search. Here each process keeps, per word of the
index, the positions (``metadata.search.projection``) of the documents holding it with the
word's weighted frequency there (all columns, and the name column alone), and each document's
length in words. A query of single words (prefixes included) is then matched and ranked with a
few numpy operations, with FTS5's own formula and arithmetic (``fts5_aux.c``), so the scores
are the same floating-point numbers and the order the same:

    score = sum over the query's words i of
            idf_i * (f_i * (k1 + 1)) / (f_i + k1 * (1 - b + b * D / avgdl))

with k1 = 1.2, b = 0.75; ``f_i`` the sum of the column weights over the word's occurrences in
the document (for a prefix, over every word it expands to); D the document's words, avgdl the
index's words per document; idf_i = log((N - n_i + 0.5) / (n_i + 0.5)) (1e-6 when not
positive) with N documents and n_i of them holding word i. The name stage's query is restricted
to the name column: its frequencies and its n_i count there only.

The words of a document are FTS5's own: the projection is read from the index (the
``fts5vocab`` table of ``search_fts``) when it loads, and the documents written since are
tokenized by the same tokenizer in an in-memory SQLite database (``Tokenizer``), as are the
query's words. A search uses the projection only when it is of the very index state the search
reads (``search_state.next_doc_id`` and FTS5's document and word totals, read in the search's
snapshot); anything else (phrases, a word the tokenizer splits, a projection behind) goes to
FTS5 as before.
"""

from __future__ import annotations

import bisect
import math
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from metadata.search.buffers import Tail, append_array
from metadata.search.index import FloatArray, IdArray, Matches, Relevance
from metadata.search.query import ParsedQuery

#: FTS5 columns of ``search_fts``, in order, and the bm25 weight of each.
COLUMNS = ("name", "key", "tags", "body", "attributes", "related")
WEIGHTS = (10.0, 5.0, 4.0, 1.0, 3.0, 2.0)
#: The tokenizer of ``search_fts`` (migration 0002).
TOKENIZE = "porter unicode61 remove_diacritics 2"
#: fts5_aux.c's constants.
K1 = 1.2
B = 0.75
_IDF_FLOOR = 1e-6

Positions = npt.NDArray[np.intp]
Int32 = npt.NDArray[np.int32]
Float32 = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

_WEIGHT = np.array(WEIGHTS, dtype=np.float32)
#: SQL: a column's number from its name, in an ``fts5vocab`` instance table.
COLUMN_NUMBER = (
    "CASE col " + " ".join(f"WHEN '{c}' THEN {i}" for i, c in enumerate(COLUMNS)) + " END"
)
#: SQL: every occurrence of every word, one row per word: (word, "doc*8+col,..."), documents
#: rising within a word.
INSTANCES_SQL = (
    "SELECT term, group_concat(doc * 8 + " + COLUMN_NUMBER + ") FROM {table} GROUP BY term"
)


@dataclass(frozen=True, slots=True)
class FtsStats:
    """What FTS5 itself counts, read in a search's snapshot: documents and words per column."""

    rows: int
    columns: tuple[int, ...]

    @classmethod
    def parse(cls, block: bytes | None) -> FtsStats | None:
        """FTS5's averages record (``search_fts_data`` id 1): varints, the number of rows then
        the words of each column; None when absent or not of that shape."""
        if not block:
            return None
        values = _varints(block)
        if len(values) != 1 + len(COLUMNS):
            return None
        return cls(values[0], tuple(values[1:]))


def _varints(block: bytes) -> list[int]:
    """SQLite's big-endian varints (7 bits a byte, the ninth byte 8 bits)."""
    out: list[int] = []
    i = 0
    while i < len(block):
        value = 0
        for k in range(9):
            byte = block[i]
            i += 1
            if k == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        out.append(value)
    return out


class Tokenizer:
    """``search_fts``'s tokenizer, run by SQLite itself in an in-memory database: the words
    of a query, and the occurrences in documents written since the projection loaded."""

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        cols = ", ".join(COLUMNS)
        self._db.execute(f"CREATE VIRTUAL TABLE tok USING fts5({cols}, tokenize = '{TOKENIZE}')")
        self._db.execute("CREATE VIRTUAL TABLE tok_terms USING fts5vocab(tok, instance)")
        self._lock = threading.Lock()
        self._words: dict[str, tuple[str, ...]] = {}

    def word(self, word: str) -> tuple[str, ...]:
        """The index terms of one query word (one, unless the tokenizer splits it)."""
        found = self._words.get(word)
        if found is None:
            with self._lock:
                self._db.execute("INSERT INTO tok (rowid, name) VALUES (1, ?)", (word,))
                rows = self._db.execute("SELECT term FROM tok_terms ORDER BY offset").fetchall()
                self._db.execute("DELETE FROM tok")
            found = tuple(r[0] for r in rows)
            if len(self._words) >= 10_000:
                self._words.clear()
            self._words[word] = found
        return found

    def instances(self, rows: Iterable[Sequence[Any]]) -> list[tuple[str, str]]:
        """The occurrences in documents (rowid and the six columns' text), as
        ``INSTANCES_SQL`` reads them from the index."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    f"INSERT INTO tok (rowid, {', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                found = self._db.execute(INSTANCES_SQL.format(table="tok_terms")).fetchall()
                self._db.execute("DELETE FROM tok")
            finally:
                self._db.execute("COMMIT")
        return [(str(t), str(v)) for t, v in found]


@dataclass(frozen=True, slots=True)
class Postings:
    """The documents holding one word: positions (rising) and the word's weighted frequency
    there (sum of the column weights over its occurrences); the same for the name column."""

    pos: Int32
    freq: Float32
    name_pos: Int32
    name_freq: Float32


@dataclass(frozen=True, slots=True)
class TextIndex:
    """The projection of ``search_fts`` at one index version (never changed in place).

    Arrays of documents are indexed by the projection's positions; a replaced document keeps
    its position and postings but is not ``live``.
    """

    postings: dict[str, Postings]
    #: The words, sorted (as FTS5 sorts them: UTF-8 bytes, the same as code points).
    vocab: list[str]
    #: Words per column of each position.
    columns: Int32
    live: Mask
    #: ``search_state.next_doc_id`` this is the projection of.
    version: int
    stats: FtsStats
    #: The buffer ``columns`` is the front of, shared with the indexes built on this one
    #: (``metadata.search.buffers``): adding documents does not copy every row.
    _tails: dict[str, Tail] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        positions: Any,
        size: int,
        instances: Sequence[tuple[str, str]],
        live: Mask,
        version: int,
        base: TextIndex | None = None,
    ) -> TextIndex:
        """The projection of ``instances`` (rows of ``INSTANCES_SQL``) over ``size`` positions,
        appended to ``base`` (positions below ``base``'s size stay as they are there).

        ``positions``: maps document ids to (positions, known) like
        ``ProjectionState.positions``.
        """
        arrays = [np.fromstring(v, dtype=np.int64, sep=",") for _, v in instances]
        lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
        packed = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        term = np.repeat(np.arange(len(arrays)), lengths)
        doc, col = packed >> 3, packed & 7
        pos, known = positions(doc)
        term, col = term[known], col[known]
        pos = pos.astype(np.int64)
        # By word, then position (the index gives them so; sorting is the fallback).
        key = term * (size + 1) + pos
        if len(key) > 1 and not bool(np.all(key[1:] >= key[:-1])):
            order = np.argsort(key, kind="stable")
            key, term, pos, col = key[order], term[order], pos[order], col[order]
        before = len(base.columns) if base is not None else 0
        tails = base._tails if base is not None else {}
        if base is not None and not (len(pos) and int(pos.min()) < before):
            # Words of new documents only (the usual sync): count those rows, append them.
            counted = np.bincount(
                (pos - before) * len(COLUMNS) + col, minlength=(size - before) * len(COLUMNS)
            )
            added_rows = counted.reshape(size - before, len(COLUMNS)).astype(np.int32)
            columns: Int32 = append_array(tails, "columns", base.columns, added_rows)
        else:
            counted = np.bincount(pos * len(COLUMNS) + col, minlength=size * len(COLUMNS))
            columns = counted.reshape(size, len(COLUMNS)).astype(np.int32)
            if base is not None:
                columns[:before] = base.columns
                tails = {}
        # One group per (word, position).
        starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1]))) if len(key) else key
        freq = np.add.reduceat(_WEIGHT[col], starts) if len(key) else np.zeros(0, np.float32)
        in_name = np.add.reduceat((col == 0).astype(np.float32), starts) if len(key) else freq
        g_term, g_pos = term[starts], pos[starts].astype(np.int32)
        bounds = np.searchsorted(g_term, np.arange(len(arrays) + 1))
        postings = dict(base.postings) if base is not None else {}
        new_words = []
        for i, (word, _) in enumerate(instances):
            a, z = int(bounds[i]), int(bounds[i + 1])
            if a == z:
                continue
            p, f, n = g_pos[a:z], freq[a:z].astype(np.float32), in_name[a:z]
            named = n > 0
            found = Postings(p, f, p[named], (n[named] * np.float32(WEIGHTS[0])))
            old = postings.get(word)
            if old is None:
                new_words.append(word)
            else:
                found = Postings(
                    np.concatenate((old.pos, found.pos)),
                    np.concatenate((old.freq, found.freq)),
                    np.concatenate((old.name_pos, found.name_pos)),
                    np.concatenate((old.name_freq, found.name_freq)),
                )
            postings[word] = found
        vocab = base.vocab if base is not None else []
        if new_words:
            vocab = sorted(vocab + new_words)
        if base is None:
            stats = _stats(columns, live)
        else:  # what changed: the new positions, and old ones no longer live
            known = len(base.live)
            gone = np.flatnonzero(base.live & ~live[:known])
            added = columns[known:][live[known:]].sum(axis=0, dtype=np.int64)
            removed = columns[gone].sum(axis=0, dtype=np.int64)
            stats = FtsStats(
                base.stats.rows + int(np.count_nonzero(live[known:])) - len(gone),
                tuple(
                    int(t + a - r)
                    for t, a, r in zip(base.stats.columns, added, removed, strict=True)
                ),
            )
        return cls(postings, vocab, columns, live, version, stats, tails)

    def with_live(self, live: Mask, version: int) -> TextIndex:
        """The same postings with other documents live, at ``version``."""
        return TextIndex(
            self.postings,
            self.vocab,
            self.columns,
            live,
            version,
            _stats(self.columns, live),
            self._tails,  # the same columns: whichever is extended next may append
        )

    def query(self, q: ParsedQuery, tokenizer: Tokenizer, doc_ids: IdArray) -> TextQuery | None:
        """The query over this projection, or None when FTS5 must answer it (a phrase, a word
        the tokenizer splits or drops)."""
        words: list[list[str]] = []
        for t in q.terms:
            if len(t.words) != 1:
                return None
            found = tokenizer.word(t.words[0])
            if len(found) != 1:
                return None
            (token,) = found
            if t.prefix:
                i = bisect.bisect_left(self.vocab, token)
                expanded = []
                while i < len(self.vocab) and self.vocab[i].startswith(token):
                    expanded.append(self.vocab[i])
                    i += 1
                words.append(expanded)
            else:
                words.append([token] if token in self.postings else [])
        return TextQuery(self, words, doc_ids)


def _stats(columns: Int32, live: Mask) -> FtsStats:
    totals = columns[live].sum(axis=0, dtype=np.int64)
    return FtsStats(int(np.count_nonzero(live)), tuple(int(v) for v in totals))


class TextQuery:
    """One query's matches and bm25 relevance from a ``TextIndex`` (what ``SearchIndex.match``
    and ``SearchIndex.relevance`` answer from FTS5)."""

    def __init__(self, text: TextIndex, words: list[list[str]], doc_ids: IdArray) -> None:
        self.text = text
        self.words = words
        self.doc_ids = doc_ids
        self._parts: dict[str, tuple[list[FloatArray], list[int], Positions]] = {}

    def _part(self, part: str) -> tuple[list[FloatArray], list[int], Positions]:
        """Per query word: the frequency at every position (0: absent or not live), and the
        number of documents holding it; and the positions holding every word."""
        found = self._parts.get(part)
        if found is not None:
            return found
        text = self.text
        size = len(text.live)
        freqs: list[FloatArray] = []
        counts: list[int] = []
        matched: Mask | None = None
        for expanded in self.words:
            f = np.zeros(size, dtype=np.float64)
            for word in expanded:
                p = text.postings[word]
                pos, freq = (p.pos, p.freq) if part == "all" else (p.name_pos, p.name_freq)
                f[pos] += freq  # positions are distinct within one word
            f[~text.live] = 0.0
            present = f > 0.0
            freqs.append(f)
            counts.append(int(np.count_nonzero(present)))
            matched = present if matched is None else matched & present
        assert matched is not None  # a query has at least one word
        found = self._parts[part] = (freqs, counts, np.flatnonzero(matched))
        return found

    def matches(self) -> Matches:
        """The ids of the documents holding every word, anywhere and in the name column."""
        return Matches(self.doc_ids[self._part("all")[2]], self.doc_ids[self._part("name")[2]])

    def scores(self, part: str, pos: Positions) -> FloatArray:
        """-bm25 at these positions, as FTS5 computes it (same operations, same order)."""
        freqs, counts, _ = self._part(part)
        stats = self.text.stats
        n = stats.rows
        avgdl = float(sum(stats.columns)) / float(n)
        length = self.text.columns[pos].sum(axis=1, dtype=np.int64).astype(np.float64)
        base = K1 * ((1.0 - B) + (B * length) / avgdl)
        score = np.zeros(len(pos), dtype=np.float64)
        for f_all, hits in zip(freqs, counts, strict=True):
            idf = math.log((n - hits + 0.5) / (hits + 0.5))
            if idf <= 0.0:
                idf = _IDF_FLOOR
            f = f_all[pos]
            score = score + idf * ((f * (K1 + 1.0)) / (f + base))
        return score

    @property
    def answers(self) -> _Answers:
        """This query's answers with ``SearchIndex``'s signatures (for the search cache)."""
        return _Answers(self)

    async def relevance(self, part: str, limit: int | None) -> Relevance:
        """Every match of ``part`` ("name" or "all") with its relevance (``limit`` is not
        needed: all of them cost less than asking for some)."""
        pos = self._part(part)[2]
        return Relevance(self.doc_ids[pos], self.scores(part, pos), True)


class _Answers:
    """A ``TextQuery`` as ``SearchIndex.match`` and ``SearchIndex.relevance`` (of its query)."""

    def __init__(self, query: TextQuery) -> None:
        self.query = query

    async def match(self, reader: Any, q: ParsedQuery) -> Matches:
        return self.query.matches()

    async def relevance(
        self, reader: Any, q: ParsedQuery, part: str, limit: int | None
    ) -> Relevance:
        return await self.query.relevance(part, limit)


__all__ = [
    "COLUMNS",
    "INSTANCES_SQL",
    "TOKENIZE",
    "WEIGHTS",
    "FtsStats",
    "Postings",
    "TextIndex",
    "TextQuery",
    "Tokenizer",
]

"""Ranking in stages: name matches, other matches, then the retired ones of each.

A later stage never outranks an earlier one, and only the stages a page reaches are ranked.
Each hit's score is a tier plus a fraction in [0, 1) (see ``docs/search.md``):

- stage "name" (every word in the name or the key's last segment): tier 5 the name or the key
  equals the query, 4 the key's last segment does, 3 the name starts with the query, 2 the
  words are in the name; the fraction averages the relevance ``x`` mapped to x / (1 + x) with
  how much of the name the query covers (``Customer`` before ``Customer Service``);
- stage "rest": tier 1, the fraction is x / (1 + x).

Deprecated nodes get half the fraction; a retired node's score is divided by 10. Ties are
broken by node id. The backend gives ``x`` (``SearchIndex.relevance``); everything else comes
from the projection, so a stage costs one statement. The name stage gets the relevance of every
name match (its tiers do not follow ``x``). The rest stage asks for the matches with the highest
``x`` only: no document left out can score above what the lowest ``x`` returned would score, so
the hits above that bound are final; when there are too few, it asks for more.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import numpy as np

from metadata.search.index import FloatArray, Relevance
from metadata.search.projection import Positions, ProjectionState, Selection, head
from metadata.search.query import ParsedQuery

#: Ranking stages, in order: (part, retired). "name": every word in the name column (name and
#: the key's last segment); "rest": the other matches.
STAGES = (("name", False), ("rest", False), ("name", True), ("rest", True))

#: The rest stage asks for the best ``hi / share * OVERFETCH + MIN_FETCH`` matches (``share``:
#: the stage's part of all matches), for all of them when that is at least ``FETCH_ALL`` of
#: them; four times as many when too few of those were final.
OVERFETCH = 1.25
MIN_FETCH = 16
FETCH_ALL = 0.5

#: Scores within this of the bound are not final (floating-point rounding of x / (1 + x) is
#: not exactly monotonic).
_EPSILON = 1e-12


#: What ranking asks: the relevance of a part ("name", "all") of the query's matches, the
#: ``limit`` best (all when None); see ``SearchIndex.relevance``.
RelevanceOf = Callable[[str, int | None], Awaitable[Relevance]]


async def rank(
    relevance_of: RelevanceOf,
    q: ParsedQuery,
    state: ProjectionState,
    sel: Selection,
    *,
    limit: int,
    offset: int,
) -> list[tuple[float, int]]:
    """Hits ``offset`` to ``offset + limit`` of the ranking: (score, document id)."""
    out: list[tuple[float, int]] = []
    start = 0
    name_relevance = None
    for i, ((part, retired), size) in enumerate(zip(STAGES, sel.sizes, strict=True)):
        lo, hi = max(offset - start, 0), min(offset + limit - start, size)
        start += size
        if hi <= lo:
            continue
        if part == "name":
            if name_relevance is None:
                name_relevance = await relevance_of("name", None)
            pos, known = state.positions(name_relevance.ids)
            x = name_relevance.x[known]
            inside = sel.stages[i][pos]
            pos, x = pos[inside], x[inside]
            ranked = _top(state, pos, _name_scores(q, state, pos, x, retired), hi)
        else:
            ranked = await _rest_stage(relevance_of, state, sel, i, hi)
        out += ranked[lo:hi]
    return out


def _name_scores(
    q: ParsedQuery, state: ProjectionState, pos: Positions, x: FloatArray, retired: bool
) -> FloatArray:
    qn = q.normalized
    qlen = len(qn)
    encoded = qn.encode()
    k = min(len(encoded), 8)
    bits = np.uint64(((1 << (8 * k)) - 1) << (8 * (8 - k)))
    starts = (state.name_head[pos] & bits) == np.uint64(head(qn))
    if len(encoded) > 8:  # the heads only compared the first 8 bytes
        names = state.name_norm
        starts[starts] = [names[p].startswith(qn) for p in pos[starts].tolist()]
    exact = starts & (state.name_len[pos] == qlen)
    keys = state.key_norm
    key_exact = state.key_len[pos] == qlen
    key_exact[key_exact] = [keys[p] == qn for p in pos[key_exact].tolist()]
    # The key's last segment (its words) is the end of the normalized key.
    leaf = state.leaf_len[pos] == qlen
    leaf[leaf] = [keys[p].endswith(qn) for p in pos[leaf].tolist()]
    tiers = np.where(exact | key_exact, 5, np.where(leaf, 4, np.where(starts, 3, 2)))
    rel = x / (1.0 + x)
    frac = (rel + (qlen + 1.0) / (state.name_len[pos] + 1.0)) / 2.0
    return _finish(state, pos, tiers, frac, retired)


def _finish(
    state: ProjectionState, pos: Positions, tiers: object, frac: FloatArray, retired: bool
) -> FloatArray:
    deprecated = state.lifecycle_is("DEPRECATED")[pos]
    frac = np.where(deprecated, frac / 2.0, frac)
    score: FloatArray = tiers + frac  # type: ignore[operator]
    return score / 10.0 if retired else score


async def _rest_stage(
    relevance_of: RelevanceOf,
    state: ProjectionState,
    sel: Selection,
    stage: int,
    hi: int,
) -> list[tuple[float, int]]:
    retired = STAGES[stage][1]
    # The stage holds a share of all matches; ask for enough of the best to likely hold ``hi``
    # of its documents.
    share = sel.sizes[stage] / max(sel.found, 1)
    want: int | None = math.ceil(hi / share * OVERFETCH) + MIN_FETCH
    while True:
        if want is not None and want >= sel.found * FETCH_ALL:
            want = None
        relevance = await relevance_of("all", want)
        pos, known = state.positions(relevance.ids)
        x = relevance.x[known]
        inside = sel.stages[stage][pos]
        pos, x = pos[inside], x[inside]
        score = _finish(state, pos, 1, x / (1.0 + x), retired)
        if relevance.complete or want is None:
            return _top(state, pos, score, hi)
        lowest = float(relevance.x.min())
        bound = 1 + lowest / (1.0 + lowest)
        if retired:
            bound /= 10.0
        final = score > bound + _EPSILON
        if np.count_nonzero(final) >= hi:
            return _top(state, pos[final], score[final], hi)
        want *= 4


def _top(
    state: ProjectionState, pos: Positions, score: FloatArray, n: int
) -> list[tuple[float, int]]:
    """The ``n`` best (score descending, then node id), as (score, document id)."""
    if len(score) > n > 0:
        cut = np.partition(score, len(score) - n)[len(score) - n]
        best = score >= cut
        pos, score = pos[best], score[best]
    node_id, doc_ids = state.node_id, state.doc_ids
    at = pos.tolist()
    ordered = sorted(zip((-score).tolist(), [node_id[p] for p in at], at, strict=True))
    return [(-s, int(doc_ids[p])) for s, _, p in ordered[:n]]


__all__ = ["STAGES", "RelevanceOf", "rank"]

"""The search projection's states share their buffers (metadata.search.projection, "Appending"):
every state, the newest and older ones extended again (a failed sync's leftover), reads exactly
what a state built from its rows in one go reads, before and after later appends."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metadata.search import DocRow, ProjectionState

ARRAYS = (
    "doc_ids",
    "kind",
    "lifecycle",
    "owner",
    "tag_doc",
    "tag_val",
    "domain_doc",
    "domain_val",
    "name_len",
    "name_head",
    "key_len",
    "leaf_len",
)


def _row(doc_id: int, seed: int) -> DocRow:
    word = ["customer", "order", "invoice", "ünïcode"][seed % 4]
    return DocRow(
        doc_id=doc_id,
        node_id=f"capability:c{doc_id}",
        kind=["CAPABILITY", "SYSTEM", "DATA_ENTITY"][seed % 3],
        lifecycle=["ACTIVE", "DEPRECATED"][seed % 2],
        owner_id=None if seed % 5 == 0 else f"team:t{seed % 3}",
        tags=tuple(f"t{i}" for i in range(seed % 3)),
        domains=("domain:sales",) if seed % 2 else (),
        name_norm=f"{word} {seed}",
        key_norm=f"c{doc_id}",
        leaf_norm=f"c{doc_id}",
    )


def _view(state: ProjectionState) -> dict[str, Any]:
    """What a reader of the state sees: its arrays, its lists up to its size, its positions."""
    out: dict[str, Any] = {name: getattr(state, name).tolist() for name in ARRAYS}
    for name in ("node_id", "name_norm", "key_norm"):
        out[name] = list(getattr(state, name)[: state.size])
    out["positions"] = state.positions(state.doc_ids)[0].tolist()
    return out


# Each step: which earlier state to extend (an index from the newest backwards) and how many rows.
steps = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1500)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(steps=steps, seed=st.integers(0, 1000))
def test_every_state_reads_as_if_built_in_one_go(steps: list[tuple[int, int]], seed: int) -> None:
    states: list[tuple[ProjectionState, list[DocRow], dict[str, Any]]] = []
    empty = ProjectionState.empty()
    states.append((empty, [], _view(empty)))
    next_id = 1
    for back, count in steps:
        base, base_rows, _ = states[max(0, len(states) - 1 - back)]
        rows = [_row(next_id + i, seed + next_id + i) for i in range(count)]
        next_id += count + 1
        grown = base.extended(rows)
        states.append((grown, base_rows + rows, _view(grown)))
        # Every state, old and new, still reads what it read when it was made, and what a
        # state built from its rows at once reads (facet codes come from the shared values).
        for state, all_rows, seen in states:
            assert _view(state) == seen
            assert state.size == len(all_rows)
            assert [r.doc_id for r in all_rows] == state.doc_ids.tolist()
            assert [r.node_id for r in all_rows] == state.node_id[: state.size]


def test_appending_to_the_newest_state_shares_its_buffers() -> None:
    state = ProjectionState.empty().extended([_row(i, i) for i in range(1, 5000)])
    grown = state.extended([_row(6000, 1)])
    again = grown.extended([_row(6001, 2)])
    # One buffer, written past each state's end (not copied per write).
    assert again.doc_ids.base is grown.doc_ids.base is state.doc_ids.base
    assert again.node_id is grown.node_id is state.node_id
    assert state.size == 4999 and grown.size == 5000 and again.size == 5001
    assert np.array_equal(state.doc_ids, np.arange(1, 5000))
    # An older state extended again gets its own copy; the newer ones are untouched.
    branch = state.extended([_row(7000, 3)])
    assert branch.doc_ids.base is not state.doc_ids.base and branch.node_id is not state.node_id
    assert branch.doc_ids[-1] == 7000 and grown.doc_ids[-1] == 6000 and again.doc_ids[-1] == 6001
    assert branch.node_id[4999] == "capability:c7000" and again.node_id[4999] == "capability:c6000"


def _instances(docs: dict[int, list[tuple[str, int]]]) -> list[tuple[str, str]]:
    """Rows as ``INSTANCES_SQL`` gives them: per word (sorted), its (document << 3 | column)s."""
    by_word: dict[str, list[int]] = {}
    for doc, words in sorted(docs.items()):
        for word, column in words:
            by_word.setdefault(word, []).append(doc << 3 | column)
    return [(w, ",".join(map(str, sorted(v)))) for w, v in sorted(by_word.items())]


def _words(doc: int) -> list[tuple[str, int]]:
    return [(f"w{(doc * 7 + i) % 13}", i % 3) for i in range(1 + doc % 4)]


def test_the_text_index_appends_its_columns_and_reads_as_one_built_in_one_go() -> None:
    from metadata.search.bm25 import TextIndex

    first = {d: _words(d) for d in range(1, 3000)}
    state = ProjectionState.empty().extended([_row(d, d) for d in first])
    live = np.ones(state.size, dtype=np.bool_)
    text = TextIndex.build(state.positions, state.size, _instances(first), live, 1)
    grown_docs = dict(first)
    states = []
    for step in range(3):
        new = {d: _words(d) for d in range(3000 + 10 * step, 3000 + 10 * step + 10)}
        grown_docs |= new
        state = state.extended([_row(d, d) for d in new])
        live = np.ones(state.size, dtype=np.bool_)
        base = text
        text = TextIndex.build(
            state.positions, state.size, _instances(new), live, 2 + step, base=base
        )
        # One buffer under every step's columns (not a copy per write) ...
        assert text.columns.base is base.columns.base or step == 0
        states.append((state, text, dict(grown_docs)))
    # ... and each step reads what a build of all its documents at once reads.
    for state, text, docs in states:
        whole = TextIndex.build(
            state.positions,
            state.size,
            _instances(docs),
            np.ones(state.size, dtype=np.bool_),
            text.version,
        )
        assert np.array_equal(text.columns, whole.columns)
        assert text.stats == whole.stats
        assert text.vocab == whole.vocab
        for word, postings in whole.postings.items():
            assert np.array_equal(text.postings[word].pos, postings.pos), word
            assert np.allclose(text.postings[word].freq, postings.freq), word

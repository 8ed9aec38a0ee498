"""The search index's transaction hook, fed in parts: a bulk write flushes its changes as it
goes (``Writer.flush``) and the documents are written once, before commit, in batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from metadata.model import RelationType
from metadata.search import SearchIndex
from metadata.search.index import _descendants, _name_dependents
from metadata.store import PendingChange, Writer

#: Nodes whose documents are rebuilt per batch (a few queries each, whatever the batch).
BATCH = 5_000


@dataclass
class _Touched:
    changed: set[str] = field(default_factory=set)
    created: set[str] = field(default_factory=set)
    renamed: set[str] = field(default_factory=set)
    moved: set[str] = field(default_factory=set)


class IndexUpkeep:
    """``SearchIndex.update`` as a ``PartialHook``: the same documents, whatever the parts.

    What it keeps between flushes is ids only. A node created in the transaction is left out
    of the PART_OF sources whose descendants are looked up: every child of a new node joined
    it by a relation of the same transaction, so it is changed (and, a PART_OF source itself,
    followed) already. That spares a bulk load a walk down the whole hierarchy it wrote.
    """

    def __init__(self, index: SearchIndex) -> None:
        self.index = index

    async def collect(self, writer: Writer, changes: Sequence[PendingChange]) -> None:
        """Note the nodes whose documents the changes touch."""
        t: _Touched = writer.scratch.setdefault(self, _Touched())
        for p in changes:
            if p.target == "node":
                t.changed.add(p.target_id)
                if p.op == "create":
                    t.created.add(p.target_id)
                elif p.op == "update" and (p.before or {}).get("name") != (p.after or {}).get(
                    "name"
                ):
                    t.renamed.add(p.target_id)
            elif p.op != "update":  # a relation's properties are not indexed
                src, rtype, dst = p.target_id.split("|", 2)
                t.changed.add(src)
                t.changed.add(dst)
                if rtype == RelationType.PART_OF.value:
                    t.moved.add(src)

    async def finish(self, writer: Writer) -> None:
        """Rewrite the documents of every node noted, ``BATCH`` at a time."""
        t: _Touched | None = writer.scratch.pop(self, None)
        if t is None:
            return
        changed = t.changed
        if t.renamed:
            changed |= await _name_dependents(writer, t.renamed)
        moved = t.moved - t.created
        if moved:
            changed |= await _descendants(writer, moved)
        ids = sorted(changed)
        for i in range(0, len(ids), BATCH):
            await self.index.index_nodes(writer, ids[i : i + BATCH])

    async def __call__(self, writer: Writer) -> None:
        """The hook of a transaction that never flushed."""
        await self.collect(writer, writer.pending)
        await self.finish(writer)


__all__ = ["BATCH", "IndexUpkeep"]

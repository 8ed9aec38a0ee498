"""Export the whole catalog as a document that ``apply`` reproduces.

With ``demo_data_dir``, source locations inside that directory are written portably, as
``{demo_data_dir}/...`` (see :mod:`catalog.locations`), so the export works on another machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from catalog.locations import portable_properties
from metadata.model import Kind, NodeRecord
from metadata.store import Store


async def export_document(
    store: Store,
    *,
    demo_data_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """The catalog as a catalog document: teams first, then every node and relation.

    ``progress(done, total)`` is told about the items (nodes, then relations) as they are
    written out. With ``as_of``, the catalog as it stood at that instant, from its history
    (``catalog.changes.asof``)."""
    if as_of is not None:
        from catalog.changes.asof import TimeTravel

        past = TimeTravel(store)
        state = await past.state_at(await past.resolve(as_of, "--as-of"))
        nodes, relations = state.records(), state.relation_records()
    else:
        async with store.read() as r:
            nodes = await r.all_nodes()
            relations = await r.all_relations()
    nodes.sort(key=lambda n: (n.kind is not Kind.TEAM, n.id))
    total = len(nodes) + len(relations)
    say = progress or (lambda _done, _total: None)
    say(0, total)
    out_nodes = []
    for i, node in enumerate(nodes, 1):
        out_nodes.append(_node_content(node, demo_data_dir))
        if i % 1000 == 0:
            say(i, total)
    out_relations = []
    for i, relation in enumerate(relations, len(nodes) + 1):
        out_relations.append(relation.content())
        if i % 1000 == 0:
            say(i, total)
    say(total, total)
    return {"nodes": out_nodes, "relations": out_relations}


def _node_content(node: NodeRecord, demo_data_dir: Path | None) -> dict[str, Any]:
    content = node.content()
    if demo_data_dir is not None and node.kind is Kind.SOURCE and node.properties:
        properties = portable_properties(node.properties, demo_data_dir)
        if properties is not node.properties:
            content["properties"] = properties
    return content


def dump_document(doc: dict[str, Any], fmt: str) -> str:
    """Serialize a catalog document as ``yaml`` or ``json``."""
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


__all__ = ["dump_document", "export_document"]

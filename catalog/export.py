"""Export the whole catalog as a document that ``apply`` reproduces."""

from __future__ import annotations

import json
from typing import Any

import yaml

from metadata.model import Kind
from metadata.store import Store


async def export_document(store: Store) -> dict[str, Any]:
    """The catalog as a catalog document: teams first, then every node and relation."""
    async with store.read() as r:
        nodes = await r.all_nodes()
        relations = await r.all_relations()
    nodes.sort(key=lambda n: (n.kind is not Kind.TEAM, n.id))
    return {
        "nodes": [n.content() for n in nodes],
        "relations": [r.content() for r in relations],
    }


def dump_document(doc: dict[str, Any], fmt: str) -> str:
    """Serialize a catalog document as ``yaml`` or ``json``."""
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


__all__ = ["dump_document", "export_document"]

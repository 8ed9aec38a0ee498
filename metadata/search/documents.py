"""The search document of a node: what is indexed, and which related names go into it.

Each node has one document: its name, key, tags, description, the names and classifications of
its attributes, and the names of a few related nodes (a capability carries the names of the
systems that PROVIDE it, see ``NAME_FROM_SOURCE``/``NAME_FROM_TARGET``), plus what filters,
facets and ranking tiers need (kind, lifecycle, owner, tags, domains, normalized name and key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from metadata.model import Kind, NodeRecord, RelationRecord, RelationType
from metadata.search.query import words

#: Deepest PART_OF chain followed to find a node's domain (the hierarchy is a few levels).
MAX_HIERARCHY_DEPTH = 64

#: For a relation ``a -[T]-> b`` with T here, b's name is indexed into a's document.
NAME_FROM_TARGET = frozenset(
    {RelationType.PART_OF, RelationType.REPRESENTS, RelationType.SERVED_BY}
)
#: For a relation ``a -[T]-> b`` with T here, a's name is indexed into b's document.
NAME_FROM_SOURCE = frozenset({RelationType.PROVIDES, RelationType.MASTERS, RelationType.STORES})
#: Kinds whose domain is inherited from their ancestors of the same kind (PART_OF chains).
HIERARCHICAL = frozenset({Kind.CAPABILITY.value, Kind.SYSTEM.value})

#: Separates the values of a document's multi-valued columns (tags, domains).
SEP = "\x1f"

_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def kind_of(node_id: str) -> str:
    """The kind prefix of a node id (``system`` for ``system:crm``)."""
    return node_id.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class SearchDoc:
    """The indexed form of one node: word lists per column, plus what filters and tiers need."""

    node_id: str
    kind: str
    lifecycle: str
    owner_id: str | None
    name_norm: str
    key_norm: str
    leaf_norm: str
    name: str
    key: str
    tags: tuple[str, ...]
    body: str
    attributes: str
    related: str
    related_names: str
    domains: tuple[str, ...]

    def row(self) -> dict[str, Any]:
        """Bind parameters for the backends' insert statements."""
        return {
            "node_id": self.node_id,
            "kind": self.kind,
            "lifecycle": self.lifecycle,
            "owner_id": self.owner_id,
            "name_norm": self.name_norm,
            "key_norm": self.key_norm,
            "leaf_norm": self.leaf_norm,
            "name": self.name,
            "key": self.key,
            "tag_words": _joined(" ".join(self.tags)),
            "body": self.body,
            "attributes": self.attributes,
            "related": self.related,
            "related_names": self.related_names,
            "tag_list": SEP.join(self.tags),
            "domain_list": SEP.join(self.domains),
        }


@dataclass(frozen=True, slots=True)
class DocRow:
    """What the in-memory projection keeps of one stored document (facets, filters, tiers)."""

    doc_id: int
    node_id: str
    kind: str
    lifecycle: str
    owner_id: str | None
    tags: tuple[str, ...]
    domains: tuple[str, ...]
    name_norm: str
    key_norm: str
    leaf_norm: str


def split_list(value: str | None) -> tuple[str, ...]:
    """The values of a multi-valued column (``SEP``-joined)."""
    return tuple(value.split(SEP)) if value else ()


def _joined(value: str) -> str:
    return " ".join(words(value))


def attribute_words(attributes: Iterable[dict[str, Any]]) -> str:
    """Attribute names (also split at camelCase humps) and their classifications."""
    out: list[str] = []
    for a in attributes:
        name = str(a.get("name") or "")
        split = _HUMP.sub(" ", name)
        out.append(name if split == name else f"{name} {split}")
        if a.get("classification"):
            out.append(str(a["classification"]))
    return _joined(" ".join(out))


def build_doc(rec: NodeRecord, related_names: Sequence[str], domains: Iterable[str]) -> SearchDoc:
    """The search document of a node, given the names of its related nodes and its domains."""
    leaf = _joined(rec.key.rsplit(".", 1)[-1])
    name = _joined(rec.name)
    return SearchDoc(
        node_id=rec.id,
        kind=rec.kind.value,
        lifecycle=rec.lifecycle.value,
        owner_id=rec.owner,
        name_norm=name,
        key_norm=_joined(rec.key),
        leaf_norm=leaf,
        # The key's last segment counts as part of the name: "crm" finds a "Salesforce" system
        # keyed crm among the name matches.
        name=name if set(leaf.split()) <= set(name.split()) else f"{name} {leaf}",
        key=_joined(rec.key),
        tags=tuple(dict.fromkeys(rec.tags)),
        body=_joined(rec.description or ""),
        attributes=attribute_words(rec.attributes),
        related=_joined(" ".join(related_names)),
        related_names="; ".join(related_names),
        domains=tuple(sorted(set(domains))),
    )


def related_ids(node_id: str, rels: Iterable[RelationRecord]) -> list[str]:
    """Ids of the nodes whose names go into ``node_id``'s document (domains excluded)."""
    out: dict[str, None] = {}
    for r in rels:
        if r.from_id == node_id and r.type in NAME_FROM_TARGET:
            other = r.to_id
        elif r.to_id == node_id and r.type in NAME_FROM_SOURCE:
            other = r.from_id
        else:
            continue
        if kind_of(other) != Kind.DOMAIN.value and other != node_id:
            out[other] = None
    return list(out)


def domains_of(node_id: str, parents: dict[str, list[str]]) -> set[str]:
    """Domains a node is PART_OF, for capabilities and systems also through their ancestors."""
    kind = kind_of(node_id)
    found: set[str] = set()
    seen = {node_id}
    frontier = [node_id]
    for _ in range(MAX_HIERARCHY_DEPTH):
        nxt = []
        for n in frontier:
            for p in parents.get(n, ()):
                if kind_of(p) == Kind.DOMAIN.value:
                    found.add(p)
                elif kind in HIERARCHICAL and kind_of(p) == kind and p not in seen:
                    seen.add(p)
                    nxt.append(p)
        if not nxt:
            break
        frontier = nxt
    return found


__all__ = [
    "HIERARCHICAL",
    "MAX_HIERARCHY_DEPTH",
    "NAME_FROM_SOURCE",
    "NAME_FROM_TARGET",
    "SEP",
    "DocRow",
    "SearchDoc",
    "attribute_words",
    "build_doc",
    "domains_of",
    "kind_of",
    "related_ids",
    "split_list",
]

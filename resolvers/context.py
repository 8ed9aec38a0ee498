"""Per-request context: the catalog services and one set of dataloaders per request."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strawberry.dataloader import DataLoader
from strawberry.types import Info

from metadata.model import NodeRecord, RelationRecord

if TYPE_CHECKING:
    from catalog.services import Services


def _group(rels: Sequence[RelationRecord], attr: str) -> dict[str, list[RelationRecord]]:
    out: dict[str, list[RelationRecord]] = defaultdict(list)
    for r in rels:
        out[getattr(r, attr)].append(r)
    return out


@dataclass
class Loaders:
    """Dataloaders that batch every nested lookup of one request into one query per level."""

    services: Services
    node: DataLoader[str, NodeRecord | None] = field(init=False)
    out_rels: DataLoader[str, list[RelationRecord]] = field(init=False)
    in_rels: DataLoader[str, list[RelationRecord]] = field(init=False)
    owned: DataLoader[str, list[NodeRecord]] = field(init=False)

    def __post_init__(self) -> None:
        d = self.services.discovery

        async def load_nodes(ids: list[str]) -> list[NodeRecord | None]:
            found = await d.get_nodes(ids)
            return [found.get(i) for i in ids]

        async def load_out(ids: list[str]) -> list[list[RelationRecord]]:
            grouped = _group(await d.relations_from(ids), "from_id")
            return [grouped.get(i, []) for i in ids]

        async def load_in(ids: list[str]) -> list[list[RelationRecord]]:
            grouped = _group(await d.relations_to(ids), "to_id")
            return [grouped.get(i, []) for i in ids]

        async def load_owned(ids: list[str]) -> list[list[NodeRecord]]:
            by_owner: dict[str, list[NodeRecord]] = defaultdict(list)
            for n in await d.owned_by(ids):
                if n.owner is not None:
                    by_owner[n.owner].append(n)
            return [by_owner.get(i, []) for i in ids]

        self.node = DataLoader(load_fn=load_nodes)
        self.out_rels = DataLoader(load_fn=load_out)
        self.in_rels = DataLoader(load_fn=load_in)
        self.owned = DataLoader(load_fn=load_owned)


@dataclass
class Context:
    """What every resolver gets as ``info.context``."""

    services: Services
    loaders: Loaders
    request: Any = None
    response: Any = None


def make_context(services: Services, request: Any = None, response: Any = None) -> Context:
    """A fresh context (and fresh dataloaders) for one request."""
    return Context(services, Loaders(services), request, response)


CatalogInfo = Info[Context, None]

__all__ = ["CatalogInfo", "Context", "Loaders", "make_context"]

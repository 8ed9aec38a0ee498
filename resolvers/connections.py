"""Relay connections over paged node listings."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import strawberry
from strawberry.types.nodes import SelectedField

from catalog.answers import AnswerPage
from catalog.discovery import Page, encode_cursor
from metadata.model import NodeRecord
from resolvers.context import CatalogInfo, group_touching
from resolvers.paging import PageInfo
from resolvers.types import Capability, CatalogNode, DataEntity, System, as_node

#: A connection type.
C = TypeVar("C")


@strawberry.type
class NodeEdge:
    cursor: str
    node: CatalogNode


@strawberry.type
class NodeConnection:
    edges: list[NodeEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class SystemEdge:
    cursor: str
    node: System


@strawberry.type
class SystemConnection:
    edges: list[SystemEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class CapabilityEdge:
    cursor: str
    node: Capability


@strawberry.type
class CapabilityConnection:
    edges: list[CapabilityEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class DataEntityEdge:
    cursor: str
    node: DataEntity


@strawberry.type
class DataEntityConnection:
    edges: list[DataEntityEdge]
    page_info: PageInfo
    total_count: int


#: Node fields answered from the node's own row; any other selected field needs relations.
OWN_FIELDS = frozenset(
    {"__typename", "id", "kind", "key", "name", "description", "tags", "lifecycle",
     "properties", "version", "createdAt", "updatedAt", "attributes", "order"}
)  # fmt: skip


def _selections(fields: Sequence[Any]) -> Iterator[Any]:
    for f in fields:
        if isinstance(f, SelectedField):
            yield f
        else:  # fragment spread or inline fragment
            yield from _selections(f.selections)


def wants_relations(info: CatalogInfo) -> bool:
    """Whether ``edges { node { ... } }`` of this connection selects relation-backed fields."""
    for top in _selections(info.selected_fields):
        for edges in _selections(top.selections):
            if edges.name != "edges":
                continue
            for node in _selections(edges.selections):
                if node.name == "node" and any(
                    f.name not in OWN_FIELDS for f in _selections(node.selections)
                ):
                    return True
    return False


async def prefetch(info: CatalogInfo, recs: Sequence[NodeRecord]) -> None:
    """Have the relations of a page's nodes and the nodes at their other ends at hand, so that
    the nested relation fields resolve synchronously: from the graph projection and the node
    cache when the catalog keeps them (one statement for the nodes not cached yet), else in
    two batched statements into this request's dataloaders."""
    loaders = info.context.loaders
    discovery = info.context.services.discovery
    known = {r.id: r for r in recs}
    ids: set[str] = {r.owner for r in recs if r.owner}
    page_ids = [r.id for r in recs]
    projected = [discovery.touching_now(i) for i in page_ids]
    if all(t is not None for t in projected):
        for t in projected:
            assert t is not None
            ids.update(r.to_id for r in t.out)
            ids.update(r.from_id for r in t.into)
    else:
        # Straight to the services and into the loaders' caches: going through load_many
        # would cost a future and a callback per key, a good part of a wide query's time.
        rels = await discovery.relations_touching(page_ids)
        loaders.rels.prime_many(group_touching(rels, page_ids))
        ids.update(r.to_id for r in rels)
        ids.update(r.from_id for r in rels)
    loaders.node.prime_many({i: r for i, r in known.items() if discovery.cached(i) is None})
    missing = sorted(i for i in ids - known.keys() if discovery.cached(i) is None)
    if missing:
        found = await discovery.get_nodes(missing)
        loaders.node.prime_many({**found, **{i: None for i in missing if i not in found}})


def page_info(page: Page, after: str | None) -> PageInfo:
    """Relay page info of a page that started after ``after``."""
    items = page.items
    return PageInfo(
        has_next_page=page.has_next,
        has_previous_page=after is not None,
        start_cursor=encode_cursor(items[0].id) if items else None,
        end_cursor=encode_cursor(items[-1].id) if items else None,
    )


def connection(conn_cls: type[Any], edge_cls: type[Any], page: Page, after: str | None) -> Any:
    """Build a connection of ``conn_cls`` from a page of nodes."""
    return conn_cls(
        edges=[edge_cls(cursor=encode_cursor(n.id), node=as_node(n)) for n in page.items],
        page_info=page_info(page, after),
        total_count=page.total,
    )


def answer_connection(
    conn_cls: Callable[..., C],
    edge_cls: Callable[..., Any],
    page: AnswerPage[Any],
    wrap: Callable[[Any], Any],
) -> C:
    """Build a connection of ``conn_cls`` from a page of a graph answer (``catalog.answers``),
    each item wrapped in its GraphQL type by ``wrap`` (None: left out, its cursor kept)."""
    edges = []
    for i, item in enumerate(page.items):
        node = wrap(item)
        if node is not None:
            edges.append(edge_cls(cursor=page.cursor(i), node=node))
    last = len(page.items) - 1
    return conn_cls(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.start > 0,
            start_cursor=page.cursor(0) if page.items else None,
            end_cursor=page.cursor(last) if page.items else None,
        ),
        total_count=page.total,
    )


__all__ = [
    "CapabilityConnection",
    "DataEntityConnection",
    "NodeConnection",
    "PageInfo",
    "SystemConnection",
    "answer_connection",
    "connection",
]

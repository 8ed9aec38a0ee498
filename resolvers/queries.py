"""Query root of the catalog: lookups and paged listings."""

from __future__ import annotations

import strawberry

from metadata import model
from metadata.store import NodeFilter
from resolvers._fields import field
from resolvers.connections import (
    CapabilityConnection,
    CapabilityEdge,
    DataEntityConnection,
    DataEntityEdge,
    NodeConnection,
    NodeEdge,
    SystemConnection,
    SystemEdge,
    connection,
    prefetch,
    wants_relations,
)
from resolvers.context import CatalogInfo
from resolvers.enums import Kind, Lifecycle
from resolvers.history import ChangeRecord
from resolvers.timetravel import UNSET, AsOf, enter_past, past_node
from resolvers.types import CatalogNode, node_by_id


@strawberry.type
class CatalogQuery:
    """Discovery of the catalog's nodes."""

    @field(description="A node by id, or null when there is none.")
    def node(self, info: CatalogInfo, id: strawberry.ID, as_of: AsOf = UNSET) -> CatalogNode | None:
        model.parse_id(str(id), field="id")
        if as_of:
            return past_node(info, str(id), as_of)
        return node_by_id(info, str(id))

    @field(description="Nodes filtered by kind, tag (any of) and lifecycle, by id.")
    async def nodes(
        self,
        info: CatalogInfo,
        kinds: list[Kind] | None = None,
        tags: list[str] | None = None,
        lifecycle: list[Lifecycle] | None = None,
        first: int | None = 50,
        after: str | None = None,
        as_of: AsOf = UNSET,
    ) -> NodeConnection:
        if as_of:
            await enter_past(info, as_of)
        flt = NodeFilter(kinds=kinds or (), tags=tags or (), lifecycle=lifecycle or ())
        page = await info.context.services.discovery.page(flt, first=first, after=after)
        if wants_relations(info):
            await prefetch(info, page.items)
        answer: NodeConnection = connection(NodeConnection, NodeEdge, page, after)
        return answer

    @field(description="Systems, by id.")
    async def systems(
        self,
        info: CatalogInfo,
        first: int | None = 50,
        after: str | None = None,
        as_of: AsOf = UNSET,
    ) -> SystemConnection:
        if as_of:
            await enter_past(info, as_of)
        flt = NodeFilter(kinds=(model.Kind.SYSTEM,))
        page = await info.context.services.discovery.page(flt, first=first, after=after)
        if wants_relations(info):
            await prefetch(info, page.items)
        answer: SystemConnection = connection(SystemConnection, SystemEdge, page, after)
        return answer

    @field(description="Capabilities, by id.")
    async def capabilities(
        self,
        info: CatalogInfo,
        first: int | None = 50,
        after: str | None = None,
        as_of: AsOf = UNSET,
    ) -> CapabilityConnection:
        if as_of:
            await enter_past(info, as_of)
        flt = NodeFilter(kinds=(model.Kind.CAPABILITY,))
        page = await info.context.services.discovery.page(flt, first=first, after=after)
        if wants_relations(info):
            await prefetch(info, page.items)
        answer: CapabilityConnection = connection(CapabilityConnection, CapabilityEdge, page, after)
        return answer

    @field(description="Data entities, by id.")
    async def data_entities(
        self,
        info: CatalogInfo,
        first: int | None = 50,
        after: str | None = None,
        as_of: AsOf = UNSET,
    ) -> DataEntityConnection:
        if as_of:
            await enter_past(info, as_of)
        flt = NodeFilter(kinds=(model.Kind.DATA_ENTITY,))
        page = await info.context.services.discovery.page(flt, first=first, after=after)
        if wants_relations(info):
            await prefetch(info, page.items)
        answer: DataEntityConnection = connection(DataEntityConnection, DataEntityEdge, page, after)
        return answer

    @field(description="Recorded changes of a node, newest first.")
    async def history(
        self, info: CatalogInfo, id: strawberry.ID, first: int | None = 20
    ) -> list[ChangeRecord]:
        model.parse_id(str(id), field="id")
        changes = await info.context.services.discovery.history(
            str(id), first=20 if first is None else first
        )
        return [ChangeRecord.from_model(c) for c in changes]


__all__ = ["CatalogQuery"]

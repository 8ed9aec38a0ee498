"""Relay connections over paged node listings."""

from __future__ import annotations

from typing import Any

import strawberry

from catalog.discovery import Page, encode_cursor
from resolvers.paging import PageInfo
from resolvers.types import Capability, CatalogNode, DataEntity, System, as_node


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


__all__ = [
    "CapabilityConnection",
    "DataEntityConnection",
    "NodeConnection",
    "PageInfo",
    "SystemConnection",
    "connection",
]

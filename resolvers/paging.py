"""Relay page information, shared by every connection type."""

from __future__ import annotations

import strawberry


@strawberry.federation.type(
    shareable=True, description="Relay page information (shareable with other subgraphs)."
)
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


__all__ = ["PageInfo"]

"""The connector extension point: how the hub reads live records from a source system."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class SourceRef:
    """A registered source as the data plane needs it (from the Source node's properties)."""

    id: str
    type: str  # SQL | OPENAPI | REST | GRAPHQL
    location: str
    credentials_env: str | None = None
    base_url: str | None = None


@dataclass(frozen=True)
class Target:
    """What to read: a physical entity in one source, and the physical columns wanted."""

    entity: str
    source: SourceRef
    container: str  # table name, REST path or GraphQL field
    columns: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Query:
    """Equality conditions (physical column -> value) and ``column IN keys`` for batched lookups."""

    equals: Mapping[str, Scalar] = field(default_factory=dict)
    key_column: str | None = None
    keys: Sequence[Scalar] = ()
    limit: int = 10_000


class SourceConnector(Protocol):
    """Reads rows of one physical entity from one kind of source."""

    async def fetch(self, target: Target, query: Query) -> list[dict[str, Any]]:
        """Rows as physical column -> value; raise SourceUnavailableError or BadSourceDataError."""
        ...

    async def close(self) -> None:
        """Release connections and clients."""
        ...


__all__ = ["Query", "Scalar", "SourceConnector", "SourceRef", "Target"]

"""The connector extension point: how the hub reads live records from a source system."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from metadata.errors import NotAllowedError

Scalar = str | int | float | bool | None
#: Only environment variables with this prefix may be sent to sources (same as harvesting).
CREDENTIALS_PREFIX = "CAPAHUB_CRED_"


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


def check_credentials_env(source: SourceRef, *, trusted: bool) -> str | None:
    """The secret named by ``credentialsEnv``; through the API only ``CAPAHUB_CRED_*`` names,
    so editing a source can never make the hub send one of its own settings elsewhere."""
    env = source.credentials_env
    if not env:
        return None
    if not trusted and not env.startswith(CREDENTIALS_PREFIX):
        raise NotAllowedError(
            f"{source.id}: credentialsEnv {env!r} does not start with {CREDENTIALS_PREFIX}; "
            "the hub only sends variables of that prefix",
            source=source.id,
        )
    return os.environ.get(env)


class SourceConnector(Protocol):
    """Reads rows of one physical entity from one kind of source."""

    async def fetch(self, target: Target, query: Query) -> list[dict[str, Any]]:
        """Rows as physical column -> value; raise SourceUnavailableError or BadSourceDataError."""
        ...

    async def close(self) -> None:
        """Release connections and clients."""
        ...


__all__ = [
    "CREDENTIALS_PREFIX",
    "Query",
    "Scalar",
    "SourceConnector",
    "SourceRef",
    "Target",
    "check_credentials_env",
]

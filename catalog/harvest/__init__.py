"""Harvesting: read OpenAPI, GraphQL, SQL and Backstage sources into the catalog as a diff."""

from __future__ import annotations

from catalog.harvest.base import (
    BatchBuilder,
    HarvestBatch,
    HarvestContext,
    Harvester,
    SourceSpec,
    SourceType,
)
from catalog.harvest.fetch import Fetcher, FetchPolicy
from catalog.harvest.service import (
    API_CREDENTIALS_PREFIX,
    HarvestReport,
    HarvestService,
    default_harvesters,
    source_key_for,
)

__all__ = [
    "API_CREDENTIALS_PREFIX",
    "BatchBuilder",
    "FetchPolicy",
    "Fetcher",
    "HarvestBatch",
    "HarvestContext",
    "HarvestReport",
    "HarvestService",
    "Harvester",
    "SourceSpec",
    "SourceType",
    "default_harvesters",
    "source_key_for",
]

"""The metadata repository: metamodel, persistence and history; no HTTP, no GraphQL."""

from metadata.errors import CatalogError
from metadata.model import Direction, Kind, Lifecycle, NodeRecord, RelationRecord, RelationType
from metadata.store import Store

__all__ = [
    "CatalogError",
    "Direction",
    "Kind",
    "Lifecycle",
    "NodeRecord",
    "RelationRecord",
    "RelationType",
    "Store",
]

"""The metadata repository: metamodel, persistence and history; no HTTP, no GraphQL.

The names below are imported on first use (PEP 562), so that importing a light submodule
(``metadata.errors``) does not load the store and SQLAlchemy with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metadata.errors import CatalogError
    from metadata.model import (
        Direction,
        Kind,
        Lifecycle,
        NodeRecord,
        RelationRecord,
        RelationType,
    )
    from metadata.store import Store

_LAZY = {
    "CatalogError": "metadata.errors",
    "Direction": "metadata.model",
    "Kind": "metadata.model",
    "Lifecycle": "metadata.model",
    "NodeRecord": "metadata.model",
    "RelationRecord": "metadata.model",
    "RelationType": "metadata.model",
    "Store": "metadata.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'metadata' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


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

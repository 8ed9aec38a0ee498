"""What the hub does with the repository: registration, discovery, settings, app and CLI.

The names below are imported on first use (PEP 562): ``import catalog.cli`` (every
``capahub`` command, ``--version`` included) then no longer pays for the registry, the
services and SQLAlchemy before it knows what it is asked.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalog.registry import ApplyReport, Registry
    from catalog.services import Services
    from catalog.settings import Settings

_LAZY = {
    "ApplyReport": "catalog.registry",
    "Registry": "catalog.registry",
    "Services": "catalog.services",
    "Settings": "catalog.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'catalog' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["ApplyReport", "Registry", "Services", "Settings"]

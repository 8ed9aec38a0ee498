"""The explorer: the hub's web interface at ``/``, static pages over the public GraphQL API."""

from __future__ import annotations

from catalog.explorer.assets import EXPLORER_ASSETS, missing_explorer_assets
from catalog.explorer.routes import explorer_routes

__all__ = ["EXPLORER_ASSETS", "explorer_routes", "missing_explorer_assets"]

"""The bundle of catalog services one running hub shares across requests."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.discovery import Discovery
from catalog.registry import Registry
from catalog.settings import Settings
from metadata.store import Store


@dataclass
class Services:
    """Store plus the services built on it; made once by the composition root."""

    settings: Settings
    store: Store
    registry: Registry
    discovery: Discovery

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        """Open the database (migrating it) and build the services on it."""
        store = await Store.open(settings.database_url)
        return cls(
            settings=settings,
            store=store,
            registry=Registry(store),
            discovery=Discovery(store, max_page_size=settings.max_page_size),
        )

    async def close(self) -> None:
        """Release the database connections."""
        await self.store.close()


__all__ = ["Services"]

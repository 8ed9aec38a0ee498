"""The bundle of catalog services one running hub shares across requests."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.analysis import GraphAnalysis
from catalog.discovery import Discovery
from catalog.harvest import HarvestService
from catalog.registry import Registry
from catalog.search import Search
from catalog.settings import Settings
from catalog.sources import RecordService
from metadata.graph import CatalogGraph
from metadata.store import Store


@dataclass
class Services:
    """Store plus the services built on it; made once by the composition root."""

    settings: Settings
    store: Store
    registry: Registry
    discovery: Discovery
    graph: CatalogGraph
    analysis: GraphAnalysis
    harvest: HarvestService
    search: Search
    records: RecordService

    @classmethod
    async def start(cls, settings: Settings, *, projections: bool = True) -> Services:
        """Open the database (migrating it) and build the services on it.

        With ``projections`` (the server), the graph projection is loaded and follows every
        commit; one-shot CLI commands leave it empty.
        """
        store = await Store.open(settings.database_url)
        search = Search(store, max_page_size=settings.max_page_size)
        search.attach()  # the index is written in the same transaction as every change
        await search.ensure_built()
        graph = CatalogGraph()
        if projections:
            await graph.load(store)
            graph.attach(store)
            await search.warm()
        discovery = Discovery(store, max_page_size=settings.max_page_size)
        if projections:
            discovery.enable_cache(graph)
        return cls(
            settings=settings,
            store=store,
            registry=Registry(store),
            discovery=discovery,
            graph=graph,
            analysis=GraphAnalysis(graph, time_budget=settings.graph_time_budget),
            harvest=HarvestService(store, settings),
            search=search,
            records=RecordService(
                store,
                timeout=settings.source_timeout,
                catalog_version=(lambda: graph.version) if projections else None,
            ),
        )

    async def sync(self) -> int:
        """Catch up with changes other processes committed; returns how many were applied."""
        return await self.graph.sync(self.store)

    async def close(self) -> None:
        """Release the database connections and the source connectors."""
        await self.records.close()
        await self.store.close()


__all__ = ["Services"]

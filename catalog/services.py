"""The bundle of catalog services one running hub shares across requests."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from catalog.access.authenticate import Authenticator
from catalog.access.tokens import HubTokens
from catalog.registry import Registry
from catalog.search import Search
from catalog.settings import Settings
from metadata.store import Change, ChangeNotifications, Store

# The rest is imported where the full bundle is built: `capahub apply` needs only the write
# path, and graph analysis (scipy), harvesting (httpx, graphql) and the connectors took half a
# second of its start.
if TYPE_CHECKING:
    from catalog.analysis import GraphAnalysis
    from catalog.changes.asof import TimeTravel
    from catalog.changes.delivery import DeliveryWorker
    from catalog.changes.diff import CatalogDiffs
    from catalog.changes.feed import ChangeFeed
    from catalog.changes.webhooks import WebhookService
    from catalog.discovery import Discovery
    from catalog.harvest import HarvestService
    from catalog.harvest.fetch import FetchPolicy
    from catalog.sources import RecordService
    from metadata.graph import CatalogGraph
    from metadata.search.snapshot import SearchSnapshotter
    from metadata.snapshot import GraphSnapshotter

log = logging.getLogger("capahub")


@dataclass
class WriteServices:
    """The write path alone: the store, its search index hook, the registry (`capahub apply`)."""

    store: Store
    search: Search
    registry: Registry

    @classmethod
    async def start(cls, settings: Settings) -> WriteServices:
        """Open the database (migrating it), hook the search index into every write
        transaction and rebuild the index if it is incomplete."""
        store = await Store.open(settings.database_url, write_wait=settings.write_wait)
        try:
            search = Search(
                store, max_page_size=settings.max_page_size, cache_mb=settings.search_cache_mb
            )
            search.attach()  # the index is written in the same transaction as every change
            await search.ensure_built()
        except BaseException:
            await store.close()
            raise
        return cls(store=store, search=search, registry=Registry(store))

    async def close(self) -> None:
        """Release the database connections (the search's own too)."""
        self.search.close()
        await self.store.close()


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
    tokens: HubTokens
    auth: Authenticator
    webhooks: WebhookService
    #: The webhook delivery worker; started by the server only (``start_delivery``), so the
    #: CLI's one-shot commands never deliver.
    delivery: DeliveryWorker | None = None
    #: Reads the graph projection from its snapshot file at start and writes new ones
    #: (None: snapshots are off, or a one-shot CLI command).
    snapshots: GraphSnapshotter | None = None
    #: The same for the search projection (beside the graph's, in the same directory).
    search_snapshots: SearchSnapshotter | None = None
    _synced_at: float = field(default=0.0, init=False)
    _notifications: ChangeNotifications | None = field(default=None, init=False)
    _seen: int = field(default=0, init=False)
    _waking: asyncio.Task[None] | None = field(default=None, init=False)

    @classmethod
    async def start(cls, settings: Settings, *, projections: bool = True) -> Services:
        """Open the database (migrating it) and build the services on it.

        With ``projections`` (the server), the graph projection is loaded and follows every
        commit; one-shot CLI commands leave it empty.
        """
        from catalog.analysis import GraphAnalysis
        from catalog.changes.webhooks import WebhookService
        from catalog.discovery import Discovery
        from catalog.harvest import HarvestService
        from catalog.sources import RecordService
        from catalog.workers import Workers
        from metadata.graph import CatalogGraph

        writing = await WriteServices.start(settings)
        store, search = writing.store, writing.search
        graph = CatalogGraph()
        snapshots = search_snapshots = None
        if projections:
            directory = _snapshot_dir(settings)
            snapshots = _graph_snapshotter(settings, directory, graph, store)
            if snapshots is not None:
                await snapshots.start()  # the snapshot plus what followed, or the tables
            else:
                await graph.load(store)
            graph.attach(store)
            search_snapshots = _search_snapshotter(settings, directory, search)
            if search_snapshots is not None:
                await search_snapshots.load()  # then warmed as always: the documents after it
            await search.warm()
        discovery = Discovery(store, max_page_size=settings.max_page_size)
        if projections:
            discovery.enable_cache(graph)
        # Verified hub tokens are trusted for one sync interval: a revocation by another
        # process (the CLI, a replica) takes effect within it; one by this process at once.
        tokens = HubTokens(store, cache_ttl=settings.sync_interval)
        services = cls(
            settings=settings,
            store=store,
            registry=writing.registry,
            discovery=discovery,
            graph=graph,
            # Graph questions run on these threads (started on first use), off the event loop.
            analysis=GraphAnalysis(
                graph,
                time_budget=settings.graph_time_budget,
                workers=Workers(settings.graph_workers, name="capahub-graph"),
            ),
            harvest=HarvestService(store, settings),
            search=search,
            records=RecordService(
                store,
                timeout=settings.source_timeout,
                catalog_version=(lambda: graph.version) if projections else None,
                policy=_live_data_policy(settings),
            ),
            tokens=tokens,
            auth=Authenticator.from_settings(settings, tokens),
            webhooks=WebhookService(store, settings),
            snapshots=snapshots,
            search_snapshots=search_snapshots,
        )
        if projections:
            await services.follow_changes()
            if snapshots is not None:
                snapshots.run()
            if search_snapshots is not None:
                search_snapshots.run()
        return services

    @functools.cached_property
    def feed(self) -> ChangeFeed:
        """The change feed subscriptions read (``catalog.changes.feed``)."""
        from catalog.changes.feed import ChangeFeed, FeedLimits

        limits = FeedLimits(
            max_subscriptions=self.settings.subscriptions_max,
            queue=self.settings.subscription_queue,
            max_message_bytes=self.settings.subscription_max_message_bytes,
        )
        return ChangeFeed(self.store, limits)

    async def follow_changes(self) -> None:
        """Start the change feed; on PostgreSQL also the LISTEN connection through which any
        process's commit wakes the feed and the projections at once (no waiting for a poll)."""
        await self.feed.start()
        self.graph.follow(self._applied)
        self._notifications = self.store.listen(self._notified)
        if self._notifications is not None:
            self._notifications.start()

    def _applied(self, changes: Sequence[Change]) -> None:
        self._seen = max(self._seen, changes[-1].id)
        self.feed.wake()

    def _notified(self, last_id: int | None) -> None:
        self.feed.wake()
        if last_id is not None and last_id <= max(self._seen, self.graph.last_change):
            return  # this process's own commit, or one already synced
        if self._waking is None or self._waking.done():
            self._waking = asyncio.get_running_loop().create_task(self._sync_now())

    async def _sync_now(self) -> None:
        try:
            await self.sync()
        except Exception:  # the periodic sync will try again
            log.exception("catching up after a change notification failed")

    def follow_interval(self) -> float:
        """Seconds until the idle loop next looks at the change log: ``sync_interval``, or
        ``subscription_poll_interval`` while someone subscribes and no notification
        connection tells of other processes' commits."""
        interval = self.settings.sync_interval
        notified = self._notifications is not None and self._notifications.connected
        if not notified and "feed" in self.__dict__ and self.feed.subscriptions:
            return min(interval, self.settings.subscription_poll_interval)
        return interval

    @property
    def synced_at(self) -> float:
        """``time.monotonic()`` when the change log was last looked at (0: not yet)."""
        return self._synced_at

    async def sync(self) -> int:
        """Catch up with changes other processes committed; returns how many were applied."""
        self._synced_at = time.monotonic()
        applied = await self.graph.sync(self.store)
        self.timetravel.maintain()
        return applied

    @functools.cached_property
    def timetravel(self) -> TimeTravel:
        """The catalog at past instants (``asOf``), over the live projection."""
        from catalog.changes.asof import TimeTravel

        return TimeTravel(
            self.store,
            self.graph,
            cache_size=self.settings.asof_cache_size,
            snapshot_every=self.settings.snapshot_every,
        )

    @functools.cached_property
    def diffs(self) -> CatalogDiffs:
        """What changed between two instants (``catalogDiff``)."""
        from catalog.changes.diff import CatalogDiffs

        return CatalogDiffs(self.store)

    async def catch_up(self) -> None:
        """Before a request: catch up with other processes unless that was done moments ago.

        One indexed range query on the change log, at most every ``read_sync_interval``
        seconds, so a request sees what another process committed before it started (to within
        that interval) and never a node without the relations committed with it.
        """
        waking = self._waking
        if waking is not None and not waking.done():
            # another process's commit was announced (NOTIFY) and is being applied: one
            # bounded sync, and this request sees that commit whole
            await asyncio.shield(waking)
            return
        # Under load a sync can outlast the interval: then requests go on with the state a
        # moment old rather than queue behind the one sync in progress.
        if (
            time.monotonic() - self._synced_at >= self.settings.read_sync_interval
            and not self.graph.syncing
        ):
            await self.sync_if_changed()

    async def sync_if_changed(self) -> int:
        """``sync``, unless a synchronous look at the change log (SQLite) shows nothing new."""
        latest = self.store.last_change_id_now()
        if latest is not None and latest <= self.graph.last_change:
            self._synced_at = time.monotonic()
            return 0
        return await self.sync()

    async def start_delivery(self) -> None:
        """Start delivering webhooks from this process (the server's lifespan calls it)."""
        from catalog.changes.delivery import DeliveryWorker

        if self.delivery is None:
            self.delivery = DeliveryWorker.from_settings(self.store, self.settings)
            await self.delivery.start()

    async def close(self) -> None:
        """Stop the webhook worker and the graph workers' questions, release the database
        connections (the search's own too), the source connectors and the JWKS client."""
        if self.delivery is not None:
            await self.delivery.stop()
        if self.snapshots is not None:
            await self.snapshots.close()  # a last snapshot, while the database is open
        if self.search_snapshots is not None:
            await self.search_snapshots.close()
        if self.analysis.workers is not None:
            self.analysis.workers.close()
        if self._notifications is not None:
            await self._notifications.close()
        waking = self._waking  # a catch-up a notification started: let it return its connection
        if waking is not None and not waking.done():
            await asyncio.wait({waking}, timeout=5)
            if not waking.done():
                waking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waking
        if "feed" in self.__dict__:
            await self.feed.close()
        await self.auth.close()
        await self.records.close()
        self.search.close()
        await self.store.close()


def _snapshot_dir(settings: Settings) -> Path | None:
    """Where the projections' snapshots are kept (``projection_snapshot_dir``): by default
    beside a SQLite catalog file, none for other databases (replicas on PostgreSQL often have
    no disk of their own that outlives them: give them a directory that does)."""
    where = settings.projection_snapshot_dir.strip()
    if where.lower() == "off":
        return None
    if where:
        return Path(where).expanduser()
    url = make_url(settings.database_url)
    database = url.database or ""
    if not url.drivername.startswith("sqlite") or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):  # a URI (shared memory, options): no plain file
        return None
    db = Path(database)
    return (db.parent / f"{db.stem}-projections").expanduser()


def _graph_snapshotter(
    settings: Settings, directory: Path | None, graph: CatalogGraph, store: Store
) -> GraphSnapshotter | None:
    """The graph projection's snapshots in ``directory`` (None: off)."""
    from metadata.snapshot import GraphSnapshotter, ProjectionSnapshots

    if directory is None:
        return None
    files = ProjectionSnapshots(directory, settings.database_url)
    return GraphSnapshotter(files, graph, store, interval=settings.projection_snapshot_interval)


def _search_snapshotter(
    settings: Settings, directory: Path | None, search: Search
) -> SearchSnapshotter | None:
    """The search projection's snapshots in ``directory`` (None: off)."""
    from metadata.search.snapshot import SearchSnapshots, SearchSnapshotter

    if directory is None:
        return None
    return SearchSnapshotter(
        SearchSnapshots(directory, settings.database_url),
        search.projection,
        search.store,
        interval=settings.projection_snapshot_interval,
        with_text=search.memory_ranking,
    )


def _live_data_policy(settings: Settings) -> FetchPolicy:
    """What live-record connectors may reach: the API's harvest policy (allowed hosts, file
    roots), plus the directory of the demo's generated databases."""
    from catalog.demo import demo_data_dir
    from catalog.harvest.fetch import FetchPolicy

    policy = FetchPolicy.from_settings(settings, trusted=False)
    demo = demo_data_dir(settings).expanduser().resolve()
    return replace(policy, file_roots=(*policy.file_roots, demo))


__all__ = ["Services", "WriteServices"]

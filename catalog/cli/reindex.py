"""``capahub reindex``: rebuild the search index (recovery)."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from catalog.cli._common import CliError, DatabaseOption, settings_for
from catalog.search import Search
from metadata.errors import CatalogError
from metadata.store import Store


def reindex(database: DatabaseOption = None) -> None:
    """Drop the search index and index every node again, in one transaction."""
    settings = settings_for(database)
    console = Console(stderr=True)

    async def work() -> int:
        # The store directly, not Services.start: that would rebuild a stale index first.
        store = await Store.open(settings.database_url)
        try:
            with Progress(
                TextColumn("indexing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as progress:
                task = progress.add_task("indexing", total=None)

                def report(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                return await Search(store).rebuild(progress=report)
        finally:
            await store.close()

    started = time.perf_counter()
    try:
        count = asyncio.run(work())
    except CatalogError as err:
        raise CliError(err.message) from None
    console.print(f"indexed {count} nodes in {time.perf_counter() - started:.1f} s")

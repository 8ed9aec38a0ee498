"""``capahub reindex``: rebuild the search index (recovery)."""

from __future__ import annotations

import asyncio
import time

import typer

from catalog.cli._common import CliError, DatabaseOption, progress, settings_for
from metadata.errors import CatalogError


def reindex(database: DatabaseOption = None) -> None:
    """Drop the search index and index every node again, in one transaction."""
    from catalog.search import Search
    from metadata.store import Store

    settings = settings_for(database)

    async def work() -> int:
        # The store directly, not Services.start: that would rebuild a stale index first.
        store = await Store.open(settings.database_url)
        try:
            with progress("indexing") as task:

                def report(done: int, total: int) -> None:
                    task.update(completed=done, total=total)

                return await Search(store).rebuild(progress=report)
        finally:
            await store.close()

    started = time.perf_counter()
    try:
        count = asyncio.run(work())
    except CatalogError as err:
        raise CliError(err.message) from None
    typer.echo(f"indexed {count} nodes in {time.perf_counter() - started:.1f} s", err=True)

"""``capahub serve``: run the hub."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import typer
import uvicorn

from catalog.cli._common import DatabaseOption, settings_for


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port to listen on (8000).")] = None,
    database: DatabaseOption = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Load the demo landscape (idempotent) before serving.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker processes (1; env CAPAHUB_WORKERS). Each keeps its own in-memory "
            "projections and follows the change log like a replica.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the GraphQL API, the playground and /healthz."""
    from catalog.access_log import AccessLog
    from catalog.app import access_logged, create_app, load_demo_once

    settings = settings_for(database)
    count = workers or settings.workers
    options: dict[str, Any] = {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_level": settings.log_level,
        "access_log": False,  # capahub's own, batched (catalog/access_log.py)
        "lifespan": "on",
    }
    if count == 1:
        app: Any = create_app(settings, demo=demo)
        uvicorn.run(AccessLog(app) if access_logged(settings) else app, **options)
        return
    # Several processes: uvicorn starts each from the factory, which reads the settings from
    # the environment; the demo is loaded once, here, before they start.
    os.environ["CAPAHUB_DATABASE_URL"] = settings.database_url
    if demo:
        asyncio.run(load_demo_once(settings))
    uvicorn.run("catalog.app:served_app", factory=True, workers=count, **options)

"""``capahub serve``: run the hub."""

from __future__ import annotations

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
) -> None:
    """Serve the GraphQL API, the playground and /healthz."""
    from catalog.access_log import AccessLog
    from catalog.app import create_app

    settings = settings_for(database)
    app: Any = create_app(settings, demo=demo)
    if settings.access_log and settings.log_level.lower() in ("trace", "debug", "info"):
        app = AccessLog(app)  # uvicorn's access log, written in batches (catalog/access_log.py)
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
    )

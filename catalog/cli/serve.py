"""``capahub serve``: run the hub."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from catalog.cli._common import CliError, DatabaseOption, settings_for
from catalog.settings import is_loopback

if TYPE_CHECKING:
    from catalog.settings import Settings


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
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="With CAPAHUB_AUTH=off, listen on a non-loopback address anyway: anyone who "
            "reaches it may read personal data and rewrite the catalog.",
        ),
    ] = False,
) -> None:
    """Serve the GraphQL API, the playground and /healthz."""
    import uvicorn

    from catalog.app import create_app, load_demo_once
    from catalog.logs import configure_logging, log_config

    settings = settings_for(database)
    # Before anything logs (the exposure warning, the demo); uvicorn applies it again in
    # each worker process.
    configure_logging(settings.log_level, settings.log_format)
    count = workers or settings.workers
    listen = host or settings.host
    # The listen address is one of the Host names the hub answers (catalog.app.allowed_hosts).
    settings = settings.model_copy(update={"host": listen})
    _check_exposure(listen, settings.auth, insecure_no_auth)
    from catalog.access.authenticate import Authenticator

    try:
        Authenticator.check_settings(settings)
    except ValueError as err:
        raise CliError(str(err)) from None
    options: dict[str, Any] = {
        "host": listen,
        "port": port or settings.port,
        "log_level": settings.log_level,
        "access_log": False,  # capahub's own, batched (catalog/access_log.py)
        "lifespan": "on",
    }
    options["log_config"] = log_config(settings.log_level, settings.log_format)
    urls = served_urls(listen, options["port"])
    announce = _log_announcement if settings.log_format == "json" else _announce
    if count == 1:
        app: Any = with_access_log(create_app(settings, demo=demo), settings)
        _run_announced(app, options, urls, announce)
        return
    # Several processes: uvicorn starts each from the factory, which reads the settings from
    # the environment; the demo is loaded once, here, before they start.
    os.environ["CAPAHUB_DATABASE_URL"] = settings.database_url
    os.environ["CAPAHUB_HOST"] = listen
    if demo:
        asyncio.run(load_demo_once(settings))
    announce(urls)  # the supervisor binds the socket before the workers start
    uvicorn.run("catalog.cli.serve:served_app", factory=True, workers=count, **options)


def served_app() -> Any:
    """The app ``capahub serve --workers N`` starts in each worker process (a uvicorn factory):
    settings from the environment, behind the access log when it is on."""
    from catalog.app import create_app
    from catalog.settings import Settings

    settings = Settings()
    return with_access_log(create_app(settings), settings)


def with_access_log(app: Any, settings: Settings) -> Any:
    """``app`` behind capahub's access log in the configured format, when it is on."""
    from catalog.access_log import AccessLog, access_line
    from catalog.app import access_logged
    from catalog.logs import json_access_line

    if not access_logged(settings):
        return app
    return AccessLog(app, line=json_access_line if settings.log_format == "json" else access_line)


def served_urls(host: str, port: int) -> dict[str, str]:
    """What ``capahub serve`` answers where, for its start message."""
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    return {
        "GraphQL API and playground": f"{base}/graphql",
        "explorer": f"{base}/",
        "health": f"{base}/healthz",
    }


def _announce(urls: dict[str, str]) -> None:
    width = max(map(len, urls)) + 1
    lines = [f"  {f'{what}:':<{width}} {url}" for what, url in urls.items()]
    typer.echo("capahub is serving\n" + "\n".join(lines))


def _log_announcement(urls: dict[str, str]) -> None:
    """The start message as a log record (JSON logs: standard output holds nothing else)."""
    logging.getLogger("capahub").info("capahub is serving", extra={"urls": urls})


def _run_announced(
    app: Any,
    options: dict[str, Any],
    urls: dict[str, str],
    announce: Callable[[dict[str, str]], None],
) -> None:
    """``uvicorn.run(app, **options)`` (one process) that announces the URLs once it listens."""
    import contextlib
    import sys

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                announce(urls)

    server = Server(uvicorn.Config(app, **options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _check_exposure(host: str, auth: str, insecure: bool) -> None:
    """Secure by default: with auth off, only loopback unless told otherwise."""
    if auth == "on" or is_loopback(host):
        return
    if not insecure:
        raise CliError(
            f"--host {host}: access control is off (CAPAHUB_AUTH=off), so the hub listens only "
            "on a loopback address; set CAPAHUB_AUTH=on (docs/security.md), or pass "
            "--insecure-no-auth to expose it to everyone who can reach it"
        )
    logging.getLogger("capahub").warning(
        "serving on %s with access control OFF (--insecure-no-auth): anyone who can reach it "
        "may read personal data and rewrite the catalog",
        host,
    )
    typer.echo(f"WARNING: serving on {host} with access control off (--insecure-no-auth)", err=True)

"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Protocol, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from catalog.access.principal import unrestricted
from catalog.registry import Caller
from catalog.services import Services, WriteServices
from catalog.settings import Settings
from metadata.errors import CatalogError


class CliError(typer.Exit):
    """A refused command: ``error: <one line>`` on stderr and exit status 1."""

    def __init__(self, message: str) -> None:
        typer.echo(f"error: {' '.join(message.split())}", err=True)
        super().__init__(code=1)


T = TypeVar("T")
S = TypeVar("S", bound="_Closable")


class _Closable(Protocol):
    async def close(self) -> None: ...


__all__ = [
    "AsOption",
    "CliError",
    "DatabaseOption",
    "local_caller",
    "print_counts",
    "run_with_services",
    "run_with_write_services",
    "settings_for",
]


def print_counts(title: str, counts: Sequence[tuple[str, int]]) -> None:
    """A command's report: a title line, then a two-column table of what it counted."""
    console = Console()
    console.print(title, highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in counts:
        table.add_row(what, str(count))
    console.print(table)


AsOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Who the change is recorded as in history (default local:<your login>).",
        show_default=False,
    ),
]


def local_caller(as_: str | None) -> Caller:
    """The command line's caller: trusted as the machine's user is, recorded as ``--as`` or
    ``local:<login>``."""
    actor = (as_ or "").strip() or f"local:{_login()}"
    if len(actor) > 200 or not actor.isprintable():
        raise CliError("--as: name who acts in 1-200 printable characters, e.g. ci:nightly")
    return Caller(unrestricted(actor), request_id=f"cli-{uuid.uuid4().hex[:16]}")


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        return str(os.getuid())


DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="SQLAlchemy URL of the catalog (default ./capahub.db; env CAPAHUB_DATABASE_URL).",
        show_default=False,
    ),
]


def settings_for(database: str | None) -> Settings:
    """Settings from the environment, with ``--database`` taking precedence."""
    settings = Settings()
    if database:
        settings = settings.model_copy(update={"database_url": database})
    return settings


def run_with_services(database: str | None, work: Callable[[Services], Awaitable[T]]) -> T:
    """Open the catalog, run ``work`` and close it; a CatalogError becomes a one-line error."""

    async def start(settings: Settings) -> Services:
        return await Services.start(settings, projections=False)

    return _run(database, start, work)


def run_with_write_services(
    database: str | None, work: Callable[[WriteServices], Awaitable[T]]
) -> T:
    """``run_with_services`` with only the write path (store, search index hook, registry)."""
    return _run(database, WriteServices.start, work)


def _run(
    database: str | None,
    start: Callable[[Settings], Awaitable[S]],
    work: Callable[[S], Awaitable[T]],
) -> T:
    # The result is handed over outside the task: asyncio.run (3.11) looks up its SIGINT
    # handler twice on the way out, and Python builds that handler's repr - the task's, with
    # its result - each time: for the report of a 10,000-node apply, a full second.
    results: list[T] = []

    async def go() -> None:
        services = await start(settings_for(database))
        try:
            results.append(await work(services))
        finally:
            await services.close()

    try:
        asyncio.run(go())
        return results[0]
    except CatalogError as err:
        raise CliError(err.message) from None
    except (ArgumentError, DBAPIError, OSError) as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()
        url = make_url_safe(settings_for(database).database_url)
        raise CliError(
            f"cannot open the catalog database {url}: {reason[0] if reason else type(err).__name__}"
        ) from None


def make_url_safe(url: str) -> str:
    """A database URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)

"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Protocol, TextIO, TypeVar

import typer

from metadata.errors import CatalogError

# Imported where used: a command's ``--help`` (and ``capahub --version``) needs none of them,
# and together they were most of a command's start (see bench/README.md, CLI start).
if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from catalog.registry import Caller
    from catalog.services import Services, WriteServices
    from catalog.settings import Settings


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
    "progress",
    "ProgressTask",
    "run_with_services",
    "run_with_write_services",
    "settings_for",
]


def print_counts(title: str, counts: Sequence[tuple[str, int]]) -> None:
    """A command's report: a title line, then a two-column table of what it counted."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(title, highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in counts:
        table.add_row(what, str(count))
    console.print(table)


#: Seconds between two plain progress lines (a terminal's bar redraws as often as it likes).
PLAIN_PROGRESS_INTERVAL = 2.0


class ProgressTask:
    """One piece of long work being shown, as handed out by :func:`progress`.

    ``update(completed=, total=, description=)`` sets what is known (each optional);
    ``advance(step=1, description=None)`` adds to ``completed``. Both are cheap to call per
    item: on a terminal rich redraws at its own pace, and plain lines are written at most
    every ``PLAIN_PROGRESS_INTERVAL`` seconds (and whenever the description changes).
    """

    def __init__(
        self,
        description: str,
        total: int | None,
        *,
        bar: tuple[Progress, TaskID] | None,
        stream: TextIO,
    ) -> None:
        self.description = description
        self.total = total
        self.completed = 0
        self._bar = bar
        self._stream = stream
        self._started = time.monotonic()
        self._last_line = 0.0
        if bar is None:
            self._line()

    def update(
        self,
        *,
        completed: int | None = None,
        total: int | None = None,
        description: str | None = None,
    ) -> None:
        """Set how much is done, of how much, and what is being done (each optional)."""
        changed = description is not None and description != self.description
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if description is not None:
            self.description = description
        if self._bar is not None:
            bar, task = self._bar
            bar.update(
                task, completed=self.completed, total=self.total, description=self.description
            )
        elif changed or time.monotonic() - self._last_line >= PLAIN_PROGRESS_INTERVAL:
            self._line()

    def advance(self, step: int = 1, *, description: str | None = None) -> None:
        """Count ``step`` more items done (and optionally say what is being done now)."""
        self.update(completed=self.completed + step, description=description)

    def _line(self, suffix: str = "") -> None:
        done = f"{self.completed}/{self.total}" if self.total is not None else f"{self.completed}"
        counted = f" ({done})" if self.completed or self.total is not None else ""
        print(f"{self.description}{counted}{suffix}", file=self._stream, flush=True)
        self._last_line = time.monotonic()

    def _finish(self) -> None:
        if self._bar is None:
            elapsed = time.monotonic() - self._started
            self._line(f" done in {elapsed:.1f} s")


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal that can show a live progress bar."""
    stream = sys.stderr
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[ProgressTask]:
    """Show long work on stderr while the block runs; yields a :class:`ProgressTask`.

    ``description`` says what is done ("indexing", "harvesting source:x"); ``total`` is the
    number of items or stages when known (``None``: unknown yet, set it later with
    ``task.update(total=...)``). On a terminal this is a rich progress bar (spinner,
    description, bar, done/total, elapsed time) that disappears when the block ends; otherwise
    (a pipe, a file, CI, ``TERM=dumb``) it writes plain lines, ``description (done/total)``,
    at the start, when the description changes, at most every few seconds in between, and
    ``... done in N s`` at the end (not when the block raises). stdout is never touched, so a
    command's output stays clean. Example::

        with progress("applying", total=len(nodes)) as task:
            for node in nodes:
                ...
                task.advance()
    """
    if not stderr_is_terminal():
        task = ProgressTask(description, total, bar=None, stream=sys.stderr)
        yield task
        task._finish()
        return
    # rich is imported only here: it is a noticeable part of a command's start.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task_id = bar.add_task(description, total=total)
        yield ProgressTask(description, total, bar=(bar, task_id), stream=sys.stderr)


AsOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        metavar="ACTOR",
        help="Who the change is recorded as in history (default local:<your login>).",
        show_default=False,
    ),
]


def local_caller(as_: str | None) -> Caller:
    """The command line's caller: trusted as the machine's user is, recorded as ``--as`` or
    ``local:<login>``."""
    from catalog.access.principal import unrestricted
    from catalog.registry import Caller

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
        metavar="URL",
        help="SQLAlchemy URL of the catalog (default ./capahub.db; env CAPAHUB_DATABASE_URL).",
        show_default=False,
    ),
]


def settings_for(database: str | None) -> Settings:
    """Settings from the environment, with ``--database`` taking precedence."""
    from catalog.settings import Settings

    settings = Settings()
    if database:
        settings = settings.model_copy(update={"database_url": database})
    return settings


def run_with_services(database: str | None, work: Callable[[Services], Awaitable[T]]) -> T:
    """Open the catalog, run ``work`` and close it; a CatalogError becomes a one-line error."""

    from catalog.services import Services

    async def start(settings: Settings) -> Services:
        return await Services.start(settings, projections=False)

    return _run(database, start, work)


def run_with_write_services(
    database: str | None, work: Callable[[WriteServices], Awaitable[T]]
) -> T:
    """``run_with_services`` with only the write path (store, search index hook, registry)."""
    from catalog.services import WriteServices

    return _run(database, WriteServices.start, work)


def _run(
    database: str | None,
    start: Callable[[Settings], Awaitable[S]],
    work: Callable[[S], Awaitable[T]],
) -> T:
    from sqlalchemy.exc import ArgumentError, DBAPIError

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
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)

"""``capahub token``: create, list and revoke the hub's API tokens for machines."""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from catalog.access.tokens import HubTokens, parse_expiry
from catalog.cli._common import CliError, DatabaseOption, _run
from catalog.settings import Settings
from metadata.errors import CatalogError
from metadata.store import Store
from metadata.tokens import TokenRecord

T = TypeVar("T")

app = typer.Typer(
    name="token",
    help="Create, list and revoke hub API tokens for machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


async def _open_store(settings: Settings) -> Store:
    # Tokens need neither the search index nor the projections: the store alone.
    return await Store.open(settings.database_url)


def _with_tokens(database: str | None, work: Callable[[HubTokens], Awaitable[T]]) -> T:
    async def run(store: Store) -> T:
        return await work(HubTokens(store))

    return _run(database, _open_store, run)


def _local_user() -> str:
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in the environment or the password database
        return "local:unknown"


def _when(at: datetime | None, never: str = "never", *, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return never if at is None else at.astimezone(UTC).strftime(fmt)


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(values) if values else "-"


@app.command()
def create(
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="The token's name: 1-64 of a-z, 0-9, '.', '_', '-'; history records it as "
            "token:NAME.",
            show_default=False,
        ),
    ],
    role: Annotated[
        str,
        typer.Option("--role", help="viewer, editor, steward or admin.", show_default=False),
    ],
    team: Annotated[
        list[str] | None,
        typer.Option(
            "--team",
            help="A team the token acts for, e.g. team:payments (repeat for several).",
            show_default=False,
        ),
    ] = None,
    right: Annotated[
        list[str] | None,
        typer.Option(
            "--right",
            help="A right besides the role: records or pii (repeat for several).",
            show_default=False,
        ),
    ] = None,
    expires: Annotated[
        str,
        typer.Option("--expires", help="Lifetime: e.g. 30m, 12h, 90d, 2w, or never."),
    ] = "90d",
    database: DatabaseOption = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Who creates the token, as recorded (default local:<login name>).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create a token; the token itself is printed once, alone on the last line."""
    try:
        lifetime = parse_expiry(expires)
    except CatalogError as err:
        raise CliError(err.message) from None

    async def work(tokens: HubTokens) -> tuple[TokenRecord, str]:
        return await tokens.create(
            name,
            role,
            teams=team or (),
            rights=right or (),
            expires=lifetime,
            created_by=actor or _local_user(),
        )

    rec, token = _with_tokens(database, work)
    # Plain lines, not rich: a wrapped or styled line would break the token apart.
    typer.echo(f"created token {rec.name!r} for {rec.created_by}")
    typer.echo(f"  role: {rec.role}; teams: {_listed(rec.teams)}; rights: {_listed(rec.rights)}")
    typer.echo(f"  expires: {_when(rec.expires_at, fmt='%Y-%m-%d %H:%M UTC')}")
    typer.echo("Store it now: it is shown only this once. The token:")
    typer.echo(token)


@app.command("list")
def list_tokens(database: DatabaseOption = None) -> None:
    """List every token: revoked and expired ones too, never their text."""

    async def work(tokens: HubTokens) -> list[TokenRecord]:
        return await tokens.list()

    records = _with_tokens(database, work)
    console = Console()
    if not records:
        console.print("no tokens; `capahub token create` makes one", highlight=False)
        return
    now = datetime.now(UTC)
    table = Table(caption="times in UTC")
    table.add_column("name", no_wrap=True)
    table.add_column("role", overflow="fold")
    table.add_column("teams", overflow="fold")
    table.add_column("rights", overflow="fold")
    table.add_column("created", overflow="fold")
    table.add_column("expires", overflow="fold")
    table.add_column("last used", overflow="fold")
    table.add_column("status", no_wrap=True)
    for rec in records:
        table.add_row(
            rec.name,
            rec.role,
            _listed(rec.teams),
            _listed(rec.rights),
            f"{_when(rec.created_at, fmt='%Y-%m-%d')} by {rec.created_by}",
            _when(rec.expires_at),
            _when(rec.last_used_at, never="-"),
            rec.status(now),
        )
    console.print(table)


@app.command()
def revoke(
    name: Annotated[str, typer.Argument(help="The name of the token to revoke.")],
    database: DatabaseOption = None,
) -> None:
    """Revoke a token; running hubs refuse it within their sync interval."""
    started = datetime.now(UTC)

    async def work(tokens: HubTokens) -> TokenRecord:
        return await tokens.revoke(name)

    rec = _with_tokens(database, work)
    if rec.revoked_at is not None and rec.revoked_at < started:
        when = _when(rec.revoked_at, fmt="%Y-%m-%d %H:%M UTC")
        typer.echo(f"token {rec.name!r} was already revoked on {when}")
    else:
        typer.echo(f"revoked token {rec.name!r}")


__all__ = ["app"]

"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from catalog.services import Services
from catalog.settings import Settings
from metadata.errors import CatalogError

try:  # typer >= 0.20 vendors click; its own ClickException is the one it reports nicely
    from typer._click.exceptions import ClickException as CliError
except ImportError:  # pragma: no cover - older typer on real click
    from click import ClickException as CliError  # type: ignore[assignment]

T = TypeVar("T")

__all__ = ["CliError", "DatabaseOption", "run_with_services", "settings_for"]

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

    async def go() -> T:
        services = await Services.start(settings_for(database), projections=False)
        try:
            return await work(services)
        finally:
            await services.close()

    try:
        return asyncio.run(go())
    except CatalogError as err:
        raise CliError(err.message) from None

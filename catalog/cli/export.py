"""``capahub export``: write the whole catalog as a document."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from catalog.cli._common import DatabaseOption, run_with_services
from catalog.export import dump_document, export_document
from catalog.services import Services


class Format(StrEnum):
    """Output formats of the export."""

    yaml = "yaml"
    json = "json"


def export(
    format: Annotated[Format, typer.Option("--format", help="yaml or json.")] = Format.yaml,
    database: DatabaseOption = None,
) -> None:
    """Print the catalog as a document that `capahub apply` reproduces."""

    async def work(services: Services) -> dict[str, Any]:
        return await export_document(services.store)

    doc = run_with_services(database, work)
    typer.echo(dump_document(doc, format.value), nl=False)

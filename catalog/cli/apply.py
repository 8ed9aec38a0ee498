"""``capahub apply``: apply catalog documents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from catalog.cli._common import CliError, DatabaseOption, run_with_services
from catalog.registry import ApplyReport
from catalog.services import Services
from catalog.specs import CatalogDocument, parse_document
from metadata.errors import CatalogError


def apply(
    files: Annotated[list[Path], typer.Argument(help="YAML or JSON catalog files.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; write nothing.")
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Apply catalog files as one all-or-nothing diff and print what changed."""
    merged = CatalogDocument()
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise CliError(f"{path}: cannot read ({err.strerror})") from None
        try:
            doc = parse_document(text)
        except CatalogError as err:
            raise CliError(f"{path}: {err.message}") from None
        for spec in [*doc.nodes, *doc.relations]:
            spec.at(f"{path.name}:{spec.loc}")
        merged.nodes.extend(doc.nodes)
        merged.relations.extend(doc.relations)
        merged.prune = merged.prune or doc.prune

    async def work(services: Services) -> ApplyReport:
        return await services.registry.apply_document(merged, dry_run=dry_run)

    report = run_with_services(database, work)
    _print_report(report)


def _print_report(report: ApplyReport) -> None:
    table = Table(title="dry run: nothing written" if report.dry_run else "applied")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("nodes added", str(len(report.added)))
    table.add_row("nodes updated", str(len(report.updated)))
    table.add_row("nodes unchanged", str(len(report.unchanged)))
    table.add_row("relations added", str(report.relations_added))
    table.add_row("relations updated", str(report.relations_updated))
    table.add_row("relations removed", str(report.relations_removed))
    Console().print(table)

"""``capahub apply``: apply catalog documents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalog._gc import paused_gc
from catalog.cli._common import (
    AsOption,
    CliError,
    DatabaseOption,
    local_caller,
    print_counts,
    run_with_write_services,
    settings_for,
)
from catalog.registry import ApplyReport, Caller
from catalog.services import WriteServices
from catalog.specs import CatalogDocument, parse_document
from metadata.errors import CatalogError


def apply(
    files: Annotated[list[Path], typer.Argument(help="YAML or JSON catalog files.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; write nothing.")
    ] = False,
    database: DatabaseOption = None,
    as_: AsOption = None,
) -> None:
    """Apply catalog files as one all-or-nothing diff and print what changed."""
    # A one-shot process whose objects all live until it is done: no cyclic collections
    # (they were 1.5 s of applying 10,000 nodes).
    with paused_gc():
        report = _apply(files, dry_run, database, local_caller(as_))
    _print_report(report)


def _apply(files: list[Path], dry_run: bool, database: str | None, caller: Caller) -> ApplyReport:
    merged = CatalogDocument()
    max_items = settings_for(database).max_document_items
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise CliError(f"{path}: cannot read ({err.strerror})") from None
        try:
            doc = parse_document(text, prefix=f"{path.name}:", max_items=max_items)
        except CatalogError as err:
            raise CliError(f"{path}: {err.message}") from None
        merged.nodes.extend(doc.nodes)
        merged.relations.extend(doc.relations)
        merged.prune = merged.prune or doc.prune

    async def work(services: WriteServices) -> ApplyReport:
        return await services.registry.apply_document(merged, dry_run=dry_run, by=caller)

    return run_with_write_services(database, work)


def _print_report(report: ApplyReport) -> None:
    print_counts(
        "dry run: nothing written" if report.dry_run else "applied",
        [
            ("nodes added", len(report.added)),
            ("nodes updated", len(report.updated)),
            ("nodes unchanged", len(report.unchanged)),
            ("relations added", report.relations_added),
            ("relations updated", report.relations_updated),
            ("relations removed", report.relations_removed),
        ],
    )

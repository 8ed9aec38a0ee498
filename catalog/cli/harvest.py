"""``capahub harvest``: register a source (if new) and harvest it as a diff."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from catalog.cli._common import (
    AsOption,
    CliError,
    DatabaseOption,
    local_caller,
    print_counts,
    run_with_services,
)
from catalog.harvest import HarvestReport, SourceSpec, SourceType, source_key_for
from catalog.harvest.fetch import is_url
from catalog.services import Services
from metadata.errors import CatalogError

#: Stages the harvest service reports, for the progress bar.
_STAGES = 4
_MAX_LISTED = 20


def _absolute(source_type: SourceType, location: str) -> str:
    """File locations made absolute, so a later harvest (e.g. through the API) finds them."""
    if source_type is SourceType.SQL:
        try:
            url = make_url(location)
        except ArgumentError:
            return location
        db = url.database
        if url.get_backend_name() == "sqlite" and db and db != ":memory:":
            if not db.startswith("file:"):
                url = url.set(database=str(Path(db).expanduser().resolve()))
            return url.render_as_string(hide_password=False)
        return location
    if is_url(location):
        return location
    return str(Path(location).expanduser().resolve())


def harvest(
    source_type: Annotated[
        SourceType,
        typer.Argument(
            metavar="TYPE",
            help="Source format: openapi, graphql, sql or backstage.",
            case_sensitive=False,
        ),
    ],
    location: Annotated[
        str, typer.Argument(help="File path, http(s) URL, or SQLAlchemy URL (for sql).")
    ],
    system: Annotated[
        str, typer.Option("--system", help="Id of the system the source describes (system:...).")
    ],
    key: Annotated[
        str | None,
        typer.Option("--key", help="Source key (id source:KEY); derived from the location."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Display name of the source (default: the key).")
    ] = None,
    credentials_env: Annotated[
        str | None,
        typer.Option(
            "--credentials-env",
            help="Environment variable holding the credentials (never stored or printed).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; write nothing.")
    ] = False,
    database: DatabaseOption = None,
    as_: AsOption = None,
) -> None:
    """Harvest a source into the catalog; running it again re-harvests it as a diff."""
    caller = local_caller(as_)
    location = _absolute(source_type, location)
    source_key = key or source_key_for(location)
    try:
        spec = SourceSpec.build(
            {
                "key": source_key,
                "name": name or source_key,
                "type": source_type,
                "location": location,
                "system": system,
                "credentialsEnv": credentials_env,
            },
            loc="option",
        )
    except CatalogError as err:
        raise CliError(
            err.message.replace("option.", "--").replace("credentialsEnv", "credentials-env")
        ) from None

    err_console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"harvesting {spec.id}", total=_STAGES)

        def step(stage: str) -> None:
            progress.update(task, description=stage, advance=1)

        async def work(services: Services) -> HarvestReport:
            return await services.harvest.harvest_location(
                spec,
                dry_run=dry_run,
                trusted=True,
                progress=step,
                actor=caller.principal.actor,
                request_id=caller.request_id,
            )

        report = run_with_services(database, work)
        progress.update(task, completed=_STAGES)
    _print_report(report)


def _print_report(report: HarvestReport) -> None:
    title = "dry run, nothing written" if report.dry_run else "harvested"
    print_counts(
        f"{report.source}: {title}",
        [
            ("nodes added", len(report.added)),
            ("nodes updated", len(report.updated)),
            ("nodes retired", len(report.retired)),
            ("nodes unchanged", report.unchanged),
            ("relations added", report.relations_added),
            ("relations updated", report.relations_updated),
            ("relations removed", report.relations_removed),
            ("warnings", len(report.warnings)),
        ],
    )
    console = Console()
    for label, ids in (("retired", report.retired), ("updated", report.updated)):
        if ids:
            shown = ", ".join(ids[:_MAX_LISTED])
            more = f" (and {len(ids) - _MAX_LISTED} more)" if len(ids) > _MAX_LISTED else ""
            console.print(f"{label}: {shown}{more}", highlight=False, soft_wrap=True)
    if report.warnings:
        console.print("warnings:", highlight=False)
        for warning in report.warnings[:_MAX_LISTED]:
            console.print(f"  - {warning}", highlight=False, markup=False, soft_wrap=True)
        if len(report.warnings) > _MAX_LISTED:
            console.print(f"  (and {len(report.warnings) - _MAX_LISTED} more)", highlight=False)

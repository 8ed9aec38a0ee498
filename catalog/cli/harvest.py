"""``capahub harvest``: register a source (if new) and harvest it as a diff."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from catalog.cli._common import (
    AsOption,
    CliError,
    DatabaseOption,
    local_caller,
    print_counts,
    progress,
    run_with_services,
)
from catalog.cli._report import print_diff
from metadata.errors import CatalogError

if TYPE_CHECKING:
    from catalog.harvest import HarvestReport, SourceSpec
    from catalog.services import Services

#: Stages the harvest service reports, for the progress bar.
_STAGES = 4
_MAX_LISTED = 20


class Format(StrEnum):
    """The source formats (``catalog.harvest.SourceType``'s values; kept here so that
    ``capahub harvest --help`` does not import the harvesters)."""

    openapi = "openapi"
    graphql = "graphql"
    sql = "sql"
    backstage = "backstage"


def _absolute(source_type: Format, location: str) -> str:
    """File locations made absolute, so a later harvest (e.g. through the API) finds them."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from catalog.harvest.fetch import is_url

    if source_type is Format.sql:
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
        Format,
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
        str,
        typer.Option(
            "--system",
            metavar="ID",
            help="Id of the system the source describes (system:...); created if missing "
            "(see --no-create-system).",
        ),
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
            metavar="VARIABLE",
            help="Environment variable holding the credentials (never stored or printed).",
        ),
    ] = None,
    no_create_system: Annotated[
        bool,
        typer.Option(
            "--no-create-system",
            help="Refuse when the system is not in the catalog, instead of creating it "
            "(named after the spec's title, ACTIVE, owned by nobody).",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; write nothing.")
    ] = False,
    database: DatabaseOption = None,
    as_: AsOption = None,
) -> None:
    """Harvest a source into the catalog; running it again re-harvests it as a diff."""
    from catalog.harvest import SourceSpec, SourceType, source_key_for

    caller = local_caller(as_)
    location = _absolute(source_type, location)
    source_key = key or source_key_for(location)
    try:
        spec = SourceSpec.build(
            {
                "key": source_key,
                "name": name or source_key,
                "type": SourceType(source_type.value),
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

    created: list[str] = []  # the name of the system created, if it was missing

    async def work(services: Services) -> HarvestReport:
        create = None
        if not await _system_exists(services, spec.system):
            if no_create_system:
                raise CliError(_missing_system_hint(spec.system))
            create = await _system_name(spec)
            created.append(create)
        with progress(f"harvesting {spec.id}", total=_STAGES) as task:

            def step(stage: str) -> None:
                task.advance(description=stage)

            report = await services.harvest.harvest_location(
                spec,
                dry_run=dry_run,
                trusted=True,
                progress=step,
                actor=caller.principal.actor,
                request_id=caller.request_id,
                create_system=create,
            )
            task.update(completed=_STAGES, description=f"harvested {spec.id}")
        return report

    report = run_with_services(database, work)
    _print_report(report, spec, created[0] if created else None)


async def _system_exists(services: Services, system: str) -> bool:
    async with services.store.read() as r:
        return system in await r.get_nodes([system])


def _missing_system_hint(system: str) -> str:
    key = system.partition(":")[2]
    return (
        f"--system: no system {system!r} in the catalog (--no-create-system); create it "
        f"first, e.g. apply a catalog file with `nodes: [{{id: {system}, name: {key}}}]` "
        f"(capahub apply FILE), or run the harvest without --no-create-system"
    )


async def _system_name(spec: SourceSpec) -> str:
    """A name for the system a source describes: an OpenAPI spec's ``info.title``, else the
    system's key. Read with the CLI's trusted policy; any failure falls back to the key (the
    harvest then reports what is wrong with the location)."""
    from pydantic import ValidationError

    from catalog.harvest import Fetcher, FetchPolicy, SourceType
    from catalog.harvest._documents import load_document
    from catalog.specs import MAX_NAME, NodeSpec

    fallback = spec.system.partition(":")[2]
    if spec.type is not SourceType.OPENAPI:
        return fallback
    try:
        fetched = await Fetcher(FetchPolicy(any_file=True)).read(spec.location)
        info = load_document(fetched.text, spec.location, "an OpenAPI document").get("info")
    except CatalogError:
        return fallback
    title = info.get("title") if isinstance(info, dict) else None
    if not isinstance(title, str) or not title.strip():
        return fallback
    try:
        node = NodeSpec(id=spec.system, name=" ".join(title.split())[:MAX_NAME])
    except ValidationError:
        return fallback
    return node.name or fallback


def _print_report(report: HarvestReport, spec: SourceSpec, created: str | None) -> None:
    from rich.console import Console

    title = "dry run, nothing written" if report.dry_run else "harvested"
    print_counts(
        f"{report.source}: {title}",
        [
            ("nodes added", len(report.added)),
            ("nodes updated", len(report.updated)),
            ("nodes retired", len(report.retired)),
            ("nodes unchanged", len(report.unchanged)),
            ("relations added", report.relations_added),
            ("relations updated", report.relations_updated),
            ("relations removed", report.relations_removed),
            ("warnings", len(report.warnings)),
        ],
    )
    console = Console()
    if created is not None:
        verb = "would be added" if report.dry_run else "added"
        console.print(
            f"system {spec.system} was not in the catalog: {verb}, named {created!r} "
            "(ACTIVE, owned by nobody; --no-create-system refuses instead)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for label, ids in (("retired", report.retired), ("updated", report.updated)):
        if ids:
            shown = ", ".join(ids[:_MAX_LISTED])
            more = f" (and {len(ids) - _MAX_LISTED} more)" if len(ids) > _MAX_LISTED else ""
            console.print(f"{label}: {shown}{more}", highlight=False, soft_wrap=True)
    if report.dry_run:
        print_diff(report)
    if report.warnings:
        console.print("warnings:", highlight=False)
        for warning in report.warnings[:_MAX_LISTED]:
            console.print(f"  - {warning}", highlight=False, markup=False, soft_wrap=True)
        if len(report.warnings) > _MAX_LISTED:
            console.print(f"  (and {len(report.warnings) - _MAX_LISTED} more)", highlight=False)

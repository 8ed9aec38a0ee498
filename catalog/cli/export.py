"""``capahub export``: write the whole catalog as a document."""

from __future__ import annotations

import os
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from catalog.cli._common import CliError, DatabaseOption, progress, run_with_services, settings_for

if TYPE_CHECKING:
    from catalog.services import Services


class Format(StrEnum):
    """Output formats of the export."""

    yaml = "yaml"
    json = "json"


def export(
    format: Annotated[Format, typer.Option("--format", help="yaml or json.")] = Format.yaml,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write to FILE (atomically: the whole export or the old file) instead of stdout.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="DATE",
            help="Export the catalog as it stood at DATE, from its history: ISO 8601 with an "
            "offset (2026-03-01T09:00:00+01:00, ...Z), or a bare date for 00:00 UTC.",
            show_default=False,
        ),
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Print the catalog as a document that `capahub apply` reproduces.

    Source locations inside the demo data directory are written as {demo_data_dir}/...,
    which the machine that reads them resolves to its own (docs/catalog-files.md)."""
    from catalog.changes.asof import parse_instant
    from catalog.demo import demo_data_dir
    from catalog.export import dump_document, export_document
    from metadata.errors import InvalidInputError

    try:
        when = parse_instant(as_of, "--as-of") if as_of is not None else None
    except InvalidInputError as err:
        raise CliError(str(err)) from None
    settings = settings_for(database)

    async def work(services: Services) -> tuple[int, int, str]:
        # Shown once the catalog is open: a database that cannot be opened is one error line.
        with progress("exporting") as task:

            def counted(done: int, total: int) -> None:
                task.update(completed=done, total=total)

            doc = await export_document(
                services.store,
                demo_data_dir=demo_data_dir(settings),
                progress=counted,
                as_of=when,
            )
            task.update(description=f"writing {format.value.upper()}")
            text = dump_document(doc, format.value)
            if output is not None:
                write_atomically(output, text)
        return len(doc["nodes"]), len(doc["relations"]), text

    nodes, relations, text = run_with_services(database, work)
    if output is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"exported {nodes} nodes and {relations} relations to {output}", err=True)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory, renamed
    over it once complete: a reader sees the old file or the new one, never half of one."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    except OSError as err:
        raise CliError(f"--output {path}: cannot write ({err.strerror})") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise CliError(f"--output {path}: cannot write ({err.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise CliError(f"--output {path}: cannot write ({err.strerror})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""``capahub apply``: apply catalog documents."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from catalog._gc import paused_gc
from catalog.cli._common import (
    AsOption,
    CliError,
    DatabaseOption,
    local_caller,
    print_counts,
    progress,
    run_with_write_services,
    settings_for,
)
from catalog.cli._report import print_diff
from metadata.errors import CatalogError

# Imported when a command runs: ``capahub apply --help`` needs none of them (they were most
# of its start; bench/cli_start_bench.py).
if TYPE_CHECKING:
    from catalog.registry import ApplyReport, Caller
    from catalog.services import WriteServices


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


#: Files that together are at least this large are read in parts (``apply_stream``) rather
#: than whole: the memory of an apply is then bounded by a part, not by the document.
STREAM_FROM_BYTES = 20_000_000


def _apply(files: list[Path], dry_run: bool, database: str | None, caller: Caller) -> ApplyReport:
    sizes = []
    for path in files:
        try:
            sizes.append(path.stat().st_size)
        except OSError as err:
            raise CliError(f"{path}: cannot read ({err.strerror})") from None
    if sum(sizes) >= STREAM_FROM_BYTES:
        return _apply_streamed(files, dry_run, database, caller)
    from catalog.problems import problems_of
    from catalog.specs import CatalogDocument, parse_document

    merged = CatalogDocument()
    max_items = settings_for(database).max_document_items
    problems: list[dict[str, Any]] = []
    with progress("reading catalog files", total=len(files)) as task:
        for path in files:
            task.update(description=f"reading {path}")
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as err:
                raise CliError(f"{path}: cannot read ({err.strerror})") from None
            try:
                doc = parse_document(text, prefix=f"{path}:", max_items=max_items)
            except CatalogError as err:
                # Every file is read: the problems of all of them are shown at once.
                problems.extend(_located(err, path))
                task.advance()
                continue
            merged.nodes.extend(doc.nodes)
            merged.relations.extend(doc.relations)
            merged.prune = merged.prune or doc.prune
            task.advance()
    if problems:
        _refuse(problems)

    async def work(services: WriteServices) -> ApplyReport:
        what = f"{len(merged.nodes)} nodes and {len(merged.relations)} relations"
        try:
            with progress(f"{'checking' if dry_run else 'applying'} {what}"):
                return await services.registry.apply_document(merged, dry_run=dry_run, by=caller)
        except CatalogError as err:
            _refuse(problems_of(err))

    return run_with_write_services(database, work)


def _apply_streamed(
    files: list[Path], dry_run: bool, database: str | None, caller: Caller
) -> ApplyReport:
    """Apply large files in parts: every problem of every file, nothing written if any."""
    from catalog.document_stream import DocumentStream
    from catalog.problems import Problems, problems_of

    max_items = settings_for(database).max_document_items
    problems = Problems()
    streams = [DocumentStream(path, problems, max_items=max_items) for path in files]

    async def work(services: WriteServices) -> ApplyReport:
        done = {"nodes": 0, "relations": 0}
        what = "checking" if dry_run else "applying"
        with progress(f"{what} {', '.join(str(f) for f in files)}") as task:

            def advance(section: str, count: int) -> None:
                done[section] += count
                task.update(completed=done[section], description=f"{what} {section}")

            try:
                return await services.registry.apply_stream(
                    streams, problems, dry_run=dry_run, by=caller, progress=advance
                )
            except CatalogError as err:
                _refuse(_with_files(problems_of(err)))

    return run_with_write_services(database, work)


def _with_files(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A text-level problem (``a.json: document: ...``) has its file as the file read."""
    for p in problems:
        message = str(p["message"])
        if not p.get("file") and ": document" in message:
            p["file"] = message.split(": document", 1)[0]
    return problems


def _located(err: CatalogError, path: Path) -> list[dict[str, Any]]:
    """The problems of a file that did not parse; a text-level one (``document: ...``) is
    given the file's name."""
    from catalog.problems import problems_of

    out = problems_of(err)
    for p in out:
        if str(p["message"]).startswith("document"):
            p["message"] = f"{path}: {p['message']}"
            p["file"] = p["file"] or str(path)
    return out


def _refuse(problems: list[dict[str, Any]]) -> NoReturn:
    """Print every problem on a line of its own (``FILE:LINE:COLUMN: field: message``) on
    stderr, then the one-line summary (exit status 1); a single problem is that line alone."""
    lines = [_line(p) for p in problems]
    if len(lines) == 1:
        raise CliError(lines[0])
    for line in lines:
        typer.echo(line, err=True)
    raise CliError(f"{len(lines)} problems (listed above); nothing was written")


def _line(p: dict[str, Any]) -> str:
    """One problem as ``FILE:LINE:COLUMN: field: message`` (the message alone without a
    position)."""
    message = str(p["message"])
    line, column, file = p.get("line"), p.get("column"), p.get("file")
    if line is not None:
        message = message.removesuffix(f" (line {line}, column {column})")
        if file and message.startswith(f"{file}:"):
            message = message[len(file) + 1 :]
        message = f"{file}:{line}:{column}: {message}"
    return message


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
    if report.dry_run:
        print_diff(report)

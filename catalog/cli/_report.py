"""How a command shows a write's diff (``catalog.changeset.ChangeReport``): one table for
``capahub apply --dry-run`` and ``capahub harvest --dry-run`` alike."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalog.changeset import ChangeReport

#: Rows of the diff a dry run prints (the counts above it cover everything).
MAX_DIFF_ROWS = 500


def print_diff(report: ChangeReport) -> None:
    """The diff of a dry run as a table: each node added or updated with its fields before
    -> after, each relation added, updated or removed (at most ``MAX_DIFF_ROWS`` rows)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="changes")
    for column in ("change", "node or relation", "field", "before", "after"):
        table.add_column(column, overflow="fold")
    rows = 0
    total = 0
    for change in report.node_changes():
        for i, f in enumerate(change.fields or (None,)):
            total += 1
            if rows >= MAX_DIFF_ROWS:
                continue
            rows += 1
            table.add_row(
                change.op if i == 0 else "",
                change.id if i == 0 else "",
                f.field if f else "",
                _show(f.before) if f and change.op != "added" else "",
                _show(f.after) if f else "",
            )
    for rel in report.relation_changes:
        total += 1
        if rows >= MAX_DIFF_ROWS:
            continue
        rows += 1
        r = rel.relation
        table.add_row(
            rel.op,
            f"{r.from_id} {r.type.value} {r.to_id}",
            "properties" if rel.op == "updated" else "",
            _show(rel.before) if rel.op == "updated" else "",
            _show(r.properties) if rel.op == "updated" else "",
        )
    total += report.diff_rows_left_out
    console = Console()
    if total == 0:
        console.print("no changes", highlight=False)
        return
    console.print(table)
    if total > rows:
        console.print(f"... and {total - rows} more rows", highlight=False)


def _show(value: Any) -> str:
    """A value for the table: JSON, shortened to 80 characters."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:79] + "…"


__all__ = ["MAX_DIFF_ROWS", "print_diff"]

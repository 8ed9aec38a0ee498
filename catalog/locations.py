"""Portable source locations: machine-specific directories written as a placeholder.

A source node's ``location`` (and ``dataLocation``) may name a file on this machine, such as
the demo's generated SQLite databases (``sqlite:////home/me/capahub-demo-data/crm.db``).
``capahub export`` writes a location inside the demo data directory relative to it, as

    sqlite:///{demo_data_dir}/crm.db        {demo_data_dir}/specs/shop.yaml

and wherever a location is used (the live-data SQL connector), ``{demo_data_dir}`` is
replaced by that machine's demo data directory (``CAPAHUB_DEMO_DATA_DIR``; by default beside
a SQLite catalog file, see :func:`catalog.demo.demo_data_dir`). An export applied on another
machine so reads that machine's demo databases; exporting it again writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

#: The placeholder for the demo data directory in a location.
DEMO_DATA_DIR = "{demo_data_dir}"

#: The properties of a source node that hold a location.
LOCATION_PROPERTIES = ("location", "dataLocation")


def portable_location(location: str, demo_data_dir: Path) -> str:
    """``location`` with a path inside ``demo_data_dir`` written relative to the placeholder;
    anything else (URLs, other paths, a location already portable) unchanged."""
    if DEMO_DATA_DIR in location:
        return location
    root = demo_data_dir.expanduser().resolve()
    if "://" not in location:
        inside = _relative(location, root)
        return f"{DEMO_DATA_DIR}/{inside}" if inside is not None else location
    try:
        url = make_url(location)
    except (ArgumentError, ValueError):
        return location
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db.startswith((":", "file:")):
        return location
    inside = _relative(db, root)
    if inside is None:
        return location
    prefix = location[: location.index("://") + 3] + "/"  # sqlite:/// then the path
    query = location[location.index("?") :] if "?" in location else ""
    return f"{prefix}{DEMO_DATA_DIR}/{inside}{query}"


def resolve_location(location: str, demo_data_dir: Path | None) -> str:
    """``location`` with the placeholder replaced by ``demo_data_dir`` (made absolute);
    unchanged without a placeholder or without a directory to put in."""
    if demo_data_dir is None or DEMO_DATA_DIR not in location:
        return location
    return location.replace(DEMO_DATA_DIR, str(demo_data_dir.expanduser().resolve()))


def portable_properties(properties: dict[str, Any], demo_data_dir: Path) -> dict[str, Any]:
    """A source node's properties with its locations portable (a new dict when one changes)."""
    changed = {
        name: portable_location(value, demo_data_dir)
        for name in LOCATION_PROPERTIES
        if isinstance(value := properties.get(name), str)
    }
    if all(properties.get(name) == value for name, value in changed.items()):
        return properties
    return {**properties, **changed}


def _relative(path: str, root: Path) -> str | None:
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        return None
    try:
        return candidate.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


__all__ = [
    "DEMO_DATA_DIR",
    "LOCATION_PROPERTIES",
    "portable_location",
    "portable_properties",
    "resolve_location",
]

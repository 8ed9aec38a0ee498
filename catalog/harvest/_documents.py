"""Parsing the text of a harvested document: JSON or YAML (one or several documents).

Through the hub's one document loader (``catalog.specs.load_documents``): the same YAML
dialect (dates stay strings), the same bounds on what a text may expand to (YAML aliases
counted at each use, nesting), the same positions in errors; only the messages name the
source's location instead of ``document``.
"""

from __future__ import annotations

from typing import Any

from catalog.specs import load_documents as _load
from metadata.errors import BadSourceDataError, InvalidInputError

#: Most items (mappings, lists, values; aliases at each use) one harvested text may expand to:
#: large public specs hold a few hundred thousand (Stripe's about 0.6 million).
MAX_HARVEST_ITEMS = 10_000_000
#: Bytes of one harvested text (the fetcher bounds what it reads before this).
MAX_HARVEST_BYTES = 200_000_000


def load_documents(text: str, location: str, what: str) -> list[Any]:
    """Every document in ``text`` (JSON, or YAML with ``---`` separators), empty ones skipped.

    Raises:
        BadSourceDataError: the text is neither valid JSON nor valid YAML, or breaks a bound.
    """
    if not text.strip():
        raise BadSourceDataError(f"{location}: empty; expected {what}", field="location")
    try:
        return _load(text, max_items=MAX_HARVEST_ITEMS, max_bytes=MAX_HARVEST_BYTES)
    except InvalidInputError as err:
        reason = err.message.removeprefix("document: ")
        raise BadSourceDataError(
            f"{location}: {reason} (truncated or not {what}?)", field="location"
        ) from None


def load_document(text: str, location: str, what: str) -> dict[str, Any]:
    """The single mapping ``text`` holds (the first one, when YAML has several)."""
    docs = load_documents(text, location, what)
    if not docs or not isinstance(docs[0], dict):
        raise BadSourceDataError(
            f"{location}: expected {what} (a mapping), got "
            f"{type(docs[0]).__name__ if docs else 'nothing'}",
            field="location",
        )
    return docs[0]


__all__ = ["load_document", "load_documents"]

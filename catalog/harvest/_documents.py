"""Parsing the text of a harvested document: JSON or YAML (one or several documents)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from metadata.errors import BadSourceDataError

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc]
    """Safe YAML (the C parser when available) that keeps dates as strings, as JSON would."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(text: str, location: str, what: str) -> list[Any]:
    """Every document in ``text`` (JSON, or YAML with ``---`` separators), empty ones skipped.

    Raises:
        BadSourceDataError: the text is neither valid JSON nor valid YAML.
    """
    stripped = text.lstrip()
    if not stripped:
        raise BadSourceDataError(f"{location}: empty; expected {what}", field="location")
    if stripped.startswith(("{", "[")):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as err:
            raise BadSourceDataError(
                f"{location}: not valid JSON at line {err.lineno}, column {err.colno}: "
                f"{err.msg} (truncated or not {what}?)",
                field="location",
            ) from None
        except RecursionError:
            raise BadSourceDataError(f"{location}: nested too deeply", field="location") from None
    try:
        return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise BadSourceDataError(
            f"{location}: not valid YAML{at}: {problem} (truncated or not {what}?)",
            field="location",
        ) from None
    except RecursionError:
        raise BadSourceDataError(f"{location}: nested too deeply", field="location") from None


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

"""How the server logs: uvicorn's text lines (the default) or one JSON object per line.

``CAPAHUB_LOG_FORMAT=json`` makes every record of the process (uvicorn's, capahub's, any
library's) a JSON line on standard output, for a log collector that parses them::

    {"time": "2026-12-03T11:40:00.123Z", "level": "INFO", "logger": "uvicorn.error",
     "message": "Application startup complete."}

A record's ``extra`` fields become fields of its own, and an exception (``log.exception``)
becomes ``exception``: its type, message and traceback as one string. The access log writes
the same shape (``json_access_line``), with the request's fields beside its message.
"""

from __future__ import annotations

import copy
import logging
import re
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from starlette.types import Scope

from catalog.access_log import access_line, actor_of

LogFormat = Literal["text", "json"]

#: The attributes every ``LogRecord`` has; any other one came from ``extra=`` and is logged.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "color_message", "taskName"}
)
#: A client's ``X-Request-Id`` is logged when it looks like one (as catalog.app keeps it).
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_DUMP_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def _timestamp(seconds: float | None = None) -> str:
    at = datetime.now(UTC) if seconds is None else datetime.fromtimestamp(seconds, UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """A ``logging.Formatter`` that writes each record as one JSON object (no newline inside:
    a traceback is an escaped string)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line: time, level, logger, message, extra fields, exception."""
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def json_access_line(scope: Scope, status: int, seconds: float = 0.0) -> str:
    """The access log's line for one request as a JSON object: uvicorn's text as ``message``,
    and the request's client, method, path, status, duration, ``X-Request-Id`` (when it sent a
    usable one), caller (``actor``: ``token:ci``, ``user:ada``, ``anonymous``; never a
    credential), GraphQL operation name and the catalog version it was answered at."""
    client = scope.get("client")
    entry: dict[str, Any] = {
        "time": _timestamp(),
        "level": "INFO",
        "logger": "capahub.access",
        "message": access_line(scope, status)[10:-1],  # without "INFO:     " and the newline
        "client": f"{client[0]}:{client[1]}" if client else None,
        "method": scope.get("method"),
        "path": scope.get("path"),
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
    }
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                entry["request_id"] = value.decode("ascii")
            break
    actor = actor_of(scope)
    if actor is not None:
        entry["actor"] = actor
    state = scope.get("state") or {}
    operation = state.get("graphql_operation")
    if operation:
        entry["operation"] = operation
    version = state.get("catalog_version")
    if version is not None:
        entry["catalog_version"] = max([version, *state.get("committed", ())])
    return orjson.dumps(entry, default=str, option=_DUMP_OPTIONS).decode()


def log_config(level: str, fmt: LogFormat) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` that ``capahub serve`` hands uvicorn. Text: uvicorn's
    own, with capahub's loggers (``capahub.*``: snapshots loaded, sources, webhooks...) printed
    through uvicorn's handler at the same level (without it they reached no handler, and only
    warnings showed). JSON: every logger, uvicorn's included, through one handler."""
    from uvicorn.config import LOG_LEVELS, LOGGING_CONFIG

    number = LOG_LEVELS.get(level.lower(), logging.INFO)
    if fmt == "text":
        text = copy.deepcopy(LOGGING_CONFIG)
        text["loggers"]["capahub"] = {"handlers": ["default"], "level": number, "propagate": False}
        return text
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"json": handler},
        "root": {"handlers": ["json"], "level": number},
        "loggers": {
            # uvicorn's loggers would print through their own handlers: send them to the root.
            name: {"handlers": [], "level": number, "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        }
        # alembic announces each of its plugins at INFO on every start; migrations stay logged.
        | {"alembic.runtime.plugins": {"level": logging.WARNING}},
    }


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Set up the process's logging as ``capahub serve`` runs it (before uvicorn starts)."""
    import logging.config

    logging.config.dictConfig(log_config(level, fmt))


__all__ = ["JsonFormatter", "LogFormat", "configure_logging", "json_access_line", "log_config"]

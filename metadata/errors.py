"""Errors every layer can raise and the edges translate (GraphQL codes, CLI messages)."""

from __future__ import annotations

from typing import Any


class CatalogError(Exception):
    """Base of every error a user can act on; ``code`` is the GraphQL ``extensions.code``."""

    code = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


class InvalidInputError(CatalogError):
    """The input breaks a rule of the metamodel or the document format."""

    code = "BAD_USER_INPUT"


class NotFoundError(CatalogError):
    """A referenced node, relation or source does not exist."""

    code = "NOT_FOUND"


class ConflictError(CatalogError):
    """The write is based on a stale version or collides with existing data."""

    code = "CONFLICT"


class UnauthenticatedError(CatalogError):
    """The caller did not prove who they are: no token, or one that does not verify."""

    code = "UNAUTHENTICATED"


class NotAllowedError(CatalogError):
    """The operation is refused by policy (e.g. a harvest URL pointing at a private address)."""

    code = "FORBIDDEN"


class SourceUnavailableError(CatalogError):
    """A source system could not be reached or did not answer in time."""

    code = "SOURCE_UNAVAILABLE"


class AmbiguousSourceError(CatalogError):
    """The catalog links a data entity to several sources and names none of them.

    ``candidates`` lists the sources that could serve it; the message names them too.
    """

    code = "AMBIGUOUS_SOURCE"


class UnavailableError(CatalogError):
    """The catalog cannot take the operation now (its database is busy); retry after a while.

    ``retry_after`` is the number of seconds the client should wait before trying again; the
    GraphQL edge sends it as ``extensions.retryAfter``.
    """

    code = "UNAVAILABLE"

    def __init__(
        self, message: str, *, retry_after: int = 1, field: str | None = None, **details: Any
    ) -> None:
        super().__init__(message, field=field, retry_after=retry_after, **details)
        self.retry_after = retry_after


class BadSourceDataError(CatalogError):
    """A source answered with data that cannot be read."""

    code = "BAD_SOURCE_DATA"


__all__ = [
    "AmbiguousSourceError",
    "BadSourceDataError",
    "CatalogError",
    "ConflictError",
    "InvalidInputError",
    "NotAllowedError",
    "NotFoundError",
    "SourceUnavailableError",
    "UnauthenticatedError",
    "UnavailableError",
]

"""Turn every GraphQL error into a coded one: ``extensions.code`` and an actionable message."""

from __future__ import annotations

import logging

from graphql import GraphQLError

from metadata.errors import CatalogError, UnavailableError

log = logging.getLogger("capahub.errors")

INTERNAL_MESSAGE = "Internal error; the details are in the server log."


def code_error(error: GraphQLError) -> None:
    """Set ``extensions.code`` (and hide the details of unexpected errors), in place.

    In place, because strawberry keeps some errors in two lists that share the objects.
    """
    ext = dict(error.extensions or {})
    if "code" in ext:
        return
    original = error.original_error
    if isinstance(original, CatalogError):
        ext["code"] = original.code
        if original.field:
            ext["field"] = original.field
        rule = original.details.get("rule")
        if isinstance(rule, str):
            ext["rule"] = rule
        problems = original.details.get("problems")
        if isinstance(problems, list):
            # Every problem of the input (up to catalog.problems.MAX_PROBLEMS): field, file,
            # line, column, rule, message, suggestion, code.
            ext["problems"] = problems
        if isinstance(original, UnavailableError):
            ext["retryAfter"] = original.retry_after
        error.message = original.message
    elif original is None or isinstance(original, GraphQLError):
        # Parse and validation errors, and variable or argument coercion errors.
        ext["code"] = "BAD_USER_INPUT"
    else:
        log.error("internal error at %s", error.path, exc_info=original)
        ext["code"] = "INTERNAL"
        error.message = INTERNAL_MESSAGE
        error.original_error = None
    error.extensions = ext


__all__ = ["code_error"]

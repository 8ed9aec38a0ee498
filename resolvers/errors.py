"""One schema extension that turns every error into a coded GraphQL error."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from metadata.errors import CatalogError

log = logging.getLogger("capahub.errors")


def _coded(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    ext = dict(error.extensions or {})
    if isinstance(original, CatalogError):
        ext["code"] = original.code
        if original.field:
            ext["field"] = original.field
        message = original.message
    elif original is None or isinstance(original, GraphQLError):
        # Parse and validation errors, and variable or argument coercion errors.
        ext.setdefault("code", "BAD_USER_INPUT")
        message = error.message
    else:
        log.error("internal error at %s", error.path, exc_info=original)
        ext["code"] = "INTERNAL"
        message = "Internal error; the details are in the server log."
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=original if isinstance(original, CatalogError) else None,
        extensions=ext,
    )


class ErrorCodes(SchemaExtension):
    """Give every error an ``extensions.code``; hide the details of unexpected ones."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [_coded(e) for e in errors]  # type: ignore[union-attr]
        pre = self.execution_context.pre_execution_errors
        if pre:
            self.execution_context.pre_execution_errors = [_coded(e) for e in pre]


__all__ = ["ErrorCodes"]

"""Prepared queries: a query text that passed the checks once runs again without re-checking.

strawberry runs every request through its extension pipeline: parsing (with the parser cache),
the token limit, validation (with the validation cache and the hub's added rules) and the
operation-name rule, each an async context manager around hooks. For a small lookup such as
``node(id:) { id name }`` that pipeline costs more than executing the query.

All of those checks depend only on the query text and the operation name the client gave.
So once a (text, operation name) pair has passed them, as a query, ``RememberPrepared`` keeps
its parsed document, and ``PreparedQueries.execute`` runs it straight through graphql-core with
the schema's execution context class (planned completion included), then codes the errors
exactly as ``CatalogSchema.process_errors`` does. Everything else (a first sight, a mutation,
a document that failed a check) takes strawberry's full path, which is also what remembers.

Only the known checking extensions may be skipped: a schema with any other extension (tracing,
masking, a custom one) never uses prepared queries. ``tests/test_http_prepared.py`` compares
the HTTP answers of both paths.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from graphql import DocumentNode, GraphQLError
from graphql.execution import execute
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

if TYPE_CHECKING:
    from strawberry.schema.schema import Schema

#: Prepared documents kept per schema; past it the oldest is dropped.
MAX_PREPARED = 1_024


class RememberPrepared(SchemaExtension):
    """Remembers a query document that reached execution: it parsed, passed the token limit,
    validated and named its operation where it had to."""

    def on_execute(self) -> Iterator[None]:
        """Runs only once every check before execution passed."""
        ctx = self.execution_context
        prepared = getattr(ctx.schema, "prepared", None)
        if (
            isinstance(prepared, PreparedQueries)
            and ctx.query is not None
            and ctx.graphql_document is not None
            and ctx.operation_type is OperationType.QUERY
        ):
            # The operation name as the client sent it (strawberry fills in a default).
            prepared.remember(
                ctx.query, getattr(ctx, "_provided_operation_name", None), ctx.graphql_document
            )
        yield


#: Extensions whose work a prepared query may skip: they only check or cache what depends on
#: the query text and the operation name (``RequireOperationName`` is added by the schema).
SKIPPABLE: tuple[type[SchemaExtension], ...] = (
    ParserCache,
    MaxTokensLimiter,
    AddValidationRules,
    ValidationCache,
    RememberPrepared,
)


class PreparedQueries:
    """Checked query documents of one schema, by (query text, operation name)."""

    def __init__(self, schema: Schema, skippable: tuple[type[SchemaExtension], ...]) -> None:
        self._schema = schema
        self._documents: dict[tuple[str, str | None], DocumentNode] = {}
        extensions = schema.get_extensions()
        # Any extension that does more than check the text: every request must meet it.
        self.enabled = all(isinstance(e, skippable) for e in extensions) and any(
            isinstance(e, RememberPrepared) for e in extensions
        )
        self.hits = 0  # executions through ``execute`` (tests check the fast path ran)

    def remember(self, query: str, operation_name: str | None, document: DocumentNode) -> None:
        """Keep ``document`` for the pair; the oldest goes when the table is full."""
        if not self.enabled:
            return
        if len(self._documents) >= MAX_PREPARED:
            del self._documents[next(iter(self._documents))]
        self._documents[(query, operation_name)] = document

    def known(self, query: str, operation_name: str | None) -> bool:
        """True when the pair has passed the checks before (and may skip them now)."""
        return (query, operation_name) in self._documents

    async def execute(
        self,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        context: Any,
    ) -> ExecutionResult | None:
        """Run a known query; None when the pair is not known (take the full path then)."""
        document = self._documents.get((query, operation_name))
        if document is None:
            return None
        self.hits += 1
        schema = self._schema
        try:
            outcome = execute(
                schema._schema,
                document,
                context_value=context,
                variable_values=variables,
                operation_name=operation_name,
                executor_class=schema.execution_context_class,
                is_awaitable=optimized_is_awaitable,
            )
            result = await outcome if inspect.isawaitable(outcome) else outcome
        except Exception as exc:  # as strawberry does: an unexpected failure becomes an error
            error = (
                exc if isinstance(exc, GraphQLError) else GraphQLError(str(exc), original_error=exc)
            )
            schema._process_errors([error])
            return ExecutionResult(data=None, errors=[error], extensions={})
        if result.errors:
            schema._process_errors(result.errors)
        return ExecutionResult(data=result.data, errors=result.errors, extensions={})


__all__ = ["MAX_PREPARED", "SKIPPABLE", "PreparedQueries", "RememberPrepared"]

"""Prepared queries: a query text that passed the checks once runs again without re-checking.

strawberry runs every request through its extension pipeline: parsing (with the parser cache),
the token limit, validation (with the validation cache and the hub's added rules), the
operation-name rule and the cost limit, each an async context manager around hooks. For a small
lookup such as ``node(id:) { id name }`` that pipeline costs more than executing the query.

All of those checks but the cost depend only on the query text and the operation name the
client gave, and the cost only on them and the variables that size lists. So once a (text,
operation name) pair has passed them, as a query, ``RememberPrepared`` keeps its parsed document
and its compiled cost (``resolvers.cost``), and ``PreparedQueries.execute`` evaluates the cost
for the request's variables (refusing it over the limit as ``CostLimit`` does), runs the
document straight through graphql-core with the schema's execution context class (planned
completion included) and codes the errors exactly as ``CatalogSchema.process_errors`` does.
Everything else (a first sight, a mutation, a document that failed a check) takes strawberry's
full path, which is also what remembers.

Only the known checking extensions may be skipped: a schema with any other extension (tracing,
masking, a custom one) never uses prepared queries. ``tests/http/test_prepared.py`` compares
the HTTP answers of both paths.

Every cache of documents here is bounded by bytes, not entries (``QueryCaches``): the parser
cache, the validation cache and the prepared documents, each a share of
``CAPAHUB_QUERY_CACHE_MB``, so that thousands of distinct large queries cannot fill memory.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from cachetools import LRUCache
from graphql import DocumentNode, GraphQLError, parse
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
from strawberry.types.execution import ParseOptions
from strawberry.types.graphql import OperationType

from resolvers.cost import Cost, CostLimit, QueryCosts, evaluate

if TYPE_CHECKING:
    from strawberry.schema.schema import Schema

#: strawberry's awaitable check, as graphql-core's ``execute`` takes it: strawberry annotates it
#: ``-> bool`` where graphql-core wants a ``TypeGuard``; the check is the same (no wrapper, as it
#: runs for every field).
_is_awaitable = cast("Callable[[Any], TypeGuard[Awaitable[Any]]]", optimized_is_awaitable)

#: Prepared documents kept at most, whatever their bytes (the bytes are the bound that matters;
#: this one only keeps the table from growing past what it held before it had one).
MAX_PREPARED = 1_024

#: What one token of a parsed document takes, with its AST node share (graphql-core 3.3 keeps
#: every token, linked, for the locations). Measured with tracemalloc on 10 copies each of
#: parsed documents: the README's examples and the playground's tabs 290-380 B per token
#: (25-150 B per character of text: whitespace, comments and string literals cost little), 150
#: aliased connections 395 B, 5,000 one-letter fields 553 B (279 B per character), list and
#: object literals 300-350 B, 1,000 variables 400 B. Tokens, not characters, because per
#: character the same documents range from 1 to 325 B.
TOKEN_BYTES = 600
#: A document's fixed part (Source, DocumentNode, operation) and each cache entry's own.
DOCUMENT_BYTES = 2_000
#: Shares of ``CAPAHUB_QUERY_CACHE_MB``: parsed documents, validation results, prepared
#: documents, fast-path plans (``resolvers.fastpath``), compiled costs (``resolvers.cost``).
CACHE_SHARES = {"parsed": 0.35, "validated": 0.10, "prepared": 0.30, "plans": 0.20, "costs": 0.05}


def document_size(query: str, document: DocumentNode) -> int:
    """Estimated bytes of a parsed document and its text: tokens times ``TOKEN_BYTES``, plus
    the text (kept as the key) and the string values copied out of it."""
    tokens = count_tokens(document)
    if tokens is None:  # parsed without locations: at most a token per two characters
        tokens = len(query) // 2 + 1
    return DOCUMENT_BYTES + TOKEN_BYTES * tokens + 2 * len(query)


def count_tokens(document: DocumentNode) -> int | None:
    """The tokens a parsed document keeps, linked from its location (None without one)."""
    if document.loc is None:
        return None
    token: Any = document.loc.start_token
    while token.prev is not None:
        token = token.prev
    count = 0
    while token is not None:
        count += 1
        token = token.next
    return count


def _size_of(entry: tuple[Any, ...]) -> int:
    return int(entry[0])


def _put(cache: LRUCache[Any, Any], key: Any, entry: tuple[Any, ...]) -> None:
    """Cache ``entry`` (its size first) unless it alone is larger than the whole cache."""
    if entry[0] <= cache.maxsize:
        cache[key] = entry


@dataclass
class QueryCaches:
    """The byte-bounded caches of one schema's query documents."""

    parsed: LRUCache[tuple[str, tuple[Any, ...]], tuple[int, DocumentNode]]
    validated: LRUCache[str, tuple[int, list[GraphQLError]]]
    max_bytes: int

    @classmethod
    def of_size(cls, max_bytes: int) -> QueryCaches:
        """Caches sharing ``max_bytes`` by ``CACHE_SHARES``."""
        return cls(
            parsed=LRUCache(maxsize=share(max_bytes, "parsed"), getsizeof=_size_of),
            validated=LRUCache(maxsize=share(max_bytes, "validated"), getsizeof=_size_of),
            max_bytes=max_bytes,
        )

    def parse(self, query: str, options: ParseOptions) -> DocumentNode:
        """The parsed document of ``query``: the same object for the same text while cached."""
        key = (query, tuple(options.items()))
        found = self.parsed.get(key)
        if found is not None:
            return found[1]
        document = parse(query, **options)
        _put(self.parsed, key, (document_size(query, document), document))
        return document

    def validate(
        self,
        query: str | None,
        document: DocumentNode,
        run: Callable[[DocumentNode], list[GraphQLError]],
    ) -> list[GraphQLError]:
        """Validation errors of the document parsed from ``query`` (``run`` validates)."""
        if query is None:
            return list(run(document))
        found = self.validated.get(query)
        if found is not None:
            return found[1]
        errors: list[GraphQLError] = list(run(document))
        # Errors point at the document's nodes and so keep it alive: count it then.
        size = DOCUMENT_BYTES + 2 * len(query)
        if errors:
            size += document_size(query, document) + 1_000 * len(errors)
        _put(self.validated, query, (size, errors))
        return errors


def share(max_bytes: int, cache: str) -> int:
    """The bytes one cache of ``CACHE_SHARES`` may hold (at least 1: LRUCache needs it)."""
    return max(int(max_bytes * CACHE_SHARES[cache]), 1)


class BoundedParserCache(SchemaExtension):
    """strawberry's ``ParserCache``, bounded by the documents' bytes (``QueryCaches``)."""

    def __init__(self, caches: QueryCaches) -> None:
        self.caches = caches

    def on_parse(self) -> Iterator[None]:
        """Parse through the cache; a syntax error is raised (and not cached) as before."""
        ctx = self.execution_context
        if ctx.query is not None:
            ctx.graphql_document = self.caches.parse(ctx.query, ctx.parse_options)
        yield


class BoundedValidationCache(SchemaExtension):
    """strawberry's ``ValidationCache``, keyed by the query text and bounded by bytes."""

    def __init__(self, caches: QueryCaches) -> None:
        self.caches = caches

    def on_validate(self) -> Iterator[None]:
        """Validate before the extensions after it (the cost limit needs a valid document)."""
        from strawberry.schema.schema import validate_document

        ctx = self.execution_context
        document = ctx.graphql_document
        if document is not None:
            schema, rules = ctx.schema._schema, ctx.validation_rules
            ctx.pre_execution_errors = self.caches.validate(
                ctx.query, document, lambda d: validate_document(schema, d, rules)
            )
        yield


class RememberPrepared(SchemaExtension):
    """Remembers a query document that reached execution: it parsed, passed the token limit,
    validated, named its operation where it had to and was within the cost limit."""

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
#: the query text and the operation name (``RequireOperationName`` is added by the schema), or,
#: for ``CostLimit``, what ``PreparedQueries.execute`` checks itself.
SKIPPABLE: tuple[type[SchemaExtension], ...] = (
    BoundedParserCache,
    ParserCache,
    MaxTokensLimiter,
    AddValidationRules,
    BoundedValidationCache,
    ValidationCache,
    CostLimit,
    RememberPrepared,
)


class PreparedQueries:
    """Checked query documents of one schema, by (query text, operation name), with their
    compiled costs; bounded by the documents' bytes."""

    def __init__(
        self,
        schema: Schema,
        skippable: tuple[type[SchemaExtension], ...],
        *,
        costs: QueryCosts | None = None,
        max_bytes: int = 8 * 2**20,
    ) -> None:
        self._schema = schema
        self._costs = costs
        self._documents: LRUCache[tuple[str, str | None], tuple[int, DocumentNode, Cost]] = (
            LRUCache(maxsize=max(max_bytes, 1), getsizeof=_size_of)
        )
        extensions = schema.get_extensions()
        # Any extension that does more than check the text: every request must meet it. The
        # cost limit is checked here only for the schema's own costs.
        self.enabled = all(isinstance(e, skippable) for e in extensions) and any(
            isinstance(e, RememberPrepared) for e in extensions
        )
        if any(isinstance(e, CostLimit) for e in extensions) and costs is None:
            self.enabled = False
        self.hits = 0  # executions through ``execute`` (tests check the fast path ran)

    @property
    def max_bytes(self) -> int:
        """The bytes the prepared documents may take."""
        return int(self._documents.maxsize)

    @property
    def size(self) -> int:
        """The bytes they are estimated to take now."""
        return int(self._documents.currsize)

    def __len__(self) -> int:
        return len(self._documents)

    def remember(self, query: str, operation_name: str | None, document: DocumentNode) -> None:
        """Keep ``document`` and its compiled cost for the pair; the least recently used go
        when the bytes are spent."""
        if not self.enabled:
            return
        cost: Cost = 0
        if self._costs is not None:
            cost = self._costs.compiled(query, operation_name, document)
        size = document_size(query, document) + 2 * len(operation_name or "")
        key = (query, operation_name)
        if key not in self._documents and len(self._documents) >= MAX_PREPARED:
            self._documents.popitem()
        _put(self._documents, key, (size, document, cost))

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
        entry = self._documents.get((query, operation_name))
        if entry is None:
            return None
        self.hits += 1
        _, document, compiled = entry
        schema = self._schema
        costs = self._costs
        cost = evaluate(compiled, variables)
        if costs is not None:
            refusal = costs.refusal(cost, context)  # the limit, then the budget
            if refusal is not None:  # as ``CostLimit`` refuses it: before anything runs
                schema._process_errors([refusal])
                return ExecutionResult(data=None, errors=[refusal], extensions={})
        extensions: dict[str, Any] = {} if costs is None else {"cost": cost}
        try:
            outcome = execute(
                schema._schema,
                document,
                context_value=context,
                variable_values=variables,
                operation_name=operation_name,
                executor_class=schema.execution_context_class,
                is_awaitable=_is_awaitable,
            )
            result = await outcome if inspect.isawaitable(outcome) else outcome
        except Exception as exc:  # as strawberry does: an unexpected failure becomes an error
            error = (
                exc if isinstance(exc, GraphQLError) else GraphQLError(str(exc), original_error=exc)
            )
            schema._process_errors([error])
            return ExecutionResult(data=None, errors=[error], extensions=extensions)
        if result.errors:
            schema._process_errors(result.errors)
        return ExecutionResult(data=result.data, errors=result.errors, extensions=extensions)


__all__ = [
    "MAX_PREPARED",
    "SKIPPABLE",
    "BoundedParserCache",
    "BoundedValidationCache",
    "PreparedQueries",
    "QueryCaches",
    "RememberPrepared",
    "document_size",
]

"""Build the strawberry schema (a Federation 2 subgraph) with its extensions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError, OperationDefinitionNode
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_limit_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_limit_rule
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from resolvers.access import AccessMutation, AccessQuery
from resolvers.cost import CostLimit, QueryCosts
from resolvers.errors import code_error
from resolvers.fastpath import CatalogExecutionContext, plan_cache
from resolvers.graph import GraphQuery
from resolvers.harvest import HarvestMutation
from resolvers.mutations import CatalogMutation
from resolvers.permissions import guard, guard_library_fields
from resolvers.prepared import (
    SKIPPABLE,
    BoundedParserCache,
    BoundedValidationCache,
    PreparedQueries,
    QueryCaches,
    RememberPrepared,
    share,
)
from resolvers.queries import CatalogQuery
from resolvers.records import RecordsQuery
from resolvers.search import SearchQuery
from resolvers.subscriptions import CatalogSubscription
from resolvers.timetravel import TimeTravelQuery
from resolvers.types import NODE_TYPES
from resolvers.webhooks import WebhookMutation, WebhookQuery

Query = merge_types(
    "Query",
    (
        CatalogQuery,
        GraphQuery,
        SearchQuery,
        RecordsQuery,
        AccessQuery,
        TimeTravelQuery,
        WebhookQuery,
    ),
)
Mutation = merge_types(
    "Mutation", (CatalogMutation, HarvestMutation, AccessMutation, WebhookMutation)
)
Subscription = merge_types("Subscription", (CatalogSubscription,))


class CatalogSchema(strawberry.federation.Schema):
    """The federation schema, with coded errors, query costs (``resolvers.cost``) and prepared
    queries (``resolvers.prepared``)."""

    def __init__(
        self,
        *args: Any,
        max_cost: int | None = None,
        max_first: int = 500,
        caches: QueryCaches | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        guard_library_fields(self, ("Query._entities", "Query._service"))
        caches = caches or QueryCaches.of_size(32 * 2**20)
        self.caches = caches
        self.costs = QueryCosts(
            self._schema,
            limit=max_cost,
            max_first=max_first,
            max_bytes=share(caches.max_bytes, "costs"),
        )
        plan_cache(self._schema, share(caches.max_bytes, "plans"))
        self.prepared = PreparedQueries(
            self,
            (*SKIPPABLE, RequireOperationName),
            costs=self.costs,
            max_bytes=share(caches.max_bytes, "prepared"),
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Code every error; only INTERNAL ones are logged (refused input is not a fault)."""
        for error in errors:
            code_error(error)


class RequireOperationName(SchemaExtension):
    """GraphQL spec: a document with several operations needs ``operationName``."""

    def on_validate(self) -> Iterator[None]:
        """Refuse before validation; strawberry would otherwise run the first operation."""
        ctx = self.execution_context
        doc = ctx.graphql_document
        # operation_name falls back to the first operation's name; the client's own is kept here.
        if doc is not None and not getattr(ctx, "_provided_operation_name", None):
            ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
            if len(ops) > 1:
                ctx.pre_execution_errors = [
                    GraphQLError(
                        "operationName: the document has several operations; say which one to run",
                        extensions={"code": "BAD_USER_INPUT", "field": "operationName"},
                    )
                ]
        yield


def build_schema(
    *,
    max_depth: int = 12,
    max_cost: int | None = None,
    max_page_size: int = 500,
    query_cache_mb: float = 32.0,
    planned: bool = True,
) -> CatalogSchema:
    """The capahub schema: catalog queries and mutations, caches, limits, error codes.

    ``max_cost`` refuses operations that cost more (``resolvers.cost``; the hub passes
    ``CAPAHUB_MAX_QUERY_COST``); without it costs are measured and reported but not limited.
    ``max_page_size`` is the largest ``first`` a connection accepts (costs count no more).
    ``query_cache_mb`` bounds the parsed, validated and prepared documents, the fast path's
    plans and the compiled costs together. ``planned`` completes objects through
    ``resolvers.fastpath`` where it applies; without it, graphql-core completes every field
    itself (the tests compare the two).

    The depth and alias limits are validation rule classes made once here: the validation
    cache keys on the query text, and the rules must be the same for every request.
    """
    guard(roots=(Query, Mutation, Subscription), others=NODE_TYPES)
    rules: list[type[ASTValidationRule]] = [
        depth_limit_rule(max_depth, None),
        alias_limit_rule(200),
    ]
    caches = QueryCaches.of_size(int(query_cache_mb * 2**20))
    return CatalogSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=NODE_TYPES,
        execution_context_class=CatalogExecutionContext if planned else None,
        extensions=[
            lambda: BoundedParserCache(caches),
            lambda: MaxTokensLimiter(max_token_count=20_000),
            lambda: AddValidationRules(rules),
            lambda: BoundedValidationCache(caches),
            RequireOperationName,
            # After validation and the operation-name rule: it needs a valid document.
            CostLimit,
            RememberPrepared,
        ],
        max_cost=max_cost,
        # records and hotspots accept up to 500 whatever the page size
        max_first=max(max_page_size, 500),
        caches=caches,
    )


def print_sdl() -> str:
    """The schema as SDL, exactly as ``schema.graphql`` holds it."""
    return build_schema().as_str() + "\n"


__all__ = ["build_schema", "print_sdl"]

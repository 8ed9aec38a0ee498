"""Build the strawberry schema (a Federation 2 subgraph) with its extensions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_limit_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_limit_rule
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from resolvers.access import AccessMutation, AccessQuery
from resolvers.errors import code_error
from resolvers.fastpath import CatalogExecutionContext
from resolvers.graph import GraphQuery
from resolvers.harvest import HarvestMutation
from resolvers.mutations import CatalogMutation
from resolvers.permissions import guard, guard_library_fields
from resolvers.prepared import SKIPPABLE, PreparedQueries, RememberPrepared
from resolvers.queries import CatalogQuery
from resolvers.records import RecordsQuery
from resolvers.search import SearchQuery
from resolvers.types import NODE_TYPES

Query = merge_types("Query", (CatalogQuery, GraphQuery, SearchQuery, RecordsQuery, AccessQuery))
Mutation = merge_types("Mutation", (CatalogMutation, HarvestMutation, AccessMutation))


class CatalogSchema(strawberry.federation.Schema):
    """The federation schema, with coded errors and prepared queries (``resolvers.prepared``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        guard_library_fields(self, ("Query._entities", "Query._service"))
        self.prepared = PreparedQueries(self, (*SKIPPABLE, RequireOperationName))

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


def build_schema(*, max_depth: int = 12, planned: bool = True) -> CatalogSchema:
    """The capahub schema: catalog queries and mutations, caches, limits, error codes.

    ``planned`` completes objects through ``resolvers.fastpath`` where it applies; without it,
    graphql-core completes every field itself (the tests compare the two).

    The depth and alias limits are validation rule classes made once here: the validation
    cache keys on the rule classes, so a fresh class per request would never hit.
    """
    guard(roots=(Query, Mutation), others=NODE_TYPES)
    rules = [
        depth_limit_rule(max_depth, None),
        alias_limit_rule(200),
    ]
    return CatalogSchema(
        query=Query,
        mutation=Mutation,
        types=NODE_TYPES,
        execution_context_class=CatalogExecutionContext if planned else None,
        extensions=[
            lambda: ParserCache(maxsize=1024),
            lambda: MaxTokensLimiter(max_token_count=20_000),
            lambda: AddValidationRules(rules),
            lambda: ValidationCache(maxsize=1024),
            RequireOperationName,
            RememberPrepared,
        ],
    )


def print_sdl() -> str:
    """The schema as SDL, exactly as ``schema.graphql`` holds it."""
    return build_schema().as_str() + "\n"


__all__ = ["build_schema", "print_sdl"]

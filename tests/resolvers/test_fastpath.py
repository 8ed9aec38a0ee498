"""Planned completion (resolvers/fastpath.py) answers exactly what graphql-core answers.

Every query runs twice on the same demo catalog: through the planned execution the hub serves,
and through graphql-core's field-by-field completion. Hypothesis generates the queries from the
schema itself: random fields of every node type, aliases, ``__typename``, inline fragments on
the interface, named fragments and ``@skip``/``@include`` driven by variables.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLInterfaceType,
    GraphQLObjectType,
    get_named_type,
    is_leaf_type,
    is_required_argument,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.demo import load_demo
from catalog.services import Services
from catalog.settings import Settings
from resolvers import build_schema, make_context
from resolvers.fastpath import CatalogExecutionContext

#: Fields left out of generated queries: live data reaches the demo's source files and is
#: compared elsewhere; nothing else is excluded.
SKIPPED_FIELDS = {"records"}

ROOTS = [
    "capabilities(first: 15)",
    "systems(first: 12)",
    "dataEntities(first: 12)",
    "nodes(first: 40)",
    'nodes(first: 30, after: "Yzpjb25zZW50")',
]


class CountingContext(CatalogExecutionContext):
    """Counts the objects the plans completed, so a test can tell the plans were used."""

    instances: list[CountingContext] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.planned = 0
        self.by_type: Counter[str] = Counter()
        CountingContext.instances.append(self)

    def _plan(self, object_type: Any, field_details_list: Any) -> Any:
        plan = super()._plan(object_type, field_details_list)
        if plan is None:
            return None

        def counted(source: Any) -> Any:
            out = plan(source)
            self.planned += 1
            self.by_type[object_type.name] += 1
            return out

        return counted


class Harness:
    """The demo catalog, with one schema per execution strategy, on a private event loop."""

    def __init__(self, tmp: Path) -> None:
        self.runner = asyncio.Runner()
        settings = Settings(database_url=f"sqlite:///{tmp / 'demo.db'}", _env_file=None)  # type: ignore[call-arg]
        self.services = self.runner.run(Services.start(settings))
        self.runner.run(load_demo(self.services.registry))
        self.planned = build_schema()
        self.planned.execution_context_class = CountingContext
        self.plain = build_schema(planned=False)
        self.graphql = self.planned._schema

    def run(self, query: str, variables: dict[str, Any] | None = None) -> tuple[Any, Any, int]:
        """(planned result, plain result, objects the plans completed)."""
        CountingContext.instances.clear()
        a = self.runner.run(
            self.planned.execute(
                query, variable_values=variables, context_value=make_context(self.services)
            )
        )
        planned = sum(c.planned for c in CountingContext.instances)
        b = self.runner.run(
            self.plain.execute(
                query, variable_values=variables, context_value=make_context(self.services)
            )
        )
        return _outcome(a), _outcome(b), planned

    def close(self) -> None:
        self.runner.run(self.services.close())
        self.runner.close()


def _outcome(result: Any) -> tuple[Any, Any]:
    errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or ())
    return result.data, errors


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("fastpath"))
    try:
        yield h
    finally:
        h.close()


def test_the_discovery_query_is_planned_and_equal(harness: Harness) -> None:
    query = """{ capabilities(first: 100) { totalCount pageInfo { hasNextPage endCursor }
      edges { cursor node { id name kind lifecycle tags createdAt properties
        providers { id name owner { id } } reads { id name attributes { name classification } }
        writes { id name } parent { id } } } } }"""
    planned, plain, objects = harness.run(query)
    assert planned == plain
    assert planned[1] == []
    edges = planned[0]["capabilities"]["edges"]
    assert len(edges) == 100
    # Every capability, its edge, the connection and page info: at least 200 planned objects.
    assert objects >= 200


def test_a_field_the_plan_cannot_answer_falls_back_per_object(harness: Harness) -> None:
    # ``domain`` of a capability walks the hierarchy asynchronously: graphql-core completes the
    # capability, while its providers (plain relation fields) are still planned.
    query = (
        "{ capabilities(first: 20) { edges { node { id domain { id } providers { id name } } } } }"
    )
    planned, plain, objects = harness.run(query)
    assert planned == plain
    assert any(e["node"]["domain"] for e in planned[0]["capabilities"]["edges"])
    assert objects > 0


def test_nested_relations_beyond_the_prefetch_are_equal(harness: Harness) -> None:
    query = """{ systems(first: 12) { edges { node { id provides { id providers { id
      masters { id masteredBy { id } } } } owner { id owns { id } } } } } }"""
    planned, plain, _ = harness.run(query)
    assert planned == plain
    assert planned[1] == []


def test_graph_answers_and_their_relation_ends_are_planned(harness: Harness) -> None:
    # An impact's affected nodes, their `via` relations and the relations' ends complete from
    # memory by plan once the answer's nodes are loaded (one batch): before, every `from` and
    # `to` was an awaited dataloader load, a future and a task per relation end, 1-2 ms per
    # affected node (docs/graph.md, "Answers outside the thread").
    query = """{ impact(id: "system:crm", depth: 3) { root { id }
      affected { node { id name kind } distance via { type from { id name } to { id } } } }
      neighborhood(id: "system:crm", depth: 2) { nodes { id } relations { type from { id }
        to { id name } } } }"""
    planned, plain, objects = harness.run(query)
    assert planned == plain
    assert planned[1] == []
    affected = planned[0]["impact"]["affected"]
    relations = planned[0]["neighborhood"]["relations"]
    vias = sum(len(x["via"]) for x in affected)
    assert len(affected) >= 5 and vias >= len(affected) and len(relations) >= 5
    assert objects >= 2 * len(affected) + vias + len(relations)
    by_type = sum((c.by_type for c in CountingContext.instances), Counter[str]())
    # Every affected node and every relation (the via ones and the neighbourhood's) by plan.
    assert by_type["ImpactedNode"] == len(affected)
    assert by_type["Relation"] == vias + len(relations)


def test_skip_include_fragments_and_aliases(harness: Harness) -> None:
    query = """query($yes: Boolean!, $no: Boolean!) {
      nodes(first: 40) { edges { node { ...N kind @include(if: $yes) key @skip(if: $yes)
        ... on Capability { p: providers { id n: name } name @include(if: $no) }
        ... on DataEntity { attributes { name } } } } } }
      fragment N on CatalogNode { id __typename t: __typename }"""
    for yes in (True, False):
        planned, plain, objects = harness.run(query, {"yes": yes, "no": not yes})
        assert planned == plain
        assert planned[1] == []
        assert objects > 0


def test_errors_are_reported_by_graphql_core(harness: Harness) -> None:
    # A node that does not exist is null; a bad page size is an error with the same path.
    planned, plain, _ = harness.run(
        '{ node(id: "system:nope") { id } capabilities(first: 9999) { totalCount } }'
    )
    assert planned == plain
    assert planned[1] and planned[1][0][1] == ("capabilities",)


# -- generated queries ------------------------------------------------------------------------


@st.composite
def selection(draw: st.DrawFn, gql_type: Any, depth: int, schema: Any) -> str:
    named = get_named_type(gql_type)
    assert isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
    names = sorted(
        n
        for n, f in named.fields.items()
        if n not in SKIPPED_FIELDS
        and not any(is_required_argument(a) for a in f.args.values())
        and (depth > 0 or is_leaf_type(get_named_type(f.type)))
    )
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=5, unique=True))
    parts = []
    for name in chosen:
        field = named.fields[name]
        text = name
        if draw(st.booleans()) and draw(st.booleans()):
            text = f"a_{name}: {name}"
        directive = draw(st.sampled_from(["", "", "", " @include(if: $yes)", " @skip(if: $yes)"]))
        text += directive
        if not is_leaf_type(get_named_type(field.type)):
            text += " { " + draw(selection(field.type, depth - 1, schema)) + " }"
        parts.append(text)
    if draw(st.booleans()):
        parts.append("__typename")
    if isinstance(named, GraphQLInterfaceType) and depth > 0 and draw(st.booleans()):
        impl = draw(
            st.sampled_from(sorted(t.name for t in schema.get_implementations(named).objects))
        )
        parts.append(
            f"... on {impl} {{ " + draw(selection(schema.get_type(impl), depth - 1, schema)) + " }"
        )
    return " ".join(parts)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_queries_answer_the_same(harness: Harness, data: st.DataObject) -> None:
    schema = harness.graphql
    root = data.draw(st.sampled_from(ROOTS))
    name = root.split("(")[0]
    conn = get_named_type(schema.query_type.fields[name].type)
    node_type = get_named_type(get_named_type(conn.fields["edges"].type).fields["node"].type)
    body = data.draw(selection(node_type, 2, schema))
    query = (
        f"query($yes: Boolean!) {{ {root} {{ totalCount edges {{ cursor node {{ {body} }} }} }} }}"
    )
    yes = data.draw(st.booleans())
    planned, plain, _ = harness.run(query, {"yes": yes})
    assert planned == plain, query


def test_a_schema_extension_with_a_resolve_hook_sees_every_field(harness: Harness) -> None:
    """Planning steps aside when an extension wraps field resolution (tracing, say)."""
    from strawberry.extensions import SchemaExtension

    seen: list[str] = []

    class Tracing(SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(info.field_name)
            return _next(root, info, *args, **kwargs)

    schema = build_schema()
    schema.execution_context_class = CountingContext
    schema.extensions = (*schema.extensions, Tracing)
    CountingContext.instances.clear()
    result = harness.runner.run(
        schema.execute(
            "{ capabilities(first: 3) { edges { node { id name providers { id } } } } }",
            context_value=make_context(harness.services),
        )
    )
    assert result.errors is None
    assert sum(c.planned for c in CountingContext.instances) == 0
    assert seen.count("name") == 3 and seen.count("edges") == 1

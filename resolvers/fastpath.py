"""Direct completion: build an object's whole result at once instead of field by field.

graphql-core resolves and completes every field on its own: a ResolveInfo, a path, strawberry's
resolver wrapper and an awaitable check per field. For a page of 100 capabilities with their
providers, reads and writes that is about 2,000 fields and most of a request's time, although
every value is already in memory once the connection resolver has prefetched the page.

``CatalogExecutionContext`` plans, per selection, how to build the result of an object type
straight from the Python objects, and uses the plan when the selection holds only

* plain attributes (strawberry fields without a resolver),
* resolvers marked ``@direct`` that take no arguments (only ``info.context`` may be read),
* ``__typename``,

on object, interface and list types. A ``@direct`` resolver answers synchronously from what the
request's dataloaders hold, or returns an awaitable when they do not hold it yet; then the plan
gives up (the awaitable is closed unstarted) and graphql-core completes that object the usual
way, trying the plan again on each nested object. A value the plan does not expect (null in a
non-null field, a leaf that does not serialize) also hands the object back, so errors are
always reported by graphql-core itself. Field collection (fragments, ``@skip``/``@include``,
type conditions) is graphql-core's own; a selection with ``@defer`` is never planned.

Long lists are completed in turns: a list of more than ``LONG_LIST`` items is never completed
by a plan (the plan hands its object back), and graphql-core completes it through an async
iterator that hands the event loop back every ``TURN_SECONDS`` (each item still by its plan).
So no answer, however large the cost limit lets it be, holds the loop for long: a listing of
500 nodes with all their relations, or a graph question's 10,000 relations, is completed in
slices of a few milliseconds between which other requests are answered.

The result is the same as graphql-core's, key for key; ``tests/resolvers/test_fastpath.py``
checks it on generated queries.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from operator import attrgetter
from types import CoroutineType
from typing import Any, Final, TypeVar, cast

from cachetools import LRUCache
from graphql import (
    DirectiveNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    VariableNode,
    Visitor,
    visit,
)
from graphql.pyutils import Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.cast import get_strawberry_type_cast
from strawberry.types.field import StrawberryField

DIRECT_MARK = "_capahub_direct"
_BACKREF = "strawberry-definition"

F = TypeVar("F", bound=Callable[..., Any])


def direct(fn: F) -> F:
    """Mark a resolver as answerable by a plan: synchronous, no arguments besides ``info``, which
    it reads only for ``info.context``; it returns an awaitable when its data is not loaded."""
    setattr(fn, DIRECT_MARK, True)
    return fn


class _Miss(Exception):
    """The plan cannot complete this object; graphql-core does it instead."""


_MISS = _Miss()

#: A plan: source object -> completed result.
Plan = Callable[[Any], Any]


class _DirectInfo:
    """What a ``@direct`` resolver gets as ``info``: the request's context, nothing else."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


#: The request whose plan is running (plans are synchronous, so one at a time per thread).
_running = threading.local()

#: Bytes a plan takes per field of its selection, besides the document it keeps: a step and
#: its completers are four or five closures with their cells. Measured with tracemalloc as the
#: difference between planned and unplanned execution of 60 distinct queries each: 2.5 kB per
#: field for ``node(id:) { id name key }``, 2.0 kB for the discovery query of 20 capabilities,
#: 1.9 kB for a 43-field selection.
PLAN_FIELD_BYTES = 2_500
#: A plan's own part (its closure and step list).
PLAN_BYTES = 500
#: Bytes the plans of one schema may take, with their documents, unless ``build_schema``
#: installs a ``PlanCache`` of another size.
PLAN_CACHE_BYTES = 4 * 2**20


class _Unset(enum.Enum):
    """Not looked up yet (None is an answer: no plans kept for this document)."""

    UNSET = enum.auto()


_UNSET: Final = _Unset.UNSET
#: A list longer than this is completed in turns (by graphql-core, not inside a plan): about
#: 0.1-0.5 ms of planned completion for items of a few fields, so shorter lists stay planned.
LONG_LIST = 100
#: While a long list is completed, the event loop is handed back after this much of it.
TURN_SECONDS = 0.005


class _DocumentPlans:
    """The plans of one document. They keep its AST nodes (their identity is part of the key)
    and through the nodes' locations its whole token list, so the plans of a document are one
    cache entry counted at the document's size plus their own."""

    __slots__ = ("conditions", "key", "plans", "size", "source", "store")

    def __init__(self, store: PlanCache, key: int, source: Any, size: int) -> None:
        self.store = store
        self.key = key
        self.source = source
        self.size = size
        self.plans: dict[tuple[Any, ...], tuple[tuple[Any, ...], Plan | None]] = {}
        # id(operation) -> the variables its @skip/@include read; the operations are this
        # document's own (kept alive by it), so their ids stay unique.
        self.conditions: dict[int, tuple[str, ...]] = {}

    def add(
        self, key: tuple[Any, ...], entry: tuple[tuple[Any, ...], Plan | None], size: int
    ) -> None:
        """Keep a plan and count it (the entry is stored again so the cache re-weighs it)."""
        self.plans[key] = entry
        self.size += size
        self.store.reweigh(self)


class PlanCache:
    """Plans across requests, by document, bounded by bytes (least recently used go first)."""

    def __init__(self, max_bytes: int) -> None:
        self._documents: LRUCache[int, _DocumentPlans] = LRUCache(
            maxsize=max(max_bytes, 1), getsizeof=attrgetter("size")
        )

    @property
    def size(self) -> int:
        """The bytes the kept plans and their documents are estimated to take."""
        return int(self._documents.currsize)

    @property
    def max_bytes(self) -> int:
        """The bytes they may take."""
        return int(self._documents.maxsize)

    def of(self, operation: Any) -> _DocumentPlans | None:
        """The plans of the document ``operation`` belongs to (a new, empty set the first time;
        None when its nodes carry no location)."""
        loc = operation.loc
        if loc is None:
            return None
        source = loc.source
        key = id(source)
        found = self._documents.get(key)
        if found is not None and found.source is source:
            return found
        group = _DocumentPlans(self, key, source, _document_bytes(loc))
        self.reweigh(group)
        return group

    def reweigh(self, group: _DocumentPlans) -> None:
        """Store ``group`` at its current size; one that alone outgrows the cache is not kept."""
        if group.size <= self._documents.maxsize:
            self._documents[group.key] = group
        else:
            self._documents.pop(group.key, None)


def plan_cache(schema: GraphQLSchema, max_bytes: int | None = None) -> PlanCache:
    """The plan cache of a schema; ``max_bytes`` installs a new one of that size."""
    found = schema.__dict__.get("_capahub_plans")
    if max_bytes is not None or not isinstance(found, PlanCache):
        found = PlanCache(PLAN_CACHE_BYTES if max_bytes is None else max_bytes)
        schema.__dict__["_capahub_plans"] = found
    return found


def _document_bytes(loc: Any) -> int:
    """Estimated bytes of the document a location belongs to (``resolvers.prepared`` measured
    the factors: 600 B per token, 2 B per character of text, 2 kB fixed)."""
    token = loc.start_token
    while token.prev is not None:
        token = token.prev
    tokens = 0
    while token is not None:
        tokens += 1
        token = token.next
    return 2_000 + 600 * tokens + 2 * len(loc.source.body)


def _plan_bytes(field_details_list: Any, fragments: dict[str, Any]) -> int:
    """Estimated bytes of one plan: a fixed part and a step per field of its selection
    (fragments expanded, whatever their type condition: an upper bound)."""
    sets = [fd.node.selection_set for fd in field_details_list if fd.node.selection_set]
    return PLAN_BYTES + PLAN_FIELD_BYTES * _count_fields(sets, fragments, set())


def _count_fields(sets: list[Any], fragments: dict[str, Any], seen: set[str]) -> int:
    count = 0
    for selection_set in sets:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                count += 1
            elif isinstance(selection, InlineFragmentNode):
                count += _count_fields([selection.selection_set], fragments, seen)
            elif selection.name.value not in seen:  # a fragment spread, expanded once
                seen.add(selection.name.value)
                fragment = fragments.get(selection.name.value)
                if fragment is not None:
                    count += _count_fields([fragment.selection_set], fragments, seen)
    return count


class CatalogExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's execution, with planned completion of objects where a plan applies.

    Plans outlive the request: they are kept on the schema, keyed by the object type, the
    identity of the selection's AST nodes (the parser cache hands the same document to every
    request with the same text) and the values of the variables that ``@skip``/``@include``
    read. A plan reads the running request from ``_running``, never from a closure.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (type, id(field details)) -> (field details kept alive, plan or None)
        self._plans: dict[tuple[str, int], tuple[Any, Plan | None]] = {}
        self._direct_info = _DirectInfo(self.context_value)
        self._condition_key: tuple[Any, ...] | None = None
        self._document_plans: _DocumentPlans | None | _Unset = _UNSET
        # Schema extensions with a ``resolve`` hook (tracing, say) run as middleware around
        # every field resolver: they must see every field, so nothing is planned then.
        manager = self.middleware_manager
        self._planning = not (manager is not None and manager.middlewares)

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        *rest: Any,
    ) -> Any:
        plan = self._plan(return_type, field_details_list) if self._planning else None
        if plan is not None:
            _running.info = self._direct_info
            _running.context = self
            try:
                return plan(result)
            except _Miss:
                pass
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, *rest
        )

    def complete_abstract_value(
        self,
        return_type: GraphQLInterfaceType | GraphQLUnionType,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        *rest: Any,
    ) -> Any:
        """An interface or union value of one of the schema's own classes completes as that
        class's object type (what strawberry's ``resolve_type`` answers for an instance that
        is not ``strawberry.cast``); anything else goes through ``resolve_type``."""
        runtime = runtime_type(self.schema, return_type, type(result))
        if runtime is not None and get_strawberry_type_cast(result) is None:
            return self.complete_object_value(
                runtime, field_details_list, info, path, result, *rest
            )
        return super().complete_abstract_value(
            return_type, field_details_list, info, path, result, *rest
        )

    def complete_iterable_value(
        self,
        item_type: GraphQLOutputType,
        field_details_list: Any,
        info: Any,
        path: Any,
        items: Iterable[Any],
        *rest: Any,
    ) -> Any:
        """A long list (more than ``LONG_LIST`` items) is completed in turns: through
        graphql-core's async iterator completion, the loop handed back every ``TURN_SECONDS``."""
        if (type(items) is list or type(items) is tuple) and len(items) > LONG_LIST:
            return self.complete_async_iterator_value(
                item_type, field_details_list, info, path, _in_turns(items), *rest
            )
        return super().complete_iterable_value(
            item_type, field_details_list, info, path, items, *rest
        )

    # -- planning ---------------------------------------------------------------------------

    def _plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> Plan | None:
        key = (object_type.name, id(field_details_list))
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        nodes = tuple(fd.node for fd in field_details_list)
        shared = self._shared()
        shared_key = (object_type.name, tuple(map(id, nodes)), self._conditions())
        found = shared.plans.get(shared_key) if shared is not None else None
        if found is not None and all(a is b for a, b in zip(found[0], nodes, strict=True)):
            plan = found[1]
        else:
            self._plans[key] = (field_details_list, None)  # a cycle in planning means no plan
            plan = self._build_plan(object_type, field_details_list)
            if shared is not None:
                size = _plan_bytes(field_details_list, self.fragment_definitions)
                shared.add(shared_key, (nodes, plan), size)
        self._plans[key] = (field_details_list, plan)
        return plan

    def _shared(self) -> _DocumentPlans | None:
        """The plans kept across requests for this operation's document (None: no location
        to tell the document by, so plans last this request only)."""
        if self._document_plans is _UNSET:
            self._document_plans = plan_cache(self.schema).of(self.operation)
        return self._document_plans

    def _conditions(self) -> tuple[Any, ...]:
        """The values of the variables this operation's ``@skip``/``@include`` read."""
        if self._condition_key is None:
            shared = self._shared()
            names = None if shared is None else shared.conditions.get(id(self.operation))
            if names is None:
                names = _condition_variables(self.operation, self.fragment_definitions)
                if shared is not None:
                    shared.conditions[id(self.operation)] = names
            coerced = self.variable_values.coerced
            self._condition_key = tuple(coerced.get(n) for n in names)
        return self._condition_key

    def _build_plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> Plan | None:
        if any(fd.defer_usage is not None for fd in field_details_list):
            return None
        grouped, new_defers, _forbidden = self.collect_subfields(object_type, field_details_list)
        if new_defers:
            return None
        steps: list[tuple[str, Callable[[Any], Any]]] = []
        for response_key, sub_details in grouped.items():
            step = self._field_step(object_type, sub_details)
            if step is None:
                return None
            steps.append((response_key, step))

        def plan(source: Any) -> dict[str, Any]:
            return {k: step(source) for k, step in steps}

        return plan

    def _field_step(
        self, object_type: GraphQLObjectType, details: Any
    ) -> Callable[[Any], Any] | None:
        if any(fd.fragment_variable_values for fd in details):
            return None
        name = details[0].node.name.value
        if name == "__typename":
            type_name = object_type.name
            return lambda _source: type_name
        field_def = object_type.fields.get(name)
        if field_def is None:
            return None
        field = field_def.extensions.get(_BACKREF)
        if not isinstance(field, StrawberryField) or field.arguments or field.extensions:
            return None  # arguments, permissions and field extensions need the resolver path
        complete = self._completer(field_def.type, details)
        if complete is None:
            return None
        if field.is_basic_field:
            get = attrgetter(field.python_name)
            if getattr(complete, "text", False):  # a String or ID: mostly a str already

                def text_attribute(source: Any) -> Any:
                    value = get(source)
                    return value if type(value) is str else complete(value)

                return text_attribute
            return lambda source: complete(get(source))
        resolver = field.base_resolver
        if (
            resolver is None
            or field.is_async
            or not getattr(resolver.wrapped_func, DIRECT_MARK, False)
        ):
            return None
        fn = cast(Callable[..., Any], resolver.wrapped_func)
        running = _running
        if resolver.info_parameter is not None:
            params = list(inspect.signature(fn).parameters)
            if params[1:2] != [resolver.info_parameter.name]:
                return None  # ``@direct`` resolvers take (self, info)

            def resolve_with_info(source: Any) -> Any:
                value = fn(source, running.info)
                if type(value) is CoroutineType:
                    value.close()
                    raise _MISS
                return complete(value)

            return resolve_with_info

        def resolve(source: Any) -> Any:
            return complete(fn(source))

        return resolve

    def _completer(self, gql_type: GraphQLOutputType, details: Any) -> Callable[[Any], Any] | None:
        """How to complete a value of ``gql_type``, or None when a plan cannot."""
        if isinstance(gql_type, GraphQLNonNull):
            inner = self._completer(gql_type.of_type, details)
            if inner is None:
                return None

            def non_null(value: Any) -> Any:
                if value is None:
                    raise _MISS  # graphql-core reports the null
                return inner(value)

            if getattr(inner, "text", False):

                def non_null_text(value: Any) -> Any:
                    if type(value) is str:
                        return value
                    if value is None:
                        raise _MISS
                    return inner(value)

                non_null_text.text = True  # type: ignore[attr-defined]
                return non_null_text
            return non_null
        nullable = self._nullable_completer(gql_type, details)
        if nullable is None:
            return None
        if getattr(nullable, "text", False):

            def nullable_text(value: Any) -> Any:
                if type(value) is str or value is None:
                    return value
                return nullable(value)

            nullable_text.text = True  # type: ignore[attr-defined]
            return nullable_text
        return lambda value: None if value is None else nullable(value)

    def _nullable_completer(
        self, gql_type: GraphQLOutputType, details: Any
    ) -> Callable[[Any], Any] | None:
        if isinstance(gql_type, GraphQLList):
            item = self._completer(gql_type.of_type, details)
            if item is None:
                return None

            def complete_list(value: Any) -> Any:
                if type(value) is list and len(value) > LONG_LIST:
                    raise _MISS  # graphql-core completes it in turns
                return [item(v) for v in value]

            return complete_list
        if isinstance(gql_type, GraphQLScalarType | GraphQLEnumType):
            return _leaf(gql_type)
        if isinstance(gql_type, GraphQLObjectType):
            plan = self._plan(gql_type, details)
            return plan
        if isinstance(gql_type, GraphQLInterfaceType | GraphQLUnionType):
            return self._abstract(gql_type, details)
        return None  # pragma: no cover - every output type is one of the above

    def _abstract(
        self, abstract: GraphQLInterfaceType | GraphQLUnionType, details: Any
    ) -> Callable[[Any], Any]:
        """Complete a value of an interface or union by its Python class's object type."""
        schema = self.schema
        by_class: dict[type, Plan | None] = {}

        def complete(value: Any) -> Any:
            cls = type(value)
            try:
                plan = by_class[cls]
            except KeyError:
                runtime = runtime_type(schema, abstract, cls)
                plan = None if runtime is None else _running.context._plan(runtime, details)
                by_class[cls] = plan
            if plan is None:
                raise _MISS
            return plan(value)

        return complete


async def _in_turns(items: Sequence[Any]) -> AsyncIterator[Any]:
    """The items, handing the event loop back whenever ``TURN_SECONDS`` have passed (the time
    the consumer spends on each item counts: it runs while this generator waits)."""
    turn = time.perf_counter()
    for item in items:
        yield item
        if time.perf_counter() - turn > TURN_SECONDS:
            await asyncio.sleep(0)
            turn = time.perf_counter()


def runtime_type(
    schema: GraphQLSchema, abstract: GraphQLInterfaceType | GraphQLUnionType, cls: type
) -> GraphQLObjectType | None:
    """The object type of ``abstract`` that instances of ``cls`` have, when the class alone
    says it (a non-generic strawberry object type); remembered per schema."""
    known: dict[tuple[str, type], GraphQLObjectType | None] = schema.__dict__.setdefault(
        "_capahub_runtime_types", {}
    )
    key = (abstract.name, cls)
    try:
        return known[key]
    except KeyError:
        pass
    found = None
    definition = getattr(cls, "__strawberry_definition__", None)
    if (
        isinstance(definition, StrawberryObjectDefinition)
        and not definition.is_interface
        and not definition.is_graphql_generic
    ):
        runtime = schema.get_type(definition.name)
        if isinstance(runtime, GraphQLObjectType) and schema.is_sub_type(abstract, runtime):
            found = runtime
    known[key] = found
    return found


def _condition_variables(operation: Any, fragments: dict[str, Any]) -> tuple[str, ...]:
    """Names of the variables that ``@skip``/``@include`` read in an operation or its fragments
    (remembered with the document's plans)."""
    names: set[str] = set()

    class Conditions(Visitor):
        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            if node.name.value in ("skip", "include"):
                for arg in node.arguments or ():
                    if isinstance(arg.value, VariableNode):
                        names.add(arg.value.name.value)

    for root in (operation, *fragments.values()):
        visit(root, Conditions())
    return tuple(sorted(names))


def _leaf(leaf: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """Serialize a leaf value as graphql-core's ``complete_leaf_value`` does."""
    serialize = leaf.serialize

    def any_leaf(value: Any) -> Any:
        try:
            out = serialize(value)
        except Exception:
            raise _MISS from None  # graphql-core reports the serialization error
        if out is Undefined or out is None:
            raise _MISS
        return out

    if leaf.name not in ("String", "ID"):
        return any_leaf

    def text(value: Any) -> Any:
        return value if type(value) is str else any_leaf(value)

    text.text = True  # type: ignore[attr-defined]
    return text


__all__ = [
    "DIRECT_MARK",
    "LONG_LIST",
    "CatalogExecutionContext",
    "PlanCache",
    "direct",
    "plan_cache",
]

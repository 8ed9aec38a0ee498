"""Static query cost: what an operation may cost, known before any resolver runs.

The cost counts the objects an answer can hold, as Apollo's demand control ("static estimated
cost", after the IBM cost directive specification) and GitHub's node limit do, plus a price
for each of the hub's graph questions (docs/limits.md, "Query cost", has the formula and worked
examples):

* a leaf (scalar, enum) costs 0, an object 1, and a field returning a list costs its size times
  what one item costs; nested selections multiply through;
* a list's size is its ``first`` (a literal or a variable, at most the largest page any field
  accepts), or for a connection (``edges``/``hits`` under a field with ``first``) the same
  ``first``, or a known bound (``LIST_SIZES``); a node's relation lists (``relations``,
  ``providers``, ``children``, ...: ``RELATION_LISTS``) are as long as the catalog's longest
  such list (``CatalogListSizes``, once per catalog version, at least ``DEFAULT_LIST_SIZE``);
  anything else ``DEFAULT_LIST_SIZE``;
* graph questions, searches and live records add a base price (``QUESTION_COSTS``), scaled by
  their ``depth`` or ``maxLength`` where they take one; every mutation field adds
  ``MUTATION_COST``;
* aliases add up (two aliases of a field cost twice), fragments are expanded, fields with the
  same response key are merged as execution merges them, and an interface or union selection
  costs what its most expensive member type would;
* introspection answers from the schema alone, so ``__schema`` and ``__type`` cost at most a
  fixed amount (about what the full introspection of this schema holds).

An operation compiles once into a ``Cost``: an int when no variable changes it, else a small
expression over the variables that size lists (``evaluate`` runs it per request, in
microseconds). ``CostLimit`` refuses, after validation and before execution, an operation that
costs more than the limit, and reports the cost of every answered one in ``extensions.cost``;
the prepared lane (``resolvers.prepared``) evaluates the same ``Cost`` kept with its document.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from cachetools import LRUCache
from graphql import (
    BooleanValueNode,
    DocumentNode,
    EnumValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLCompositeType,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NamedTypeNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SchemaMetaFieldDef,
    SelectionNode,
    SelectionSetNode,
    TypeMetaFieldDef,
    ValueNode,
    VariableNode,
    get_named_type,
    is_abstract_type,
    is_composite_type,
)
from strawberry.extensions import SchemaExtension

from catalog.analysis import BACKWARD, FORWARD, LINEAGE
from catalog.budget import (
    BODY_BYTES,
    CALLER,
    REFUSED_POINTS,
    CostBudget,
    caller_key,
    charge_of,
)
from metadata.graph import CatalogGraph
from metadata.model import Kind, RelationType

if TYPE_CHECKING:
    from metadata.graph import GraphView

#: What one object of an answer costs (leaves cost nothing).
OBJECT_COST = 1
#: Size assumed for a list without ``first`` and without a known bound (relation lists such as
#: ``providers`` or ``children``, graph answers): the static estimate Apollo calls "list size".
DEFAULT_LIST_SIZE = 20
#: Lists with a bound of their own.
LIST_SIZES: Mapping[str, int] = {
    "ImpactedNode.via": 10,  # the path from the root: at most impact's largest depth
    # facets hold at most 50 values each (resolvers/search.py)
    "Facets.kind": 50,
    "Facets.tag": 50,
    "Facets.domain": 50,
    "Facets.lifecycle": 50,
    "Facets.owner": 50,
}
#: Under a field with ``first`` that returns an object (a connection), the lists ``first`` sizes.
SIZED_BY_FIRST = ("edges", "hits")
#: A node's lists whose length the catalog knows: field coordinate -> (kind of the node,
#: relation type and direction it follows). "*" is every relation, both ways (``relations``);
#: "OWNS" out also counts the nodes whose ``owner`` is the team (``Team.owns``).
RELATION_LISTS: Mapping[str, tuple[str, str, str]] = {
    "Domain.capabilities": ("DOMAIN", "PART_OF", "in"),
    "Domain.systems": ("DOMAIN", "PART_OF", "in"),
    "Domain.entities": ("DOMAIN", "PART_OF", "in"),
    "Team.owns": ("TEAM", "OWNS", "out"),
    "Team.stewards": ("TEAM", "STEWARDS", "out"),
    "System.provides": ("SYSTEM", "PROVIDES", "out"),
    "System.masters": ("SYSTEM", "MASTERS", "out"),
    "System.stores": ("SYSTEM", "STORES", "out"),
    "System.dependsOn": ("SYSTEM", "DEPENDS_ON", "out"),
    "System.dependents": ("SYSTEM", "DEPENDS_ON", "in"),
    "System.components": ("SYSTEM", "PART_OF", "in"),
    "System.touchpoints": ("SYSTEM", "SERVED_BY", "in"),
    "System.sources": ("SYSTEM", "PART_OF", "in"),
    "Capability.children": ("CAPABILITY", "PART_OF", "in"),
    "Capability.providers": ("CAPABILITY", "PROVIDES", "in"),
    "Capability.reads": ("CAPABILITY", "READS", "out"),
    "Capability.writes": ("CAPABILITY", "WRITES", "out"),
    "Capability.dependsOn": ("CAPABILITY", "DEPENDS_ON", "out"),
    "Capability.usedBy": ("CAPABILITY", "USES", "in"),
    "DataEntity.masteredBy": ("DATA_ENTITY", "MASTERS", "in"),
    "DataEntity.storedBy": ("DATA_ENTITY", "STORES", "in"),
    "DataEntity.stewards": ("DATA_ENTITY", "STEWARDS", "in"),
    "DataEntity.readBy": ("DATA_ENTITY", "READS", "in"),
    "DataEntity.writtenBy": ("DATA_ENTITY", "WRITES", "in"),
    "DataEntity.representedBy": ("DATA_ENTITY", "REPRESENTS", "in"),
    "DataEntity.represents": ("DATA_ENTITY", "REPRESENTS", "out"),
    "Journey.steps": ("JOURNEY", "PART_OF", "in"),
    "JourneyStep.uses": ("JOURNEY_STEP", "USES", "out"),
    "JourneyStep.touchpoints": ("JOURNEY_STEP", "OCCURS_AT", "out"),
    "Touchpoint.servedBy": ("TOUCHPOINT", "SERVED_BY", "out"),
    "Touchpoint.steps": ("TOUCHPOINT", "OCCURS_AT", "in"),
    "Source.harvested": ("SOURCE", "HARVESTED_FROM", "in"),
    **{
        f"{t}.relations": (k, "*", "both")
        for t, k in (
            ("Domain", "DOMAIN"),
            ("Team", "TEAM"),
            ("System", "SYSTEM"),
            ("Capability", "CAPABILITY"),
            ("DataEntity", "DATA_ENTITY"),
            ("Journey", "JOURNEY"),
            ("JourneyStep", "JOURNEY_STEP"),
            ("Touchpoint", "TOUCHPOINT"),
            ("Source", "SOURCE"),
        )
    },
}
#: The sizes of ``RELATION_LISTS`` are worked out again at most this often (seconds): a pass
#: over every relation (about 20 ms for 50,000 relations, 2.2 s for 500,000), on a worker
#: thread over a snapshot of the projection, so a burst of writes does not pay it per write
#: and no request waits for it; meanwhile the previous version's sizes count.
LIST_SIZES_INTERVAL = 1.0
#: Catalogs of at most this many nodes have their statistics worked out again at once, on
#: the event loop (tens of milliseconds): the next request after a write counts with them.
#: Larger ones on a worker thread.
LIST_SIZES_AT_ONCE = 20_000
#: ``reach`` answers kept per catalog version (question, list, depth and narrowing each).
REACH_MEMO = 4096
#: In ``Question.answers``, the question's own answer (a list).
ITSELF = ""


@dataclass(frozen=True)
class Question:
    """The price of a graph question (or a search, or live records) besides its answer's
    objects: ``base``, plus ``per_unit`` per unit of ``argument`` (``depth``, ``maxLength``; at
    most ``largest``). The lists of its answer named in ``answers`` (``ITSELF``: the answer is
    that list) hold the given number of items per unit of the argument (at least one unit)."""

    base: int
    per_unit: int = 0
    argument: str | None = None
    largest: int = 0
    answers: tuple[tuple[str, int], ...] = ()


_IMPACT = (("affected", 20), ("unprovidedCapabilities", 20), ("orphanedEntities", 20))
# Relations among the nodes reached: two to three times as many as the nodes in a catalog's
# graph (the demo's: 174 nodes, 447 relations; 124 and 333 within 3 of the CRM).
_SUBGRAPH = (("nodes", 20), ("relations", 40))
#: The questions' prices. A question with a depth reaches further with every level: its base
#: grows by 50 per level and its answer's lists by 20 items (relations 40) per level, up to the
#: largest depth, 10; a path holds at most ``maxLength`` relations.
QUESTION_COSTS: Mapping[str, Question] = {
    "Query.impact": Question(50, 50, "depth", 10, _IMPACT),
    "Query.neighborhood": Question(50, 50, "depth", 10, _SUBGRAPH),
    "Query.lineage": Question(50, 50, "depth", 10, _SUBGRAPH),
    "Query.capabilityMap": Question(50, 50, "depth", 10, ((ITSELF, 20),)),
    "Query.path": Question(50, 25, "maxLength", 12, ((ITSELF, 1),)),
    "Query.gaps": Question(500),
    "Query.redundancies": Question(500),
    "Query.journeyCoverage": Question(200),
    "Query.hotspots": Question(500),
    # The paged forms answer from the whole answer, kept per catalog version (computed on the
    # first page): the list form's price, plus ``first`` items (``SIZED_BY_FIRST``).
    "Query.gapsPage": Question(500),
    "Query.redundanciesPage": Question(500),
    "Query.hotspotsPage": Question(500),
    "Query.search": Question(100),
    "Query.catalogDiff": Question(500),
    "Query.records": Question(200),
    "DataEntity.records": Question(200),
}
#: Graph questions whose answer's lists are bounded, once a catalog is bound, by what a
#: traversal of ``depth`` relations can reach in it (``ReachBounds``: from the catalog's degrees,
#: once per version) instead of the per-level estimate of ``QUESTION_COSTS``.
REACH_QUESTIONS = frozenset({"Query.impact", "Query.neighborhood", "Query.lineage"})
#: Questions over the whole catalog whose answer (a list) is bounded by what it holds, once a
#: catalog is bound (``ReachBounds.findings``), instead of ``DEFAULT_LIST_SIZE``.
CATALOG_QUESTIONS = frozenset({"Query.gaps", "Query.redundancies"})
#: Lists of graph answers' items as long as the catalog's longest such list (once a catalog is
#: bound; ``catalog_statistics``) wherever no question above sizes them (in a page).
ANSWER_ITEM_LISTS = frozenset({"Redundancy.involved"})
#: The lists of an answer's items that the question sizes too: list field -> those lists.
ITEM_LISTS: Mapping[str, tuple[str, ...]] = {
    "Impact.affected": ("via",),  # the path to an affected node: at most the depth
    "Query.redundancies": ("involved",),  # the providers or masters of one node
}

#: What ``asOf`` adds to a read (``AS_OF_COST``: its past records are read from the history)
#: or to a graph question, listing or search (a past graph, or a whole past state, is rebuilt
#: unless cached): docs/time-travel.md.
AS_OF_COST = 20
AS_OF_COSTS: Mapping[str, int] = {
    **{f"Query.{q}": 1_000 for q in ("impact", "path", "neighborhood", "gaps", "redundancies")},
    **{f"Query.{q}": 1_000 for q in ("lineage", "capabilityMap", "journeyCoverage", "hotspots")},
    **{f"Query.{q}": 1_000 for q in ("gapsPage", "redundanciesPage", "hotspotsPage")},
    **{f"Query.{q}": 500 for q in ("nodes", "systems", "capabilities", "dataEntities")},
    "Query.search": 2_000,
}
#: What each field of a mutation costs besides its answer (every one is a write transaction).
MUTATION_COST = 10
#: Writes that read a whole document or source first.
HEAVY_MUTATIONS: Mapping[str, int] = {"applyCatalog": 100, "harvest": 100}
#: Introspection is answered from the schema, whose size is fixed: a full introspection of
#: capahub's schema holds about 1,900 objects (146 kB), one type's about 80.
INTROSPECTION_COSTS: Mapping[str, int] = {"__schema": 2_000, "__type": 100}
#: Costs are reported up to here (JSON integers stay exact; anything near it is refused anyway).
COST_CEILING = 10**15

#: A compiled cost: an int, or an expression over the request's variables and the catalog:
#: ("var", name, when missing, when null, largest), ("len", name), ("+", terms),
#: ("*", a, b), ("max", terms), ("list", coordinate, CatalogListSizes),
#: ("reach", question, list, depth, narrowing, per level without a catalog, CatalogListSizes),
#: ("findings", question, narrowing, CatalogListSizes).
Cost: TypeAlias = int | tuple[Any, ...]

#: Lists a parent sizes for its children: (name, size) pairs (``ITSELF``: the parent's own).
_Sized: TypeAlias = tuple[tuple[str, Cost], ...]

_MISSING = object()


def _add(terms: Sequence[Cost]) -> Cost:
    constant = 0
    rest: list[Cost] = []
    for t in terms:
        if isinstance(t, int):
            constant += t
        elif t[0] == "+":
            constant += sum(x for x in t[1] if isinstance(x, int))
            rest.extend(x for x in t[1] if not isinstance(x, int))
        else:
            rest.append(t)
    if not rest:
        return constant
    if not constant and len(rest) == 1:
        return rest[0]
    return ("+", (constant, *rest) if constant else tuple(rest))


def _mul(a: Cost, b: Cost) -> Cost:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    if a == 0 or b == 0:
        return 0
    if a == 1:
        return b
    if b == 1:
        return a
    return ("*", a, b)


def _max(terms: Sequence[Cost]) -> Cost:
    unique = list(dict.fromkeys(terms))
    if all(isinstance(t, int) for t in unique):
        return max((t for t in unique if isinstance(t, int)), default=0)
    if len(unique) == 1:
        return unique[0]
    return ("max", tuple(unique))


def evaluate(cost: Cost, variables: Mapping[str, Any] | None) -> int:
    """The cost for these variable values (raw JSON, as the request sent them)."""
    if isinstance(cost, int):
        return min(cost, COST_CEILING)
    if not isinstance(variables, Mapping):  # none, or not an object: execution refuses it
        variables = {}
    return min(_evaluate(cost, variables), COST_CEILING)


def _evaluate(cost: Cost, variables: Mapping[str, Any]) -> int:
    if isinstance(cost, int):
        return cost
    op = cost[0]
    if op == "+":
        return sum(_evaluate(t, variables) for t in cost[1])
    if op == "*":
        return _evaluate(cost[1], variables) * _evaluate(cost[2], variables)
    if op == "max":
        return max(_evaluate(t, variables) for t in cost[1])
    if op == "list":
        sizes: CatalogListSizes = cost[2]
        return sizes.size(cost[1])
    if op == "findings":
        found: CatalogListSizes = cost[3]
        return found.findings(cost[1], cost[2])
    if op == "reach":
        _, question, name, depth, narrowing, per, catalog = cost
        units = _evaluate(depth, variables)
        bounds: CatalogListSizes = catalog
        return bounds.reach(question, name, units, narrowing, per)
    if op == "len":
        value = variables.get(cost[1])
        return len(value) if isinstance(value, list) else 1  # a single value is a list of one
    _, name, missing, null, largest = cost
    value = variables.get(name, _MISSING)
    if value is _MISSING:
        n = missing
    elif value is None:
        n = null
    elif type(value) is int:
        n = value
    elif type(value) is float and value.is_integer():
        n = int(value)
    else:  # not an Int: execution refuses it before any resolver runs
        n = missing
    return min(max(int(n), 0), int(largest))


def cost_size(cost: Cost) -> int:
    """Rough bytes a compiled cost takes (for the caches that keep one)."""
    if isinstance(cost, int):
        return 32
    if cost[0] == "list":
        return 64
    if cost[0] == "reach":
        return 128 + cost_size(cost[3])
    if cost[0] == "findings":
        return 128
    return 64 + sum(cost_size(t) for t in cost[1:] if isinstance(t, int | tuple))


class CatalogListSizes:
    """How long a node's relation lists can be in the catalog a schema serves: for each field
    of ``RELATION_LISTS``, the longest such list of any node of its kind, at least
    ``DEFAULT_LIST_SIZE``; and how far graph questions can reach in it (``ReachBounds``);
    worked out from the graph projection once per catalog version.

    Compiled costs refer to it (``("list", coordinate, sizes)``, ``("reach", ...)``), so a cost
    compiled once by text, on either lane, counts the catalog as it is when the request comes.
    Until a graph is bound (``bind``: the first request that brings the services) every list
    size is the default and graph answers are estimated per level.
    """

    def __init__(self) -> None:
        self._graph: GraphView | None = None
        self._version = -1
        self._at = 0.0
        self._sizes: dict[str, int] = {}
        self._reach: ReachBounds | None = None
        #: ``reach`` answers of this version: an operation of 200 aliased graph questions asks
        #: the same few, and each is a walk over the degree statistics (tens of microseconds).
        self._reached: dict[tuple[Any, ...], int] = {}
        #: Whether a worker thread is working the statistics out.
        self._working = False

    def bind(self, graph: GraphView | None) -> None:
        """Read the catalog from ``graph`` (the projection of the services requests use)."""
        if graph is not None and graph is not self._graph:
            self._graph = graph
            self._version = -1

    async def warm(self, graph: GraphView) -> None:
        """Bind ``graph`` and work its statistics out on a worker thread (at start, before the
        first request: otherwise that request pays the pass on the event loop)."""
        self.bind(graph)
        frozen = graph.snapshot() if isinstance(graph, CatalogGraph) else graph
        found = await asyncio.to_thread(catalog_statistics, frozen)
        if self._graph is graph and self._version < frozen.version:
            # As if long ago: the first change after start is counted at once (the catalog is
            # often loaded right after the start).
            self._install(found, frozen.version, at=0.0)

    def _install(
        self, found: tuple[dict[str, int], ReachBounds], version: int, at: float | None = None
    ) -> None:
        self._sizes, self._reach = found
        self._reached = {}
        self._version = version
        self._at = time.monotonic() if at is None else at

    def _refresh(self) -> None:
        graph = self._graph
        if graph is None or graph.version == self._version:
            return
        if self._version < 0:  # nothing to count with yet: the first pass, here
            self._install(catalog_statistics(graph), graph.version)
            return
        if time.monotonic() - self._at < LIST_SIZES_INTERVAL or self._working:
            return
        if len(graph.g) <= LIST_SIZES_AT_ONCE:
            self._install(catalog_statistics(graph), graph.version)
            return
        # On a thread, over this version frozen (snapshot: on the loop's thread, where the
        # live projection changes); the previous version's figures count until it is done.
        frozen = graph.snapshot() if isinstance(graph, CatalogGraph) else graph
        self._working = True
        self._at = time.monotonic()

        def work() -> None:
            try:
                found = catalog_statistics(frozen)
                if self._graph is graph and self._version < frozen.version:
                    self._install(found, frozen.version)
            finally:
                self._working = False

        threading.Thread(target=work, name="capahub-cost-statistics", daemon=True).start()

    def size(self, coordinate: str) -> int:
        """The size a list field counts at, for the catalog's current version."""
        self._refresh()
        return self._sizes.get(coordinate, DEFAULT_LIST_SIZE)

    def reach(
        self,
        question: str,
        name: str,
        depth: int,
        narrowing: tuple[str, ...] | str | None,
        per: int,
    ) -> int:
        """How many items the list ``name`` of a graph question's answer can hold at this
        ``depth`` (``narrowing``: the relation types of a neighborhood, the direction of a
        lineage); ``per`` items a level while no catalog is bound."""
        self._refresh()
        if self._reach is None:
            return per * max(depth, 1)
        key = (question, name, depth, narrowing)
        found = self._reached.get(key)
        if found is None:
            found = self._reach.answer(question, name, depth, narrowing)
            if len(self._reached) >= REACH_MEMO:  # narrowings are sets of relation types
                self._reached.clear()
            self._reached[key] = found
        return found

    def findings(self, question: str, kinds: tuple[str, ...] | None) -> int:
        """How many items ``gaps`` (of these ``kinds``, None: all) or ``redundancies`` can
        answer in the catalog's current version; ``DEFAULT_LIST_SIZE`` while none is bound."""
        self._refresh()
        if self._reach is None:
            return DEFAULT_LIST_SIZE
        return self._reach.findings(question, kinds)


@dataclass
class ReachBounds:
    """Degree statistics of one catalog version that bound what a traversal can reach.

    A breadth-first traversal reaches, at each level, at most as many new nodes as the nodes of
    the level before have relations (less the one each was reached by, when relations are
    followed both ways); those nodes are at most the ones with the most relations, so the sum of
    the largest degrees (``prefix``) bounds each level, and the catalog's size bounds them all.
    The relations among ``k`` nodes are at most half the sum of their degrees (each has two
    ends) and at most as many as the catalog holds. An upper bound, not an average: any root
    may be asked for.
    """

    nodes: int = 0
    #: Capabilities with two providers or more, entities with two systems of record or more.
    served_twice: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    relations: Counter[str] = field(default_factory=Counter)
    #: (relation type, "*" for all, or "impact"; "out", "in" or "both") -> sums of the largest
    #: degrees: ``prefix[k]`` is the sum of the ``k`` largest (``prefix[0] == 0``).
    prefix: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def _top(self, key: tuple[str, str], count: int) -> int:
        sums = self.prefix.get(key)
        if not sums:
            return 0
        return sums[min(count, len(sums) - 1)]

    def _degrees(self, types: Iterable[str], way: str, count: int) -> int:
        """At most how many relations of ``types`` (``way``) ``count`` nodes have together."""
        return sum(self._top((t, way), count) for t in types)

    def _spread(self, types: Sequence[str], way: str, depth: int) -> int:
        """At most how many nodes (the root included) are within ``depth`` relations."""
        total = level = 1
        for k in range(depth):
            reached = self._degrees(types, way, level)
            if way == "both" and k:
                reached -= level  # each was reached by one of its relations
            level = min(reached, self.nodes - total)
            if level <= 0:
                break
            total += level
        return min(total, max(self.nodes, 1))

    def _among(self, types: Sequence[str], count: int) -> int:
        """At most how many relations of ``types`` join ``count`` nodes."""
        held = sum(self.relations[t] for t in types)
        return min(held, (self._degrees(types, "both", count) + 1) // 2)

    def findings(self, question: str, kinds: tuple[str, ...] | None) -> int:
        """The most items ``gaps`` (of ``kinds``, None: all) or ``redundancies`` can answer,
        by the rules of ``catalog.analysis``: a capability misses a provider and an owner, a
        system an owner, an entity a system of record and a steward, a journey step one
        capability per USES relation, a touchpoint a system; a capability or an entity with two
        providers or systems of record (active or not) is redundant once."""
        k = self.kinds
        if question == "Query.redundancies":
            return self.served_twice
        per_kind = {
            "CAPABILITY": 2 * k["CAPABILITY"],
            "SYSTEM": k["SYSTEM"],
            "DATA_ENTITY": 2 * k["DATA_ENTITY"],
            "JOURNEY_STEP": self.relations["USES"],
            "TOUCHPOINT": k["TOUCHPOINT"],
        }
        return sum(c for kind, c in per_kind.items() if kinds is None or kind in kinds)

    def answer(
        self, question: str, name: str, depth: int, narrowing: tuple[str, ...] | str | None
    ) -> int:
        """The most items the list ``name`` of ``question``'s answer can hold."""
        if question == "Query.impact":
            affected = self._spread(("impact",), "out", depth) - 1
            kind = {"unprovidedCapabilities": "CAPABILITY", "orphanedEntities": "DATA_ENTITY"}
            if name in kind:
                return min(affected, self.kinds[kind[name]])
            return affected
        if question == "Query.lineage":
            types: Sequence[str] = [t.name for t in LINEAGE]
            way = narrowing if isinstance(narrowing, str) else "both"
        else:
            types = list(narrowing) if isinstance(narrowing, tuple) else ["*"]
            way = "both"
        members = self._spread(types, way, depth)
        if name == "relations":
            return self._among(types, members)
        return members


def _prefix_sums(degrees: Iterable[int]) -> list[int]:
    return [0, *itertools.accumulate(sorted((d for d in degrees if d), reverse=True))]


def longest_lists(graph: GraphView) -> dict[str, int]:
    """For each field of ``RELATION_LISTS``, the longest list it has in ``graph`` (at least
    ``DEFAULT_LIST_SIZE``)."""
    return catalog_statistics(graph)[0]


def catalog_statistics(graph: GraphView) -> tuple[dict[str, int], ReachBounds]:
    """The longest list of every field of ``RELATION_LISTS`` and the ``ReachBounds`` of
    ``graph``, from one pass over its relations."""
    g = graph.g
    # Keyed by the enum members while counting (an enum's ``name`` is a property: reading it
    # per relation doubled the pass), by their names at the end.
    longest: dict[tuple[Any, Any, str], int] = {}
    degrees: dict[tuple[Any, str], list[int]] = {}
    owned: Counter[str] = Counter()
    kinds: Counter[Any] = Counter()
    held: Counter[Any] = Counter()
    everything: list[int] = []
    impact: list[int] = []
    forward, backward, part_of = frozenset(FORWARD), frozenset(BACKWARD), RelationType.PART_OF
    step_kind = Kind.JOURNEY_STEP
    twice = {Kind.CAPABILITY: RelationType.PROVIDES, Kind.DATA_ENTITY: RelationType.MASTERS}
    served_twice = 0
    succ, pred = g._succ, g._pred  # networkx's own dicts (metadata/graph.py, "readers")
    for n, data in g._node.items():
        kind = data["kind"]
        kinds[kind] += 1
        owner = data.get("owner")
        if owner is not None:
            owned[owner] += 1
        out: dict[Any, int] = {}
        into: dict[Any, int] = {}
        loops = 0
        for v, d in succ[n].items():
            for t in d["rels"]:
                out[t] = out.get(t, 0) + 1
                if v == n:
                    loops += 1
        for d in pred[n].values():
            for t in d["rels"]:
                into[t] = into.get(t, 0) + 1
        if into.get(twice.get(kind), 0) >= 2:
            served_twice += 1
        dependents = 0
        for t, c in out.items():
            key = (kind, t, "out")
            if c > longest.get(key, 0):
                longest[key] = c
            degrees.setdefault((t, "out"), []).append(c)
            degrees.setdefault((t, "both"), []).append(c + into.get(t, 0))
            held[t] += c
            if t in forward or (t is part_of and kind is step_kind):
                dependents += c
        for t, c in into.items():
            key = (kind, t, "in")
            if c > longest.get(key, 0):
                longest[key] = c
            degrees.setdefault((t, "in"), []).append(c)
            if t not in out:
                degrees.setdefault((t, "both"), []).append(c)
            if t in backward:
                dependents += c
        both = sum(out.values()) + sum(into.values())
        everything.append(both)
        impact.append(dependents)
        key = (kind, "*", "both")
        if both - loops > longest.get(key, 0):  # ``relations`` lists a self-relation once
            longest[key] = both - loops
    for team, c in owned.items():  # Team.owns: owned through ``owner`` and through OWNS
        if team in g:
            c += sum(1 for d in succ[team].values() if _owns(d))
            key = (Kind.TEAM, RelationType.OWNS, "out")
            if c > longest.get(key, 0):
                longest[key] = c
    by_name = {
        (k.name, t if isinstance(t, str) else t.name, way): c for (k, t, way), c in longest.items()
    }
    sizes = {
        coordinate: max(DEFAULT_LIST_SIZE, by_name.get(key, 0))
        for coordinate, key in RELATION_LISTS.items()
    }
    sizes["Redundancy.involved"] = max(
        sizes["Capability.providers"], sizes["DataEntity.masteredBy"]
    )
    prefix = {(t.name, way): _prefix_sums(values) for (t, way), values in degrees.items()}
    prefix["*", "both"] = _prefix_sums(everything)
    prefix["impact", "out"] = _prefix_sums(impact)
    relations = Counter({t.name: c for t, c in held.items()})
    relations["*"] = sum(held.values())  # relations, not node pairs: a pair holds its types
    reach = ReachBounds(
        nodes=g.number_of_nodes(),
        served_twice=served_twice,
        kinds=Counter({k.name: c for k, c in kinds.items()}),
        relations=relations,
        prefix=prefix,
    )
    return sizes, reach


def _owns(data: Mapping[str, Any]) -> bool:
    return RelationType.OWNS in data["rels"]


class _Compiler:
    """Compiles one operation of a validated document into a ``Cost``."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        max_first: int,
        sizes: CatalogListSizes | None,
    ) -> None:
        self.schema = schema
        self.max_first = max_first
        self.sizes = sizes
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.defaults: dict[str, ValueNode | None] = {
            v.variable.name.value: v.default_value for v in operation.variable_definitions or ()
        }
        self.mutation = operation.operation is OperationType.MUTATION
        # (type, ids of the merged field nodes, sized lists) -> cost; the nodes are the
        # document's own, alive while it compiles, so their ids are unique meanwhile.
        self._memo: dict[tuple[str, tuple[int, ...], _Sized], Cost] = {}

    def operation(self, operation: OperationDefinitionNode) -> Cost:
        root = self.schema.get_root_type(operation.operation)
        if root is None:
            return 0
        return self._selection(root, (operation,), ())

    def _selection(
        self, parent: GraphQLCompositeType, owners: Sequence[Any], sized: _Sized
    ) -> Cost:
        """What one object of ``parent`` costs below itself, for the merged selections of
        ``owners`` (field nodes with the same response key, or the operation)."""
        key = (parent.name, tuple(map(id, owners)), sized)
        found = self._memo.get(key)
        if found is not None:
            return found
        sets = [o.selection_set for o in owners if o.selection_set is not None]
        if isinstance(parent, GraphQLObjectType):
            types: Sequence[GraphQLObjectType] = (parent,)
        else:
            types = self.schema.get_possible_types(parent)
        per_type = []
        for object_type in types:
            fields: dict[str, list[FieldNode]] = {}
            self._collect(object_type, sets, fields, set())
            per_type.append(
                _add([self._field(object_type, nodes, sized) for nodes in fields.values()])
            )
        cost = _max(per_type)
        self._memo[key] = cost
        return cost

    def _collect(
        self,
        object_type: GraphQLObjectType,
        sets: Sequence[SelectionSetNode],
        fields: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        """Fields by response key, as graphql-core collects them for an object of the type;
        ``@skip``/``@include`` on a variable count as included."""
        for selection_set in sets:
            for selection in selection_set.selections:
                if not _included(selection):
                    continue
                if isinstance(selection, FieldNode):
                    key = (selection.alias or selection.name).value
                    fields.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    if condition is None or self._applies(condition, object_type):
                        self._collect(object_type, (selection.selection_set,), fields, visited)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if name in visited or fragment is None:
                        continue
                    visited.add(name)
                    if self._applies(fragment.type_condition, object_type):
                        self._collect(object_type, (fragment.selection_set,), fields, visited)

    def _applies(self, condition: NamedTypeNode, object_type: GraphQLObjectType) -> bool:
        named = self.schema.get_type(condition.name.value)
        if named is object_type:
            return True
        return is_abstract_type(named) and self.schema.is_sub_type(named, object_type)

    def _field(self, parent: GraphQLObjectType, nodes: Sequence[FieldNode], sized: _Sized) -> Cost:
        name = nodes[0].name.value
        if name in INTROSPECTION_COSTS:
            return self._introspection(name, nodes)
        field = parent.fields.get(name)
        if field is None:  # __typename (or a field validation refused)
            return 0
        coordinate = f"{parent.name}.{name}"
        args = {a.name.value: a.value for a in nodes[0].arguments or ()}
        base, answers = self._question(coordinate, field, args)
        as_of = args.get("asOf")
        if as_of is not None and not isinstance(as_of, NullValueNode) and "asOf" in field.args:
            # A past catalog is rebuilt (or taken from its cache) before the answer
            base = _add([base, AS_OF_COSTS.get(coordinate, AS_OF_COST)])
        if self.mutation and parent is self.schema.mutation_type:
            base = _add([base, HEAVY_MUTATIONS.get(name, MUTATION_COST)])
        named = get_named_type(field.type)
        if not is_composite_type(named):
            return base
        first = self._int_argument(field, args, "first", self.max_first)
        if not answers and first is not None:
            answers = tuple((n, first) for n in SIZED_BY_FIRST)
        levels = _list_levels(field.type)
        if levels:
            size = self._list_size(coordinate, args, sized, answers, first)
            for _ in range(levels - 1):  # a list of lists: each inner list its default size
                size = _mul(size, DEFAULT_LIST_SIZE)
            inside = ITEM_LISTS.get(coordinate, ())
            inner = tuple(x for x in (*sized, *answers) if x[0] in inside) if inside else ()
            below = self._selection(named, nodes, inner)
            return _add([base, _mul(size, _add([OBJECT_COST, below]))])
        below = self._selection(named, nodes, answers)
        return _add([base, OBJECT_COST, below])

    def _list_size(
        self,
        coordinate: str,
        args: Mapping[str, ValueNode],
        sized: _Sized,
        answers: _Sized,
        first: Cost | None,
    ) -> Cost:
        """How many items a list field holds: as its parent sizes it (a connection's edges, a
        question's answer), as its own question or ``first`` says, or its known bound."""
        for size in (_lookup(sized, coordinate.split(".")[1]), _lookup(answers, ITSELF), first):
            if size is not None:
                return size
        if coordinate == "Query._entities":
            return self._length(args.get("representations"))
        if self.sizes is not None and (
            coordinate in RELATION_LISTS or coordinate in ANSWER_ITEM_LISTS
        ):
            return ("list", coordinate, self.sizes)
        return LIST_SIZES.get(coordinate, DEFAULT_LIST_SIZE)

    def _introspection(self, name: str, nodes: Sequence[FieldNode]) -> Cost:
        """The estimate, at most the cap: the answer cannot outgrow the schema."""
        field = SchemaMetaFieldDef if name == "__schema" else TypeMetaFieldDef
        named = get_named_type(field.type)
        assert isinstance(named, GraphQLObjectType)  # __Schema, __Type
        estimate = _add([OBJECT_COST, self._selection(named, nodes, ())])
        cap = INTROSPECTION_COSTS[name]
        return min(estimate, cap) if isinstance(estimate, int) else cap

    def _question(
        self, coordinate: str, field: GraphQLField, args: Mapping[str, ValueNode]
    ) -> tuple[Cost, _Sized]:
        """A question's base price and the sizes of its answer's lists (none when no argument
        sizes them)."""
        question = QUESTION_COSTS.get(coordinate)
        if question is None:
            return 0, ()
        if self.sizes is not None and coordinate in CATALOG_QUESTIONS:
            kinds = self._names(args.get("kinds"))
            found: _Sized = ((ITSELF, ("findings", coordinate, kinds, self.sizes)),)
            if coordinate == "Query.redundancies":
                found += (("involved", ("list", "Redundancy.involved", self.sizes)),)
            return question.base, found
        if question.argument is None:
            return question.base, ()
        units = self._int_argument(field, args, question.argument, question.largest)
        units = 0 if units is None else units
        base = _add([question.base, _mul(question.per_unit, units)])
        if self.sizes is not None and coordinate in REACH_QUESTIONS:
            narrowing = self._narrowing(coordinate, args)
            sized: _Sized = tuple(
                (n, ("reach", coordinate, n, units, narrowing, per, self.sizes))
                for n, per in question.answers
            )
            if coordinate == "Query.impact":
                sized += (("via", units),)
            return base, sized
        at_least_one = _max([units, 1])
        return base, tuple((n, _mul(per, at_least_one)) for n, per in question.answers)

    def _narrowing(
        self, coordinate: str, args: Mapping[str, ValueNode]
    ) -> tuple[str, ...] | str | None:
        """What narrows a traversal, when the document says it: a neighborhood's relation
        ``types`` (a literal list), a lineage's ``direction``; None (all of them) otherwise."""
        value = args.get("types" if coordinate == "Query.neighborhood" else "direction")
        if coordinate == "Query.lineage":
            if isinstance(value, EnumValueNode) and value.value in ("IN", "OUT"):
                return value.value.lower()
            return None
        return self._names(value)

    def _names(self, value: ValueNode | None) -> tuple[str, ...] | None:
        """The enum values of a literal list argument (or of a single one); None for anything
        else (a variable, null, an empty list: every value)."""
        if isinstance(value, EnumValueNode):
            return (value.value,)
        if isinstance(value, ListValueNode) and value.values:
            names = [v.value for v in value.values if isinstance(v, EnumValueNode)]
            if len(names) == len(value.values):
                return tuple(sorted(set(names)))
        return None

    def _int_argument(
        self, field: GraphQLField, args: Mapping[str, ValueNode], name: str, largest: int
    ) -> Cost | None:
        """The argument's value as a ``Cost`` (clamped to 0..largest); None when the field has
        no such argument. Null, or nothing, means the argument's default, as the resolvers do."""
        definition = field.args.get(name)
        if definition is None:
            return None
        default = definition.default_value
        fallback = default if type(default) is int else largest
        value = args.get(name)
        if value is None or isinstance(value, NullValueNode):
            return min(max(fallback, 0), largest)
        if isinstance(value, IntValueNode):
            return min(max(int(value.value), 0), largest)
        if isinstance(value, VariableNode):
            var = value.name.value
            given = self.defaults.get(var)
            missing = fallback
            if isinstance(given, IntValueNode):
                missing = int(given.value)
            return ("var", var, min(max(missing, 0), largest), fallback, largest)
        return largest  # not an Int: validation refuses it

    def _length(self, value: ValueNode | None) -> Cost:
        if isinstance(value, ListValueNode):
            return len(value.values)
        if isinstance(value, VariableNode):
            return ("len", value.name.value)
        return 1


def _lookup(sized: _Sized, name: str) -> Cost | None:
    for key, size in sized:
        if key == name:
            return size
    return None


def _included(selection: SelectionNode) -> bool:
    for directive in selection.directives or ():
        name = directive.name.value
        if name not in ("skip", "include"):
            continue
        for arg in directive.arguments or ():
            value = arg.value
            if isinstance(value, BooleanValueNode) and value.value is (name == "skip"):
                return False
    return True


def _list_levels(gql_type: GraphQLOutputType) -> int:
    levels = 0
    while True:
        if isinstance(gql_type, GraphQLNonNull):
            gql_type = gql_type.of_type
        elif isinstance(gql_type, GraphQLList):
            levels += 1
            gql_type = gql_type.of_type
        else:
            return levels


def find_operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | None:
    """The operation a request runs: the named one, or the only one."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == operation_name), None)


def compile_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    *,
    max_first: int = 500,
    sizes: CatalogListSizes | None = None,
) -> Cost:
    """The cost of the operation a request runs, over its variables (a validated document);
    with ``sizes``, relation lists count as long as that catalog's longest."""
    operation = find_operation(document, operation_name)
    if operation is None:
        return 0  # execution reports the unknown operation; nothing runs
    return _Compiler(schema, document, operation, max_first, sizes).operation(operation)


def cost_error(cost: int, limit: int) -> GraphQLError:
    """The refusal of an operation over the limit, with both numbers in its extensions."""
    return GraphQLError(
        f"This operation costs {cost:,}, over the limit of {limit:,} (CAPAHUB_MAX_QUERY_COST): "
        "ask for fewer items (a smaller `first`), fewer nested lists or fewer graph questions, "
        "or split it; docs/limits.md explains how the cost is counted.",
        extensions={"code": "BAD_USER_INPUT", "cost": cost, "limit": limit},
    )


class QueryCosts:
    """One schema's cost rules and limit, with the compiled cost of recent operations.

    Compiled costs are kept by (query text, operation name) in a cache bounded by bytes (the
    text plus the compiled expression; they hold no part of the document).
    """

    def __init__(
        self, schema: GraphQLSchema, *, limit: int | None, max_first: int, max_bytes: int
    ) -> None:
        self.schema = schema
        self.limit = limit
        self.max_first = max_first
        #: The catalog's relation list lengths (bound to its graph by the first request).
        self.sizes = CatalogListSizes()
        #: Each caller's points (``CAPAHUB_COST_PER_MINUTE``); None: no budget.
        self.budget: CostBudget | None = None
        self._compiled: LRUCache[tuple[str, str | None], tuple[int, Cost]] = LRUCache(
            maxsize=max(max_bytes, 1), getsizeof=_first_item
        )

    def compiled(
        self, query: str | None, operation_name: str | None, document: DocumentNode
    ) -> Cost:
        """The compiled cost of a validated document's operation (remembered by text)."""
        if query is None:
            return self._compile(document, operation_name)
        key = (query, operation_name)
        found = self._compiled.get(key)
        if found is not None:
            return found[1]
        cost = self._compile(document, operation_name)
        size = 200 + 2 * len(query) + cost_size(cost)
        if size <= self._compiled.maxsize:
            self._compiled[key] = (size, cost)
        return cost

    def _compile(self, document: DocumentNode, operation_name: str | None) -> Cost:
        return compile_cost(
            self.schema, document, operation_name, max_first=self.max_first, sizes=self.sizes
        )

    def refusal(self, cost: int, context: Any = None) -> GraphQLError | None:
        """The error for an operation of this cost, or None when it is within the limit and
        the caller of ``context`` (an HTTP request's) can pay for it, which it then does.

        An operation over the limit is charged ``REFUSED_POINTS`` all the same
        (``catalog.budget``): its check was the hub's work, and a client that repeats it
        without end is soon refused at the door instead.
        """
        limit = self.limit
        over = limit if limit is not None and cost > limit else None  # the limit it breaks
        if self.budget is not None and context is not None:
            caller, state = _caller(context)
            if caller is not None:
                body = state.get(BODY_BYTES, 0)
                if over is not None:
                    self.budget.take(caller, charge_of(REFUSED_POINTS, body))
                else:
                    refused = self.budget.spend(caller, charge_of(cost, body))
                    if refused is not None:
                        return GraphQLError(refused.message, extensions=refused.extensions)
                headers = getattr(context.request, "headers", None)
                # so that its next request, if the bucket cannot pay, is refused at the door
                self.budget.remember(headers.get("authorization") if headers else None, caller)
        if over is not None:
            return cost_error(cost, over)
        return None


def _caller(context: Any) -> tuple[str | None, dict[str, Any]]:
    """The bucket an HTTP request's caller pays from and the request's ASGI state; None for
    anything else (a subscription's socket, a schema executed in-process): not charged."""
    scope = getattr(getattr(context, "request", None), "scope", None)
    if not isinstance(scope, dict) or scope.get("type") != "http":
        return None, {}
    state: dict[str, Any] = scope.setdefault("state", {})
    caller = state.get(CALLER)
    if caller is None:
        client = scope.get("client")
        actor = getattr(getattr(context, "principal", None), "actor", None)
        caller = caller_key(actor, client[0] if client else None)
        state[CALLER] = caller
    return caller, state


def _first_item(value: tuple[int, Any]) -> int:
    return value[0]


class CostLimit(SchemaExtension):
    """Refuses an operation over the cost limit after validation, before anything runs, and
    reports the cost of the others in ``extensions.cost``."""

    def __init__(self) -> None:
        self.cost: int | None = None

    def on_validate(self) -> Iterator[None]:
        """Runs after the validation extensions before it have checked the document."""
        ctx = self.execution_context
        costs: QueryCosts | None = getattr(ctx.schema, "costs", None)
        document = ctx.graphql_document
        if costs is not None and document is not None:
            if ctx.pre_execution_errors is None:  # no validation extension ran before this one
                from strawberry.schema.schema import validate_document

                ctx.pre_execution_errors = validate_document(
                    ctx.schema._schema, document, ctx.validation_rules
                )
            if not ctx.pre_execution_errors:
                services = getattr(ctx.context, "services", None)
                costs.sizes.bind(getattr(services, "graph", None))
                name = getattr(ctx, "_provided_operation_name", None)
                cost = evaluate(costs.compiled(ctx.query, name, document), ctx.variables)
                # A subscription is bounded per connection (docs/subscriptions.md), not charged.
                charged = ctx.operation_type.value != "subscription"
                error = costs.refusal(cost, ctx.context if charged else None)
                if error is not None:
                    ctx.pre_execution_errors = [error]
                else:
                    self.cost = cost
        yield

    def get_results(self) -> dict[str, Any]:
        """``extensions.cost`` of an operation that passed the check."""
        return {} if self.cost is None else {"cost": self.cost}


__all__ = [
    "DEFAULT_LIST_SIZE",
    "RELATION_LISTS",
    "CatalogListSizes",
    "Cost",
    "CostLimit",
    "QueryCosts",
    "compile_cost",
    "cost_error",
    "evaluate",
    "find_operation",
    "longest_lists",
]

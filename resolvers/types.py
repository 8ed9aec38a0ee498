"""GraphQL object types of the catalog: the CatalogNode interface, its nine kinds, Relation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar, cast

import strawberry
from strawberry.scalars import JSON

from metadata import model
from metadata.model import Direction as D
from metadata.model import Kind as K
from metadata.model import NodeRecord, RelationRecord, Touching
from metadata.model import RelationType as R
from resolvers._fields import field
from resolvers.context import NOT_LOADED, CatalogInfo, loaded, node_now, resolve_later
from resolvers.enums import Direction, Kind, Lifecycle, RelationType
from resolvers.fastpath import direct
from resolvers.records import RecordConnection, resolve_records

N = TypeVar("N", bound="CatalogNode")


async def related(
    info: CatalogInfo,
    node_id: str,
    rtype: model.RelationType,
    direction: model.Direction,
    kind: model.Kind | None = None,
) -> list[NodeRecord]:
    """Nodes at the other end of this node's ``rtype`` relations, batched through dataloaders."""
    loaders = info.context.loaders
    ids = _other_ends(await loaders.rels.load(node_id), rtype, direction)
    found = await loaders.node.load_many(ids)
    return sorted(
        (n for n in found if n is not None and (kind is None or n.kind is kind)),
        key=lambda n: n.id,
    )


def _other_ends(
    touching: Touching, rtype: model.RelationType, direction: model.Direction
) -> list[str]:
    """Ids at the other end of a node's ``rtype`` relations in one direction (OUT or IN)."""
    if direction is D.OUT:
        return [r.to_id for r in touching.out if r.type is rtype]
    return [r.from_id for r in touching.into if r.type is rtype]


def _related_now(
    info: CatalogInfo,
    node_id: str,
    rtype: model.RelationType,
    direction: model.Direction,
    kind: model.Kind | None,
) -> list[NodeRecord] | None:
    """The answer of ``related`` from what is loaded (graph projection and node cache, else
    this request's dataloaders), or None when something is not loaded yet."""
    context = info.context
    discovery = context.services.discovery
    touching = discovery.touching_now(node_id)
    projected = touching is not None
    if touching is None:
        touching = loaded(context.loaders.rels, node_id)
        if touching is NOT_LOADED:
            return None
    found: list[NodeRecord] = []
    for i in _other_ends(touching, rtype, direction):
        rec = node_now(context, i)
        if rec is NOT_LOADED:
            return None
        if rec is not None and (kind is None or rec.kind is kind):
            found.append(rec)
    if not projected:  # the projection orders relations by the other end already
        found.sort(key=lambda n: n.id)
    return found


def nodes_of(
    info: CatalogInfo,
    node_id: str,
    rtype: model.RelationType,
    direction: model.Direction,
    kind: model.Kind | None = None,
) -> list[Any]:
    """Related nodes as GraphQL objects: at once when prefetched, else an awaitable (typed as
    the list, ``resolve_later``).

    Resolvers that can answer synchronously skip an asyncio task per field, which is most of
    the cost of a wide query; graphql-core awaits the result when it is an awaitable.
    """
    now = _related_now(info, node_id, rtype, direction, kind)
    if now is not None:
        return as_nodes(now)

    async def later() -> list[Any]:
        return as_nodes(await related(info, node_id, rtype, direction, kind))

    return resolve_later(later())


def node_of(
    info: CatalogInfo,
    node_id: str,
    rtype: model.RelationType,
    direction: model.Direction,
    kind: model.Kind | None = None,
    *,
    cls: type[N],
) -> N | None:
    """The first related node (by id) as ``cls``, or None; at once when prefetched."""
    now = _related_now(info, node_id, rtype, direction, kind)
    if now is not None:
        # as_node wraps a node of ``kind`` in TYPE_BY_KIND[kind], which is ``cls``
        return cast("N", as_node(now[0])) if now else None

    async def later() -> N | None:
        found = await related(info, node_id, rtype, direction, kind)
        return cls(rec=found[0]) if found else None

    return resolve_later(later())


#: Wrappers made so far, by node id: a record (immutable) is wrapped once, not per request.
_WRAPPED: dict[str, CatalogNode] = {}
_MAX_WRAPPED = 200_000


def node_by_id(info: CatalogInfo, node_id: str) -> CatalogNode | None:
    """The node as its GraphQL type, or None when there is none: at once when the node cache
    or this request's dataloader holds it, else an awaitable (one batched load), typed as the
    node (``resolve_later``)."""
    rec = node_now(info.context, node_id)
    if rec is not NOT_LOADED:
        return as_node(rec) if rec is not None else None

    async def later() -> CatalogNode | None:
        rec = await info.context.loaders.node.load(node_id)
        return as_node(rec) if rec is not None else None

    return resolve_later(later())


def as_node(rec: NodeRecord) -> CatalogNode:
    """Wrap a stored node in the GraphQL type of its kind."""
    wrapped = _WRAPPED.get(rec.id)
    if wrapped is not None and wrapped.rec is rec:
        return wrapped
    wrapped = TYPE_BY_KIND[rec.kind](rec=rec)
    if len(_WRAPPED) >= _MAX_WRAPPED:
        _WRAPPED.clear()
    _WRAPPED[rec.id] = wrapped
    return wrapped


def as_nodes(recs: Iterable[NodeRecord]) -> list[Any]:
    """Wrap stored nodes in their GraphQL types."""
    return [as_node(r) for r in recs]


@strawberry.type(description="One attribute of a data entity.")
class Attribute:
    name: str
    type: str | None
    description: str | None
    classification: str | None = strawberry.field(
        description="Data classification, e.g. PII, CONFIDENTIAL, INTERNAL, PUBLIC."
    )


@strawberry.type(description="A typed, directed relation between two catalog nodes.")
class Relation:
    rec: strawberry.Private[RelationRecord]

    @strawberry.field
    @direct
    def type(self) -> RelationType:
        return self.rec.type

    @field(name="from")
    @direct
    def from_(self, info: CatalogInfo) -> CatalogNode:
        return _endpoint(info, self.rec.from_id)

    @strawberry.field
    @direct
    def to(self, info: CatalogInfo) -> CatalogNode:
        return _endpoint(info, self.rec.to_id)

    @strawberry.field
    @direct
    def properties(self) -> JSON | None:
        properties = self.rec.properties
        return None if properties is None else JSON(properties)


def _endpoint(info: CatalogInfo, node_id: str) -> CatalogNode:
    """A relation's end: at once when the node cache or the request's dataloader holds it (a
    graph answer's thousands of relations then complete by plan, without a future each), else
    one batched load."""
    rec = node_now(info.context, node_id)
    if rec is not NOT_LOADED and rec is not None:
        return as_node(rec)
    return resolve_later(_load(info, node_id))


async def _load(info: CatalogInfo, node_id: str) -> CatalogNode:
    rec = await info.context.loaders.node.load(node_id)
    if rec is None:  # pragma: no cover - relations keep their nodes (foreign keys)
        raise LookupError(f"relation endpoint {node_id} vanished")
    return as_node(rec)


@strawberry.interface(description="What every node of the catalog has.")
class CatalogNode:
    rec: strawberry.Private[NodeRecord]

    # The node's own fields are plain attributes, copied from the record at construction:
    # strawberry resolves those much faster than one resolver method per field.
    id: strawberry.ID = strawberry.field(
        default=None, description="`<prefix>:<key>`, e.g. `system:crm`."
    )
    kind: Kind = strawberry.field(default=None)
    key: str = strawberry.field(default=None)
    name: str = strawberry.field(default=None)
    description: str | None = strawberry.field(default=None)
    tags: list[str] = strawberry.field(default=None)
    lifecycle: Lifecycle = strawberry.field(default=None)

    @field(description="The team accountable for this node.")
    @direct
    def owner(self, info: CatalogInfo) -> Team | None:
        owner = self.rec.owner
        # an owner is a team (the metamodel's OWNS rule)
        return None if owner is None else cast("Team | None", node_by_id(info, owner))

    properties: JSON | None = strawberry.field(default=None)
    version: int = strawberry.field(
        default=None, description="Rises by one with every change of the node."
    )
    created_at: datetime = strawberry.field(default=None)
    updated_at: datetime = strawberry.field(default=None)

    def __post_init__(self) -> None:
        rec = self.rec
        self.id = strawberry.ID(rec.id)
        self.kind = rec.kind
        self.key = rec.key
        self.name = rec.name
        self.description = rec.description
        self.tags = list(rec.tags)
        self.lifecycle = rec.lifecycle
        self.properties = None if rec.properties is None else JSON(rec.properties)
        self.version = rec.version
        self.created_at = rec.created_at
        self.updated_at = rec.updated_at

    @field(description="Relations of this node, optionally by type and direction.")
    async def relations(
        self,
        info: CatalogInfo,
        types: list[RelationType] | None = None,
        direction: Direction | None = model.Direction.BOTH,
    ) -> list[Relation]:
        touching = await info.context.loaders.rels.load(self.rec.id)
        rels: list[RelationRecord] = []
        direction = direction or D.BOTH
        # A stable order whatever the projection's insertion history (replicas, rebuilds and
        # incremental updates answer alike): outgoing first, each by type and the other end.
        if direction in (D.OUT, D.BOTH):
            rels.extend(sorted(touching.out, key=_out_order))
        if direction in (D.IN, D.BOTH):
            rels.extend(sorted((r for r in touching.into if r.from_id != r.to_id), key=_in_order))
        wanted = set(types) if types else None
        return [Relation(rec=r) for r in rels if wanted is None or r.type in wanted]

    @classmethod
    async def resolve_reference(cls, info: CatalogInfo, id: strawberry.ID) -> CatalogNode | None:
        """Federation: resolve an entity representation ``{__typename, id}``."""
        rec = await info.context.loaders.node.load(str(id))
        if rec is None or TYPE_BY_KIND[rec.kind] is not cls:
            return None
        return cls(rec=rec)


def _out_order(r: RelationRecord) -> tuple[str, str]:
    return (r.type.value, r.to_id)


def _in_order(r: RelationRecord) -> tuple[str, str]:
    return (r.type.value, r.from_id)


def _key(cls: type[N]) -> type[N]:
    return strawberry.federation.type(keys=["id"], description=cls.__doc__)(cls)


@_key
class Domain(CatalogNode):
    """A business domain: Sales, Service, Marketing, Commerce."""

    @field(description="Capabilities directly in this domain.")
    @direct
    def capabilities(self, info: CatalogInfo) -> list[Capability]:
        return nodes_of(info, self.rec.id, R.PART_OF, D.IN, K.CAPABILITY)

    @field(description="Systems in this domain.")
    @direct
    def systems(self, info: CatalogInfo) -> list[System]:
        return nodes_of(info, self.rec.id, R.PART_OF, D.IN, K.SYSTEM)

    @field(description="Data entities in this domain.")
    @direct
    def entities(self, info: CatalogInfo) -> list[DataEntity]:
        return nodes_of(info, self.rec.id, R.PART_OF, D.IN, K.DATA_ENTITY)


@_key
class Team(CatalogNode):
    """A team: owner of nodes and steward of data."""

    @field(description="Nodes this team owns.")
    async def owns(self, info: CatalogInfo) -> list[CatalogNode]:
        owned = await info.context.loaders.owned.load(self.rec.id)
        extra = await related(info, self.rec.id, R.OWNS, D.OUT)
        seen = {n.id for n in owned}
        return as_nodes(owned + [n for n in extra if n.id not in seen])

    @field(description="Data entities this team stewards.")
    @direct
    def stewards(self, info: CatalogInfo) -> list[DataEntity]:
        return nodes_of(info, self.rec.id, R.STEWARDS, D.OUT)


@_key
class System(CatalogNode):
    """An application: CRM, ERP, CDP, webshop, chatbot."""

    @field(description="Capabilities this system implements.")
    @direct
    def provides(self, info: CatalogInfo) -> list[Capability]:
        return nodes_of(info, self.rec.id, R.PROVIDES, D.OUT)

    @field(description="Data entities this system is the system of record for.")
    @direct
    def masters(self, info: CatalogInfo) -> list[DataEntity]:
        return nodes_of(info, self.rec.id, R.MASTERS, D.OUT)

    @field(description="Data entities this system holds a copy of.")
    @direct
    def stores(self, info: CatalogInfo) -> list[DataEntity]:
        return nodes_of(info, self.rec.id, R.STORES, D.OUT)

    @field(description="Systems this one depends on at run time.")
    @direct
    def depends_on(self, info: CatalogInfo) -> list[System]:
        return nodes_of(info, self.rec.id, R.DEPENDS_ON, D.OUT)

    @field(description="Systems that depend on this one.")
    @direct
    def dependents(self, info: CatalogInfo) -> list[System]:
        return nodes_of(info, self.rec.id, R.DEPENDS_ON, D.IN)

    @strawberry.field
    @direct
    def domain(self, info: CatalogInfo) -> Domain | None:
        return node_of(info, self.rec.id, R.PART_OF, D.OUT, K.DOMAIN, cls=Domain)

    @field(description="The larger system this one is a component of.")
    @direct
    def parent(self, info: CatalogInfo) -> System | None:
        return node_of(info, self.rec.id, R.PART_OF, D.OUT, K.SYSTEM, cls=System)

    @field(description="Components of this system.")
    @direct
    def components(self, info: CatalogInfo) -> list[System]:
        return nodes_of(info, self.rec.id, R.PART_OF, D.IN, K.SYSTEM)

    @field(description="Touchpoints (channels) this system serves.")
    @direct
    def touchpoints(self, info: CatalogInfo) -> list[Touchpoint]:
        return nodes_of(info, self.rec.id, R.SERVED_BY, D.IN)

    @field(description="Registered metadata or data sources of this system.")
    @direct
    def sources(self, info: CatalogInfo) -> list[Source]:
        return nodes_of(info, self.rec.id, R.PART_OF, D.IN, K.SOURCE)


@_key
class Capability(CatalogNode):
    """A business capability, hierarchical (L1 > L2 > L3), possibly exposed as an API."""

    @strawberry.field
    @direct
    def parent(self, info: CatalogInfo) -> Capability | None:
        return node_of(info, self.rec.id, R.PART_OF, D.OUT, K.CAPABILITY, cls=Capability)

    @strawberry.field
    @direct
    def children(self, info: CatalogInfo) -> list[Capability]:
        return nodes_of(info, self.rec.id, R.PART_OF, D.IN, K.CAPABILITY)

    @field(description="Systems that implement this capability.")
    @direct
    def providers(self, info: CatalogInfo) -> list[System]:
        return nodes_of(info, self.rec.id, R.PROVIDES, D.IN)

    @strawberry.field
    @direct
    def reads(self, info: CatalogInfo) -> list[DataEntity]:
        return nodes_of(info, self.rec.id, R.READS, D.OUT)

    @strawberry.field
    @direct
    def writes(self, info: CatalogInfo) -> list[DataEntity]:
        return nodes_of(info, self.rec.id, R.WRITES, D.OUT)

    @field(description="Capabilities this one depends on.")
    @direct
    def depends_on(self, info: CatalogInfo) -> list[Capability]:
        return nodes_of(info, self.rec.id, R.DEPENDS_ON, D.OUT)

    @field(description="The domain of this capability or of its nearest ancestor.")
    async def domain(self, info: CatalogInfo) -> Domain | None:
        node_id: str | None = self.rec.id
        for _ in range(16):  # the hierarchy is a few levels; one batched lookup per level
            if node_id is None:
                break
            found = await related(info, node_id, R.PART_OF, D.OUT, K.DOMAIN)
            if found:
                return Domain(rec=found[0])
            parents = await related(info, node_id, R.PART_OF, D.OUT, K.CAPABILITY)
            node_id = parents[0].id if parents else None
        return None

    @field(description="Journey steps that use this capability.")
    @direct
    def used_by(self, info: CatalogInfo) -> list[JourneyStep]:
        return nodes_of(info, self.rec.id, R.USES, D.IN)


@_key
class DataEntity(CatalogNode):
    """A business object (Customer, Order): canonical, or physical in one system."""

    @strawberry.field
    @direct
    def attributes(self) -> list[Attribute]:
        return [
            Attribute(
                name=a["name"],
                type=a.get("type"),
                description=a.get("description"),
                classification=a.get("classification"),
            )
            for a in self.rec.attributes
        ]

    @field(description="Systems of record (golden source) of this entity.")
    @direct
    def mastered_by(self, info: CatalogInfo) -> list[System]:
        return nodes_of(info, self.rec.id, R.MASTERS, D.IN)

    @field(description="Systems that hold a copy of this entity.")
    @direct
    def stored_by(self, info: CatalogInfo) -> list[System]:
        return nodes_of(info, self.rec.id, R.STORES, D.IN)

    @strawberry.field
    @direct
    def stewards(self, info: CatalogInfo) -> list[Team]:
        return nodes_of(info, self.rec.id, R.STEWARDS, D.IN)

    @field(description="Capabilities that read this entity.")
    @direct
    def read_by(self, info: CatalogInfo) -> list[Capability]:
        return nodes_of(info, self.rec.id, R.READS, D.IN)

    @field(description="Capabilities that write this entity.")
    @direct
    def written_by(self, info: CatalogInfo) -> list[Capability]:
        return nodes_of(info, self.rec.id, R.WRITES, D.IN)

    @field(description="Physical entities in systems that map to this canonical one.")
    @direct
    def represented_by(self, info: CatalogInfo) -> list[DataEntity]:
        return nodes_of(info, self.rec.id, R.REPRESENTS, D.IN)

    @field(description="Canonical entities this physical entity maps to.")
    @direct
    def represents(self, info: CatalogInfo) -> list[DataEntity]:
        return nodes_of(info, self.rec.id, R.REPRESENTS, D.OUT)

    @strawberry.field
    @direct
    def domain(self, info: CatalogInfo) -> Domain | None:
        return node_of(info, self.rec.id, R.PART_OF, D.OUT, K.DOMAIN, cls=Domain)

    @field(description="Live records of this entity, unified across the systems that hold it.")
    async def records(
        self,
        info: CatalogInfo,
        where: JSON | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> RecordConnection:
        return await resolve_records(info, self.rec.id, where, first, after)


@_key
class Journey(CatalogNode):
    """A customer journey, e.g. "buy everyday sneakers"."""

    @field(description="The steps of the journey, in order.")
    async def steps(self, info: CatalogInfo) -> list[JourneyStep]:
        found = await related(info, self.rec.id, R.PART_OF, D.IN, K.JOURNEY_STEP)
        return as_nodes(sorted(found, key=lambda n: (step_order(n), n.id)))


def step_order(rec: NodeRecord) -> int:
    """A journey step's position, from ``properties.order`` (0 when not given)."""
    order = (rec.properties or {}).get("order", 0)
    return order if isinstance(order, int) and not isinstance(order, bool) else 0


@_key
class JourneyStep(CatalogNode):
    """An ordered stage of a journey (interest, purchase, service...)."""

    @field(description="Position in the journey (properties.order).")
    @direct
    def order(self) -> int:
        return step_order(self.rec)

    @strawberry.field
    @direct
    def journey(self, info: CatalogInfo) -> Journey | None:
        return node_of(info, self.rec.id, R.PART_OF, D.OUT, K.JOURNEY, cls=Journey)

    @field(description="Capabilities this step needs.")
    @direct
    def uses(self, info: CatalogInfo) -> list[Capability]:
        return nodes_of(info, self.rec.id, R.USES, D.OUT)

    @field(description="Channels where this step happens.")
    @direct
    def touchpoints(self, info: CatalogInfo) -> list[Touchpoint]:
        return nodes_of(info, self.rec.id, R.OCCURS_AT, D.OUT)


@_key
class Touchpoint(CatalogNode):
    """A channel where a journey step happens: web, app, store tablet, email, call center."""

    @field(description="Systems behind this channel.")
    @direct
    def served_by(self, info: CatalogInfo) -> list[System]:
        return nodes_of(info, self.rec.id, R.SERVED_BY, D.OUT)

    @field(description="Journey steps that happen here.")
    @direct
    def steps(self, info: CatalogInfo) -> list[JourneyStep]:
        return nodes_of(info, self.rec.id, R.OCCURS_AT, D.IN)


@_key
class Source(CatalogNode):
    """A registered connection to a system's metadata or data."""

    @field(description="OPENAPI, GRAPHQL, SQL or BACKSTAGE (properties.type).")
    @direct
    def source_type(self) -> str | None:
        value = (self.rec.properties or {}).get("type")
        return str(value) if value is not None else None

    @field(description="File path, http(s) URL or SQLAlchemy URL (properties.location).")
    @direct
    def location(self) -> str | None:
        value = (self.rec.properties or {}).get("location")
        return str(value) if value is not None else None

    @field(description="Name of the environment variable holding the credentials.")
    @direct
    def credentials_env(self) -> str | None:
        value = (self.rec.properties or {}).get("credentialsEnv")
        return str(value) if value is not None else None

    @field(description="Warnings of the latest harvest.")
    @direct
    def warnings(self) -> list[str]:
        value = (self.rec.properties or {}).get("warnings") or []
        return [str(w) for w in value] if isinstance(value, list) else []

    @strawberry.field
    @direct
    def system(self, info: CatalogInfo) -> System | None:
        return node_of(info, self.rec.id, R.PART_OF, D.OUT, K.SYSTEM, cls=System)

    @field(description="Nodes harvested from this source.")
    @direct
    def harvested(self, info: CatalogInfo) -> list[CatalogNode]:
        return nodes_of(info, self.rec.id, R.HARVESTED_FROM, D.IN)


TYPE_BY_KIND: dict[model.Kind, type[CatalogNode]] = {
    K.DOMAIN: Domain,
    K.TEAM: Team,
    K.SYSTEM: System,
    K.CAPABILITY: Capability,
    K.DATA_ENTITY: DataEntity,
    K.JOURNEY: Journey,
    K.JOURNEY_STEP: JourneyStep,
    K.TOUCHPOINT: Touchpoint,
    K.SOURCE: Source,
}
NODE_TYPES = list(TYPE_BY_KIND.values())

__all__ = [
    "NODE_TYPES",
    "TYPE_BY_KIND",
    "Attribute",
    "CatalogNode",
    "Relation",
    "as_node",
    "as_nodes",
    "node_by_id",
    "related",
]

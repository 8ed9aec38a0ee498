"""Per-request context: the catalog services and one set of dataloaders per request."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from strawberry.dataloader import DataLoader
from strawberry.types import Info

from catalog.access.principal import Principal
from catalog.registry import TRUSTED, Caller
from metadata.model import NodeRecord, RelationRecord, Touching

if TYPE_CHECKING:
    from catalog.services import Services


T = TypeVar("T")


def _group(rels: Sequence[RelationRecord], attr: str) -> dict[str, list[RelationRecord]]:
    out: dict[str, list[RelationRecord]] = defaultdict(list)
    for r in rels:
        out[getattr(r, attr)].append(r)
    return out


#: What ``loaded`` answers for a key the dataloader does not hold (yet).
NOT_LOADED: Any = object()


def loaded(loader: DataLoader[Any, Any], key: Any) -> Any:
    """The value ``loader`` already holds for ``key``, or ``NOT_LOADED``.

    Lets a resolver answer synchronously from what a prefetch loaded, instead of scheduling an
    asyncio task per field; a pending, failed or cancelled load counts as not loaded.
    """
    fut = loader.cache_map.get(key)
    if fut is None or not fut.done() or fut.cancelled() or fut.exception() is not None:
        return NOT_LOADED
    return fut.result()


def resolve_later(pending: Awaitable[T]) -> T:
    """``pending`` typed as what it resolves to, for a resolver to return.

    graphql-core awaits an awaitable that a resolver returns, so a synchronous resolver that
    answers at once when its data is loaded hands one back when it is not; its annotation stays
    the field's type, which strawberry reads for the schema.
    """
    return cast("T", pending)


def node_now(context: Context, node_id: str) -> Any:
    """A node's record (None: no such node) if it can be had without waiting: from the
    catalog's node cache or this request's dataloader; else ``NOT_LOADED``."""
    rec = context.services.discovery.cached(node_id)
    if rec is not None:
        return rec
    return loaded(context.loaders.node, node_id)


def group_touching(rels: Sequence[RelationRecord], ids: Sequence[str]) -> dict[str, Touching]:
    """Each node's outgoing and incoming relations among ``rels``."""
    outs, ins = _group(rels, "from_id"), _group(rels, "to_id")
    return {i: Touching(outs.get(i, []), ins.get(i, [])) for i in ids}


@dataclass
class Loaders:
    """Dataloaders that batch every nested lookup of one request into one query per level."""

    services: Services
    node: DataLoader[str, NodeRecord | None] = field(init=False)
    rels: DataLoader[str, Touching] = field(init=False)
    owned: DataLoader[str, list[NodeRecord]] = field(init=False)

    def clear(self) -> None:
        """Forget everything loaded so far (after a write, later fields must see it)."""
        self.node.clear_all()
        self.rels.clear_all()
        self.owned.clear_all()

    def __post_init__(self) -> None:
        d = self.services.discovery

        async def load_nodes(ids: list[str]) -> list[NodeRecord | None]:
            found = await d.get_nodes(ids)
            return [found.get(i) for i in ids]

        async def load_rels(ids: list[str]) -> list[Touching]:
            # One statement for both directions, so every relation field of a level shares it.
            grouped = group_touching(await d.relations_touching(ids), ids)
            return [grouped[i] for i in ids]

        async def load_owned(ids: list[str]) -> list[list[NodeRecord]]:
            by_owner: dict[str, list[NodeRecord]] = defaultdict(list)
            for n in await d.owned_by(ids):
                if n.owner is not None:
                    by_owner[n.owner].append(n)
            return [by_owner.get(i, []) for i in ids]

        self.node = DataLoader(load_fn=load_nodes)
        self.rels = DataLoader(load_fn=load_rels)
        self.owned = DataLoader(load_fn=load_owned)


@dataclass
class Context:
    """What every resolver gets as ``info.context``."""

    services: Services
    loaders: Loaders
    request: Any = None
    response: Any = None
    #: Who calls: the HTTP edge sets the authenticated caller; in-process callers (tests,
    #: benchmarks) are trusted as the command line is.
    principal: Principal = TRUSTED
    request_id: str | None = None

    @property
    def caller(self) -> Caller:
        """The caller of this request as the registry checks and records it; a request that
        brought no usable X-Request-Id gets one here, when it first writes."""
        if self.request_id is None:
            self.request_id = uuid.uuid4().hex
        return Caller(self.principal, self.request_id)


def make_context(
    services: Services,
    request: Any = None,
    response: Any = None,
    *,
    principal: Principal = TRUSTED,
    request_id: str | None = None,
) -> Context:
    """A fresh context (and fresh dataloaders) for one request."""
    return Context(services, Loaders(services), request, response, principal, request_id)


CatalogInfo = Info[Context, None]

__all__ = [
    "NOT_LOADED",
    "CatalogInfo",
    "Context",
    "Loaders",
    "Touching",
    "group_touching",
    "loaded",
    "make_context",
    "node_now",
]

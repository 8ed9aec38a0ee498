"""Live records across sources, unified by the catalog.

For a canonical entity, every physical entity that REPRESENTS it (field map and match key on
the relation) is read from its source, concurrently, and the rows are merged on the match key.
Conflicting values are resolved by a fixed rule (docs/live-data.md): a null is no value; a
system that MASTERS the canonical entity and has a value wins (the first by id when several
do); otherwise the first contributing system by id that has one. Every conflict is reported
with what each system had and a reason naming the rule that decided it. A source that fails
yields an error entry and the others' data, never a failed request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.access.masking import mask_record, masked_key, pii_attributes
from catalog.discovery import decode_cursor, encode_cursor
from catalog.harvest.fetch import FetchPolicy
from catalog.sources.base import Query, Scalar, SourceConnector, SourceRef, Target
from catalog.sources.http import GraphQLConnector, RestConnector
from catalog.sources.sql import SqlConnector
from metadata.errors import (
    AmbiguousSourceError,
    BadSourceDataError,
    CatalogError,
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
)
from metadata.model import Kind, NodeRecord, RelationRecord, RelationType, parse_id
from metadata.store import Store

R = RelationType
log = logging.getLogger("capahub.sources")


@dataclass(frozen=True)
class SourceFailure:
    """A source that failed during a records query."""

    source: str
    code: str
    message: str


@dataclass(frozen=True)
class FieldConflict:
    """Systems disagreeing on one field of one record, and the value chosen."""

    field: str
    values: list[tuple[str, Any]]
    chosen: Any
    reason: str


@dataclass
class UnifiedRecord:
    """One record as the hub sees it: canonical fields, contributing systems, conflicts."""

    key: str
    data: dict[str, Any]
    sources: list[str]
    conflicts: list[FieldConflict] = field(default_factory=list)
    #: Canonical fields withheld from the caller (PII without the ``pii`` right).
    masked: list[str] = field(default_factory=list)


@dataclass
class RecordsPage:
    """A page of unified records plus totals and the failures of the sources."""

    records: list[UnifiedRecord]
    total: int
    has_next: bool
    start: int
    errors: list[SourceFailure]


@dataclass(frozen=True)
class _Plan:
    """One physical entity to read, and how its columns map to canonical fields."""

    target: Target
    system: str
    fields: Mapping[str, str]  # canonical field -> physical column
    match_key: str | None  # canonical field


@dataclass(frozen=True)
class _Planned:
    """A query's plan: the entity, what to read, its systems of record, and the mappings that
    cannot be read (reported with every answer)."""

    node: NodeRecord
    plans: list[_Plan]
    masters: list[str]
    failures: list[SourceFailure]


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


@dataclass
class SourceStat:
    """Live-record fetches from one source since start (``/metrics``)."""

    ok: int = 0
    errors: int = 0
    seconds: float = 0.0


class RecordService:
    """Plans, fetches and merges live records; owns the connectors."""

    def __init__(
        self,
        store: Store,
        *,
        timeout: float = 5.0,
        max_rows: int = 10_000,
        catalog_version: Callable[[], int] | None = None,
        policy: FetchPolicy | None = None,
    ) -> None:
        self.store = store
        self.max_rows = max_rows
        # Plans are cached per catalog version (the graph projection's, which rises with every
        # committed change in any process); without a version source nothing is cached.
        self._version = catalog_version
        self._plans: dict[str, tuple[int, _Planned]] = {}
        self.connectors: dict[str, SourceConnector] = {
            "SQL": SqlConnector(timeout=timeout, policy=policy),
            "REST": RestConnector(timeout=timeout, policy=policy),
            "GRAPHQL": GraphQLConnector(timeout=timeout, policy=policy),
        }
        self.connectors["OPENAPI"] = self.connectors["REST"]
        #: source id -> its fetches so far (one small record per source node ever asked)
        self.stats: dict[str, SourceStat] = {}

    def source_stats(self) -> dict[str, SourceStat]:
        """Fetches per source since start, for the metrics."""
        return dict(self.stats)

    async def close(self) -> None:
        """Close every connector."""
        for c in self.connectors.values():
            await c.close()

    async def records(
        self,
        entity: str,
        where: Mapping[str, Any] | None,
        *,
        first: int,
        after: str | None,
        reveal_pii: bool = True,
    ) -> RecordsPage:
        """Unified records of an entity matching ``where`` (canonical field -> value).

        Without ``reveal_pii`` the entity's PII attributes are masked
        (``catalog.access.masking``) and may not be filtered on.
        """
        parse_id(entity, field="entity")
        where = dict(where or {})
        if not 0 <= first <= 500:
            raise InvalidInputError(f"first: must be between 0 and 500, got {first}", field="first")
        start = _position(after) + 1 if after else 0
        planned = await self._cached_plan(entity)
        node, plans, masters = planned.node, planned.plans, planned.masters
        answerable = _check_where(node, where, plans, planned.failures)
        pii = frozenset() if reveal_pii else pii_attributes(node)
        for name in sorted(where):
            if name in pii:
                raise NotAllowedError(
                    f"where.{name}: {name} is personal data (PII) of {node.id}; filtering on it "
                    "needs the pii right",
                    field=f"where.{name}",
                )
        if not answerable:
            return RecordsPage([], 0, False, start, list(planned.failures))
        rows, fetch_errors = await self._fetch_all(plans, where)
        errors = [*planned.failures, *fetch_errors]
        groups = _group(plans, rows)
        pii_key = bool(pii) and any(p.match_key in pii for p in plans)
        # Masked keys are listed in the order of their stand-ins: the order of the real
        # ones (e-mail addresses, say) would tell something about them.
        order = sorted(groups, key=masked_key) if pii_key else sorted(groups)
        if where:
            merged = [_merge_one(node, k, groups[k], masters) for k in order]
            merged = [u for u in merged if all(u.data.get(k) == v for k, v in where.items())]
            page, total = merged[start : start + first], len(merged)
        else:  # only the page needs merging; the total is the number of distinct keys
            page = [_merge_one(node, k, groups[k], masters) for k in order[start : start + first]]
            total = len(order)
        if pii:
            page = [mask_record(u, pii, pii_key) for u in page]
        return RecordsPage(page, total, start + first < total, start, errors)

    async def _cached_plan(self, entity: str) -> _Planned:
        if self._version is None:
            return await self._plan(entity)
        version = self._version()
        hit = self._plans.get(entity)
        if hit is not None and hit[0] == version:
            return hit[1]
        plan = await self._plan(entity)
        if len(self._plans) > 1000:
            self._plans.clear()
        self._plans[entity] = (version, plan)
        return plan

    async def _plan(self, entity: str) -> _Planned:
        async with self.store.read() as r:
            node = (await r.get_nodes([entity])).get(entity)
            if node is None:
                raise NotFoundError(f"entity: no node {entity!r} in the catalog", field="entity")
            if node.kind is not Kind.DATA_ENTITY:
                raise InvalidInputError(
                    f"entity: {entity} is a {node.kind.prefix}, not a data entity", field="entity"
                )
            into = await r.relations_to([entity])
            represents = [x for x in into if x.type is R.REPRESENTS]
            masters = sorted(x.from_id for x in into if x.type is R.MASTERS)
            if represents:
                physical = {x.from_id: x for x in represents}
            else:  # a physical entity itself: columns are its own attributes
                physical = {entity: RelationRecord(entity, R.REPRESENTS, entity, None)}
            phys_nodes = await r.get_nodes(list(physical))
            links = _Links()
            for x in await r.relations_touching(list(physical)):
                if x.type in (R.STORES, R.MASTERS) and x.to_id in physical:
                    links.systems.setdefault(x.to_id, set()).add(x.from_id)
                if x.type is R.HARVESTED_FROM and x.from_id in physical:
                    links.harvested.setdefault(x.from_id, set()).add(x.to_id)
            all_systems = sorted({s for v in links.systems.values() for s in v})
            for x in await r.relations_to(all_systems):
                if x.type is R.PART_OF and x.from_id.startswith("source:"):
                    links.parts.setdefault(x.to_id, set()).add(x.from_id)
            named = {_named_source(x) for x in physical.values()} - {None}
            source_ids = (
                {s for v in links.harvested.values() for s in v}
                | {s for v in links.parts.values() for s in v}
                | {n for n in named if n}
            )
            links.sources = await r.get_nodes(sorted(source_ids))
            for x in await r.relations_from(sorted(links.sources)):
                if x.type is R.PART_OF and x.to_id.startswith("system:"):
                    links.system_of.setdefault(x.from_id, x.to_id)
        plans: list[_Plan] = []
        failures: list[SourceFailure] = []
        for pid, rel in sorted(physical.items()):
            pnode = phys_nodes.get(pid)
            if pnode is None:
                continue
            options = dict((pnode.properties or {}).get("live") or {})
            live_base = options.get("baseUrl") if isinstance(options.get("baseUrl"), str) else None
            try:
                ref = _serving_source(pid, _named_source(rel), links, live_base)
            except CatalogError as err:
                failures.append(
                    SourceFailure(str(err.details.get("source") or pid), err.code, err.message)
                )
                continue
            if ref is None:
                continue
            props = rel.properties or {}
            own = [a["name"] for a in pnode.attributes]
            fields = dict(props.get("fields") or {}) if pid != entity else {a: a for a in own}
            match_key = props.get("matchKey") if pid != entity else None
            columns = tuple(dict.fromkeys(fields.values()))
            if not columns:
                continue
            container = str(
                options.get("table")
                or options.get("path")
                or options.get("field")
                or (pnode.properties or {}).get("table")
                or pnode.key.split(".", 1)[-1].replace("-", "_")
            )
            target = Target(pid, ref, container, columns, options)
            # Records are told apart by system: the one that stores the entity (the source's
            # own system among several), else the source's system, else the source itself.
            stores, home = links.systems.get(pid, set()), links.system_of.get(ref.id)
            system = (home or ref.id) if home in stores or not stores else min(stores)
            plans.append(_Plan(target, system, fields, match_key))
        if not plans and not failures:
            raise InvalidInputError(
                f"entity: {entity} has no source to read records from; register a source for "
                "the system that stores it (or for its physical entities)",
                field="entity",
            )
        return _Planned(node, plans, masters, failures)

    async def _fetch_all(
        self, plans: Sequence[_Plan], where: Mapping[str, Any]
    ) -> tuple[dict[str, list[dict[str, Any]]], list[SourceFailure]]:
        """Without ``where``: one query per source, concurrently. With ``where``: the sources
        that map every condition are asked first; then every source is asked, in one query
        each, for all the match keys found, so a record carries every system's fields even
        where only one system satisfies the condition (the condition is checked again on the
        merged values)."""
        rows: dict[str, list[dict[str, Any]]] = {}
        errors: list[SourceFailure] = []

        async def run(plan: _Plan, query: Query) -> None:
            connector = self.connectors.get(plan.target.source.type)
            if connector is None:
                errors.append(
                    SourceFailure(
                        plan.target.source.id,
                        "BAD_SOURCE_DATA",
                        f"{plan.target.source.id}: sources of type {plan.target.source.type} "
                        "cannot serve live records",
                    )
                )
                return
            stat = self.stats.setdefault(plan.target.source.id, SourceStat())
            started = time.perf_counter()
            try:
                rows[plan.target.entity] = await connector.fetch(plan.target, query)
                stat.ok += 1
            except CatalogError as err:
                stat.errors += 1
                errors.append(SourceFailure(plan.target.source.id, err.code, err.message))
            except Exception as err:  # a source must never fail the whole query
                stat.errors += 1
                log.warning("source %s failed", plan.target.source.id, exc_info=True)
                errors.append(
                    SourceFailure(
                        plan.target.source.id,
                        "BAD_SOURCE_DATA",
                        f"{plan.target.source.id}: cannot be read ({type(err).__name__})",
                    )
                )
            finally:
                stat.seconds += time.perf_counter() - started

        if not where:
            await asyncio.gather(*(run(p, Query(limit=self.max_rows)) for p in plans))
            return rows, errors
        direct = [p for p in plans if all(k in p.fields for k in where)]
        await asyncio.gather(
            *(
                run(p, Query({p.fields[k]: v for k, v in where.items()}, limit=self.max_rows))
                for p in direct
            )
        )
        keys: dict[str, set[Scalar]] = {}
        for p in direct:
            if p.match_key and p.match_key in p.fields:
                col = p.fields[p.match_key]
                keys.setdefault(p.match_key, set()).update(
                    r[col] for r in rows.get(p.target.entity, []) if r.get(col) is not None
                )
        jobs = []
        for p in plans:
            found = keys.get(p.match_key or "")
            if p.match_key and p.match_key in p.fields and found:
                query = Query(
                    key_column=p.fields[p.match_key],
                    keys=sorted(found, key=str),
                    limit=self.max_rows,
                )
                jobs.append(run(p, query))
        await asyncio.gather(*jobs)
        return rows, errors


def _live_ref(node: NodeRecord, live_base: str | None = None) -> SourceRef | None:
    """The source node as a live-data source, or None when it cannot serve records: a SQL
    database, or an http(s) endpoint (``baseUrl``/``dataLocation`` for an OpenAPI source,
    whose ``location`` is often a spec file). Metadata-only sources (files, Backstage) are
    None."""
    props = node.properties or {}
    kind = str(props.get("type") or props.get("sourceType") or "").upper()
    base = props.get("baseUrl") if isinstance(props.get("baseUrl"), str) else None
    if kind in ("REST", "OPENAPI") and live_base:
        base = live_base  # recorded on the entity by the OpenAPI harvest
    location = props.get("dataLocation") or base or props.get("location")
    if not isinstance(location, str):
        return None
    if not (
        kind == "SQL"
        and "://" in location
        or kind in ("REST", "OPENAPI", "GRAPHQL")
        and location.startswith(("http://", "https://"))
    ):
        return None
    env = props.get("credentialsEnv")
    return SourceRef(node.id, kind, location, env if isinstance(env, str) else None, base)


@dataclass
class _Links:
    """What the catalog says about where the physical entities of one query live."""

    #: physical entity -> systems that STORE or MASTER it
    systems: dict[str, set[str]] = field(default_factory=dict)
    #: physical entity -> sources it was HARVESTED_FROM
    harvested: dict[str, set[str]] = field(default_factory=dict)
    #: system -> sources PART_OF it
    parts: dict[str, set[str]] = field(default_factory=dict)
    #: source -> the system it is PART_OF
    system_of: dict[str, str] = field(default_factory=dict)
    #: the source nodes of all of the above, and those named by the mappings
    sources: dict[str, NodeRecord] = field(default_factory=dict)


def _named_source(rel: RelationRecord) -> str | None:
    value = (rel.properties or {}).get("source")
    return None if value is None else str(value)


def _serving_source(
    pid: str, named: str | None, links: _Links, live_base: str | None
) -> SourceRef | None:
    """The one source the catalog states for physical entity ``pid``, or None when it names
    none that can serve live records.

    The source its REPRESENTS mapping names (``properties.source``), else the one live source
    it was HARVESTED_FROM, else the one live source PART_OF a system that STORES or MASTERS it.
    Several candidates and none named: ``AmbiguousSourceError`` naming them, never a guess.
    """
    if named is not None:
        node = links.sources.get(named)
        if node is None:
            raise NotFoundError(
                f"{pid}: its REPRESENTS mapping names {named!r} (properties.source), which is "
                "not a source in the catalog; register it or correct the mapping",
                source=named,
            )
        ref = _live_ref(node, live_base)
        if ref is None:
            raise BadSourceDataError(
                f"{named}: named by the mapping of {pid}, but it cannot serve live records "
                "(a SQL database or an http(s) API with a location)",
                source=named,
            )
        return ref
    harvested = links.harvested.get(pid)
    if harvested:
        candidates = set(harvested)
    else:
        candidates = {s for sys in links.systems.get(pid, ()) for s in links.parts.get(sys, ())}
    refs = [
        ref
        for c in sorted(candidates)
        if c in links.sources and (ref := _live_ref(links.sources[c], live_base)) is not None
    ]
    if len(refs) > 1:
        names = ", ".join(r.id for r in refs)
        raise AmbiguousSourceError(
            f"{pid}: {len(refs)} sources could serve its records ({names}) and the catalog "
            "names none; name one on its REPRESENTS mapping (properties.source: source:KEY) "
            "or link the entity to one source (HARVESTED_FROM)",
            source=pid,
            candidates=[r.id for r in refs],
        )
    return refs[0] if refs else None


def _check_where(
    node: NodeRecord,
    where: Mapping[str, Any],
    plans: Sequence[_Plan],
    failures: Sequence[SourceFailure],
) -> bool:
    """Refuse a bad ``where``; False when only mappings that cannot be read would answer it
    (the answer is then their errors)."""
    known = {a["name"] for a in node.attributes} | {f for p in plans for f in p.fields}
    for name, value in where.items():
        if name not in known:
            raise InvalidInputError(
                f"where.{name}: {node.id} has no attribute {name!r}; use one of "
                f"{', '.join(sorted(known))}",
                field=f"where.{name}",
            )
        if not _is_scalar(value):
            raise InvalidInputError(
                f"where.{name}: compare with a string, number, boolean or null, "
                f"not {type(value).__name__}",
                field=f"where.{name}",
            )
    if where and not any(all(k in p.fields for k in where) for p in plans):
        if failures:
            return False
        raise InvalidInputError(
            f"where: no source of {node.id} maps all of {', '.join(sorted(where))}",
            field="where",
        )
    return True


Contribution = tuple[str, dict[str, Any]]  # (system, canonical field -> value)


def _group(
    plans: Sequence[_Plan], rows: Mapping[str, list[dict[str, Any]]]
) -> dict[str, list[Contribution]]:
    """Rows of every source, renamed to canonical fields and grouped by match key."""
    groups: dict[str, list[Contribution]] = {}
    for plan in sorted(plans, key=lambda p: p.system):
        items = list(plan.fields.items())
        for i, row in enumerate(rows.get(plan.target.entity, [])):
            mapped = {f: row.get(col) for f, col in items}
            mk = mapped.get(plan.match_key) if plan.match_key else None
            key = _norm(mk) if mk is not None else f"{plan.system}#{i}"
            groups.setdefault(key, []).append((plan.system, mapped))
    return groups


def _merge_one(
    node: NodeRecord, key: str, contrib: Sequence[Contribution], masters: Sequence[str]
) -> UnifiedRecord:
    """One unified record from the contributions of several systems (rule: module docstring)."""
    systems = sorted({s for s, _ in contrib})
    if len(contrib) == 1:
        return UnifiedRecord(key, dict(contrib[0][1]), systems)
    data: dict[str, Any] = {}
    conflicts: list[FieldConflict] = []
    for f in sorted({f for _, d in contrib for f in d}):
        values = [(s, d[f]) for s, d in contrib if d.get(f) is not None]
        if not values:
            data[f] = None
            continue
        chooser, chosen = next(((s, v) for s, v in values if s in masters), values[0])
        data[f] = chosen
        if any(v != chosen for _, v in values):
            reason = _reason(node.id, f, contrib, values, masters, chooser, chosen)
            conflicts.append(FieldConflict(f, values, chosen, reason))
    return UnifiedRecord(key, data, systems, conflicts)


def _reason(
    entity: str,
    f: str,
    contrib: Sequence[Contribution],
    values: Sequence[tuple[str, Any]],
    masters: Sequence[str],
    chooser: str,
    chosen: Any,
) -> str:
    """Why ``chooser``'s value of ``f`` won, naming the rule (docs/live-data.md, Conflicts)."""
    with_value = list(dict.fromkeys(s for s, _ in values))
    contributing = list(dict.fromkeys(s for s, _ in contrib))
    present = [m for m in masters if m in contributing]

    def without(ms: Sequence[str], role: str) -> str:
        # A master that maps the field but holds null, or does not map it at all.
        mapped = {s for s, d in contrib if f in d}
        return "; ".join(
            f"{m} ({role}) {'has no value for' if m in mapped else 'does not map'} {f}" for m in ms
        )

    if chooser in masters:
        rivals = [m for m, v in values if m in masters and m != chooser and v != chosen]
        if rivals:
            return (
                f"first system of record by id: {', '.join([chooser, *rivals])} all MASTER "
                f"{entity} and disagree; {chooser} comes first"
            )
        reason = f"system of record: {chooser} MASTERS {entity}"
        idle = [m for m in present if m not in with_value]
        return f"{reason}; {without(idle, 'also a system of record')}" if idle else reason
    if present:
        return (
            f"first by id, no system of record has a value: "
            f"{without(present, 'a system of record')}; {chooser} comes first of the others"
        )
    if masters:
        verb = "MASTERS" if len(masters) == 1 else "MASTER"
        return (
            f"first by id, no system of record among the sources: {', '.join(masters)} {verb} "
            f"{entity} but is not read here; {chooser} comes first"
        )
    return f"first by id, no system of record: nothing MASTERS {entity}; {chooser} comes first"


def _position(cursor: str) -> int:
    raw = decode_cursor(cursor)
    if not raw.isdigit():
        raise InvalidInputError("after: not a cursor of a records listing", field="after")
    return int(raw)


def _norm(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def page_cursor(index: int) -> str:
    """The cursor of the record at ``index`` in a records listing."""
    return encode_cursor(str(index))


__all__ = ["FieldConflict", "RecordService", "RecordsPage", "SourceFailure", "UnifiedRecord"]

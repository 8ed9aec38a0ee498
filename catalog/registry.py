"""The registry: validated, all-or-nothing writes to the catalog (upsert, relate, retire, apply)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from catalog.access.principal import Principal, unrestricted
from catalog.access.rules import WriteSet, check_writes, needs_checking
from catalog.changeset import ChangeReport, ChangeSet, Entry, check_field_map, commit, revise
from catalog.problems import MAX_PROBLEMS, Problems, closest, problem_items
from catalog.specs import CapabilitySpec, CatalogDocument, NodeSpec, RelationSpec, build
from metadata.errors import CatalogError, ConflictError, InvalidInputError, NotFoundError
from metadata.model import (
    ALLOWED_ENDPOINTS,
    KIND_BY_PREFIX,
    Kind,
    Lifecycle,
    NodeRecord,
    RelationRecord,
    RelationType,
    check_endpoints,
    check_not_self,
    parse_id,
)
from metadata.store import NodeFilter, Reader, Store, Writer

if TYPE_CHECKING:
    from catalog.document_stream import DocumentStream

#: What a batch of writes did (or would do): the one report of the write path.
ApplyReport = ChangeReport


class _DryRunRollback(Exception):
    """Raised inside a transaction to roll a dry run back."""


#: Who writes when a caller names nobody: in-process callers (tests, benchmarks) that are
#: trusted as the command line is. The HTTP edge always names the authenticated caller.
TRUSTED = unrestricted("local:capahub")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks for a write and under which request: checked by the access rules, recorded in
    history (``actor``, ``request_id``)."""

    principal: Principal = TRUSTED
    request_id: str | None = None


class Registry:
    """Validates writes against the metamodel and applies them in one transaction each."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def upsert_node(self, spec: NodeSpec, *, by: Caller = Caller()) -> NodeRecord:
        """Create a node or update the fields the spec sets; a stale expectedVersion conflicts."""
        report = await self.apply_batch([spec], [], by=by)
        return report.nodes[spec.id]

    async def register_capability(
        self, spec: CapabilitySpec, *, by: Caller = Caller()
    ) -> NodeRecord:
        """Create a capability and its relations; an existing key is a conflict."""
        cap_id = spec.key if spec.key.startswith("capability:") else f"capability:{spec.key}"
        kind, _ = parse_id(cap_id, field="input.key")
        if kind is not Kind.CAPABILITY:  # pragma: no cover - prefix forced above
            raise InvalidInputError("input.key: not a capability key", field="input.key")
        # The capability's fields are checked as a node's and its references as relation ends,
        # with the same rules and messages as upsertNode and relate (``build``: one mapping of
        # validation errors, each naming the input field).
        node: NodeSpec = build(
            NodeSpec,
            {
                "id": cap_id,
                "name": spec.name,
                "description": spec.description,
                "tags": spec.tags,
                "owner": spec.owner,
                "properties": spec.properties,
                "expectedVersion": 0,
            },
            "input",
        )
        rels: list[RelationSpec] = []

        def rel(src: str, rtype: RelationType, dst: str, loc: str) -> None:
            parse_id(dst if src == cap_id else src, field=loc)
            rels.append(build(RelationSpec, {"from": src, "type": rtype, "to": dst}, loc))

        if spec.parent:
            rel(cap_id, RelationType.PART_OF, spec.parent, "input.parent")
        if spec.domain:
            rel(cap_id, RelationType.PART_OF, spec.domain, "input.domain")
        for i, sys_id in enumerate(spec.provided_by):
            rel(sys_id, RelationType.PROVIDES, cap_id, f"input.providedBy[{i}]")
        for i, ent in enumerate(spec.reads):
            rel(cap_id, RelationType.READS, ent, f"input.reads[{i}]")
        for i, ent in enumerate(spec.writes):
            rel(cap_id, RelationType.WRITES, ent, f"input.writes[{i}]")
        try:
            report = await self.apply_batch([node], rels, by=by)
        except ConflictError as err:
            if err.field != "input.expectedVersion":
                raise
            # The caller sent no version: registration is create-only, say so and how to update.
            version = err.details.get("current_version")
            raise ConflictError(
                f"input.key: {cap_id} already exists (version {version}); registerCapability "
                f"only creates: to change it, send upsertNode with id {cap_id} and "
                f"expectedVersion: {version} (and relate for its relations), or applyCatalog",
                field="input.key",
                current_version=version,
            ) from None
        return report.nodes[cap_id]

    async def relate(self, spec: RelationSpec, *, by: Caller = Caller()) -> RelationRecord:
        """Create a relation (or update its properties); both nodes must exist."""
        report = await self.apply_batch([], [spec], by=by)
        return report.relations[0]

    async def unrelate(self, spec: RelationSpec, *, by: Caller = Caller()) -> bool:
        """Remove a relation; False when there was none."""
        parse_id(spec.from_, field=f"{spec.loc}.from")
        parse_id(spec.to, field=f"{spec.loc}.to")
        async with self._transaction(by) as tx:
            found = await tx.get_relations([(spec.from_, spec.type.value, spec.to)])
            if not found:
                return False
            if needs_checking(by.principal):
                changes = WriteSet(relations=[(r, "remove", spec.loc) for r in found.values()])
                await check_writes(tx, by.principal, changes, {})
            await commit(tx, ChangeSet(removed=[(r, Entry(spec.loc)) for r in found.values()]))
        return True

    async def retire(self, node_id: str, *, by: Caller = Caller()) -> NodeRecord:
        """Set a node's lifecycle to RETIRED; it stays in the catalog and its history."""
        parse_id(node_id, field="id")
        async with self._transaction(by) as tx:
            existing = (await tx.get_nodes([node_id])).get(node_id)
            if existing is None:
                raise NotFoundError(f"id: no node {node_id!r} in the catalog", field="id")
            after = revise(existing, node_id, tx.now, lifecycle=Lifecycle.RETIRED)
            if after is existing:
                return existing
            if needs_checking(by.principal):
                changes = WriteSet(updated=[(existing, after, "id")])
                await check_writes(tx, by.principal, changes, {node_id: existing})
            await commit(
                tx, ChangeSet(nodes=[(existing, after, Entry("id"))], known={node_id: existing})
            )
        return after

    async def apply_document(
        self, doc: CatalogDocument, *, dry_run: bool = False, by: Caller = Caller()
    ) -> ApplyReport:
        """Apply a catalog document as a diff: all or nothing."""
        return await self.apply_batch(
            doc.nodes, doc.relations, prune=doc.prune, dry_run=dry_run, by=by
        )

    async def apply_batch(
        self,
        node_specs: Sequence[NodeSpec],
        rel_specs: Sequence[RelationSpec],
        *,
        prune: bool = False,
        dry_run: bool = False,
        by: Caller = Caller(),
    ) -> ApplyReport:
        """Validate and write nodes and relations in one transaction (rolled back on dry run).

        ``by`` is checked against the access rules (``catalog.access.rules``) before anything
        is written, a dry run included, and recorded as the actor of every history row.
        """
        report = ApplyReport(dry_run=dry_run)
        # No pause of the garbage collector here: it would last across every ``await`` (a
        # writer waiting for the lock would turn collection off for the whole server). The
        # CLI pauses it for its one-shot process (``catalog.cli.apply``).
        problems = Problems()
        kinds = _check_ids(node_specs, rel_specs, problems)
        problems.raise_if_any()
        try:
            async with self._transaction(by) as tx:
                await _apply(tx, node_specs, rel_specs, kinds, prune, report, by.principal)
                if dry_run:
                    raise _DryRunRollback
        except _DryRunRollback:
            pass
        return report

    async def apply_stream(
        self,
        streams: Sequence[DocumentStream],
        problems: Problems,
        *,
        dry_run: bool = False,
        by: Caller = Caller(),
        progress: Callable[[str, int], None] | None = None,
    ) -> ApplyReport:
        """Apply catalog files read in parts (``catalog.document_stream``): all or nothing, in
        one transaction, as ``apply_document`` of the files merged would.

        Every node of every file is written before any relation, part by part, each part
        checked and written as a batch of its own (so a relation may name a node of any
        file); history rows are flushed after each part and the search index is written
        once, before commit. Memory is bounded by the part, the ids of the document and the
        report's id lists. After the first problem nothing more is written: the rest of the
        files is still read and checked for what needs no database, then everything is
        rolled back and every problem reported (``problems``: the stream's as well).
        """
        report = ApplyReport(dry_run=dry_run, keep_records=False)
        seen: dict[str, Kind] = {}
        try:
            async with self._transaction(by) as tx:
                bulk = _Bulk(tx, report, by.principal, problems, seen)
                for stream in streams:
                    for node_part in stream.node_parts():
                        await bulk.nodes(node_part)
                        if progress:
                            progress("nodes", len(node_part))
                await bulk.nodes([], final=True)
                wanted: set[tuple[str, str, str]] | None = (
                    set() if any(s.prune for s in streams) else None
                )
                for stream in streams:
                    for rel_part in stream.relation_parts():
                        if wanted is not None:
                            wanted.update((r.from_, r.type.value, r.to) for r in rel_part)
                        await bulk.relations(rel_part)
                        if progress:
                            progress("relations", len(rel_part))
                if wanted is not None and bulk.writing:
                    await bulk.prune(wanted)
                problems.raise_if_any()
                if dry_run:
                    raise _DryRunRollback
        except _DryRunRollback:
            pass
        return report

    def _transaction(self, by: Caller) -> AbstractAsyncContextManager[Writer]:
        return self.store.transaction(actor=by.principal.actor, request_id=by.request_id)


def _check_ids(
    node_specs: Sequence[NodeSpec],
    rel_specs: Sequence[RelationSpec],
    problems: Problems,
    seen: dict[str, Kind] | None = None,
) -> dict[str, Kind]:
    """Syntactic checks that need no database: ids, duplicates, endpoint kinds; every broken
    rule goes to ``problems``. ``seen``: the ids of earlier parts of the same batch (the ids
    of this one are added)."""
    kinds: dict[str, Kind] = {}
    for spec in node_specs:
        if problems.full:
            break
        if spec.id in kinds or (seen is not None and spec.id in seen):
            problems.at(
                spec,
                ("id",),
                f"{spec.loc}.id: node {spec.id!r} appears twice in the same batch",
                "unique-id",
            )
            continue
        try:
            kind, _ = parse_id(spec.id, field=f"{spec.loc}.id")
        except InvalidInputError as err:
            problems.error(err, spec, "id")
            continue
        kinds[spec.id] = kind
        if seen is not None:
            seen[spec.id] = kind
        if spec.owner is not None:
            try:
                owner_kind, _ = parse_id(spec.owner, field=f"{spec.loc}.owner")
            except InvalidInputError as err:
                problems.error(err, spec, "owner")
            else:
                if owner_kind is not Kind.TEAM:
                    problems.at(
                        spec,
                        ("owner",),
                        f"{spec.loc}.owner: an owner must be a team, got {spec.owner!r}",
                        "owner-is-team",
                    )
        if spec.attributes and kind is not Kind.DATA_ENTITY:
            problems.at(
                spec,
                ("attributes",),
                f"{spec.loc}.attributes: only data entities (entity:...) have attributes",
                "attributes-of-entities",
            )
        if kind is Kind.JOURNEY_STEP and spec.properties and "order" in spec.properties:
            order = spec.properties["order"]
            if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order < 2**31:
                problems.at(
                    spec,
                    ("properties", "order"),
                    f"{spec.loc}.properties.order: a journey step's order is a whole number "
                    f"from 0, got {order!r}",
                    "step-order",
                )
    # Ends are mostly nodes of this batch or seen before: their kind is known, and the id was
    # checked by the same parse_id (which then raises nothing).
    known: dict[str, Kind] = dict(kinds)
    for rspec in rel_specs:
        if problems.full:
            break
        src = known.get(rspec.from_)
        dst = known.get(rspec.to)
        try:
            if src is None:
                src, _ = parse_id(rspec.from_, field=f"{rspec.loc}.from")
                known[rspec.from_] = src
        except InvalidInputError as err:
            problems.error(err, rspec, "from")
        try:
            if dst is None:
                dst, _ = parse_id(rspec.to, field=f"{rspec.loc}.to")
                known[rspec.to] = dst
        except InvalidInputError as err:
            problems.error(err, rspec, "to")
        try:
            if (
                src is not None
                and dst is not None
                and (src, dst) not in ALLOWED_ENDPOINTS[rspec.type]
            ):
                check_endpoints(rspec.type, src, dst, field=f"{rspec.loc}.type")
            if rspec.from_ == rspec.to:
                check_not_self(rspec.type, rspec.from_, rspec.to, field=rspec.loc)
        except InvalidInputError as err:
            problems.error(err, rspec, "type")
        if rspec.type is RelationType.REPRESENTS and rspec.properties:
            check_field_map(rspec.properties, Entry(rspec.loc, rspec), problems)
    return kinds


@dataclass
class _Missing:
    """A reference to a node that is neither in the catalog nor in the batch."""

    spec: NodeSpec | RelationSpec
    part: str
    node_id: str
    message: str


async def _report_missing(tx: Reader, missing: list[_Missing], batch: Sequence[str]) -> None:
    """Every missing reference as a NOT_FOUND problem, with the id it most likely misspells
    (among the batch's and the catalog's nodes of the same kind: one query per kind, and only
    when something is missing)."""
    problems = Problems()
    by_kind: dict[Kind, list[str]] = {}
    for m in missing:
        kind = KIND_BY_PREFIX.get(m.node_id.partition(":")[0])
        if kind is not None and kind not in by_kind:
            by_kind[kind] = [i for i in batch if i.startswith(f"{kind.prefix}:")]
            by_kind[kind] += await tx.list_node_ids(
                NodeFilter(kinds=[kind]), after=None, limit=_SUGGEST_FROM
            )
    for m in missing:
        kind = KIND_BY_PREFIX.get(m.node_id.partition(":")[0])
        suggestion = closest(m.node_id, by_kind.get(kind, ())) if kind is not None else None
        problems.at(
            m.spec, (m.part,), m.message, "node-exists", error=NotFoundError, suggestion=suggestion
        )
    problems.raise_if_any()


#: Ids of one kind a misspelt reference is compared with (a catalog's first ones, by id).
_SUGGEST_FROM = 20_000


#: Ids the stale relations of a streamed prune are looked up for at a time.
_PRUNE_BATCH = 5_000


class _Bulk:
    """The parts of one streamed apply, each checked and written as a batch of its own."""

    def __init__(
        self,
        tx: Writer,
        report: ApplyReport,
        principal: Principal,
        problems: Problems,
        seen: dict[str, Kind],
    ) -> None:
        self.tx = tx
        self.report = report
        self.principal = principal
        self.problems = problems
        self.seen = seen
        #: Nodes whose owner is neither stored nor in their part: written after every other
        #: node (the owner may come later; a foreign key wants it first).
        self.waiting: list[NodeSpec] = []
        self.writing = True

    async def nodes(self, specs: Sequence[NodeSpec], *, final: bool = False) -> None:
        """Check and write one part of nodes (``final``: the nodes that waited for owners)."""
        if final:
            specs, self.waiting = self.waiting, []
        own = Problems()
        kinds = _check_ids(specs, [], own, None if final else self.seen)
        if not final and self.writing and own.items == []:
            owners = {s.owner for s in specs if s.owner and s.owner not in kinds}
            stored = set(await self.tx.get_nodes(sorted(owners))) if owners else set()
            later = [s for s in specs if s.owner and s.owner not in kinds and s.owner not in stored]
            if later:
                self.waiting.extend(later)
                ids = {s.id for s in later}
                specs = [s for s in specs if s.id not in ids]
                for i in ids:
                    del kinds[i]
        await self._write(own, specs, [], kinds)

    async def relations(self, specs: Sequence[RelationSpec]) -> None:
        """Check and write one part of relations (every node is written by then)."""
        own = Problems()
        kinds = _check_ids([], specs, own)
        await self._write(own, [], specs, kinds)

    async def prune(self, wanted: set[tuple[str, str, str]]) -> None:
        """Remove the relations between listed nodes that no part listed."""
        listed = sorted(self.seen)
        changes = ChangeSet()
        rel_changes = WriteSet()
        checking = needs_checking(self.principal)
        for i in range(0, len(listed), _PRUNE_BATCH):
            for r in await self.tx.relations_from(listed[i : i + _PRUNE_BATCH]):
                if r.to_id in self.seen and r.key not in wanted:
                    changes.removed.append((r, Entry("prune")))
                    if checking:
                        rel_changes.relations.append((r, "remove", "prune"))
        if checking:
            await check_writes(self.tx, self.principal, rel_changes, {})
        await commit(self.tx, changes, self.report)
        await self.tx.flush()

    async def _write(
        self,
        own: Problems,
        node_specs: Sequence[NodeSpec],
        rel_specs: Sequence[RelationSpec],
        kinds: dict[str, Kind],
    ) -> None:
        self.problems.extend(own.items)
        self.problems.more += own.more
        if own or self.problems or not self.writing:
            self.writing = False
            return
        if not node_specs and not rel_specs:
            return
        try:
            await _apply(
                self.tx,
                node_specs,
                rel_specs,
                kinds,
                False,
                self.report,
                self.principal,
                self.seen if rel_specs else None,
            )
        except CatalogError as err:
            self.writing = False
            items, more = problem_items(err)
            self.problems.extend(items)
            self.problems.more += more
            return
        await self.tx.flush()


async def _apply(
    tx: Writer,
    node_specs: Sequence[NodeSpec],
    rel_specs: Sequence[RelationSpec],
    kinds: dict[str, Kind],
    prune: bool,
    report: ApplyReport,
    principal: Principal,
    written_kinds: Mapping[str, Kind] | None = None,
) -> None:
    checking = needs_checking(principal)
    referenced = set(kinds)
    referenced.update(s.owner for s in node_specs if s.owner)
    for r in rel_specs:
        referenced.update((r.from_, r.to))
    # Ends written earlier in the transaction need no reading (unless the access rules,
    # which look at records, are checked).
    written: Mapping[str, Kind] = {} if checking or written_kinds is None else written_kinds
    existing = await tx.get_nodes(sorted(i for i in referenced if i not in written))

    problems = Problems()
    node_writes: list[tuple[NodeRecord | None, NodeRecord, NodeSpec]] = []
    node_changes = WriteSet()
    final: dict[str, NodeRecord] = dict(existing)
    for spec in node_specs:
        old = existing.get(spec.id)
        try:
            new = _merge(spec, old, kinds[spec.id], tx)
        except CatalogError as err:
            problems.error(
                err, spec, *(() if err.field is None else (err.field.rsplit(".", 1)[-1],))
            )
            continue
        final[spec.id] = new
        if old is None:
            node_writes.append((None, new, spec))
            report.added.append(spec.id)
            report.add_node_write(None, new)
            if checking:
                node_changes.created.append((new, spec.loc))
        elif new is old:
            report.unchanged.append(spec.id)
        else:
            node_writes.append((old, new, spec))
            report.updated.append(spec.id)
            report.add_node_write(old, new)
            if checking:
                node_changes.updated.append((old, new, spec.loc))
        if report.keep_records:
            report.nodes[spec.id] = new
    problems.raise_if_any()

    missing: list[_Missing] = []
    for spec in node_specs:
        if spec.owner is not None and spec.owner not in final:
            missing.append(
                _Missing(
                    spec,
                    "owner",
                    spec.owner,
                    f"{spec.loc}.owner: no team {spec.owner!r} in the catalog or this batch",
                )
            )
    wanted: dict[tuple[str, str, str], RelationSpec] = {}
    for rspec in rel_specs:
        for end, field_name in ((rspec.from_, "from"), (rspec.to, "to")):
            if end not in final and end not in written:
                missing.append(
                    _Missing(
                        rspec,
                        field_name,
                        end,
                        f"{rspec.loc}.{field_name}: no node {end!r} in the catalog or this batch",
                    )
                )
        wanted[(rspec.from_, rspec.type.value, rspec.to)] = rspec
    if missing:
        await _report_missing(tx, missing[: MAX_PROBLEMS + 1], list(kinds))
    if checking:
        await check_writes(tx, principal, node_changes, existing)
    changes = ChangeSet(known=existing, kinds=written)
    changes.nodes.extend((old, new, Entry(spec.loc, spec)) for old, new, spec in node_writes)

    stored = await tx.get_relations(list(wanted))
    rel_changes = WriteSet()
    for key, rspec in wanted.items():
        old_rel = stored.get(key)
        if old_rel is None:
            new_rel = RelationRecord(rspec.from_, rspec.type, rspec.to, rspec.properties or None)
            changes.added.append((new_rel, Entry(rspec.loc, rspec)))
            if checking:
                rel_changes.relations.append((new_rel, "create", rspec.loc))
        elif rspec.properties is not None and (rspec.properties or None) != old_rel.properties:
            new_rel = replace(old_rel, properties=rspec.properties or None)
            changes.updated.append((old_rel, new_rel, Entry(rspec.loc, rspec)))
            if checking:
                rel_changes.relations.append((new_rel, "change", rspec.loc))
        else:
            new_rel = old_rel
        if report.keep_records:
            report.relations.append(new_rel)
    if prune and kinds:
        listed = set(kinds)
        stale = [
            r
            for r in await tx.relations_from(sorted(listed))
            if r.to_id in listed and r.key not in wanted
        ]
        changes.removed.extend((r, Entry("prune")) for r in stale)
        if checking:
            rel_changes.relations.extend((r, "remove", "prune") for r in stale)
    if checking:
        await check_writes(tx, principal, rel_changes, final)
    await commit(tx, changes, report)


def _merge(spec: NodeSpec, old: NodeRecord | None, kind: Kind, tx: Writer) -> NodeRecord:
    """The node after applying ``spec``; returns ``old`` itself when nothing changes."""
    given = spec.model_fields_set
    if spec.expected_version is not None:
        current = old.version if old else 0
        if spec.expected_version != current:
            raise ConflictError(
                f"{spec.loc}.expectedVersion: {spec.id} is at version {current}, "
                f"not {spec.expected_version}; reload it and apply your change again",
                field=f"{spec.loc}.expectedVersion",
                current_version=current,
            )

    def pick(name: str, value: Any, default: Any) -> Any:
        if name in given:
            return value
        return getattr(old, name) if old is not None else default

    attributes = (
        tuple(a.model_dump(exclude_none=True) for a in spec.attributes)
        if spec.attributes is not None
        else None
    )
    if old is None and "name" not in given:
        raise InvalidInputError(
            f"{spec.loc}.name: {spec.id} is a new node and needs a name "
            "(fields left out keep their stored value only when the node exists)",
            field=f"{spec.loc}.name",
        )
    fields: dict[str, Any] = {
        "name": pick("name", spec.name, None),
        "description": pick("description", spec.description, None),
        "tags": pick("tags", tuple(spec.tags or ()), ()),
        "lifecycle": pick("lifecycle", spec.lifecycle or Lifecycle.ACTIVE, Lifecycle.ACTIVE),
        "owner": pick("owner", spec.owner, None),
        "properties": pick("properties", spec.properties or None, None),
        "attributes": pick("attributes", attributes or (), ()),
    }
    return revise(old, spec.id, tx.now, kind=kind, **fields)


__all__ = [
    "TRUSTED",
    "ApplyReport",
    "Caller",
    "Registry",
]

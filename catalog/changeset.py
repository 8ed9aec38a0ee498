"""The one write path: every writer's changes become a ``ChangeSet`` that this module checks
against the metamodel's rules and commits, with one report.

Writers (mutations and catalog documents through ``catalog.registry``, harvests through
``catalog.harvest``, the demo loader through the registry) decide *what* a node should become
(a partial update, a three-way merge, a retirement) and hand over the records; here

- node records are built and versions bumped (``revise``: the only place);
- the whole set is checked against every rule of the metamodel that a stored catalog must
  keep, whoever wrote it: endpoint kinds, self-relations, both ends exist, owners are
  teams, only entities have attributes, and ``PART_OF`` stays acyclic together with what is
  stored (``part_of_cycle``);
- rows are written in one order (teams first, so owners exist; relations removed before the
  ones added) and the report (``ChangeReport``: counts, ids, and the diff) is filled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from catalog.problems import Problems
from metadata.errors import InvalidInputError, NotFoundError
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

if TYPE_CHECKING:
    from catalog.problems import Located
    from metadata.store import Reader, Writer

#: PART_OF chains longer than this are refused: the hierarchy is a tree of a few levels.
MAX_HIERARCHY_DEPTH = 64
#: The fields of a node a diff compares, in the order a document writes them.
DIFF_FIELDS = ("name", "description", "tags", "lifecycle", "owner", "properties", "attributes")
_DEFAULTS: dict[str, Any] = {
    "description": None,
    "tags": (),
    "lifecycle": Lifecycle.ACTIVE,
    "owner": None,
    "properties": None,
    "attributes": (),
}


def revise(
    old: NodeRecord | None,
    node_id: str,
    now: datetime,
    *,
    kind: Kind | None = None,
    **fields: Any,
) -> NodeRecord:
    """The node ``node_id`` with ``fields`` set: a new record (version 1) when ``old`` is None,
    else ``old`` itself when nothing changes, or the next version of it. ``kind``: the id's,
    when the caller parsed it already.

    The only place node records are built and versions bumped.
    """
    if old is None:
        if kind is None:
            kind, key = parse_id(node_id)
        else:
            key = node_id.partition(":")[2]
        values = {**_DEFAULTS, **fields}
        return NodeRecord(
            id=node_id,
            kind=kind,
            key=key,
            version=1,
            created_at=now,
            updated_at=now,
            **values,
        )
    if all(getattr(old, k) == v for k, v in fields.items()):
        return old
    return replace(old, version=old.version + 1, updated_at=now, **fields)


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of a node before and after a write (JSON values, as a document has them)."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class NodeChange:
    """A node a write adds (``before`` None) or updates, with the fields that change."""

    id: str
    op: str  # "added" | "updated"
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class RelationChange:
    """A relation a write adds, removes, or whose properties it changes."""

    op: str  # "added" | "updated" | "removed"
    relation: RelationRecord
    before: dict[str, Any] | None = None  # properties before (updated, removed)


def _json_value(name: str, value: Any) -> Any:
    if isinstance(value, Lifecycle):
        return value.value
    if name == "tags":
        return list(value)
    if name == "attributes":
        return [dict(a) for a in value] or None
    return value


def node_change(old: NodeRecord | None, new: NodeRecord) -> NodeChange:
    """What a write changes of a node: every field that differs (all set ones when new)."""
    changes: list[FieldChange] = []
    for name in DIFF_FIELDS:
        after = _json_value(name, getattr(new, name))
        before = None if old is None else _json_value(name, getattr(old, name))
        if old is None and after in (None, [], {}):
            continue
        if before != after:
            changes.append(FieldChange(name, before, after))
    return NodeChange(new.id, "added" if old is None else "updated", tuple(changes))


#: Entries of each diff list a bulk apply's report keeps (a dry run prints 500 rows).
KEPT_DIFF = 1_000


@dataclass
class ChangeReport:
    """What a change set did (or would do, on a dry run): ids, counts and the diff."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    relations_added: int = 0
    relations_updated: int = 0
    relations_removed: int = 0
    dry_run: bool = False
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    relations: list[RelationRecord] = field(default_factory=list)
    #: The nodes written, (before, after) with before None for an added node, in order.
    node_writes: list[tuple[NodeRecord | None, NodeRecord]] = field(default_factory=list)
    #: The relations written, in order: added, updated, removed.
    relation_changes: list[RelationChange] = field(default_factory=list)
    #: False for a bulk apply: ``nodes`` and ``relations`` stay empty and the diff
    #: (``node_writes``, ``relation_changes``) keeps its first ``KEPT_DIFF`` entries of each,
    #: the rows of the others counted in ``diff_rows_left_out`` (on a dry run).
    keep_records: bool = True
    diff_rows_left_out: int = 0

    def add_node_write(self, old: NodeRecord | None, new: NodeRecord) -> None:
        """Note a node written (the diff's)."""
        if self.keep_records or len(self.node_writes) < KEPT_DIFF:
            self.node_writes.append((old, new))
        elif self.dry_run:
            self.diff_rows_left_out += len(node_change(old, new).fields) or 1

    def add_relation_changes(self, changes: list[RelationChange]) -> None:
        """Note relations written (the diff's)."""
        room = len(changes) if self.keep_records else KEPT_DIFF - len(self.relation_changes)
        self.relation_changes.extend(changes[: max(room, 0)])
        self.diff_rows_left_out += max(len(changes) - max(room, 0), 0)

    def node_changes(self) -> list[NodeChange]:
        """The diff of the nodes: each added or updated node with its fields before -> after
        (worked out when asked: a large apply that nobody inspects does not pay for it)."""
        return [node_change(old, new) for old, new in self.node_writes]


@dataclass(frozen=True, slots=True)
class Entry:
    """Where a change came from: the spec (for positions in errors) or a location text."""

    loc: str
    spec: Located | None = None


@dataclass
class ChangeSet:
    """Everything one write changes: nodes (before, after) and relations, each with its entry.

    ``nodes`` holds only nodes that change (``revise`` returned a new record); ``known``
    holds the stored nodes the writer read (ends of relations, owners), so checking them
    needs no second query.
    """

    nodes: list[tuple[NodeRecord | None, NodeRecord, Entry]] = field(default_factory=list)
    added: list[tuple[RelationRecord, Entry]] = field(default_factory=list)
    updated: list[tuple[RelationRecord, RelationRecord, Entry]] = field(default_factory=list)
    removed: list[tuple[RelationRecord, Entry]] = field(default_factory=list)
    known: dict[str, NodeRecord] = field(default_factory=dict)
    #: Nodes known to exist (written earlier in the same transaction) by kind, when their
    #: records were not read: a bulk apply's relation parts.
    kinds: Mapping[str, Kind] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        """How many rows the set writes."""
        return len(self.nodes) + len(self.added) + len(self.updated) + len(self.removed)


async def check(tx: Reader, changes: ChangeSet) -> None:
    """Refuse the set (every problem at once) unless the catalog keeps every metamodel rule
    after it: owners are teams that exist, only entities have attributes, relations join
    allowed kinds, never a node to itself where that makes no sense, between nodes that
    exist, and ``PART_OF`` stays acyclic together with what is stored."""
    problems = Problems()
    final: dict[str, NodeRecord] = dict(changes.known)
    for _, new, _ in changes.nodes:
        final[new.id] = new
    wanted = {r.owner for _, r, _ in changes.nodes if r.owner and r.owner not in final}
    kinds = changes.kinds
    wanted |= {
        e
        for r, _ in changes.added
        for e in (r.from_id, r.to_id)
        if e not in final and e not in kinds
    }
    if wanted:
        final.update(await tx.get_nodes(sorted(wanted)))
    for _, rec, entry in changes.nodes:
        if rec.owner is not None:
            owner = final.get(rec.owner)
            if owner is None:
                problems.at(
                    entry.spec,
                    ("owner",),
                    f"{entry.loc}.owner: no team {rec.owner!r} in the catalog or this batch",
                    "node-exists",
                    error=NotFoundError,
                    field=f"{entry.loc}.owner",
                )
            elif owner.kind is not Kind.TEAM:
                problems.at(
                    entry.spec,
                    ("owner",),
                    f"{entry.loc}.owner: an owner must be a team, got {rec.owner!r}",
                    "owner-is-team",
                    field=f"{entry.loc}.owner",
                )
        if rec.attributes and rec.kind is not Kind.DATA_ENTITY:
            problems.at(
                entry.spec,
                ("attributes",),
                f"{entry.loc}.attributes: only data entities (entity:...) have attributes",
                "attributes-of-entities",
                field=f"{entry.loc}.attributes",
            )
    for rel, entry in changes.added:
        ends: list[Kind | None] = []
        for end, part in ((rel.from_id, "from"), (rel.to_id, "to")):
            node = final.get(end)
            if node is None and end in kinds:
                ends.append(kinds[end])
                continue
            if node is None:
                problems.at(
                    entry.spec,
                    (part,),
                    f"{entry.loc}.{part}: no node {end!r} in the catalog or this batch",
                    "node-exists",
                    error=NotFoundError,
                    field=f"{entry.loc}.{part}",
                )
            ends.append(node.kind if node is not None else KIND_BY_PREFIX.get(end.split(":")[0]))
        src, dst = ends
        try:
            if (
                src is not None
                and dst is not None
                and (src, dst) not in ALLOWED_ENDPOINTS[rel.type]
            ):
                check_endpoints(rel.type, src, dst, field=f"{entry.loc}.type")
            if rel.from_id == rel.to_id:
                check_not_self(rel.type, rel.from_id, rel.to_id, field=entry.loc)
        except InvalidInputError as err:
            problems.error(err, entry.spec, "type")
        if rel.type is RelationType.REPRESENTS and rel.properties:
            check_field_map(rel.properties, entry, problems)
    for _, rel, entry in changes.updated:
        if rel.type is RelationType.REPRESENTS and rel.properties:
            check_field_map(rel.properties, entry, problems)
    problems.raise_if_any()
    new_edges = [(r, e) for r, e in changes.added if r.type is RelationType.PART_OF]
    if new_edges:
        removed = {r.key for r, _ in changes.removed if r.type is RelationType.PART_OF}
        cycle = await part_of_cycle(tx, [r for r, _ in new_edges], removed)
        if cycle is not None:
            _refuse_cycle(cycle, {r.key: e for r, e in new_edges})


def check_field_map(properties: dict[str, Any] | None, entry: Entry, problems: Problems) -> None:
    """The rule of a REPRESENTS relation's properties: ``matchKey`` names one attribute,
    ``fields`` maps attribute names to attribute names, ``source`` is a source id."""
    props = properties or {}
    spec, loc = entry.spec, entry.loc
    match_key = props.get("matchKey")
    if match_key is not None and not isinstance(match_key, str):
        problems.at(
            spec,
            ("properties", "matchKey"),
            f"{loc}.properties.matchKey: the match key names one canonical attribute "
            f"(a string), got {match_key!r}",
            "field-map",
            field=f"{loc}.properties.matchKey",
        )
    fields = props.get("fields")
    if fields is not None and (
        not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values())
    ):
        problems.at(
            spec,
            ("properties", "fields"),
            f"{loc}.properties.fields: the field map is an object of canonical attribute "
            "-> physical attribute names",
            "field-map",
            field=f"{loc}.properties.fields",
        )
    source = props.get("source")
    if source is not None:
        where = f"{loc}.properties.source"
        try:
            is_source = isinstance(source, str) and parse_id(source, field=where)[0] is Kind.SOURCE
        except InvalidInputError as err:
            problems.error(err, spec, "properties", "source")
            return
        if not is_source:
            problems.at(
                spec,
                ("properties", "source"),
                f"{where}: the source that serves this mapping's records is a source id "
                f"(source:KEY), got {repr(source)[:80]}",
                "field-map",
                field=where,
            )


async def part_of_cycle(
    tx: Reader,
    new_edges: Sequence[RelationRecord],
    removed: set[tuple[str, str, str]] | frozenset[tuple[str, str, str]] = frozenset(),
) -> list[tuple[str, str]] | None:
    """The cycle ``new_edges`` would close in the stored ``PART_OF`` hierarchy (less the
    ``removed`` relations), as a list of edges; None when the hierarchy stays acyclic.

    Loads the ancestors of every new edge's target level by level (one query per level,
    whatever the number of edges), then looks for a cycle in memory.
    """
    if not new_edges:
        return None
    edges = [(r.from_id, r.to_id) for r in new_edges]
    frontier = {r.to_id for r in new_edges}
    seen = set(frontier)
    for _ in range(MAX_HIERARCHY_DEPTH):
        if not frontier:
            break
        stored = [
            r
            for r in await tx.relations_from(sorted(frontier), types=[RelationType.PART_OF])
            if r.key not in removed
        ]
        edges.extend((r.from_id, r.to_id) for r in stored)
        frontier = {r.to_id for r in stored} - seen
        seen |= frontier
    if not has_cycle(edges):
        return None
    # The cycle to name, as networkx finds it (the message of every release so far).
    import networkx as nx  # only here: a third of a second of every command's start

    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_edges_from(edges)
    return [(str(a), str(b)) for a, b in nx.find_cycle(graph)]


def _refuse_cycle(
    cycle: list[tuple[str, str]], entries: Mapping[tuple[str, str, str], Entry]
) -> None:
    path = " -> ".join([cycle[0][0]] + [b for _, b in cycle])
    # The relation of this write that closes it: where the message points (file, line).
    closing = next((entries[k] for a, b in cycle if (k := (a, "PART_OF", b)) in entries), None)
    where = f"{closing.loc}.type" if closing is not None else "type"
    problems = Problems()
    problems.at(
        closing.spec if closing is not None else None,
        ("type",),
        f"{where}: PART_OF: this would make a cycle ({path}); the hierarchy must not have cycles",
        "part-of-acyclic",
        field=where,
    )
    problems.raise_if_any()


def has_cycle(edges: Sequence[tuple[str, str]]) -> bool:
    """True when the directed graph of ``edges`` has a cycle (Kahn: peel nodes that nothing
    points to; whatever remains lies on or behind a cycle)."""
    successors: dict[str, set[str]] = {}
    indegree: dict[str, int] = {}
    for src, dst in edges:
        targets = successors.setdefault(src, set())
        if dst not in targets:
            targets.add(dst)
            indegree[dst] = indegree.get(dst, 0) + 1
        indegree.setdefault(src, 0)
    ready = [n for n, d in indegree.items() if d == 0]
    peeled = 0
    while ready:
        node = ready.pop()
        peeled += 1
        for nxt in successors.get(node, ()):
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return peeled < len(indegree)


async def commit(
    tx: Writer, changes: ChangeSet, report: ChangeReport | None = None
) -> ChangeReport:
    """Check ``changes`` (``check``) and write them in the caller's transaction; returns the
    report (``report`` filled further when given: the writer may have counted unchanged
    nodes)."""
    report = report if report is not None else ChangeReport()
    await check(tx, changes)
    inserts = [new for old, new, _ in changes.nodes if old is None]
    updates = [(old, new) for old, new, _ in changes.nodes if old is not None]
    # Nodes go in first, owners (which may be new in this batch) before the nodes they own.
    inserts.sort(key=lambda r: r.kind is not Kind.TEAM)
    await tx.insert_nodes(inserts)
    await tx.update_nodes(updates)
    await tx.delete_relations([r for r, _ in changes.removed])
    await tx.insert_relations([r for r, _ in changes.added])
    await tx.update_relations([(a, b) for a, b, _ in changes.updated])
    note_relations(report, changes)
    return report


def note_nodes(report: ChangeReport, changes: ChangeSet) -> None:
    """Note the set's node writes in the report's diff (the writer keeps its own id lists:
    a harvest tells retired nodes from updated ones)."""
    for old, new, _ in changes.nodes:
        report.add_node_write(old, new)


def note_relations(report: ChangeReport, changes: ChangeSet) -> None:
    """Count the set's relation writes and note them in the report's diff: what ``commit``
    does after writing, and what a dry run that writes nothing reports."""
    report.relations_added += len(changes.added)
    report.relations_updated += len(changes.updated)
    report.relations_removed += len(changes.removed)
    rc = [RelationChange("added", r) for r, _ in changes.added]
    rc.extend(RelationChange("updated", b, a.properties) for a, b, _ in changes.updated)
    rc.extend(RelationChange("removed", r, r.properties) for r, _ in changes.removed)
    report.add_relation_changes(rc)


__all__ = [
    "ChangeReport",
    "ChangeSet",
    "Entry",
    "FieldChange",
    "NodeChange",
    "RelationChange",
    "check",
    "check_field_map",
    "commit",
    "has_cycle",
    "node_change",
    "note_nodes",
    "note_relations",
    "part_of_cycle",
    "revise",
]

"""A harvest as a diff against the catalog: three-way merges that keep what people edited.

What a harvest wrote for a node (name, description, tags, owner, lifecycle, its harvested
properties and attributes, and the relations the harvest made for it) is remembered in the
properties of the node's HARVESTED_FROM relation to the source, where edits of the node
cannot disturb it. On the next harvest, a field whose stored value still equals that memory
takes the new harvested value; a field that differs was edited by a person and is kept. The
same rule applies per property key, per attribute field and per relation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from catalog.changeset import (
    ChangeReport,
    ChangeSet,
    Entry,
    commit,
    note_nodes,
    note_relations,
    part_of_cycle,
    revise,
)
from catalog.harvest.base import HarvestBatch
from catalog.specs import NodeSpec, RelationSpec
from metadata.errors import InvalidInputError
from metadata.model import (
    Kind,
    Lifecycle,
    NodeRecord,
    RelationRecord,
    RelationType,
    check_endpoints,
    check_not_self,
    parse_id,
)
from metadata.store import Reader, Writer

_MISSING: Any = object()
_FIELDS = ("name", "description", "tags", "owner", "lifecycle")
_ATTR_FIELDS = ("type", "description", "classification")
RelKey = tuple[str, str, str]


def _jsonable(value: Any) -> Any:
    """The value as it comes back from the database's JSON column."""
    return json.loads(json.dumps(value))


def _merge(stored: Any, prev: Any, new: Any) -> Any:
    """Three-way merge of one value: take the harvest's unless a person changed it."""
    return new if stored == prev else stored


@dataclass
class DiffResult:
    """What a harvest changes (or, on a dry run, would change)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    inserts: list[NodeRecord] = field(default_factory=list, repr=False)
    updates: list[tuple[NodeRecord, NodeRecord]] = field(default_factory=list, repr=False)
    rel_inserts: list[RelationRecord] = field(default_factory=list, repr=False)
    rel_updates: list[tuple[RelationRecord, RelationRecord]] = field(
        default_factory=list, repr=False
    )
    rel_deletes: list[RelationRecord] = field(default_factory=list, repr=False)
    #: The stored nodes the plan read (the source, the harvested ones, relation ends).
    known: dict[str, NodeRecord] = field(default_factory=dict, repr=False)

    @property
    def writes(self) -> int:
        """How many rows the diff writes."""
        return (
            len(self.inserts)
            + len(self.updates)
            + len(self.rel_inserts)
            + len(self.rel_updates)
            + len(self.rel_deletes)
        )


def _encode(rel_type: str, direction: str, other: str) -> str:
    return f"{rel_type}{direction}{other}"


def _decode(node_id: str, entry: str) -> RelKey | None:
    for i, ch in enumerate(entry):
        if ch in "><":
            rtype, other = entry[:i], entry[i + 1 :]
            return (node_id, rtype, other) if ch == ">" else (other, rtype, node_id)
    return None


def _snapshot(spec: NodeSpec, relations: list[str]) -> dict[str, Any]:
    snap: dict[str, Any] = _jsonable(
        {
            "name": spec.name,
            "description": spec.description,
            "tags": list(spec.tags or ()),
            "owner": spec.owner,
            "lifecycle": (spec.lifecycle or Lifecycle.ACTIVE).value,
            "properties": spec.properties or {},
            "attributes": _attrs(spec),
            "relations": sorted(relations),
        }
    )
    return snap


def _attrs(spec: NodeSpec) -> list[dict[str, Any]]:
    return [a.model_dump(exclude_none=True) for a in spec.attributes or ()]


def _stored_fields(rec: NodeRecord) -> dict[str, Any]:
    return {
        "name": rec.name,
        "description": rec.description,
        "tags": list(rec.tags),
        "owner": rec.owner,
        "lifecycle": rec.lifecycle.value,
    }


def _merge_properties(
    stored: dict[str, Any], prev: dict[str, Any], new: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in [*new, *(k for k in stored if k not in new)]:
        value = _merge(stored.get(key, _MISSING), prev.get(key, _MISSING), new.get(key, _MISSING))
        if value is not _MISSING:
            out[key] = value
    return out


def _merge_attributes(
    stored: Sequence[dict[str, Any]],
    prev: Sequence[dict[str, Any]],
    new: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    s = {a["name"]: a for a in stored}
    p = {a["name"]: a for a in prev}
    n = {a["name"]: a for a in new}
    out: list[dict[str, Any]] = []
    for name in [*n, *(k for k in s if k not in n)]:
        if name not in s:
            if name in p:  # a person removed a harvested attribute: keep it removed
                continue
            out.append(n[name])
            continue
        if name not in n:
            if name in p and s[name] == p[name]:  # gone from the source, untouched: drop
                continue
            out.append(s[name])
            continue
        merged: dict[str, Any] = {"name": name}
        for f in _ATTR_FIELDS:
            prev_value = p[name].get(f) if name in p else _MISSING
            value = _merge(s[name].get(f), prev_value, n[name].get(f))
            if value is not None and value is not _MISSING:
                merged[f] = value
        out.append(merged)
    return out


def merge_node(
    spec: NodeSpec,
    kind: Kind,
    stored: NodeRecord | None,
    memory: dict[str, Any] | None,
    snap: dict[str, Any],
    tx_now: Any,
) -> NodeRecord:
    """The node after this harvest; ``stored`` itself when nothing changes.

    Args:
        memory: what the previous harvest wrote (None when this source never harvested it).
        snap: what this harvest writes (``_snapshot`` of the spec).
    """
    if stored is None:
        return revise(
            None,
            spec.id,
            tx_now,
            kind=kind,
            name=snap["name"],
            description=snap["description"],
            tags=tuple(snap["tags"]),
            lifecycle=Lifecycle(snap["lifecycle"]),
            owner=snap["owner"],
            properties=snap["properties"] or None,
            attributes=tuple(snap["attributes"]),
        )
    current = _stored_fields(stored)
    prev = memory
    if prev is None:
        # Not harvested from here before: the harvest may fill what is empty, never overwrite.
        prev = {f: v for f, v in current.items() if v in (None, [])}
    merged = {f: _merge(current[f], prev.get(f, _MISSING), snap[f]) for f in _FIELDS}
    props = _merge_properties(
        dict(stored.properties or {}), prev.get("properties") or {}, snap["properties"]
    )
    attributes = _merge_attributes(
        [dict(a) for a in stored.attributes], prev.get("attributes") or [], snap["attributes"]
    )
    return revise(
        stored,
        spec.id,
        tx_now,
        name=merged["name"],
        description=merged["description"],
        tags=tuple(merged["tags"]),
        owner=merged["owner"],
        lifecycle=Lifecycle(merged["lifecycle"]),
        properties=props or None,
        attributes=tuple(attributes),
    )


def _drop_cycles(rels: list[RelationSpec], warnings: list[str]) -> list[RelationSpec]:
    """Drop PART_OF relations that would close a cycle in the hierarchy (with a warning)."""
    graph: nx.DiGraph[str] = nx.DiGraph()
    out: list[RelationSpec] = []
    for rel in rels:
        if rel.type is RelationType.PART_OF:
            if rel.from_ == rel.to or (
                rel.to in graph and rel.from_ in graph and nx.has_path(graph, rel.to, rel.from_)
            ):
                warnings.append(
                    f"{rel.from_} PART_OF {rel.to} would make the hierarchy a cycle; left out"
                )
                continue
            graph.add_edge(rel.from_, rel.to)
        out.append(rel)
    return out


async def plan_harvest(reader: Reader, source_id: str, batch: HarvestBatch, now: Any) -> DiffResult:
    """Compare a batch with the catalog and work out every write (without writing).

    The source node itself may be missing (a dry run of a source not registered yet).
    """
    result = DiffResult(warnings=list(batch.warnings))
    kinds: dict[str, Kind] = {}
    for spec in batch.nodes:
        if spec.id in kinds:
            raise InvalidInputError(f"{spec.loc}: node {spec.id} harvested twice", field="id")
        kind, _ = parse_id(spec.id, field=f"{spec.loc}.id")
        if kind is Kind.SOURCE:
            raise InvalidInputError(f"{spec.loc}: a harvest cannot create sources", field="id")
        kinds[spec.id] = kind

    # Provenance is the service's job: harvesters' own HARVESTED_FROM relations are ignored.
    rels = [r for r in batch.relations if r.type is not RelationType.HARVESTED_FROM]
    referenced = {r.from_ for r in rels} | {r.to for r in rels}
    referenced |= {s.owner for s in batch.nodes if s.owner}
    outside = await reader.get_nodes(sorted((referenced - set(kinds)) | {source_id}))
    known = {source_id: Kind.SOURCE, **kinds, **{i: n.kind for i, n in outside.items()}}

    wanted: dict[RelKey, RelationSpec] = {}
    holders: dict[str, list[str]] = {s.id: [] for s in batch.nodes}
    for rel in _drop_cycles(rels, result.warnings):
        missing = [end for end in (rel.from_, rel.to) if end not in known]
        if missing:
            result.warnings.append(
                f"{rel.from_} {rel.type.value} {rel.to}: no node {missing[0]}; left out"
            )
            continue
        try:
            check_endpoints(rel.type, known[rel.from_], known[rel.to])
            check_not_self(rel.type, rel.from_, rel.to)
        except InvalidInputError as err:
            result.warnings.append(f"{rel.from_} -> {rel.to}: {err.message}; left out")
            continue
        if rel.from_ in kinds:
            holders[rel.from_].append(_encode(rel.type.value, ">", rel.to))
        elif rel.to in kinds:
            holders[rel.to].append(_encode(rel.type.value, "<", rel.from_))
        else:
            result.warnings.append(
                f"{rel.from_} {rel.type.value} {rel.to}: neither end was harvested; left out"
            )
            continue
        wanted[(rel.from_, rel.type.value, rel.to)] = rel

    # What earlier harvests wrote lives on each node's HARVESTED_FROM relation to the source.
    provenance = {
        r.from_id: r
        for r in await reader.relations_to([source_id])
        if r.type is RelationType.HARVESTED_FROM
    }
    memory: dict[str, dict[str, Any]] = {
        i: r.properties for i, r in provenance.items() if isinstance(r.properties, dict)
    }
    stored_nodes = await reader.get_nodes(list(kinds))
    gone = await reader.get_nodes([i for i in provenance if i not in kinds])

    prev_rels: set[RelKey] = set()
    for node_id in kinds:
        for entry in (memory.get(node_id) or {}).get("relations") or ():
            decoded = _decode(node_id, str(entry))
            if decoded is not None:
                prev_rels.add(decoded)

    for spec in batch.nodes:
        if spec.owner is not None and known.get(spec.owner) is not Kind.TEAM:
            result.warnings.append(f"{spec.id}: owner {spec.owner} is not a known team; left out")
            spec = spec.model_copy(update={"owner": None})
        if spec.attributes and kinds[spec.id] is not Kind.DATA_ENTITY:
            result.warnings.append(
                f"{spec.id}: only data entities have attributes; its attributes were left out"
            )
            spec = spec.model_copy(update={"attributes": None})
        snap = _snapshot(spec, holders[spec.id])
        old = stored_nodes.get(spec.id)
        new = merge_node(spec, kinds[spec.id], old, memory.get(spec.id), snap, now)
        if old is None:
            result.inserts.append(new)
            result.added.append(spec.id)
        elif new is old:
            result.unchanged.append(spec.id)
        else:
            result.updates.append((old, new))
            result.updated.append(spec.id)
        # Built from validated parts: the node's properties passed NodeSpec's checks.
        wanted[(spec.id, RelationType.HARVESTED_FROM.value, source_id)] = (
            RelationSpec.model_construct(
                from_=spec.id, type=RelationType.HARVESTED_FROM, to=source_id, properties=snap
            )
        )

    for node_id in sorted(gone):
        rec = gone[node_id]
        if rec.lifecycle is Lifecycle.RETIRED:
            continue
        retired = revise(rec, node_id, now, lifecycle=Lifecycle.RETIRED)
        result.updates.append((rec, retired))
        result.retired.append(node_id)
        link = provenance[node_id]
        # Remembered as retired by the harvest, so the node revives if the source brings it back.
        remembered = {**(link.properties or {}), "lifecycle": Lifecycle.RETIRED.value}
        result.rel_updates.append((link, replace(link, properties=remembered)))

    existing = await reader.get_relations(sorted(set(wanted) | prev_rels))
    for key, rel in wanted.items():
        old_rel = existing.get(key)
        if old_rel is None:
            if key in prev_rels:
                continue  # a person removed this harvested relation: leave it removed
            result.rel_inserts.append(RelationRecord(rel.from_, rel.type, rel.to, rel.properties))
        elif (rel.properties or None) != old_rel.properties:
            result.rel_updates.append((old_rel, replace(old_rel, properties=rel.properties)))
    for key in sorted(prev_rels - set(wanted)):
        if key in existing:
            result.rel_deletes.append(existing[key])
    await _drop_stored_cycles(reader, result)
    result.known = {**outside, **stored_nodes, **gone}
    return result


async def _drop_stored_cycles(reader: Reader, result: DiffResult) -> None:
    """Leave out (with a warning) each harvested PART_OF that would close a cycle together
    with the stored hierarchy: the rule every writer keeps (``catalog.changeset``), met here
    the harvest's way, as for cycles within the batch."""
    removed = {r.key for r in result.rel_deletes if r.type is RelationType.PART_OF}
    for _ in range(len(result.rel_inserts) + 1):
        new_edges = [r for r in result.rel_inserts if r.type is RelationType.PART_OF]
        cycle = await part_of_cycle(reader, new_edges, removed)
        if cycle is None:
            return
        on_cycle = {(a, "PART_OF", b) for a, b in cycle}
        dropped = next(r for r in new_edges if r.key in on_cycle)
        result.rel_inserts.remove(dropped)
        path = " -> ".join([cycle[0][0]] + [b for _, b in cycle])
        result.warnings.append(
            f"{dropped.from_id} PART_OF {dropped.to_id} would make the hierarchy a cycle with "
            f"the catalog's ({path}); left out"
        )


def change_set(diff: DiffResult, source_id: str) -> ChangeSet:
    """The planned diff as the write path's change set."""
    where = Entry(source_id)
    return ChangeSet(
        nodes=[(None, r, where) for r in diff.inserts] + [(a, b, where) for a, b in diff.updates],
        added=[(r, where) for r in diff.rel_inserts],
        updated=[(a, b, where) for a, b in diff.rel_updates],
        removed=[(r, where) for r in diff.rel_deletes],
        known=diff.known,
    )


async def write_harvest(tx: Writer, diff: DiffResult, source_id: str, report: ChangeReport) -> None:
    """Write a planned diff inside the caller's transaction, through the one write path (which
    checks it against every metamodel rule once more and fills ``report``'s diff)."""
    changes = change_set(diff, source_id)
    note_nodes(report, changes)
    await commit(tx, changes, report)


def preview_harvest(diff: DiffResult, source_id: str, report: ChangeReport) -> None:
    """Fill ``report`` with what writing the planned diff would do (a dry run): the diff and
    counts ``write_harvest`` reports."""
    changes = change_set(diff, source_id)
    note_nodes(report, changes)
    note_relations(report, changes)


__all__ = ["DiffResult", "merge_node", "plan_harvest", "preview_harvest", "write_harvest"]

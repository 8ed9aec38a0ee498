"""What an editor or steward may change, decided inside the write transaction.

The permission table (``catalog.access.permissions``) lets a role use a mutation at all; these
rules then look at every node and relation the write would change, as the catalog stands before
it (docs/security.md, "Ownership"):

* an editor may write a node owned by one of their teams (its ``owner``, or an OWNS relation
  from the team), or a node PART_OF (directly or through its parents) a domain one of their
  teams owns; a node they create must have one of their teams as its owner, and an owner they
  set must be one of their teams;
* a relation may be created, changed or removed when the caller may write its ``from`` node,
  and an OWNS or STEWARDS relation also needs its ``to`` node writable (it hands that over);
* a steward may also change the attributes (classifications included) of an entity their team
  stewards (STEWARDS), and create or remove REPRESENTS mappings from or to such an entity;
* an admin, and every caller of the command line or of a hub with auth off, may write anything.

Refusals are ``NotAllowedError`` (FORBIDDEN) naming the caller, the node and the rule. They
are raised before anything is written, so the transaction rolls back whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from catalog.access.principal import Principal, Role
from metadata.errors import NotAllowedError
from metadata.model import Kind, NodeRecord, RelationRecord, RelationType
from metadata.store import Reader

#: How far up the PART_OF hierarchy a node's domains are looked for.
MAX_ANCESTRY = 64

#: Fields of a node a steward may change on an entity their team stewards.
_STEWARD_FIELDS = frozenset({"attributes"})
#: Relations that give their ``to`` node to a team: the caller must be able to write both ends.
_BOTH_ENDS = frozenset({RelationType.OWNS, RelationType.STEWARDS})
_COMPARED = ("name", "description", "tags", "lifecycle", "owner", "properties", "attributes")


@dataclass
class WriteSet:
    """Everything one write would change, with the location each came from."""

    created: list[tuple[NodeRecord, str]] = field(default_factory=list)
    updated: list[tuple[NodeRecord, NodeRecord, str]] = field(default_factory=list)
    #: (relation, what happens to it: "create" | "change" | "remove", location)
    relations: list[tuple[RelationRecord, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.created or self.updated or self.relations)


def needs_checking(principal: Principal) -> bool:
    """False for callers every write rule lets through (admins, the CLI, auth off)."""
    return not (principal.unrestricted or principal.role is Role.ADMIN)


def who(principal: Principal) -> str:
    """The caller as refusals name them: role and teams, e.g. ``editor team:web``."""
    role = principal.role.value if principal.role else "caller without a role"
    if principal.teams:
        return f"{role} {' '.join(sorted(principal.teams))}"
    return f"{role} {principal.actor} (in no team)"


async def check_writes(
    tx: Reader, principal: Principal, changes: WriteSet, known: dict[str, NodeRecord]
) -> None:
    """Refuse (``NotAllowedError``) the first change ``principal`` may not make.

    ``known`` holds the stored nodes the write references (before the write); nodes missing
    from it are loaded.
    """
    if not needs_checking(principal) or not changes:
        return
    if principal.role is None or not principal.at_least(Role.EDITOR):
        raise NotAllowedError(f"{who(principal)} may not write to the catalog")
    facts = _Facts(tx, principal, known)
    created = {rec.id for rec, _ in changes.created}
    for rec, loc in changes.created:
        if rec.owner is None or rec.owner not in principal.teams:
            raise NotAllowedError(
                f"{loc}.owner: {who(principal)} may create {rec.id} only with one of their "
                f"teams as its owner ({_teams(principal)}), not "
                f"{rec.owner if rec.owner else 'without an owner'}",
                field=f"{loc}.owner",
            )
    updated = [(old, new, loc) for old, new, loc in changes.updated]
    await facts.load([old.id for old, _, _ in updated])
    for old, new, loc in updated:
        if facts.may_write(old.id):
            if new.owner != old.owner and new.owner not in principal.teams:
                raise NotAllowedError(
                    f"{loc}.owner: {who(principal)} may hand {old.id} only to one of their teams "
                    f"({_teams(principal)}), not {new.owner or 'to nobody'}",
                    field=f"{loc}.owner",
                )
            continue
        changed = {f for f in _COMPARED if getattr(old, f) != getattr(new, f)}
        if facts.stewards(old.id) and changed <= _STEWARD_FIELDS:
            continue
        if facts.stewards(old.id):
            raise NotAllowedError(
                f"{loc}: {who(principal)} stewards {old.id} and may change only its attributes, "
                f"not {', '.join(sorted(changed - _STEWARD_FIELDS))}; {facts.why_not(old.id)}",
                field=loc,
            )
        raise NotAllowedError(
            f"{loc}: {who(principal)} may not write {old.id}: {facts.why_not(old.id)}",
            field=loc,
        )
    ends = [r.from_id for r, _, _ in changes.relations if r.from_id not in created]
    ends += [
        e
        for r, _, _ in changes.relations
        if r.type in _BOTH_ENDS or r.type is RelationType.REPRESENTS
        for e in (r.from_id, r.to_id)
        if e not in created
    ]
    await facts.load(ends)
    for rel, what, loc in changes.relations:
        if rel.type in _BOTH_ENDS and not (rel.to_id in created or facts.may_write(rel.to_id)):
            # Else a team made in the same batch (or one the caller owns) could be given
            # ownership or stewardship of someone else's node.
            raise NotAllowedError(
                f"{loc}: {who(principal)} may not {what} the relation {rel.from_id} "
                f"{rel.type.value} {rel.to_id}: {rel.type.value} hands over {rel.to_id}, so it "
                f"needs the right to write {rel.to_id} too, and {rel.to_id} "
                f"{facts.why_not(rel.to_id).removeprefix('it ')}",
                field=loc,
            )
        if rel.from_id in created or facts.may_write(rel.from_id):
            continue
        if rel.type is RelationType.REPRESENTS and (
            facts.stewards(rel.from_id) or facts.stewards(rel.to_id)
        ):
            continue
        text = f"{rel.from_id} {rel.type.value} {rel.to_id}"
        raise NotAllowedError(
            f"{loc}: {who(principal)} may not {what} the relation {text}: a relation is written "
            f"by whoever may write its from node, and {rel.from_id} "
            f"{facts.why_not(rel.from_id).removeprefix('it ')}",
            field=loc,
        )


def _teams(principal: Principal) -> str:
    return ", ".join(sorted(principal.teams)) or "they are in no team"


class _Facts:
    """Ownership, stewardship and domains of the nodes a write touches, loaded per level."""

    def __init__(self, tx: Reader, principal: Principal, known: dict[str, NodeRecord]) -> None:
        self.tx = tx
        self.teams = principal.teams
        self.steward = principal.at_least(Role.STEWARD)
        self.nodes = dict(known)
        self.owners: dict[str, set[str]] = {}  # node -> teams owning it (field or OWNS)
        self.stewarded: dict[str, set[str]] = {}  # node -> teams stewarding it
        self.domains: dict[str, set[str]] = {}  # node -> domains it is PART_OF (transitively)

    async def load(self, ids: Iterable[str]) -> None:
        """Learn what ``may_write`` and ``stewards`` need about ``ids``."""
        todo = sorted({i for i in ids if i not in self.owners})
        if not todo:
            return
        missing = [i for i in todo if i not in self.nodes]
        if missing:
            self.nodes.update(await self.tx.get_nodes(missing))
        await self._ownership(todo)
        # Only nodes the caller's teams do not own outright need their domains.
        open_ids = [i for i in todo if not (self.owners[i] & self.teams)]
        if open_ids:
            await self._domains(open_ids)

    async def _ownership(self, ids: Sequence[str]) -> None:
        for i in ids:
            rec = self.nodes.get(i)
            self.owners[i] = {rec.owner} if rec is not None and rec.owner else set()
            self.stewarded.setdefault(i, set())
        for rel in await self.tx.relations_to(list(ids)):
            if rel.type is RelationType.OWNS:
                self.owners.setdefault(rel.to_id, set()).add(rel.from_id)
            elif rel.type is RelationType.STEWARDS:
                self.stewarded.setdefault(rel.to_id, set()).add(rel.from_id)

    async def _domains(self, ids: Sequence[str]) -> None:
        # parents[x]: what x is PART_OF; walked level by level, one statement per level.
        parents: dict[str, set[str]] = {}
        frontier = set(ids)
        for _ in range(MAX_ANCESTRY):
            frontier -= set(parents)
            if not frontier:
                break
            for f in frontier:
                parents.setdefault(f, set())
            for rel in await self.tx.relations_from(sorted(frontier)):
                if rel.type is RelationType.PART_OF:
                    parents[rel.from_id].add(rel.to_id)
            frontier = {p for f in frontier for p in parents[f]}
        domain_ids: set[str] = set()
        for i in ids:
            seen: set[str] = set()
            stack = [i]
            while stack:
                for p in parents.get(stack.pop(), ()):
                    if p not in seen:
                        seen.add(p)
                        stack.append(p)
            found = {d for d in seen if d.startswith(f"{Kind.DOMAIN.prefix}:")}
            self.domains[i] = found
            domain_ids |= found
        unknown = [d for d in domain_ids if d not in self.owners]
        if unknown:
            await self.load_owners_only(unknown)

    async def load_owners_only(self, ids: Sequence[str]) -> None:
        """Ownership of domains (no domains of domains: a domain is not PART_OF anything)."""
        missing = [i for i in ids if i not in self.nodes]
        if missing:
            self.nodes.update(await self.tx.get_nodes(missing))
        await self._ownership(ids)

    def may_write(self, node_id: str) -> bool:
        """True when one of the caller's teams owns the node or a domain it is part of."""
        if self.owners.get(node_id, set()) & self.teams:
            return True
        return any(self.owners.get(d, set()) & self.teams for d in self.domains.get(node_id, ()))

    def stewards(self, node_id: str) -> bool:
        """True when the caller is a steward and one of their teams stewards the node."""
        return self.steward and bool(self.stewarded.get(node_id, set()) & self.teams)

    def why_not(self, node_id: str) -> str:
        """Why the caller may not write the node, in words."""
        owners = sorted(self.owners.get(node_id, ()))
        text = f"it is owned by {', '.join(owners)}" if owners else "it has no owner"
        domains = sorted(self.domains.get(node_id, ()))
        if domains:
            text += f" and is part of {', '.join(domains)}, which none of their teams owns"
        return text


__all__ = ["WriteSet", "check_writes", "needs_checking", "who"]

"""The metamodel: node kinds, relation types, the endpoint rules and the records they describe."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from metadata.errors import InvalidInputError

#: The members of these enums are singletons that equal only themselves, so the identity hash
#: (C) serves: ``Enum.__hash__`` hashes the name in Python, and the graph projection looks
#: relation types up in dicts millions of times a question (a fifth of a ``gaps`` pass).
_FAST_HASH = object.__hash__


class Kind(enum.Enum):
    """The kinds of node in the catalog."""

    __hash__ = _FAST_HASH

    DOMAIN = "domain"
    TEAM = "team"
    SYSTEM = "system"
    CAPABILITY = "capability"
    DATA_ENTITY = "entity"
    JOURNEY = "journey"
    JOURNEY_STEP = "step"
    TOUCHPOINT = "touchpoint"
    SOURCE = "source"

    @property
    def prefix(self) -> str:
        """The id prefix of this kind (``system`` in ``system:crm``)."""
        return self.value


class RelationType(enum.Enum):
    """The typed edges between nodes."""

    __hash__ = _FAST_HASH

    PART_OF = "PART_OF"
    PROVIDES = "PROVIDES"
    DEPENDS_ON = "DEPENDS_ON"
    READS = "READS"
    WRITES = "WRITES"
    MASTERS = "MASTERS"
    STORES = "STORES"
    OWNS = "OWNS"
    STEWARDS = "STEWARDS"
    REFERENCES = "REFERENCES"
    FLOWS_TO = "FLOWS_TO"
    REPRESENTS = "REPRESENTS"
    USES = "USES"
    OCCURS_AT = "OCCURS_AT"
    SERVED_BY = "SERVED_BY"
    HARVESTED_FROM = "HARVESTED_FROM"


class Lifecycle(enum.Enum):
    """Where a node stands in its life."""

    __hash__ = _FAST_HASH

    PLANNED = "PLANNED"
    ACTIVE = "ACTIVE"
    DEPRECATED = "DEPRECATED"
    RETIRED = "RETIRED"


class Direction(enum.Enum):
    """Which relations of a node to follow."""

    OUT = "OUT"
    IN = "IN"
    BOTH = "BOTH"


KIND_BY_PREFIX: dict[str, Kind] = {k.prefix: k for k in Kind}
KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
ID_PATTERN = re.compile(r"([a-z]+):(.*)", re.DOTALL)

_ALL = frozenset(Kind)
D, T, S, C, E = Kind.DOMAIN, Kind.TEAM, Kind.SYSTEM, Kind.CAPABILITY, Kind.DATA_ENTITY
J, ST, TP, SRC = Kind.JOURNEY, Kind.JOURNEY_STEP, Kind.TOUCHPOINT, Kind.SOURCE

#: relation type -> the allowed (from kind, to kind) pairs (ARCHITECTURE.md, "Metamodel").
ALLOWED_ENDPOINTS: dict[RelationType, frozenset[tuple[Kind, Kind]]] = {
    RelationType.PART_OF: frozenset({(C, C), (C, D), (S, S), (S, D), (E, D), (ST, J), (SRC, S)}),
    RelationType.PROVIDES: frozenset({(S, C)}),
    RelationType.DEPENDS_ON: frozenset({(S, S), (C, C)}),
    RelationType.READS: frozenset({(C, E)}),
    RelationType.WRITES: frozenset({(C, E)}),
    RelationType.MASTERS: frozenset({(S, E)}),
    RelationType.STORES: frozenset({(S, E)}),
    RelationType.OWNS: frozenset({(T, k) for k in _ALL}),
    RelationType.STEWARDS: frozenset({(T, E)}),
    RelationType.REFERENCES: frozenset({(E, E)}),
    RelationType.FLOWS_TO: frozenset({(E, E)}),
    RelationType.REPRESENTS: frozenset({(E, E)}),
    RelationType.USES: frozenset({(ST, C)}),
    RelationType.OCCURS_AT: frozenset({(ST, TP)}),
    RelationType.SERVED_BY: frozenset({(TP, S)}),
    RelationType.HARVESTED_FROM: frozenset({(k, SRC) for k in _ALL if k is not SRC}),
}


#: Relation types a node may not have to itself (rule ``no-self-relation``). A node is not
#: part of, dependent on or owner of itself, and data does not flow to or stand for the entity
#: it is; an entity may REFERENCE itself (a customer referred by a customer, a foreign key to
#: its own table). The other types join different kinds, so their ends always differ.
NO_SELF_RELATION: frozenset[RelationType] = frozenset(
    {
        RelationType.PART_OF,
        RelationType.DEPENDS_ON,
        RelationType.FLOWS_TO,
        RelationType.REPRESENTS,
        RelationType.OWNS,
    }
)


def check_not_self(rtype: RelationType, src: str, dst: str, *, field: str = "type") -> None:
    """Refuse a relation of a type in ``NO_SELF_RELATION`` from a node to itself."""
    if src == dst and rtype in NO_SELF_RELATION:
        raise InvalidInputError(
            f"{field}: {rtype.value} cannot go from {src} to itself (rule no-self-relation: "
            f"{', '.join(sorted(t.value for t in NO_SELF_RELATION))} never join a node to "
            "itself)",
            field=field,
            rule="no-self-relation",
        )


def describe_rule(rtype: RelationType) -> str:
    """Say in words which endpoints a relation type allows, e.g. ``system -> capability``."""
    pairs = sorted(f"{a.prefix} -> {b.prefix}" for a, b in ALLOWED_ENDPOINTS[rtype])
    if rtype is RelationType.OWNS:
        return "team -> any node"
    if rtype is RelationType.HARVESTED_FROM:
        return "any node -> source"
    return ", ".join(pairs)


def parse_id(node_id: str, *, field: str = "id") -> tuple[Kind, str]:
    """Split ``<prefix>:<key>`` into its kind and key, or raise ``InvalidInputError``."""
    m = ID_PATTERN.fullmatch(node_id)
    if m is None:
        raise InvalidInputError(
            f"{field}: {_show(node_id)} is not a node id; expected '<prefix>:<key>', "
            f"e.g. 'system:crm'",
            field=field,
        )
    prefix, key = m.group(1), m.group(2)
    kind = KIND_BY_PREFIX.get(prefix)
    if kind is None:
        raise InvalidInputError(
            f"{field}: unknown kind prefix {prefix!r} in {_show(node_id)}; "
            f"use one of {', '.join(KIND_BY_PREFIX)}",
            field=field,
        )
    if KEY_PATTERN.fullmatch(key) is None:
        raise InvalidInputError(
            f"{field}: malformed key {_show(key)} in {_show(node_id)}; a key is 1-128 characters "
            "of lowercase letters, digits, '.', '_' and '-', starting with a letter or digit",
            field=field,
        )
    return kind, key


def check_endpoints(rtype: RelationType, src: Kind, dst: Kind, *, field: str = "type") -> None:
    """Refuse a relation whose endpoint kinds break the metamodel's table."""
    if (src, dst) not in ALLOWED_ENDPOINTS[rtype]:
        raise InvalidInputError(
            f"{field}: {rtype.value} cannot go from a {src.prefix} to a {dst.prefix}; "
            f"the rule for {rtype.value} allows {describe_rule(rtype)}",
            field=field,
        )


def _show(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


class Attribute(BaseModel):
    """One attribute of a data entity: name, type and an optional classification (e.g. PII)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    type: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    classification: str | None = Field(default=None, max_length=100)


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A node as stored: the unit the store hands to upper layers."""

    id: str
    kind: Kind
    key: str
    name: str
    description: str | None
    tags: tuple[str, ...]
    lifecycle: Lifecycle
    owner: str | None
    properties: dict[str, Any] | None
    attributes: tuple[dict[str, Any], ...]
    version: int
    created_at: datetime
    updated_at: datetime

    def content(self) -> dict[str, Any]:
        """The user-editable fields, as a catalog document writes them."""
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.description is not None:
            out["description"] = self.description
        if self.tags:
            out["tags"] = list(self.tags)
        out["lifecycle"] = self.lifecycle.value
        if self.owner is not None:
            out["owner"] = self.owner
        if self.properties:
            out["properties"] = self.properties
        if self.attributes:
            out["attributes"] = [dict(a) for a in self.attributes]
        return out


@dataclass(frozen=True, slots=True)
class RelationRecord:
    """A typed, directed relation between two nodes."""

    from_id: str
    type: RelationType
    to_id: str
    properties: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        """The identity of a relation: (from, type, to)."""
        return (self.from_id, self.type.value, self.to_id)

    def content(self) -> dict[str, Any]:
        """The relation as a catalog document writes it."""
        out: dict[str, Any] = {"from": self.from_id, "type": self.type.value, "to": self.to_id}
        if self.properties:
            out["properties"] = self.properties
        return out


@dataclass(frozen=True, slots=True)
class Touching:
    """A node's outgoing and incoming relations."""

    out: Sequence[RelationRecord]
    into: Sequence[RelationRecord]


__all__ = [
    "ALLOWED_ENDPOINTS",
    "NO_SELF_RELATION",
    "Attribute",
    "Direction",
    "Kind",
    "Lifecycle",
    "NodeRecord",
    "RelationRecord",
    "Touching",
    "RelationType",
    "check_endpoints",
    "check_not_self",
    "describe_rule",
    "parse_id",
]

"""Backstage ``catalog-info.yaml`` (one or several documents) -> the capahub metamodel.

| Backstage                  | capahub                                                      |
|----------------------------|--------------------------------------------------------------|
| Domain                     | domain                                                       |
| System                     | system (PART_OF its ``spec.domain``)                         |
| Component                  | system (PART_OF ``spec.system`` / ``spec.subcomponentOf``)  |
| Resource                   | system (PART_OF ``spec.system``)                             |
| API                        | capability (its ``spec.system`` PROVIDES it)                 |
| Group                      | team                                                         |
| User, Location, others     | not nodes: kept in properties, reported as warnings          |
| ``spec.owner``             | the node's owner (when it is a group of the file)            |
| ``providesApis``           | PROVIDES (component -> capability)                           |
| ``consumesApis``           | DEPENDS_ON the systems that provide the API                  |
| ``dependsOn``              | DEPENDS_ON (between systems)                                 |

``docs/harvesting.md`` has the full table. Everything else of an entity (its type,
lifecycle, annotations, labels, links, unmapped references) is kept under
``properties.backstage``.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from catalog.harvest._documents import load_documents
from catalog.harvest._naming import plural
from catalog.harvest.base import BatchBuilder, HarvestBatch, HarvestContext, SourceType
from metadata.errors import BadSourceDataError
from metadata.model import Kind, Lifecycle, RelationType

#: Backstage kind -> capahub kind, in the order ids are handed out (stable across files).
KIND_MAP: dict[str, Kind] = {
    "domain": Kind.DOMAIN,
    "system": Kind.SYSTEM,
    "component": Kind.SYSTEM,
    "resource": Kind.SYSTEM,
    "api": Kind.CAPABILITY,
    "group": Kind.TEAM,
}
LIFECYCLES = {
    "production": Lifecycle.ACTIVE,
    "experimental": Lifecycle.ACTIVE,
    "deprecated": Lifecycle.DEPRECATED,
}
_DISPLAY = {
    "domain": "Domain",
    "system": "System",
    "component": "Component",
    "resource": "Resource",
    "api": "API",
    "group": "Group",
    "user": "User",
    "location": "Location",
}

Ref = tuple[str, str, str]  # (kind, namespace, name), lower-cased


@dataclass
class Entity:
    """One Backstage entity of the file."""

    kind: str
    namespace: str
    name: str
    metadata: dict[str, Any]
    spec: dict[str, Any]
    index: int
    kind_label: str = ""

    @property
    def ref(self) -> Ref:
        """The entity's reference, lower-cased as Backstage compares them."""
        return (self.kind, self.namespace.lower(), self.name.lower())

    def label(self) -> str:
        """``Component default/orders`` style name for messages."""
        kind = _DISPLAY.get(self.kind, self.kind_label or self.kind)
        if self.namespace == "default":
            return f"{kind} {self.name}"
        return f"{kind} {self.namespace}/{self.name}"


def parse_ref(value: Any, default_kind: str, namespace: str) -> Ref | None:
    """Parse ``[kind:][namespace/]name`` (or ``{kind, namespace, name}``) into a reference."""
    if isinstance(value, dict):
        kind = str(value.get("kind") or default_kind)
        ns = str(value.get("namespace") or namespace)
        name = value.get("name")
        return (kind.lower(), ns.lower(), str(name).lower()) if name else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    kind, sep, rest = text.partition(":")
    if not sep or "/" in kind:
        kind, rest = default_kind, text
    ns, sep, name = rest.partition("/")
    if not sep:
        ns, name = namespace, rest
    return (kind.lower(), ns.lower(), name.lower()) if name else None


def _refs(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class BackstageHarvester:
    """Harvests Backstage catalog files (every kind; see the mapping table)."""

    type = SourceType.BACKSTAGE

    async def harvest(self, ctx: HarvestContext) -> HarvestBatch:
        """Read the catalog file at ``ctx.location`` and map its entities."""
        text = (await ctx.fetcher.read(ctx.location, headers=ctx.auth_headers())).text

        def build() -> HarvestBatch:
            docs = load_documents(text, ctx.location, "a Backstage catalog file")
            return _Mapping(ctx, docs).build()

        return await asyncio.to_thread(build)


class _Mapping:
    def __init__(self, ctx: HarvestContext, docs: list[Any]) -> None:
        self.ctx = ctx
        self.b = BatchBuilder(ctx)
        self.counts: Counter[str] = Counter()
        self.entities: list[Entity] = []
        for i, doc in enumerate(docs, start=1):
            entity = self._entity(i, doc)
            if entity is not None:
                self.entities.append(entity)
        if not self.entities:
            raise BadSourceDataError(
                f"{ctx.location}: not a Backstage catalog file (no document has a kind and "
                "metadata.name)",
                field="location",
            )
        self.by_ref: dict[Ref, Entity] = {}
        self.ids: dict[Ref, str] = {}

    def _entity(self, index: int, doc: Any) -> Entity | None:
        if not isinstance(doc, dict):
            self.b.warn(f"document {index}: not a mapping; skipped")
            return None
        kind, meta = doc.get("kind"), doc.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(kind, str) or not isinstance(name, str) or not name.strip():
            self.b.warn(f"document {index}: no kind or metadata.name; skipped")
            return None
        api_version = str(doc.get("apiVersion") or "")
        if "backstage.io/" not in api_version:
            self.b.warn(
                f"document {index} ({kind} {name}): apiVersion {api_version or 'missing'!r} "
                "is not backstage.io/*; read as Backstage anyway"
            )
        spec = doc.get("spec")
        return Entity(
            kind=kind.lower(),
            namespace=str(meta.get("namespace") or "default"),  # type: ignore[union-attr]
            name=name.strip(),
            metadata=meta,  # type: ignore[arg-type]
            spec=spec if isinstance(spec, dict) else {},
            index=index,
            kind_label=kind,
        )

    def resolve(self, value: Any, default_kind: str, owner: Entity, what: str) -> str | None:
        """The node id of a referenced entity of this file, or None (with a warning)."""
        ref = parse_ref(value, default_kind, owner.namespace)
        if ref is None:
            self.b.warn(f"{owner.label()}: {what} {value!r} is not an entity reference; left out")
            return None
        node_id = self.ids.get(ref)
        if node_id is None:
            target = self.by_ref.get(ref)
            if target is None:
                self.b.warn(f"{owner.label()}: {what} {value!r} is not in this file; left out")
            else:
                self.b.warn(
                    f"{owner.label()}: {what} {value!r} is a {target.label()}, which maps to no "
                    "node; left out"
                )
        return node_id

    def build(self) -> HarvestBatch:
        for e in self.entities:
            if e.ref in self.by_ref:
                self.b.warn(
                    f"{e.label()} appears twice (documents {self.by_ref[e.ref].index} "
                    f"and {e.index}); the first is kept"
                )
                continue
            self.by_ref[e.ref] = e
        mapped = sorted(
            (e for e in self.by_ref.values() if e.kind in KIND_MAP),
            key=lambda e: (list(KIND_MAP).index(e.kind), e.namespace.lower(), e.name.lower()),
        )
        for e in mapped:
            parts = [e.name] if e.namespace.lower() == "default" else [e.namespace, e.name]
            self.ids[e.ref] = self.b.claim(
                KIND_MAP[e.kind], *parts, origin=e.label(), qualifier=e.kind
            )
        members: dict[str, list[str]] = defaultdict(list)
        for e in self.by_ref.values():
            if e.kind == "user":
                self.counts["user"] += 1
                for group in _refs(e.spec.get("memberOf")):
                    ref = parse_ref(group, "group", e.namespace)
                    if ref is not None:
                        members[ref[2]].append(e.name)
            elif e.kind == "location":
                targets = [
                    str(t) for t in [*_refs(e.spec.get("target")), *_refs(e.spec.get("targets"))]
                ]
                self.b.warn(
                    f"{e.label()}: locations are not followed "
                    f"({', '.join(targets) or 'no targets'}); register each target as a source "
                    "of its own"
                )
            elif e.kind not in KIND_MAP:
                self.b.warn(
                    f"{e.label()}: kind {e.kind_label} has no counterpart in capahub; skipped"
                )
        for e in mapped:
            self.node(e, members)
        self._summaries()
        return self.b.build()

    def node(self, e: Entity, members: dict[str, list[str]]) -> None:
        node_id = self.ids[e.ref]
        spec = e.spec
        backstage: dict[str, Any] = {
            "kind": _DISPLAY[e.kind],
            "namespace": e.namespace,
            "name": e.name,
        }
        for key in ("type", "lifecycle"):
            if spec.get(key) is not None:
                backstage[key] = spec[key]
        for key in ("annotations", "labels", "links"):
            if e.metadata.get(key):
                backstage[key] = e.metadata[key]
        lifecycle = Lifecycle.ACTIVE
        raw_lifecycle = spec.get("lifecycle")
        if raw_lifecycle is not None:
            mapped = LIFECYCLES.get(str(raw_lifecycle).lower())
            if mapped is None:
                self.b.warn(
                    f"{e.label()}: lifecycle {raw_lifecycle!r} has no counterpart; read as ACTIVE"
                )
            else:
                lifecycle = mapped
        owner = self.owner(e, backstage)
        properties: dict[str, Any] = {"backstage": backstage}
        tags = [str(t) for t in _refs(e.metadata.get("tags"))]
        if e.kind == "api":
            properties["protocol"] = spec.get("type")
            if spec.get("definition") is not None:
                self.counts["definition"] += 1
        if e.kind == "group":
            profile = spec.get("profile")
            if isinstance(profile, dict) and profile:
                backstage["profile"] = profile
            listed = [str(m) for m in _refs(spec.get("members"))]
            users = sorted(set(listed) | set(members.get(e.name.lower(), [])))
            if users:
                backstage["members"] = users
            for key in ("parent", "children"):
                if spec.get(key):
                    backstage[key] = spec[key]
            if spec.get("parent"):
                self.counts["parent"] += 1
        if e.kind == "domain" and spec.get("subdomainOf"):
            backstage["subdomainOf"] = spec["subdomainOf"]
            self.counts["subdomain"] += 1
        title = e.metadata.get("title")
        self.b.node(
            node_id,
            str(title) if title else e.name,
            origin=e.label(),
            description=str(e.metadata.get("description") or "") or None,
            tags=tags,
            lifecycle=lifecycle,
            owner=owner,
            properties=properties,
        )
        self.relations(e, node_id, backstage)

    def owner(self, e: Entity, backstage: dict[str, Any]) -> str | None:
        value = e.spec.get("owner")
        if value is None:
            return None
        ref = parse_ref(value, "group", e.namespace)
        if ref is not None and ref[0] == "group":
            team = self.ids.get(ref)
            if team is not None:
                return team
        backstage["owner"] = value
        if ref is not None and ref[0] == "user":
            self.counts["user-owner"] += 1
        else:
            self.b.warn(
                f"{e.label()}: owner {value!r} is not a group of this file; kept in "
                "properties.backstage.owner"
            )
        return None

    def relations(self, e: Entity, node_id: str, backstage: dict[str, Any]) -> None:
        spec = e.spec
        rel = self.b.relate
        if e.kind in ("component", "resource") and spec.get("system"):
            target = self.resolve(spec["system"], "system", e, "system")
            if target:
                rel(node_id, RelationType.PART_OF, target)
        if e.kind == "component" and spec.get("subcomponentOf"):
            target = self.resolve(spec["subcomponentOf"], "component", e, "subcomponentOf")
            if target:
                rel(node_id, RelationType.PART_OF, target)
        if e.kind == "system" and spec.get("domain"):
            target = self.resolve(spec["domain"], "domain", e, "domain")
            if target:
                rel(node_id, RelationType.PART_OF, target)
        if e.kind == "api" and spec.get("system"):
            target = self.resolve(spec["system"], "system", e, "system")
            if target:
                rel(target, RelationType.PROVIDES, node_id)
        if e.kind == "component":
            for value in _refs(spec.get("providesApis")):
                api = self.resolve(value, "api", e, "providesApis")
                if api:
                    rel(node_id, RelationType.PROVIDES, api)
            consumed = _refs(spec.get("consumesApis"))
            if consumed:
                backstage["consumesApis"] = consumed
            for value in consumed:
                api_ref = parse_ref(value, "api", e.namespace)
                api = self.resolve(value, "api", e, "consumesApis")
                if api is None or api_ref is None:
                    continue
                own = {node_id, *self.parents(e)}
                providers = [p for p in self.providers_of(api_ref) if p not in own]
                if not providers and not (set(self.providers_of(api_ref)) & own):
                    self.b.warn(
                        f"{e.label()}: consumes {value!r}, which no system of this file "
                        "provides; kept in properties.backstage.consumesApis"
                    )
                for provider in providers:
                    rel(node_id, RelationType.DEPENDS_ON, provider)
        if e.kind in ("component", "resource", "system"):
            for value in _refs(spec.get("dependsOn")):
                target = self.resolve(value, "component", e, "dependsOn")
                if target is None:
                    continue
                if not target.startswith("system:"):
                    self.b.warn(f"{e.label()}: dependsOn {value!r} is not a system; left out")
                elif target != node_id:
                    rel(node_id, RelationType.DEPENDS_ON, target)
            for value in _refs(spec.get("dependencyOf")):
                target = self.resolve(value, "component", e, "dependencyOf")
                if target is not None and target.startswith("system:") and target != node_id:
                    rel(target, RelationType.DEPENDS_ON, node_id)

    def parents(self, e: Entity) -> list[str]:
        """The systems an entity is PART_OF (its system, the component it is part of)."""
        out = []
        for key, kind in (("system", "system"), ("subcomponentOf", "component")):
            ref = parse_ref(e.spec.get(key), kind, e.namespace)
            if ref is not None and ref in self.ids:
                out.append(self.ids[ref])
        return out

    def providers_of(self, api_ref: Ref) -> list[str]:
        """The systems that provide an API: the components listing it, else the API's system."""
        out: list[str] = []
        for e in self.by_ref.values():
            if e.kind != "component" or e.ref not in self.ids:
                continue
            for value in _refs(e.spec.get("providesApis")):
                if parse_ref(value, "api", e.namespace) == api_ref:
                    out.append(self.ids[e.ref])
        api = self.by_ref.get(api_ref)
        if not out and api is not None and api.spec.get("system"):
            ref = parse_ref(api.spec["system"], "system", api.namespace)
            if ref is not None and ref in self.ids:
                out.append(self.ids[ref])
        return sorted(set(out))

    def _summaries(self) -> None:
        c = self.counts
        notes = [
            (
                "user",
                ("user is", "users are"),
                "not nodes (the metamodel has no people); they are listed in "
                "properties.backstage.members of their groups",
            ),
            (
                "user-owner",
                ("entity is", "entities are"),
                "owned by a user, not a group; capahub owners are teams, so the owner is kept "
                "in properties.backstage.owner",
            ),
            (
                "parent",
                ("group has", "groups have"),
                "a parent group; team hierarchies are not part of the metamodel (kept in "
                "properties.backstage.parent)",
            ),
            (
                "subdomain",
                ("domain is a subdomain", "domains are subdomains"),
                "of another; domain hierarchies are not part of the metamodel (kept in "
                "properties.backstage.subdomainOf)",
            ),
            (
                "definition",
                ("API definition is", "API definitions are"),
                "not parsed here; register them as OPENAPI or GRAPHQL sources to harvest "
                "their operations",
            ),
        ]
        for counter, (one, many), text in notes:
            if c[counter]:
                self.b.warn(f"{plural(c[counter], one, many)} {text}")


__all__ = ["KIND_MAP", "BackstageHarvester", "parse_ref"]

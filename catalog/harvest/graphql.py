"""GraphQL -> entities (object types) and capabilities (root fields), from SDL or introspection.

Object types become data entities with their fields as attributes. Each Query field becomes a
capability that READS the entities of its return type, each Mutation field one that WRITES
them, each Subscription field one that READS them; an interface or union return type stands
for every object type behind it. Only the return type counts (not the types nested in it): a
GraphQL client chooses which nested fields it fetches.

A URL is introspected (POST of the standard introspection query) unless it names an SDL file
(``.graphql``, ``.graphqls``, ``.gql``, ``.sdl``) or an introspection result (``.json``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from graphql import GraphQLSyntaxError, get_introspection_query, parse, print_ast
from graphql import language as ast

from catalog.harvest._naming import classify
from catalog.harvest.base import BatchBuilder, HarvestBatch, HarvestContext, SourceType
from catalog.harvest.fetch import is_url
from metadata.errors import BadSourceDataError
from metadata.model import Kind, Lifecycle, RelationType

SDL_SUFFIXES = (".graphql", ".graphqls", ".gql", ".sdl")
_OPERATIONS = ("query", "mutation", "subscription")
_RELATION = {
    "query": RelationType.READS,
    "mutation": RelationType.WRITES,
    "subscription": RelationType.READS,
}


@dataclass
class GqlField:
    """A field of a GraphQL type, reduced to what the catalog keeps."""

    name: str
    type: str
    named: str
    description: str | None = None
    args: list[str] = field(default_factory=list)
    deprecated: bool = False


@dataclass
class GqlType:
    """A named GraphQL type."""

    name: str
    kind: str  # OBJECT, INTERFACE, UNION, INPUT_OBJECT, ENUM, SCALAR
    description: str | None = None
    fields: dict[str, GqlField] = field(default_factory=dict)
    interfaces: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)


@dataclass
class GqlSchema:
    """The types of a GraphQL schema and its root operation types."""

    types: dict[str, GqlType] = field(default_factory=dict)
    roots: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def root_names(self) -> dict[str, str]:
        """operation -> root type name (declared, or the default names when present)."""
        out = dict(self.roots)
        for op in _OPERATIONS:
            default = op.capitalize()
            if op not in out and default in self.types:
                out[op] = default
        return out

    def objects_behind(self, name: str) -> list[str]:
        """The object types a return type stands for (an interface's or union's concrete ones)."""
        t = self.types.get(name)
        if t is None:
            return []
        if t.kind == "OBJECT":
            return [name]
        if t.kind == "UNION":
            return [m for m in t.members if self.types.get(m, GqlType(m, "")).kind == "OBJECT"]
        if t.kind == "INTERFACE":
            return [
                o.name for o in self.types.values() if o.kind == "OBJECT" and name in o.interfaces
            ]
        return []


class GraphQLHarvester:
    """Harvests GraphQL schemas: SDL files or URLs, introspection results, live endpoints."""

    type = SourceType.GRAPHQL

    async def harvest(self, ctx: HarvestContext) -> HarvestBatch:
        """Read the schema at ``ctx.location`` and map it (see the module docstring)."""
        location = ctx.location
        headers = ctx.auth_headers()
        path = urlsplit(location).path.lower() if is_url(location) else location.lower()
        if is_url(location) and not path.endswith((*SDL_SUFFIXES, ".json")):
            answer = await ctx.fetcher.post_json(
                location,
                {"query": get_introspection_query(descriptions=True)},
                headers={**headers, "Accept": "application/json"},
            )
            schema = await asyncio.to_thread(from_introspection, answer, location)
        else:
            text = (await ctx.fetcher.read(location, headers=headers)).text
            if text.lstrip().startswith("{"):
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as err:
                    raise BadSourceDataError(
                        f"{location}: not valid JSON at line {err.lineno}: {err.msg}",
                        field="location",
                    ) from None
                schema = await asyncio.to_thread(from_introspection, data, location)
            else:
                schema = await asyncio.to_thread(from_sdl, text, location)
        endpoint = location if is_url(location) and not path.endswith(SDL_SUFFIXES) else None
        return await asyncio.to_thread(_build, schema, ctx, endpoint)


# -- SDL ---------------------------------------------------------------------------------


def _named(node: ast.TypeNode) -> str:
    while not isinstance(node, ast.NamedTypeNode):
        node = node.type  # type: ignore[attr-defined]
    return node.name.value


def _desc(node: Any) -> str | None:
    d = getattr(node, "description", None)
    return d.value.strip() or None if d is not None else None


def _deprecated(node: Any) -> bool:
    return any(d.name.value == "deprecated" for d in getattr(node, "directives", None) or ())


_KINDS: dict[type[Any], str] = {
    ast.ObjectTypeDefinitionNode: "OBJECT",
    ast.ObjectTypeExtensionNode: "OBJECT",
    ast.InterfaceTypeDefinitionNode: "INTERFACE",
    ast.InterfaceTypeExtensionNode: "INTERFACE",
    ast.UnionTypeDefinitionNode: "UNION",
    ast.UnionTypeExtensionNode: "UNION",
    ast.InputObjectTypeDefinitionNode: "INPUT_OBJECT",
    ast.InputObjectTypeExtensionNode: "INPUT_OBJECT",
    ast.EnumTypeDefinitionNode: "ENUM",
    ast.EnumTypeExtensionNode: "ENUM",
    ast.ScalarTypeDefinitionNode: "SCALAR",
    ast.ScalarTypeExtensionNode: "SCALAR",
}


def from_sdl(text: str, location: str) -> GqlSchema:
    """Read SDL tolerantly: duplicate types and fields are merged with a warning, not refused."""
    try:
        document = parse(text, no_location=False)
    except GraphQLSyntaxError as err:
        at = (
            f" at line {err.locations[0].line}, column {err.locations[0].column}"
            if err.locations
            else ""
        )
        raise BadSourceDataError(
            f"{location}: not valid GraphQL SDL{at}: {err.message}", field="location"
        ) from None
    schema = GqlSchema()
    defined: set[str] = set()
    executable = 0
    for node in document.definitions:
        if isinstance(node, ast.SchemaDefinitionNode | ast.SchemaExtensionNode):
            for op in node.operation_types or ():
                schema.roots[op.operation.value] = op.type.name.value
            continue
        kind = _KINDS.get(type(node))
        if kind is None:
            if isinstance(node, ast.ExecutableDefinitionNode):
                executable += 1
            continue
        name = node.name.value  # type: ignore[attr-defined]
        is_extension = isinstance(node, ast.TypeExtensionNode)
        t = schema.types.get(name)
        if t is None:
            t = schema.types[name] = GqlType(name, kind, None if is_extension else _desc(node))
        elif t.kind != kind:
            schema.warnings.append(
                f"type {name} is defined as both {t.kind} and {kind}; the {kind} one is ignored"
            )
            continue
        elif not is_extension and name in defined:
            schema.warnings.append(f"type {name} is defined twice; the definitions are merged")
        if not is_extension:
            defined.add(name)
            t.description = t.description or _desc(node)
        for iface in getattr(node, "interfaces", None) or ():
            if iface.name.value not in t.interfaces:
                t.interfaces.append(iface.name.value)
        for member in getattr(node, "types", None) or ():
            if member.name.value not in t.members:
                t.members.append(member.name.value)
        for f in getattr(node, "fields", None) or ():
            fname = f.name.value
            if fname in t.fields:
                schema.warnings.append(f"{name}.{fname} is defined twice; the first is kept")
                continue
            args = [
                f"{a.name.value}: {print_ast(a.type)}" for a in getattr(f, "arguments", None) or ()
            ]
            t.fields[fname] = GqlField(
                fname, print_ast(f.type), _named(f.type), _desc(f), args, _deprecated(f)
            )
    for name in schema.types:
        if name not in defined:
            schema.warnings.append(f"type {name} is only extended, never defined; kept anyway")
    if executable:
        schema.warnings.append(f"{executable} operations or fragments in the SDL were ignored")
    return schema


# -- introspection -----------------------------------------------------------------------


def _print_ref(ref: Any) -> tuple[str, str]:
    """(printed type, named type) of an introspection type reference."""
    if not isinstance(ref, dict):
        return "Unknown", "Unknown"
    kind = ref.get("kind")
    if kind == "NON_NULL":
        inner, named = _print_ref(ref.get("ofType"))
        return f"{inner}!", named
    if kind == "LIST":
        inner, named = _print_ref(ref.get("ofType"))
        return f"[{inner}]", named
    name = str(ref.get("name") or "Unknown")
    return name, name


def from_introspection(data: Any, location: str) -> GqlSchema:
    """Read an introspection result (``{"data": {"__schema": ...}}`` or ``{"__schema": ...}``)."""
    if isinstance(data, dict) and data.get("errors") and not data.get("data"):
        first = data["errors"][0]
        message = first.get("message") if isinstance(first, dict) else first
        raise BadSourceDataError(
            f"{location}: introspection was refused: {message}", field="location"
        )
    root = data.get("data", data) if isinstance(data, dict) else None
    raw = root.get("__schema") if isinstance(root, dict) else None
    if not isinstance(raw, dict) or not isinstance(raw.get("types"), list):
        raise BadSourceDataError(
            f"{location}: not a GraphQL introspection result (no __schema.types)",
            field="location",
        )
    schema = GqlSchema()
    for op in _OPERATIONS:
        ref = raw.get(f"{op}Type")
        if isinstance(ref, dict) and ref.get("name"):
            schema.roots[op] = str(ref["name"])
    for entry in raw["types"]:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        name = str(entry["name"])
        t = GqlType(name, str(entry.get("kind")), (entry.get("description") or "").strip() or None)
        for f in entry.get("fields") or ():
            if not isinstance(f, dict) or not f.get("name"):
                continue
            printed, named = _print_ref(f.get("type"))
            args = []
            for a in f.get("args") or ():
                if isinstance(a, dict):
                    args.append(f"{a.get('name')}: {_print_ref(a.get('type'))[0]}")
            fname = str(f["name"])
            if fname in t.fields:
                schema.warnings.append(f"{name}.{fname} appears twice; the first is kept")
                continue
            t.fields[fname] = GqlField(
                fname,
                printed,
                named,
                (f.get("description") or "").strip() or None,
                args,
                bool(f.get("isDeprecated")),
            )
        t.interfaces = [
            str(i["name"]) for i in entry.get("interfaces") or () if isinstance(i, dict)
        ]
        t.members = [
            str(i["name"]) for i in entry.get("possibleTypes") or () if isinstance(i, dict)
        ]
        schema.types[name] = t
    return schema


# -- mapping -----------------------------------------------------------------------------


def _build(schema: GqlSchema, ctx: HarvestContext, endpoint: str | None) -> HarvestBatch:
    b = BatchBuilder(ctx)
    for warning in schema.warnings:
        b.warn(warning)
    roots = schema.root_names()
    root_types = set(roots.values())
    objects = [
        t
        for t in schema.types.values()
        if t.kind == "OBJECT" and t.name not in root_types and not t.name.startswith("__")
    ]
    entity_ids = {
        t.name: b.claim(Kind.DATA_ENTITY, t.name, origin=f"type {t.name}") for t in objects
    }
    for t in objects:
        attributes = [
            {
                "name": f.name,
                "type": f.type,
                "description": f.description,
                "classification": classify(f.name),
            }
            for f in t.fields.values()
        ]
        properties: dict[str, Any] = {"graphqlType": t.name, "implements": t.interfaces}
        unions = sorted(
            u.name for u in schema.types.values() if u.kind == "UNION" and t.name in u.members
        )
        if unions:
            properties["unions"] = unions
        b.node(
            entity_ids[t.name],
            t.name,
            origin=f"type {t.name}",
            description=t.description,
            properties=properties,
            attributes=attributes,
        )
        b.relate(ctx.system, RelationType.STORES, entity_ids[t.name])
    for op, root_name in roots.items():
        root = schema.types.get(root_name)
        if root is None:
            b.warn(f"the {op} root type {root_name} is not defined; no {op} capabilities")
            continue
        if not root.fields:
            continue
        group = b.claim(Kind.CAPABILITY, op, origin=f"type {root_name}")
        b.node(
            group,
            f"{ctx.name} {op}s" if op != "query" else f"{ctx.name} queries",
            origin=f"type {root_name}",
            description=root.description,
            properties={"protocol": "GRAPHQL", "operationType": op, "group": root_name},
        )
        b.relate(ctx.system, RelationType.PROVIDES, group)
        for f in root.fields.values():
            origin = f"{root_name}.{f.name}"
            cap = b.claim(Kind.CAPABILITY, op, f.name, origin=origin)
            if not b.node(
                cap,
                f.name,
                origin=origin,
                description=f.description,
                lifecycle=Lifecycle.DEPRECATED if f.deprecated else Lifecycle.ACTIVE,
                properties={
                    "protocol": "GRAPHQL",
                    "operationType": op,
                    "field": f.name,
                    "operation": f"{op}.{f.name}",
                    "arguments": f.args,
                    "returns": f.type,
                    "endpoint": endpoint,
                },
            ):
                continue
            b.relate(ctx.system, RelationType.PROVIDES, cap)
            b.relate(cap, RelationType.PART_OF, group)
            if f.named not in schema.types and f.named not in _BUILTIN_SCALARS:
                b.warn(f"{origin}: returns {f.named}, which the schema does not define")
            for obj in schema.objects_behind(f.named):
                if obj in entity_ids:
                    b.relate(cap, _RELATION[op], entity_ids[obj])
    return b.build()


_BUILTIN_SCALARS = frozenset({"String", "Int", "Float", "Boolean", "ID"})

__all__ = ["GqlSchema", "GraphQLHarvester", "from_introspection", "from_sdl"]

"""OpenAPI 3.0/3.1 and Swagger 2.0 -> capabilities (operations, grouped per tag) and entities.

Each operation becomes a capability the system PROVIDES, PART_OF the capability of its first
tag. Each component schema (``definitions`` in Swagger 2.0) becomes a data entity with its
properties as attributes. An operation WRITES the schemas its request body names (for POST,
PUT, PATCH, DELETE; when the body names none, as with inline form bodies or a DELETE, the
schemas its successful responses name, the resource it creates, changes or deletes) and READS
the schemas its successful responses name: directly, through
inline schemas, arrays, maps and ``allOf``/``oneOf``/``anyOf`` compositions, but never
through the properties of another named schema. What one schema's properties reference
becomes a REFERENCES relation between the two entities, naming those properties (its
``attributes``); what a schema is composed of (its ``allOf``/``oneOf``/``anyOf`` members,
what it is an array or map of) a REFERENCES naming the ``composition``. So an operation
touches the few entities its payloads name, and the schema graph stays in the entities.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from catalog.harvest._documents import load_document
from catalog.harvest._naming import classify, plural
from catalog.harvest.base import BatchBuilder, HarvestBatch, HarvestContext, SourceType
from catalog.harvest.fetch import is_url
from metadata.errors import BadSourceDataError
from metadata.model import Kind, Lifecycle, RelationType

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
#: Keys whose values are sample data, not schema: a "$ref" inside them is not a reference.
#: (``not`` is schema, but what a payload must not be is not data it carries.)
_NOT_SCHEMA = frozenset({"example", "examples", "default", "enum", "const", "not"})
#: What a value *is* rather than what it *has*: a composition of, an array of, a map of.
_COMPOSITIONS = ("allOf", "oneOf", "anyOf")
_COLLECTIONS = ("items", "prefixItems", "additionalProperties")


class OpenAPIHarvester:
    """Harvests OpenAPI 3.x and Swagger 2.0 documents (JSON or YAML)."""

    type = SourceType.OPENAPI

    async def harvest(self, ctx: HarvestContext) -> HarvestBatch:
        """Read the spec at ``ctx.location`` and map it (see the module docstring)."""
        fetched = await ctx.fetcher.read(ctx.location, headers=ctx.auth_headers())

        def build() -> HarvestBatch:
            doc = load_document(fetched.text, ctx.location, "an OpenAPI document")
            builder = BatchBuilder(ctx)
            _Spec(doc, ctx, builder).harvest()
            return builder.build()

        return await asyncio.to_thread(build)


def _pointer_unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


class _Spec:
    """One OpenAPI document being mapped."""

    def __init__(self, doc: dict[str, Any], ctx: HarvestContext, b: BatchBuilder) -> None:
        self.doc = doc
        self.ctx = ctx
        self.b = b
        self.location = ctx.location
        if "openapi" in doc:
            version = str(doc["openapi"])
            if not version.startswith("3."):
                b.warn(f"openapi version {version!r} is not 3.x; read as OpenAPI 3")
            self.swagger = False
            components = doc.get("components")
            schemas = components.get("schemas") if isinstance(components, dict) else None
            self.schema_prefix = "#/components/schemas/"
        elif "swagger" in doc:
            version = str(doc["swagger"])
            if version != "2.0":
                b.warn(f"swagger version {version!r} is not 2.0; read as Swagger 2.0")
            self.swagger = True
            schemas = doc.get("definitions")
            self.schema_prefix = "#/definitions/"
        else:
            raise BadSourceDataError(
                f"{self.location}: not an OpenAPI or Swagger document "
                "(it has no 'openapi' or 'swagger' field)",
                field="location",
            )
        self.version = version
        self.schemas: dict[str, Any] = {
            str(k): v for k, v in (schemas or {}).items() if isinstance(v, dict)
        }
        for name, value in (schemas or {}).items():
            if not isinstance(value, dict):
                b.warn(f"schema {name}: not an object; skipped")
        self.entity_ids: dict[str, str] = {}
        self._shapes: dict[str, _Shape] = {}
        self._external: set[str] = set()

    # -- $refs ---------------------------------------------------------------------------

    def resolve(self, ref: str, where: str) -> Any:
        """The object a local ``$ref`` points at; external refs give ``None`` (a warning)."""
        if not ref.startswith("#"):
            if ref not in self._external:
                self._external.add(ref)
                self.b.warn(f"{where}: external $ref {ref!r} is not followed")
            return None
        node: Any = self.doc
        for part in ref[1:].lstrip("/").split("/") if ref != "#" else []:
            key = _pointer_unescape(part)
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise BadSourceDataError(
                    f"{self.location}: broken $ref {ref!r} at {where}: nothing is there",
                    field="location",
                )
        return node

    def schema_name(self, ref: str) -> str | None:
        """The component schema a ``$ref`` names, if it names one."""
        if ref.startswith(self.schema_prefix):
            rest = ref[len(self.schema_prefix) :]
            if "/" not in rest:
                return _pointer_unescape(rest)
        return None

    def refs_in(self, obj: Any, where: str) -> dict[str, None]:
        """Component schemas ``obj`` names, looking through inline schemas and other local
        refs (``components/requestBodies``, ``responses``...), but not into named schemas."""
        found: dict[str, None] = {}
        seen_refs: set[str] = set()
        seen_objs: set[int] = set()
        stack: list[tuple[Any, str]] = [(obj, where)]
        while stack:
            node, at = stack.pop()
            if isinstance(node, dict):
                if id(node) in seen_objs:
                    continue
                seen_objs.add(id(node))
                ref = node.get("$ref")
                if isinstance(ref, str):
                    name = self.schema_name(ref)
                    if name is not None:
                        self._check_schema(name, ref, at)
                        found[name] = None
                    elif ref not in seen_refs:
                        seen_refs.add(ref)
                        target = self.resolve(ref, at)
                        if target is not None:
                            stack.append((target, ref))
                for k, v in node.items():
                    if k != "$ref" and k not in _NOT_SCHEMA and not str(k).startswith("x-"):
                        stack.append((v, f"{at}.{k}"))
            elif isinstance(node, list):
                stack.extend((v, f"{at}[{i}]") for i, v in enumerate(node))
        return found

    def shape(self, name: str) -> _Shape:
        """What a named schema is made of and what its properties reference (memoized)."""
        shape = self._shapes.get(name)
        if shape is None:
            shape = self._shapes[name] = self._walk_shape(
                self.schemas[name], f"{self.schema_prefix[2:]}{name}"
            )
        return shape

    def _walk_shape(self, schema: dict[str, Any], where: str) -> _Shape:
        """Walk a schema's compositions, items and maps (not its properties' schemas).

        Named schemas met on the way are what the schema is composed of; the properties of the
        schema and of its inline ``allOf`` members are its attributes, whose references are
        collected per property; properties of other inline parts (a ``oneOf`` option, an
        array's inline items) count towards the composition keyword that led there.
        """
        shape = _Shape()
        seen: set[int] = set()
        seen_refs: set[str] = set()
        queue: deque[tuple[Any, str, str | None]] = deque([(schema, where, None)])
        while queue:
            node, at, via = queue.popleft()
            if not isinstance(node, dict) or id(node) in seen:
                continue
            seen.add(id(node))
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = self.schema_name(ref)
                if name is not None:
                    self._check_schema(name, ref, at)
                    shape.members.setdefault(name, via or "$ref")
                elif ref not in seen_refs:
                    seen_refs.add(ref)
                    target = self.resolve(ref, at)
                    if target is not None:
                        queue.append((target, ref, via))
            own = node.get("properties")
            if isinstance(own, dict):
                for pname, pschema in own.items():
                    for target in self.refs_in(pschema, f"{at}.properties.{pname}"):
                        if via is None or via == "allOf":
                            names = shape.attributes.setdefault(target, [])
                            if str(pname) not in names:
                                names.append(str(pname))
                        else:
                            shape.inner.setdefault(target, via)
            for key in _COMPOSITIONS:
                options = node.get(key)
                if isinstance(options, list):
                    queue.extend((m, f"{at}.{key}[{i}]", via or key) for i, m in enumerate(options))
            for key in _COLLECTIONS:
                value = node.get(key)
                if isinstance(value, list):
                    queue.extend((m, f"{at}.{key}[{i}]", via or key) for i, m in enumerate(value))
                elif isinstance(value, dict):
                    queue.append((value, f"{at}.{key}", via or key))
        return shape

    def _check_schema(self, name: str, ref: str, at: str) -> None:
        if name not in self.schemas:
            raise BadSourceDataError(
                f"{self.location}: broken $ref {ref!r} at {at}: no such schema",
                field="location",
            )

    def payload(self, roots: dict[str, None]) -> dict[str, None]:
        """The schemas a payload naming ``roots`` carries: the roots and, transitively, what
        they are composed of (never what their properties reference)."""
        out = dict(roots)
        queue = deque(roots)
        while queue:
            for member in self.shape(queue.popleft()).members:
                if member not in out:
                    out[member] = None
                    queue.append(member)
        return out

    def references(self, name: str) -> dict[str, dict[str, list[str]]]:
        """REFERENCES of one schema: target -> ``{attributes: [...], composition: [...]}``."""
        shape = self.shape(name)
        out: dict[str, dict[str, list[str]]] = {}
        for target, keyword in [*shape.members.items(), *shape.inner.items()]:
            kinds = out.setdefault(target, {}).setdefault("composition", [])
            if keyword not in kinds:
                kinds.append(keyword)
        for target, names in shape.attributes.items():
            out.setdefault(target, {})["attributes"] = names
        return out

    # -- mapping -------------------------------------------------------------------------

    def harvest(self) -> None:
        """Map the document into the batch builder."""
        for name in self.schemas:
            self.entity_ids[name] = self.b.claim(Kind.DATA_ENTITY, name, origin=f"schema {name}")
        self.live = self.collections()
        for name, schema in self.schemas.items():
            self.entity(name, schema)
        self.operations()
        if not self.schemas:
            self.b.warn("the document defines no schemas; no data entities were harvested")
        webhooks = self.doc.get("webhooks")
        if isinstance(webhooks, dict) and webhooks:
            self.b.warn(
                f"{plural(len(webhooks), 'webhook is', 'webhooks are')} not harvested "
                "(only paths are)"
            )

    def entity(self, name: str, schema: dict[str, Any]) -> None:
        where = f"{self.schema_prefix[2:]}{name}"
        props, required, composition = self.flatten(schema, where)
        attributes = [
            {
                "name": pname,
                "type": self.type_of(pschema, f"{where}.properties.{pname}"),
                "description": _text(pschema.get("description") or pschema.get("title"))
                if isinstance(pschema, dict)
                else None,
                "classification": classify(
                    pname, pschema.get("format") if isinstance(pschema, dict) else None
                ),
            }
            for pname, pschema in props.items()
        ]
        properties: dict[str, Any] = {
            "schema": name,
            "format": "swagger" if self.swagger else "openapi",
            "required": [r for r in required if r in props],
        }
        if composition:
            properties["composition"] = composition
        if name in self.live:
            # How the live-data layer reads records of this entity (docs/live-data.md).
            properties["live"] = self.live[name]
        if schema.get("type") not in (None, "object") and not props:
            properties["schemaType"] = self.type_of(schema, where)
        self.b.node(
            self.entity_ids[name],
            _text(schema.get("title")) or name,
            origin=f"schema {name}",
            description=_text(schema.get("description")),
            lifecycle=Lifecycle.DEPRECATED
            if schema.get("deprecated") is True
            else Lifecycle.ACTIVE,
            properties=properties,
            attributes=attributes,
        )
        self.b.relate(self.ctx.system, RelationType.STORES, self.entity_ids[name])
        for target, how in self.references(name).items():
            self.b.relate(
                self.entity_ids[name], RelationType.REFERENCES, self.entity_ids[target], how
            )

    def flatten(
        self, schema: dict[str, Any], where: str, depth: int = 0
    ) -> tuple[dict[str, Any], list[str], str | None]:
        """Properties of a schema, merging ``allOf`` members (resolving their refs)."""
        props: dict[str, Any] = {}
        required: list[str] = []
        composition = None
        if depth > 20:
            return props, required, composition
        for i, member in enumerate(schema.get("allOf") or ()):
            if isinstance(member, dict) and isinstance(member.get("$ref"), str):
                target = self.resolve(member["$ref"], f"{where}.allOf[{i}]")
                member = target if isinstance(target, dict) else {}
            if isinstance(member, dict):
                p, r, _ = self.flatten(member, f"{where}.allOf[{i}]", depth + 1)
                props.update(p)
                required.extend(r)
        own = schema.get("properties")
        if isinstance(own, dict):
            props.update({str(k): v for k, v in own.items()})
        req = schema.get("required")
        if isinstance(req, list):
            required.extend(str(r) for r in req)
        for key in ("oneOf", "anyOf"):
            if schema.get(key):
                composition = key
        return props, list(dict.fromkeys(required)), composition

    def type_of(self, schema: Any, where: str, depth: int = 0) -> str:
        """A short type for an attribute: ``string(email)``, ``array<Order>``, ``Address``."""
        if not isinstance(schema, dict) or depth > 8:
            return "any"
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = self.schema_name(ref)
            if name is not None:
                return name
            target = self.resolve(ref, where)
            return self.type_of(target, ref, depth + 1) if target is not None else ref
        for key in ("oneOf", "anyOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return "|".join(dict.fromkeys(self.type_of(o, where, depth + 1) for o in options))
        if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            return self.type_of(schema["allOf"][0], where, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [str(k) for k in kind if k != "null"]
            kind = kinds[0] if len(kinds) == 1 else "|".join(kinds) or "null"
        if kind == "array":
            return f"array<{self.type_of(schema.get('items'), where, depth + 1)}>"
        if kind is None:
            kind = "object" if "properties" in schema else "any"
        fmt = schema.get("format")
        return f"{kind}({fmt})" if fmt else str(kind)

    def base_url(self) -> str | None:
        if self.swagger:
            host = self.doc.get("host")
            if not host:
                return None
            schemes = self.doc.get("schemes") or ["https"]
            return f"{schemes[0]}://{host}{self.doc.get('basePath') or ''}".rstrip("/")
        servers = self.doc.get("servers")
        if isinstance(servers, list) and servers and isinstance(servers[0], dict):
            url = str(servers[0].get("url") or "")
            if url and not is_url(url) and is_url(self.location):
                url = urljoin(self.location, url)
            return url.rstrip("/") or None
        return None

    def collections(self) -> dict[str, dict[str, Any]]:
        """For each schema, a GET operation that lists it: no path parameter, and a successful
        response that is an array of the schema or an object holding such an array. Its path,
        query parameters and the base URL are recorded on the entity for live records."""
        paths = self.doc.get("paths")
        if not isinstance(paths, dict):
            return {}
        base = self.base_url()
        found: dict[str, dict[str, Any]] = {}
        for path, item in paths.items():
            op = item.get("get") if isinstance(item, dict) else None
            if not isinstance(op, dict) or "{" in str(path):
                continue
            responses = op.get("responses")
            ok = responses.get("200") or responses.get(200) if isinstance(responses, dict) else None
            if not isinstance(ok, dict):
                continue
            if self.swagger:
                schema = ok.get("schema")
            else:
                content = ok.get("content")
                media: Any = None
                if isinstance(content, dict) and content:
                    media = content.get("application/json") or next(iter(content.values()))
                schema = media.get("schema") if isinstance(media, dict) else None
            listed = self._listed_schema(schema, f"paths.{path}.get")
            if listed is None or listed[0] in found:
                continue
            params = [
                str(p.get("name"))
                for p in [*(item.get("parameters") or ()), *(op.get("parameters") or ())]
                if isinstance(p, dict) and p.get("in") == "query" and p.get("name")
            ]
            live: dict[str, Any] = {"method": "GET", "path": str(path), "params": params}
            if listed[1]:
                live["itemsKey"] = listed[1]
            if base:
                live["baseUrl"] = base
            found[listed[0]] = live
        return found

    def _listed_schema(
        self, schema: Any, where: str, depth: int = 0
    ) -> tuple[str, str | None] | None:
        """(schema name, items key) when ``schema`` is an array of a named schema, or an
        object with an array property of one (a page: ``{items: [...], next: ...}``)."""
        if depth > 1:  # a page wraps the list once; deeper (or circular) shapes are not lists
            return None
        if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            target = self.resolve(schema["$ref"], where)
            if not isinstance(target, dict) or not (
                target.get("type") == "array" or isinstance(target.get("properties"), dict)
            ):
                return None
            schema = target
        if not isinstance(schema, dict):
            return None
        if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
            ref = schema["items"].get("$ref")
            name = self.schema_name(ref) if isinstance(ref, str) else None
            return (name, None) if name in self.schemas else None
        props = schema.get("properties")
        if isinstance(props, dict):
            for key, prop in props.items():
                if isinstance(prop, dict) and prop.get("type") == "array":
                    inner = self._listed_schema(prop, where, depth + 1)
                    if inner is not None and inner[1] is None:
                        return inner[0], str(key)
        return None

    def operations(self) -> None:
        paths = self.doc.get("paths")
        if paths is None:
            self.b.warn("the document has no paths; no capabilities were harvested")
            return
        if not isinstance(paths, dict):
            raise BadSourceDataError(f"{self.location}: 'paths' is not an object", field="location")
        tag_info = {
            str(t["name"]): t
            for t in self.doc.get("tags") or ()
            if isinstance(t, dict) and t.get("name")
        }
        base = self.base_url()
        ops = list(self._iter_operations(paths))
        # Tags first (in the order the document declares them), so their ids never depend on
        # which operation happens to come first.
        used: dict[str, None] = {}
        for _, _, op, _ in ops:
            for tag in _tags(op)[:1]:
                used[tag] = None
        tag_ids: dict[str, str] = {}
        for tag in [*(t for t in tag_info if t in used), *(t for t in used if t not in tag_info)]:
            tag_ids[tag] = self.b.claim(Kind.CAPABILITY, "tags", tag, origin=f"tag {tag}")
            info = tag_info.get(tag, {})
            self.b.node(
                tag_ids[tag],
                tag,
                origin=f"tag {tag}",
                description=_text(info.get("description")),
                properties={"protocol": "REST", "group": "tag", "tag": tag},
            )
            self.b.relate(self.ctx.system, RelationType.PROVIDES, tag_ids[tag])
        untagged = 0
        unnamed = 0
        for path, method, op, item in ops:
            origin = f"operation {method.upper()} {path}"
            op_id = op.get("operationId")
            if not isinstance(op_id, str) or not op_id.strip():
                unnamed += 1
                op_id = None
            cap_id = self.b.claim(Kind.CAPABILITY, op_id or f"{method}-{path}", origin=origin)
            tags = _tags(op)
            if not tags:
                untagged += 1
            summary = _text(op.get("summary"))
            description = _text(op.get("description"))
            properties = {
                "protocol": "REST",
                "method": method.upper(),
                "path": path,
                "operationId": op_id,
                "endpoint": f"{base}{path}" if base else None,
                "operation": op_id or f"{method.upper()} {path}",
            }
            lifecycle = Lifecycle.DEPRECATED if op.get("deprecated") is True else Lifecycle.ACTIVE
            if not self.b.node(
                cap_id,
                summary or op_id or f"{method.upper()} {path}",
                origin=origin,
                description=description,
                tags=tags,
                lifecycle=lifecycle,
                properties=properties,
            ):
                continue
            self.b.relate(self.ctx.system, RelationType.PROVIDES, cap_id)
            if tags:
                self.b.relate(cap_id, RelationType.PART_OF, tag_ids[tags[0]])
            self.data_relations(cap_id, path, method, op, item, origin)
        if unnamed:
            self.b.warn(
                f"{plural(unnamed, 'operation has', 'operations have')} no operationId; "
                "ids derive from method and path"
            )
        if untagged:
            self.b.warn(
                f"{plural(untagged, 'operation has', 'operations have')} no tags, "
                "so no parent capability"
            )

    def _iter_operations(
        self, paths: dict[str, Any]
    ) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
        for path, item in paths.items():
            path = str(path)
            if isinstance(item, dict) and isinstance(item.get("$ref"), str):
                target = self.resolve(item["$ref"], f"paths.{path}")
                item = target if isinstance(target, dict) else {}
            if not isinstance(item, dict):
                self.b.warn(f"path {path}: not an object; skipped")
                continue
            for method in METHODS:
                op = item.get(method)
                if op is None:
                    continue
                if not isinstance(op, dict):
                    self.b.warn(f"operation {method.upper()} {path}: not an object; skipped")
                    continue
                yield path, method, op, item

    def data_relations(
        self,
        cap_id: str,
        path: str,
        method: str,
        op: dict[str, Any],
        item: dict[str, Any],
        origin: str,
    ) -> None:
        where = f"paths.{path}.{method}"
        request: dict[str, None] = {}
        if self.swagger:
            params = [*(item.get("parameters") or ()), *(op.get("parameters") or ())]
            for i, p in enumerate(params):
                if isinstance(p, dict) and isinstance(p.get("$ref"), str):
                    p = self.resolve(p["$ref"], f"{where}.parameters[{i}]")
                if isinstance(p, dict) and p.get("in") == "body":
                    request.update(self.refs_in(p.get("schema"), f"{where}.parameters[{i}]"))
        else:
            body = op.get("requestBody")
            if body is not None:
                request.update(self.refs_in(body, f"{where}.requestBody"))
        response: dict[str, None] = {}
        responses = op.get("responses")
        if isinstance(responses, dict):
            codes = [c for c in responses if str(c)[:1] in "123"] or list(responses)
            for code in codes:
                response.update(self.refs_in(responses[code], f"{where}.responses.{code}"))
        writes = self.payload(request) if method in WRITE_METHODS else {}
        if method in WRITE_METHODS and not request:
            # A write whose body names no schema (an inline form, as in Stripe's API, or no
            # body at all: DELETE) writes the resource it answers with: POST /v1/customers
            # creates the `customer` its response returns.
            writes = self.payload(response)
        reads = self.payload({**response, **({} if method in WRITE_METHODS else request)})
        for name in writes:
            self.b.relate(cap_id, RelationType.WRITES, self.entity_ids[name])
        for name in reads:
            if name not in writes:
                self.b.relate(cap_id, RelationType.READS, self.entity_ids[name])


@dataclass
class _Shape:
    """One named schema's references (see ``_Spec._walk_shape``)."""

    #: named schemas it is composed of -> the keyword (allOf, oneOf, anyOf, items...)
    members: dict[str, str] = field(default_factory=dict)
    #: named schemas its attributes reference -> the attributes' names
    attributes: dict[str, list[str]] = field(default_factory=dict)
    #: named schemas referenced by properties of inline options/items -> the keyword
    inner: dict[str, str] = field(default_factory=dict)


def _tags(op: dict[str, Any]) -> list[str]:
    tags = op.get("tags")
    if not isinstance(tags, list):
        return []
    return list(dict.fromkeys(str(t).strip() for t in tags if str(t).strip()))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


__all__ = ["OpenAPIHarvester"]

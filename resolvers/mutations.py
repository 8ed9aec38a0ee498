"""Mutation root of the catalog: registration, relations, retirement, declarative apply."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import strawberry

from catalog.specs import CapabilitySpec, NodeSpec, RelationSpec, build, parse_document
from metadata.model import Attribute
from resolvers._fields import mutation
from resolvers._inputs import spec_input
from resolvers.context import CatalogInfo
from resolvers.diff import WriteDiff
from resolvers.types import Capability, CatalogNode, Relation, as_node


def _given(obj: object) -> dict[str, Any]:
    """The fields of an input object the client actually sent (UNSET ones left out)."""
    out: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if value is strawberry.UNSET:
            continue
        if isinstance(value, list):
            value = [_given(v) if hasattr(v, "__strawberry_definition__") else v for v in value]
        out[name] = value
    return out


if TYPE_CHECKING:
    # spec_input builds these classes at run time, which mypy cannot follow; to it they are
    # the plain objects _given reads (strawberry resolves the annotations to the real ones).
    AttributeInput = object
    NodeInput = object
    RelationInput = object
    CapabilityInput = object
else:
    AttributeInput = spec_input(
        Attribute, name="AttributeInput", description="One attribute of a data entity."
    )
    NodeInput = spec_input(
        NodeSpec,
        name="NodeInput",
        description="A node to create or update; fields left out keep their value.",
        ids=frozenset({"id", "owner"}),
        nested={Attribute: AttributeInput},
    )
    RelationInput = spec_input(
        RelationSpec,
        name="RelationInput",
        description="A relation between two existing nodes.",
        ids=frozenset({"from_", "to"}),
    )
    CapabilityInput = spec_input(
        CapabilitySpec,
        name="CapabilityInput",
        description="A capability with its parent, domain, providers and data.",
        ids=frozenset({"parent", "domain", "owner", "provided_by", "reads", "writes"}),
    )


def _relation_data(value: RelationInput) -> dict[str, Any]:
    data = _given(value)
    data["from"] = data.pop("from_")
    return data


def _capability_data(value: CapabilityInput) -> dict[str, Any]:
    data = {k: v for k, v in _given(value).items() if v is not None}
    if "provided_by" in data:
        data["providedBy"] = data.pop("provided_by")
    return data


@strawberry.type(description="What applying a catalog document did (or would do).")
class ApplyReport(WriteDiff):
    added: list[strawberry.ID]
    updated: list[strawberry.ID]
    unchanged: list[strawberry.ID]
    relations_added: int
    relations_updated: int
    relations_removed: int
    dry_run: bool


@strawberry.type
class CatalogMutation:
    """Writes to the catalog: each one validated and all-or-nothing."""

    @mutation(description="Create a node or update the fields you send.")
    async def upsert_node(self, info: CatalogInfo, input: NodeInput) -> CatalogNode:
        data = _given(input)
        if "expected_version" in data:
            data["expectedVersion"] = data.pop("expected_version")
        spec = build(NodeSpec, data, "input")
        rec = await info.context.services.registry.upsert_node(spec, by=info.context.caller)
        return as_node(rec)

    @mutation(description="Register a new capability and its relations at once.")
    async def register_capability(self, info: CatalogInfo, input: CapabilityInput) -> Capability:
        spec = build(CapabilitySpec, _capability_data(input), "input")
        rec = await info.context.services.registry.register_capability(spec, by=info.context.caller)
        return Capability(rec=rec)

    @mutation(description="Create a relation (or update its properties).")
    async def relate(self, info: CatalogInfo, input: RelationInput) -> Relation:
        spec = build(RelationSpec, _relation_data(input), "input")
        rec = await info.context.services.registry.relate(spec, by=info.context.caller)
        return Relation(rec=rec)

    @mutation(description="Remove a relation; false when there was none.")
    async def unrelate(self, info: CatalogInfo, input: RelationInput) -> bool:
        spec = build(RelationSpec, _relation_data(input), "input")
        removed = await info.context.services.registry.unrelate(spec, by=info.context.caller)
        return removed

    @mutation(description="Set a node's lifecycle to RETIRED (kept in history).")
    async def retire(self, info: CatalogInfo, id: strawberry.ID) -> CatalogNode:
        rec = await info.context.services.registry.retire(str(id), by=info.context.caller)
        return as_node(rec)

    @mutation(description="Apply a YAML or JSON catalog document as a diff.")
    async def apply_catalog(
        self, info: CatalogInfo, document: str, dry_run: bool | None = False
    ) -> ApplyReport:
        doc = parse_document(document, max_items=info.context.services.settings.max_document_items)
        report = await info.context.services.registry.apply_document(
            doc, dry_run=bool(dry_run), by=info.context.caller
        )
        return ApplyReport(
            added=[strawberry.ID(i) for i in report.added],
            updated=[strawberry.ID(i) for i in report.updated],
            unchanged=[strawberry.ID(i) for i in report.unchanged],
            relations_added=report.relations_added,
            relations_updated=report.relations_updated,
            relations_removed=report.relations_removed,
            dry_run=report.dry_run,
            report=report,
        )


__all__ = ["CatalogMutation"]

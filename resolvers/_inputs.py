"""GraphQL input types derived from the catalog's pydantic specs, field by field.

The specs (``catalog.specs``) are the one definition of what a write takes: the inputs list
the same fields in the same order, required where the spec requires them, with the spec's
descriptions and aliases (``from``, ``expectedVersion``). What pydantic cannot say is given
here: which text fields are node ids (GraphQL ``ID``) and which nested models become which
input type. A field left out by the client stays ``UNSET``, so the spec sees only the fields
sent (partial updates).
"""

from __future__ import annotations

import enum
import types
from typing import Any, Union, get_args, get_origin

import strawberry
from pydantic import BaseModel
from strawberry.scalars import JSON


def _graphql_type(annotation: Any, is_id: bool, nested: dict[type, type]) -> Any:
    """The strawberry annotation for a pydantic field's annotation (None left out)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"cannot derive an input type for {annotation!r}")
        return _graphql_type(inner[0], is_id, nested)
    if origin is list:
        (item,) = get_args(annotation)
        return types.GenericAlias(list, (_graphql_type(item, is_id, nested),))
    if origin is dict or annotation is dict:
        return JSON
    if annotation in nested:
        return nested[annotation]
    if annotation is str:
        return strawberry.ID if is_id else str
    if annotation in (int, bool, float) or (
        isinstance(annotation, type) and issubclass(annotation, enum.Enum)
    ):
        return annotation  # the metamodel's enums are the schema's (resolvers.enums)
    raise TypeError(f"cannot derive an input type for {annotation!r}")


def spec_input(
    model: type[BaseModel],
    *,
    name: str,
    description: str,
    ids: frozenset[str] = frozenset(),
    nested: dict[type, type] | None = None,
) -> type:
    """A strawberry input type named ``name`` with ``model``'s fields.

    Args:
        ids: the fields (Python names) that hold node ids: ``ID`` instead of ``String``.
        nested: pydantic models inside ``model`` -> the input types that stand for them.
    """
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__annotations__": annotations, "__module__": __name__}
    for field_name, info in model.model_fields.items():
        gql = _graphql_type(info.annotation, field_name in ids, nested or {})
        kwargs: dict[str, Any] = {}
        if not info.is_required():
            gql = gql | None
            kwargs["default"] = strawberry.UNSET
        if info.description:
            kwargs["description"] = info.description
        if info.alias:
            kwargs["name"] = info.alias
        annotations[field_name] = gql
        if kwargs:
            namespace[field_name] = strawberry.field(**kwargs)
    cls = type(name, (), namespace)
    return strawberry.input(cls, name=name, description=description)


__all__ = ["spec_input"]

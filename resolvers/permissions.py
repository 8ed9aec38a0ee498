"""The permission table on the schema: one strawberry permission per field the table names.

``guard`` adds a ``PermissionExtension`` holding a ``Permitted`` to every root field and to every
other field ``catalog.access.PERMISSIONS`` lists, so each field of an operation (aliased,
batched or not) is checked on its own and a refused one is a FORBIDDEN error in its place while
the rest answers. A root field the table does not name makes the schema refuse to build.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case

from catalog.access.permissions import PERMISSIONS, check


class Permitted(BasePermission):
    """Lets the caller use one field when the permission table allows their role and rights."""

    def __init__(self, coordinate: str) -> None:
        self.coordinate = coordinate

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        """Raise ``NotAllowedError`` (FORBIDDEN, naming the rule) unless the table allows it."""
        check(info.context.principal, self.coordinate)
        return True


def _graphql_name(field: Any) -> str:
    return str(field.graphql_name or to_camel_case(field.python_name))


def guard(roots: Iterable[type], others: Iterable[type]) -> None:
    """Put the table's check on every field of the ``roots`` types and on the fields of
    ``others`` that the table names (idempotent: a schema may be built many times)."""
    for cls, root in [(c, True) for c in roots] + [(c, False) for c in others]:
        definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        for field in definition.fields:
            coordinate = f"{definition.name}.{_graphql_name(field)}"
            if coordinate not in PERMISSIONS:
                if root:
                    raise RuntimeError(
                        f"{coordinate} has no line in catalog/access/permissions.py: "
                        "say which role and rights it needs"
                    )
                continue
            if any(
                isinstance(e, PermissionExtension)
                and any(isinstance(p, Permitted) for p in e.permissions)
                for e in field.extensions
            ):
                continue
            field.extensions.append(
                PermissionExtension(permissions=[Permitted(coordinate)], use_directives=False)
            )


def guard_library_fields(schema: Any, coordinates: Iterable[str]) -> None:
    """Put the table's check on root fields a library adds while the schema is built
    (federation's ``_entities`` and ``_service``), by wrapping their graphql-core resolvers."""
    for coordinate in coordinates:
        type_name, field_name = coordinate.split(".")
        gql_type = schema._schema.get_type(type_name)
        gql_field = gql_type.fields.get(field_name) if gql_type is not None else None
        if gql_field is None or getattr(gql_field.resolve, "_capahub_guarded", False):
            continue
        gql_field.resolve = _checked(coordinate, gql_field.resolve)


def _checked(coordinate: str, resolve: Any) -> Any:
    def checked(source: Any, info: Any, **kwargs: Any) -> Any:
        check(info.context.principal, coordinate)
        return resolve(source, info, **kwargs)

    checked._capahub_guarded = True  # type: ignore[attr-defined]
    return checked


__all__ = ["Permitted", "guard", "guard_library_fields"]

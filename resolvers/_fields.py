"""Typed forms of ``@strawberry.field(...)``, ``@strawberry.mutation(...)`` and
``@strawberry.subscription(...)`` with arguments.

strawberry types those calls ``Any``, because the same overload serves
``x: str = strawberry.field(description=...)`` (strawberry-graphql/strawberry#1929), so to mypy
every resolver under one is untyped. These make the same field through strawberry's typed form
``strawberry.field(resolver, ...)``, which is what the decorator does with the resolver it gets.
The bare ``@strawberry.field`` is typed already.

Every mutation made here gets ``FreshReads``: after it has written, the fields the request
resolves next read the catalog as the write left it (the request's dataloaders are emptied),
in one place rather than in each mutation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types import Info
from strawberry.types.field import StrawberryField

#: A resolver function (sync or async, any arguments strawberry accepts).
Resolver = Callable[..., object]


def field(
    *, description: str | None = None, name: str | None = None
) -> Callable[[Resolver], StrawberryField]:
    """``@strawberry.field(description=..., name=...)``, typed."""

    def make(resolver: Resolver) -> StrawberryField:
        return strawberry.field(resolver, description=description, name=name)

    return make


class FreshReads(FieldExtension):
    """Empty the request's dataloaders once a mutation has returned: the fields selected on
    its result, and the mutations after it, must see what it wrote, not what the request
    loaded before. (A refused mutation wrote nothing: nothing to forget.)"""

    def resolve(
        self, next_: Callable[..., Any], source: Any, info: Info[Any, Any], **kwargs: Any
    ) -> Any:
        result = next_(source, info, **kwargs)
        info.context.loaders.clear()
        return result

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: Info[Any, Any],
        **kwargs: Any,
    ) -> Any:
        result = await next_(source, info, **kwargs)
        info.context.loaders.clear()
        return result


def mutation(*, description: str | None = None) -> Callable[[Resolver], StrawberryField]:
    """``@strawberry.mutation(description=...)``, typed, with ``FreshReads``."""

    def make(resolver: Resolver) -> StrawberryField:
        return strawberry.mutation(resolver, description=description, extensions=[FreshReads()])

    return make


def subscription(*, description: str | None = None) -> Callable[[Resolver], StrawberryField]:
    """``@strawberry.subscription(description=...)``, typed."""

    def make(resolver: Resolver) -> StrawberryField:
        return strawberry.subscription(resolver, description=description)

    return make


__all__ = ["FreshReads", "field", "mutation", "subscription"]

"""Typed forms of ``@strawberry.field(...)``, ``@strawberry.mutation(...)`` and
``@strawberry.subscription(...)`` with arguments.

strawberry types those calls ``Any``, because the same overload serves
``x: str = strawberry.field(description=...)`` (strawberry-graphql/strawberry#1929), so to mypy
every resolver under one is untyped. These make the same field through strawberry's typed form
``strawberry.field(resolver, ...)``, which is what the decorator does with the resolver it gets.
The bare ``@strawberry.field`` is typed already.
"""

from __future__ import annotations

from collections.abc import Callable

import strawberry
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


def mutation(*, description: str | None = None) -> Callable[[Resolver], StrawberryField]:
    """``@strawberry.mutation(description=...)``, typed."""

    def make(resolver: Resolver) -> StrawberryField:
        return strawberry.mutation(resolver, description=description)

    return make


def subscription(*, description: str | None = None) -> Callable[[Resolver], StrawberryField]:
    """``@strawberry.subscription(description=...)``, typed."""

    def make(resolver: Resolver) -> StrawberryField:
        return strawberry.subscription(resolver, description=description)

    return make


__all__ = ["field", "mutation", "subscription"]

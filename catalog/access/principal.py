"""Who is calling: roles, rights and the principal a request runs as."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from metadata.errors import InvalidInputError


class Role(enum.Enum):
    """The roles of ``docs/security.md``; each includes everything the ones before it may do."""

    VIEWER = "viewer"
    EDITOR = "editor"
    STEWARD = "steward"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in viewer < editor < steward < admin."""
        return _RANKS[self]

    @classmethod
    def parse(cls, value: str, *, field: str = "role") -> Role:
        """The role named ``value``, or ``InvalidInputError`` naming the roles that exist."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise InvalidInputError(
                f"{field}: there is no role {value[:40]!r}; the roles are {names}", field=field
            ) from None


_RANKS = {Role.VIEWER: 0, Role.EDITOR: 1, Role.STEWARD: 2, Role.ADMIN: 3}


class Right(enum.Enum):
    """Rights granted besides the role: live data, and personal data in it."""

    RECORDS = "records"
    PII = "pii"

    @classmethod
    def parse(cls, value: str, *, field: str = "right") -> Right:
        """The right named ``value``, or ``InvalidInputError`` naming the rights that exist."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise InvalidInputError(
                f"{field}: there is no right {value[:40]!r}; the rights are {names}", field=field
            ) from None


def highest_role(names: Iterable[str]) -> Role | None:
    """The highest of the known roles among ``names`` (unknown names are ignored)."""
    best: Role | None = None
    for name in names:
        try:
            role = Role(str(name).strip().lower())
        except ValueError:
            continue
        if best is None or role.rank > best.rank:
            best = role
    return best


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request, as authentication established it.

    ``actor`` is what history and the audit log record: ``token:NAME`` for a hub token,
    ``user:SUB`` for a JWT, ``local:USER`` for the command line, ``anonymous`` for a request
    without a token that the anonymous role lets in. ``role`` None: the caller proved who they
    are but holds no role, and may do nothing.
    """

    actor: str
    role: Role | None
    teams: frozenset[str] = field(default_factory=frozenset)
    rights: frozenset[Right] = field(default_factory=frozenset)
    #: True for the command line and for a hub with auth off: every rule is skipped.
    unrestricted: bool = False
    #: When the credential stops being valid (seconds since the epoch); None: it does not.
    expires: float | None = field(default=None, compare=False)

    def at_least(self, role: Role) -> bool:
        """True when the caller's role is ``role`` or above it."""
        return self.unrestricted or (self.role is not None and self.role.rank >= role.rank)

    def has(self, right: Right) -> bool:
        """True when the caller holds ``right`` (admins hold every right)."""
        return self.unrestricted or self.role is Role.ADMIN or right in self.rights

    def describe(self) -> str:
        """How refusals name the caller, e.g. ``editor token:ci`` or ``user:ada (no role)``."""
        if self.role is None:
            return f"{self.actor} (no role)"
        return f"{self.role.value} {self.actor}"


def unrestricted(actor: str) -> Principal:
    """A caller every rule lets through: the command line, or any caller while auth is off."""
    return Principal(actor=actor, role=Role.ADMIN, rights=frozenset(Right), unrestricted=True)


__all__ = ["Principal", "Right", "Role", "highest_role", "unrestricted"]

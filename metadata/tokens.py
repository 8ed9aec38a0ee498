"""Persistence of the hub's API tokens: one row each, only the sha256 of the token text.

Tokens are not catalog nodes: nothing here records history. Every function works on the
connection of a ``Reader`` or ``Writer`` (``conn``), so the caller chooses the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.tables import api_tokens


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One stored token; ``role`` and ``rights`` are the names the access layer parses."""

    name: str
    token_hash: str
    role: str
    teams: tuple[str, ...]
    rights: tuple[str, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        """True when the token has an expiry and ``now`` is at or past it."""
        return self.expires_at is not None and now >= self.expires_at

    def status(self, now: datetime) -> str:
        """``revoked``, ``expired`` or ``active`` (a revoke outranks an expiry)."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expired(now) else "active"


def _utc(dt: datetime) -> datetime:
    # SQLite keeps no time zone: every value is written in UTC (so that stored times compare
    # as text) and read back naive.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _utc_or_none(dt: datetime | None) -> datetime | None:
    return None if dt is None else _utc(dt)


def _record(row: Any) -> TokenRecord:
    return TokenRecord(
        name=row.name,
        token_hash=row.token_hash,
        role=row.role,
        teams=tuple(row.teams or ()),
        rights=tuple(row.rights or ()),
        created_at=_utc(row.created_at),
        created_by=row.created_by,
        expires_at=_utc_or_none(row.expires_at),
        revoked_at=_utc_or_none(row.revoked_at),
        last_used_at=_utc_or_none(row.last_used_at),
    )


async def insert_token(conn: AsyncConnection, rec: TokenRecord) -> None:
    """Store a new token (the caller checked that its name is free)."""
    await conn.execute(
        insert(api_tokens).values(
            name=rec.name,
            token_hash=rec.token_hash,
            role=rec.role,
            teams=list(rec.teams),
            rights=list(rec.rights),
            created_at=_utc(rec.created_at),
            created_by=rec.created_by,
            expires_at=_utc_or_none(rec.expires_at),
            revoked_at=_utc_or_none(rec.revoked_at),
            last_used_at=_utc_or_none(rec.last_used_at),
        )
    )


async def token_by_hash(conn: AsyncConnection, token_hash: str) -> TokenRecord | None:
    """The token whose text hashes to ``token_hash``, or None."""
    stmt = select(api_tokens).where(api_tokens.c.token_hash == token_hash)
    row = (await conn.execute(stmt)).first()
    return None if row is None else _record(row)


async def token_by_name(conn: AsyncConnection, name: str) -> TokenRecord | None:
    """The token named ``name`` (revoked ones included), or None."""
    row = (await conn.execute(select(api_tokens).where(api_tokens.c.name == name))).first()
    return None if row is None else _record(row)


async def list_tokens(conn: AsyncConnection) -> list[TokenRecord]:
    """Every token, revoked and expired ones included, ordered by name."""
    result = await conn.execute(select(api_tokens).order_by(api_tokens.c.name))
    return [_record(row) for row in result]


async def revoke_token(conn: AsyncConnection, name: str, at: datetime) -> bool:
    """Mark the token ``name`` revoked at ``at``; True when it existed and was not revoked yet."""
    stmt = (
        update(api_tokens)
        .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=_utc(at))
    )
    return (await conn.execute(stmt)).rowcount == 1


async def record_last_used(
    conn: AsyncConnection, used: Mapping[str, datetime], *, unless_since: datetime
) -> None:
    """Set ``last_used_at`` of each named token to its time in ``used``, in one statement.

    A row is left alone when its stored time is at or after ``unless_since`` (written recently
    enough, by this process or another) or at or after the new time (never moved backwards).
    """
    if not used:
        return
    col = api_tokens.c.last_used_at
    stmt = (
        update(api_tokens)
        .where(
            api_tokens.c.name == bindparam("token_name"),
            or_(col.is_(None), and_(col < _utc(unless_since), col < bindparam("used_at"))),
        )
        .values(last_used_at=bindparam("used_at"))
    )
    params = [{"token_name": name, "used_at": _utc(at)} for name, at in sorted(used.items())]
    await conn.execute(stmt, params)


__all__ = [
    "TokenRecord",
    "insert_token",
    "list_tokens",
    "record_last_used",
    "revoke_token",
    "token_by_hash",
    "token_by_name",
]

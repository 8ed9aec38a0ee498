"""Hub tokens: API tokens the hub issues to machines (harvest jobs, CI, services).

A token is ``chub_`` and 32 random bytes (URL-safe base64); the hub stores only its sha256,
and shows the text once, when it is created. Verified tokens are cached by that digest for
``cache_ttl`` seconds (the hub's sync interval), so a revoke in another process takes effect
within it; a revoke in this process takes effect at once, and no entry outlives its token's
expiry.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cachetools import TTLCache

from catalog.access.principal import Principal, Right, Role
from metadata.errors import ConflictError, InvalidInputError, NotFoundError, UnauthenticatedError
from metadata.model import Kind, parse_id
from metadata.store import Store
from metadata.tokens import (
    TokenRecord,
    insert_token,
    list_tokens,
    record_last_used,
    revoke_token,
    token_by_hash,
    token_by_name,
)

PREFIX = "chub_"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
#: The longest lifetime a token may be given.
MAX_LIFETIME = timedelta(days=3650)
#: A token's stored ``last_used_at`` is rewritten at most this often.
LAST_USED_RESOLUTION = timedelta(seconds=60)

_EXPIRY = re.compile(r"\s*(\d{1,9})\s*([mhdw])\s*", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_FIELD = "authorization"


def looks_like_hub_token(token: str) -> bool:
    """True when ``token`` has the form of a hub token (``chub_...``), issued here or not."""
    return token.startswith(PREFIX)


def parse_expiry(text: str) -> timedelta | None:
    """A lifetime such as ``90d``, ``12h``, ``30m`` or ``2w``; ``never`` is None.

    Raises:
        InvalidInputError: (field ``expires``) for any other text, or more than 10 years.
    """
    if text.strip().lower() == "never":
        return None
    m = _EXPIRY.fullmatch(text)
    if m is None:
        raise InvalidInputError(
            f"expires: {text[:40]!r} is not a lifetime; use a number and a unit, "
            "e.g. 30m, 12h, 90d or 2w, or 'never'",
            field="expires",
        )
    count, unit = int(m.group(1)), m.group(2).lower()
    # Compared in minutes first: a timedelta of 999999999 weeks would overflow.
    minutes = count * {"m": 1, "h": 60, "d": 1440, "w": 10080}[unit]
    if minutes > MAX_LIFETIME // timedelta(minutes=1):
        raise InvalidInputError(
            f"expires: {text.strip()!r} is more than 10 years; use at most 3650d, or 'never'",
            field="expires",
        )
    lifetime = timedelta(**{_UNITS[unit]: count})
    _check_lifetime(lifetime)
    return lifetime


def _check_lifetime(lifetime: timedelta | None) -> None:
    if lifetime is None:
        return
    if lifetime <= timedelta(0):
        raise InvalidInputError(
            "expires: a token's lifetime must be positive, e.g. 90d, or 'never'", field="expires"
        )
    if lifetime > MAX_LIFETIME:
        raise InvalidInputError(
            "expires: a token's lifetime is at most 10 years (3650d), or 'never'",
            field="expires",
        )


def hash_token(token: str) -> str:
    """The sha256 hex digest of a token's text, as the hub stores it."""
    # surrogatepass: a header may carry any text; it must hash, not raise.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class _Verified:
    record: TokenRecord
    principal: Principal


class HubTokens:
    """Creates, lists, revokes and verifies hub tokens over one store."""

    #: ``HubTokens.parse_expiry`` and ``HubTokens.looks_like_hub_token``, for callers that
    #: hold the service only.
    parse_expiry = staticmethod(parse_expiry)
    looks_like_hub_token = staticmethod(looks_like_hub_token)

    def __init__(self, store: Store, *, cache_ttl: float = 1.0, cache_size: int = 10_000) -> None:
        self.store = store
        # Only verified tokens are cached, so unknown ones cannot fill memory; the cache is
        # bounded all the same.
        self._cache: TTLCache[str, _Verified] = TTLCache(maxsize=cache_size, ttl=cache_ttl)
        #: Bumped by every revoke here: a lookup that overlapped one is used but not cached.
        self._generation = 0
        #: Name -> the latest time a request used it, not yet written.
        self._used: dict[str, datetime] = {}
        #: Name -> its ``last_used_at`` as stored, as far as this process knows.
        self._stored_used: dict[str, datetime | None] = {}
        _LIVE.add(self)

    async def create(
        self,
        name: str,
        role: Role | str,
        *,
        teams: Iterable[str] = (),
        rights: Iterable[Right | str] = (),
        expires: timedelta | None = None,
        created_by: str,
    ) -> tuple[TokenRecord, str]:
        """Issue a token; returns its record and its text, which is never shown again.

        Raises:
            InvalidInputError: a malformed name, role, right, team id or lifetime.
            NotFoundError: a team that is not in the catalog.
            ConflictError: a token of that name exists (revoked ones too: names are never
                reused, so ``token:NAME`` in history always means one token).
        """
        if NAME_PATTERN.fullmatch(name) is None:
            raise InvalidInputError(
                f"name: {name[:70]!r} is not a token name; use 1-64 lowercase letters, "
                "digits, '.', '_' and '-', starting with a letter or digit",
                field="name",
            )
        the_role = role if isinstance(role, Role) else Role.parse(role)
        the_rights = sorted(
            {
                r if isinstance(r, Right) else Right.parse(r)
                for r in ([rights] if isinstance(rights, str) else rights)
            },
            key=lambda r: r.value,
        )
        team_ids = sorted({teams} if isinstance(teams, str) else set(teams))
        for team in team_ids:
            if parse_id(team, field="team")[0] is not Kind.TEAM:
                raise InvalidInputError(
                    f"team: {team[:70]!r} is not a team id; expected 'team:<key>'", field="team"
                )
        _check_lifetime(expires)
        creator = created_by.strip()
        if not creator or len(creator) > 200:
            raise InvalidInputError(
                "created_by: say who creates the token, in 1-200 characters, e.g. local:ada",
                field="created_by",
            )
        token = PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        rec = TokenRecord(
            name=name,
            token_hash=hash_token(token),
            role=the_role.value,
            teams=tuple(team_ids),
            rights=tuple(r.value for r in the_rights),
            created_at=now,
            created_by=creator,
            expires_at=None if expires is None else now + expires,
        )
        # The store's write transaction (serialized writers); no pending change, so no history.
        async with self.store.transaction() as tx:
            found = await tx.get_nodes(team_ids)
            for team in team_ids:
                if team not in found:
                    raise NotFoundError(f"team: no team {team!r} in the catalog", field="team")
            existing = await token_by_name(tx.conn, name)
            if existing is not None:
                raise _name_taken(existing)
            await insert_token(tx.conn, rec)
        return rec, token

    async def list(self) -> builtins.list[TokenRecord]:
        """Every token the hub issued, revoked and expired ones included, ordered by name."""
        async with self.store.read() as reader:
            return await list_tokens(reader.conn)

    async def revoke(self, name: str) -> TokenRecord:
        """Revoke the token ``name`` (again is fine); it stops verifying here at once.

        Raises:
            NotFoundError: no token has that name.
        """
        async with self.store.transaction() as tx:
            rec = await token_by_name(tx.conn, name)
            if rec is None:
                raise NotFoundError(
                    f"name: no token named {name[:70]!r}; `capahub token list` shows them",
                    field="name",
                )
            if rec.revoked_at is None:
                at = datetime.now(UTC)
                await revoke_token(tx.conn, name, at)
                rec = replace(rec, revoked_at=at)
        # Every service over this store forgets it, not only this one.
        for tokens in list(_LIVE):
            if tokens.store is self.store:
                tokens._forget(rec.token_hash)
        return rec

    def _forget(self, token_hash: str) -> None:
        self._generation += 1
        self._cache.pop(token_hash, None)

    @property
    def generation(self) -> int:
        """Rises with every revocation this process sees: what a caller cached of ``verify``
        before a change of it must not be used after."""
        return self._generation

    def note_used(self, name: str) -> None:
        """Record that a request used the token ``name`` (for ``flush_last_used``)."""
        self._used[name] = datetime.now(UTC)

    async def verify(self, token: str) -> Principal:
        """The principal a hub token stands for.

        Raises:
            UnauthenticatedError: (field ``authorization``) the token is unknown, revoked or
                expired. Messages name the token, never its text.
        """
        digest = hash_token(token)
        now = datetime.now(UTC)
        hit = self._cache.get(digest)
        if hit is not None:
            if hit.record.expired(now):
                self._cache.pop(digest, None)
                raise _expired(hit.record)
            self._used[hit.record.name] = now
            return hit.principal
        generation = self._generation
        async with self.store.read() as reader:
            rec = await token_by_hash(reader.conn, digest)
        if rec is None or not hmac.compare_digest(rec.token_hash, digest):
            raise UnauthenticatedError("the token is not a hub token this hub issued", field=_FIELD)
        if rec.revoked_at is not None:
            raise UnauthenticatedError(f"the hub token {rec.name!r} was revoked", field=_FIELD)
        if rec.expired(now):
            raise _expired(rec)
        verified = _Verified(rec, _principal(rec))
        if generation == self._generation:
            self._cache[digest] = verified
        known = self._stored_used.get(rec.name)
        stored = rec.last_used_at
        if known is None or (stored is not None and stored > known):
            self._stored_used[rec.name] = stored
        self._used[rec.name] = now
        return verified.principal

    async def flush_last_used(self) -> int:
        """Write the noted use times of tokens stored as unused for over a minute.

        One statement for them all (none when nothing is due); the hub calls this from its
        periodic sync. Returns how many tokens were due.
        """
        now = datetime.now(UTC)
        cutoff = now - LAST_USED_RESOLUTION
        due: dict[str, datetime] = {}
        for name, at in self._used.items():
            stored = self._stored_used.get(name)
            if stored is None or stored < cutoff:
                due[name] = at
        if not due:
            return 0
        # Not the store's transaction: a use time must not queue behind a catalog write (on
        # PostgreSQL that lock is cluster-wide); BEGIN IMMEDIATE on SQLite all the same.
        async with self.store.engine.connect() as conn:
            conn = await conn.execution_options(capahub_write=True)
            async with conn.begin():
                await record_last_used(conn, due, unless_since=cutoff)
        for name, at in due.items():
            self._stored_used[name] = at
            if self._used.get(name) == at:  # not used again while the write ran
                del self._used[name]
        return len(due)


#: Every HubTokens of this process, so that a revoke through one reaches the caches of all
#: those over the same store.
_LIVE: weakref.WeakSet[HubTokens] = weakref.WeakSet()


def _principal(rec: TokenRecord) -> Principal:
    # Values were checked when the token was made; one a later release dropped grants nothing.
    roles = {r.value: r for r in Role}
    rights = {r.value: r for r in Right}
    return Principal(
        actor=f"token:{rec.name}",
        role=roles.get(rec.role),
        teams=frozenset(rec.teams),
        rights=frozenset(rights[r] for r in rec.rights if r in rights),
        expires=None if rec.expires_at is None else rec.expires_at.timestamp(),
    )


def _expired(rec: TokenRecord) -> UnauthenticatedError:
    return UnauthenticatedError(f"the hub token {rec.name!r} has expired", field=_FIELD)


def _name_taken(rec: TokenRecord) -> ConflictError:
    if rec.revoked_at is not None:
        when = rec.revoked_at.strftime("%Y-%m-%d")
        return ConflictError(
            f"name: the token {rec.name!r} was revoked on {when}, and token names are never "
            "reused; pick another name",
            field="name",
        )
    return ConflictError(
        f"name: a token named {rec.name!r} exists; pick another name (token names are never "
        "reused, even after a revoke)",
        field="name",
    )


__all__ = [
    "HubTokens",
    "TokenRecord",
    "hash_token",
    "looks_like_hub_token",
    "parse_expiry",
]

"""Authentication: from an ``Authorization`` header to the request's ``Principal``."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from catalog.access.principal import Principal, Role, unrestricted
from catalog.access.tokens import HubTokens, looks_like_hub_token
from metadata.errors import InvalidInputError, UnauthenticatedError

if TYPE_CHECKING:
    from catalog.access.jwt import JwtVerifier
    from catalog.settings import Settings

log = logging.getLogger("capahub.access")

#: Longest ``Authorization`` header read at all (a JWT with many groups fits well within it).
MAX_HEADER = 16_384
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/=-]+) *")

#: Who a request is with auth off: every rule lets it through, history records it so.
OPEN = unrestricted("anonymous")
#: Verified headers remembered at most; past it the memory starts over.
MAX_RECENT = 10_000


@dataclass(frozen=True, slots=True)
class _Recent:
    principal: Principal
    until: float  # time.monotonic() after which the header is verified again
    generation: int  # HubTokens.generation when it was verified


class Authenticator:
    """Verifies hub tokens and OpenID Connect JWTs and says who a request runs as."""

    def __init__(
        self, settings: Settings, tokens: HubTokens, jwt: JwtVerifier | None = None
    ) -> None:
        self.enabled = settings.auth == "on"
        self.tokens = tokens
        self.jwt = jwt
        # A verified header is trusted for one sync interval (a revocation by another process
        # takes effect within it; one by this process at once, through the generation), and
        # never past its credential's expiry. Keyed by the header's SHA-256.
        self._ttl = settings.sync_interval
        self._recent: dict[bytes, _Recent] = {}
        # One verification per header at a time: when an entry lapses under load, the requests
        # that arrive meanwhile wait for it instead of each asking the database.
        self._pending: dict[bytes, asyncio.Future[Principal]] = {}
        role = settings.auth_anonymous_role.strip()
        self.anonymous = (
            Principal(actor="anonymous", role=Role.parse(role, field="auth_anonymous_role"))
            if role
            else None
        )

    @staticmethod
    def check_settings(settings: Settings) -> None:
        """Raise ``ValueError`` with one sentence when the auth settings cannot work (an
        unknown anonymous role, a refused JWT algorithm), so ``capahub serve`` says so before
        it starts."""
        from catalog.access.jwt import JwtVerifier

        role = settings.auth_anonymous_role.strip()
        if role:
            try:
                Role.parse(role, field="CAPAHUB_AUTH_ANONYMOUS_ROLE")
            except InvalidInputError as err:
                raise ValueError(err.message) from None
        JwtVerifier.from_settings(settings)  # no network: the key set is fetched on first use

    @classmethod
    def from_settings(cls, settings: Settings, tokens: HubTokens) -> Authenticator:
        """The authenticator the settings describe (JWTs accepted when a JWKS is set)."""
        from catalog.access.jwt import JwtVerifier

        return cls(settings, tokens, JwtVerifier.from_settings(settings))

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller a request's ``Authorization`` header proves, or ``UnauthenticatedError``.

        With auth off every request runs unrestricted (as ``anonymous``). With auth on, a
        request without the header runs with the anonymous role when one is configured.
        """
        if not self.enabled:
            return OPEN
        if authorization is None or not authorization.strip():
            if self.anonymous is not None:
                return self.anonymous
            raise UnauthenticatedError(
                "authorization: this hub needs a token; send `Authorization: Bearer TOKEN` "
                "with a hub token (capahub token create) or your identity provider's access "
                "token",
                field="authorization",
            )
        if len(authorization) > MAX_HEADER:
            raise UnauthenticatedError(
                f"authorization: the header is longer than {MAX_HEADER} characters",
                field="authorization",
            )
        key = hashlib.sha256(authorization.encode("utf-8", "surrogateescape")).digest()
        hit = self._recent.get(key)
        if hit is not None:
            expires = hit.principal.expires
            if (
                time.monotonic() < hit.until
                and hit.generation == self.tokens.generation
                and (expires is None or time.time() < expires)
            ):
                if hit.principal.actor.startswith("token:"):
                    self.tokens.note_used(hit.principal.actor[6:])
                return hit.principal
            self._recent.pop(key, None)
        pending = self._pending.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled, not the one verifying
                # the request verifying went away: verify for this one
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        generation = self.tokens.generation
        try:
            principal = await self._verify(authorization)
        except Exception as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" log when nobody waited
            raise
        except BaseException:  # cancelled while verifying: the waiters verify for themselves
            future.cancel()
            raise
        else:
            future.set_result(principal)
        finally:
            self._pending.pop(key, None)
        if generation == self.tokens.generation:
            if len(self._recent) >= MAX_RECENT:
                self._recent.clear()
            self._recent[key] = _Recent(principal, time.monotonic() + self._ttl, generation)
        return principal

    async def _verify(self, authorization: str) -> Principal:
        """Verify a header that is not remembered."""
        m = _BEARER.fullmatch(authorization)
        if m is None:
            raise UnauthenticatedError(
                "authorization: expected `Bearer TOKEN` (the Bearer scheme, RFC 6750)",
                field="authorization",
            )
        token = m.group(1)
        if looks_like_hub_token(token):
            return await self.tokens.verify(token)
        if self.jwt is None:
            raise UnauthenticatedError(
                "authorization: the token is not a hub token, and this hub accepts no JWTs "
                "(CAPAHUB_AUTH_JWKS_URL is not set)",
                field="authorization",
            )
        return await self.jwt.verify(token)

    async def close(self) -> None:
        """Release the JWKS client."""
        if self.jwt is not None:
            await self.jwt.close()


__all__ = ["OPEN", "Authenticator"]

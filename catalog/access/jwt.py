"""Verifying OpenID Connect access tokens (JWTs) against the identity provider's key set.

A token is trusted only when an asymmetric signature from the identity provider's JSON Web Key
Set verifies it, with an algorithm the configuration fixes (never ``none``, never HMAC: with
HS256 a public key would become a shared secret, the key-confusion attack), and its time,
issuer and audience claims hold. Its claims then become the ``Principal`` of the request.

The key set is fetched lazily and cached; a token naming an unknown ``kid`` (key rotation)
fetches it again, at most once per ``min_refetch`` seconds, so tokens with made-up kids cannot
make the hub hammer the identity provider. Verified tokens are cached by their SHA-256, never
past their ``exp``. No message and no log line ever carries the token or a part of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import jwt
from cachetools import TLRUCache
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from catalog.access.principal import Principal, Right, highest_role
from catalog.settings import Settings
from metadata.errors import InvalidInputError, UnauthenticatedError
from metadata.model import Kind, parse_id

logger = logging.getLogger(__name__)

#: The signature algorithms a hub may be configured with (all asymmetric).
ACCEPTABLE_ALGORITHMS = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512", "EdDSA"),
)
MAX_JWKS_BYTES = 1_000_000
MAX_TOKEN_CHARS = 32_768
MAX_ACTOR_CHARS = 200
MIN_RSA_BITS = 2048

#: The JWK key type (kty) each algorithm verifies with.
_KEY_TYPE = {
    alg: {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}[alg[:2]]
    for alg in ACCEPTABLE_ALGORITHMS
}
_CURVES = {
    "ES256": ("P-256",),
    "ES384": ("P-384",),
    "ES512": ("P-521",),
    "EdDSA": ("Ed25519", "Ed448"),
}
# JOSE algorithm names a refusal may repeat; any other `alg` a token claims is not echoed.
_KNOWN_ALGORITHMS = frozenset(
    (*ACCEPTABLE_ALGORITHMS, "none", "HS256", "HS384", "HS512", "ES256K", "Ed25519", "Ed448")
)
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]*={0,2}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_SEPARATORS = re.compile(r"[\s,]+")
_RIGHTS = {right.value: right for right in Right}
_MALFORMED = "the token is not a well-formed JWT"


def _refuse(message: str) -> UnauthenticatedError:
    return UnauthenticatedError(message, field="authorization")


def _show(value: str) -> str:
    # Values from a token or a key set are shown short: a refusal must never be able to carry
    # a whole token segment (the shortest signature segment is 86 characters).
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _check_algorithms(algorithms: Sequence[str]) -> tuple[str, ...]:
    canonical = {alg.upper(): alg for alg in ACCEPTABLE_ALGORITHMS}
    accepted = ", ".join(ACCEPTABLE_ALGORITHMS)
    names = _split(algorithms) if isinstance(algorithms, str) else algorithms
    chosen: list[str] = []
    for raw in names:
        name = raw.strip()
        if name.lower() == "none" or name.upper().startswith("HS"):
            raise ValueError(
                f"the JWT algorithm {name!r} is never accepted (`none` and the HMAC algorithms "
                f"HS* would let anyone forge tokens); use some of {accepted}"
            )
        alg = canonical.get(name.upper())
        if alg is None:
            raise ValueError(f"unknown JWT algorithm {name!r}; the accepted ones are {accepted}")
        if alg not in chosen:
            chosen.append(alg)
    if not chosen:
        raise ValueError(f"no JWT algorithm is configured; name some of {accepted}")
    return tuple(chosen)


class _KeySetError(Exception):
    """The key set could not be fetched or read; ``reason`` says why, for the refusal."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Key:
    """One JWK of the key set; ``problem`` says why it can verify nothing ("" if it can)."""

    kid: str | None
    kty: str
    crv: str | None
    alg: str | None  # as the JWK states it
    key: Any  # the public key object PyJWT verifies with
    problem: str = ""

    def refusal(self, alg: str) -> str | None:
        """Why this key cannot verify a token signed with ``alg`` (None: it can)."""
        if self.problem:
            return self.problem
        needed = _KEY_TYPE[alg]
        if self.kty != needed:
            return f"it is an {_show(self.kty)} key, and {alg} needs an {needed} key"
        curves = _CURVES.get(alg, ())
        if curves and self.crv not in curves:
            crv = _show(self.crv or "")
            return f"it is on curve {crv}, and {alg} needs {' or '.join(curves)}"
        if self.alg is not None and self.alg != alg:
            return f"it is published for {_show(self.alg)} only"
        return None


def _read_key(raw: object) -> _Key | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("kty"), str):
        return None
    kty: str = raw["kty"]
    kid, crv, alg = (v if isinstance(v := raw.get(n), str) else None for n in ("kid", "crv", "alg"))

    def unusable(problem: str) -> _Key:
        return _Key(kid, kty, crv, alg, None, problem)

    if kty not in ("RSA", "EC", "OKP"):
        return unusable(f"it is an {_show(kty)} key, not a public key for signatures")
    if any(member in raw for member in _PRIVATE_MEMBERS):
        logger.warning("the identity provider's key set publishes private key %s; ignored", kid)
        return unusable("the key set publishes its private part, so it is not trusted")
    use, ops = raw.get("use"), raw.get("key_ops")
    if use is not None and use != "sig":
        return unusable(f"its use is {_show(str(use))}, not 'sig'")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return unusable("its key_ops do not include 'verify'")
    if alg is not None and alg not in ACCEPTABLE_ALGORITHMS:
        return unusable(f"it is published for {_show(alg)}, which the hub never accepts")
    try:
        # PyJWK derives no algorithm for Ed448 keys; both Edwards curves verify as EdDSA.
        key = jwt.PyJWK.from_dict(raw, algorithm="EdDSA" if kty == "OKP" else None).key
    except Exception:  # PyJWT's JWK readers raise many types; any of them means unusable
        return unusable("it cannot be read as a public key")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return unusable(f"it is an RSA key of {key.key_size} bits (at least {MIN_RSA_BITS})")
    return _Key(kid, kty, crv, alg, key)


def _read_key_set(data: bytes) -> tuple[_Key, ...]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        raise _KeySetError("the answer is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _KeySetError("the answer is not a JSON Web Key Set (no 'keys' list)")
    keys = tuple(k for k in map(_read_key, document["keys"]) if k is not None)
    if all(k.problem for k in keys):
        raise _KeySetError("it holds no public key for signatures")
    return keys


def _select(keys: tuple[_Key, ...], kid: str | None, alg: str) -> _Key | str | None:
    """The key to verify with, a refusal, or None when the key set does not know the key."""
    if kid is not None:
        named = [k for k in keys if k.kid == kid]
        if not named:
            return None
        for key in named:
            if key.refusal(alg) is None:
                return key
        return f"the signing key {_show(kid)} cannot verify {alg} tokens: {named[0].refusal(alg)}"
    usable = [k for k in keys if k.refusal(alg) is None]
    if len(usable) == 1:
        return usable[0]
    if not usable:
        return None
    return (
        f"the token names no signing key (kid), and the identity provider's key set has "
        f"{len(usable)} keys for {alg} tokens"
    )


def _claim(claims: dict[str, Any], name: str) -> Any:
    """The claim ``name``, or the value at a dotted path such as ``realm_access.roles``."""
    if name in claims:  # namespaced claims (https://example.com/roles) hold dots themselves
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> list[str]:
    """The names in a claim: a list of strings, or one space- or comma-separated string."""
    if isinstance(value, str):
        return [v for v in _SEPARATORS.split(value) if v]
    if isinstance(value, list):
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return []


def _is_team(value: str) -> bool:
    try:
        kind, _ = parse_id(value)
    except InvalidInputError:
        return False
    return kind is Kind.TEAM


def _refusal_for(err: jwt.PyJWTError, audience: tuple[str, ...], issuer: str) -> str:
    """A user-facing message for a PyJWT error; PyJWT's own texts are never passed on."""
    if isinstance(err, jwt.InvalidSignatureError):
        return "the token's signature does not verify"
    if isinstance(err, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(err, jwt.ImmatureSignatureError):
        return "the token is not valid yet"
    if isinstance(err, jwt.MissingRequiredClaimError):
        if err.claim == "aud":
            return f"the token names no audience; it must name {' or '.join(map(repr, audience))}"
        if err.claim == "iss":
            return f"the token names no issuer; it must be {issuer!r}"
        return f"the token has no {err.claim!r} claim"
    if isinstance(err, jwt.InvalidAudienceError):
        if not audience:
            return (
                "the token's audience is not accepted: this hub takes only tokens that name no "
                "audience (CAPAHUB_AUTH_AUDIENCE is empty)"
            )
        return f"the token's audience is not {' or '.join(map(repr, audience))}"
    if isinstance(err, jwt.InvalidIssuerError):
        return f"the token's issuer is not {issuer!r}"
    if isinstance(err, jwt.InvalidIssuedAtError):
        return "the token's issue time (iat) is not a number"
    if isinstance(err, InvalidSubjectError):
        return "the token's subject (sub) is not a string"
    if isinstance(err, InvalidJTIError):
        return "the token's id (jti) is not a string"
    if isinstance(err, jwt.InvalidKeyError):
        return "the token's signing key cannot be used to verify it"
    if isinstance(err, jwt.DecodeError):
        return _MALFORMED
    return "the token is not valid"


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    exp: float


class JwtVerifier:
    """Verifies OpenID Connect access tokens and turns their claims into a ``Principal``.

    ``jwks`` is an http(s) URL or a file path. ``fetches`` counts the attempts to fetch it.
    """

    fetches: int

    def __init__(
        self,
        *,
        jwks: str,
        issuer: str = "",
        audience: Sequence[str] = (),
        algorithms: Sequence[str] = ("RS256", "ES256"),
        leeway: float = 30.0,
        user_claim: str = "sub",
        roles_claim: str = "roles",
        teams_claim: str = "groups",
        refresh: float = 300.0,
        min_refetch: float = 10.0,
        timeout: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        """Check the configuration; nothing is fetched until the first token.

        Raises:
            ValueError: the configuration is unusable, e.g. it allows ``none`` or HS256.
        """
        self._jwks = jwks.strip()
        scheme = _SCHEME.match(self._jwks)
        if not self._jwks:
            raise ValueError("the JWKS location is empty; give an http(s) URL or a file path")
        if scheme and scheme.group(1).lower() not in ("http", "https"):
            raise ValueError(f"the JWKS location {self._jwks!r} is neither http(s) nor a file")
        if leeway < 0 or refresh <= 0 or min_refetch < 0 or timeout <= 0 or cache_size < 0:
            raise ValueError(
                "JWT settings out of range: leeway, min_refetch and cache_size must be >= 0, "
                "refresh and timeout > 0"
            )
        if not (user_claim.strip() and roles_claim.strip() and teams_claim.strip()):
            raise ValueError("the JWT user, roles and teams claim names must not be empty")
        self._is_url = scheme is not None
        self._issuer = issuer.strip()
        names = _split(audience) if isinstance(audience, str) else audience
        self._audience = tuple(a.strip() for a in names if a.strip())
        self._algorithms = _check_algorithms(algorithms)
        self._leeway = leeway
        self._user_claim = user_claim.strip()
        self._roles_claim = roles_claim.strip()
        self._teams_claim = teams_claim.strip()
        self._refresh = refresh
        self._min_refetch = min_refetch
        self._timeout = timeout
        # Entries also end after `refresh` seconds, so a key the provider withdrew stops
        # vouching for cached tokens as soon as the key set itself would be fetched again.
        self._cache: TLRUCache[bytes, _Verified, float] | None = (
            TLRUCache(cache_size, self._cache_until, timer=time.time) if cache_size else None
        )
        self._keys: tuple[_Key, ...] | None = None
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._failure = ""
        self._inflight: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.fetches = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtVerifier | None:
        """The verifier the ``auth_*`` settings describe, or None when no JWKS is configured."""
        if not settings.auth_jwks_url.strip():
            return None
        return cls(
            jwks=settings.auth_jwks_url,
            issuer=settings.auth_issuer,
            audience=_split(settings.auth_audience),
            algorithms=_split(settings.auth_algorithms),
            leeway=settings.auth_leeway,
            user_claim=settings.auth_user_claim,
            roles_claim=settings.auth_roles_claim,
            teams_claim=settings.auth_teams_claim,
            refresh=settings.auth_jwks_refresh,
        )

    @staticmethod
    def looks_like_jwt(token: str) -> bool:
        """Whether ``token`` has the shape of a JWT: three base64url segments joined by dots."""
        return isinstance(token, str) and _JWT_SHAPE.fullmatch(token) is not None

    async def verify(self, token: str) -> Principal:
        """The caller a valid token names.

        Raises:
            UnauthenticatedError: the token does not verify; the message says why.
        """
        try:
            return await self._verify(token)
        except UnauthenticatedError as err:
            logger.debug("JWT refused: %s", err.message)
            raise
        except Exception as err:
            # An authentication boundary refuses what it cannot read, whatever broke inside;
            # only the error's type is logged, since its text might quote the token.
            logger.warning("JWT verification failed unexpectedly (%s)", type(err).__name__)
            raise _refuse("the token could not be verified") from None

    async def close(self) -> None:
        """Stop a key-set fetch under way and close the HTTP client."""
        task, self._inflight = self._inflight, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _verify(self, token: str) -> Principal:
        if isinstance(token, str) and len(token) > MAX_TOKEN_CHARS:
            raise _refuse(f"the token is longer than {MAX_TOKEN_CHARS} characters")
        if not self.looks_like_jwt(token):
            raise _refuse(_MALFORMED)
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cached(digest)
        if cached is not None:
            return cached
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refuse(_MALFORMED) from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or not alg:
            raise _refuse("the token's header names no algorithm")
        if alg not in self._algorithms:
            shown = f" {alg!r}" if alg in _KNOWN_ALGORITHMS else ""
            raise _refuse(
                f"the token's algorithm{shown} is not accepted (this hub accepts "
                f"{', '.join(self._algorithms)})"
            )
        key = await self._signing_key(kid if isinstance(kid, str) else None, alg)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=list(self._audience) or None,
                issuer=self._issuer or None,
                leeway=self._leeway,
                options={"require": ["exp"], "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as err:
            raise _refuse(_refusal_for(err, self._audience, self._issuer)) from None
        if not isinstance(claims, dict):
            raise _refuse(_MALFORMED)
        # PyJWT compares int(exp) with the clock; the caches use the same instant.
        principal = replace(self._principal(claims), expires=float(int(claims["exp"])))
        self._remember(digest, principal, int(claims["exp"]))
        return principal

    def _principal(self, claims: dict[str, Any]) -> Principal:
        user = _claim(claims, self._user_claim)
        name = str(user).strip() if isinstance(user, str | int) else ""
        if isinstance(user, bool) or not name:
            raise _refuse(f"the token has no {self._user_claim!r} claim naming the user")
        if not name.isprintable():
            raise _refuse(f"the token's {self._user_claim!r} claim holds control characters")
        scopes = _strings(claims.get("scope")) + _strings(claims.get("scp"))
        return Principal(
            actor="user:" + name[:MAX_ACTOR_CHARS],
            role=highest_role(_strings(_claim(claims, self._roles_claim))),
            teams=frozenset(t for t in _strings(_claim(claims, self._teams_claim)) if _is_team(t)),
            rights=frozenset(_RIGHTS[s] for s in scopes if s in _RIGHTS),
            unrestricted=False,
        )

    def _cache_until(self, _digest: bytes, entry: _Verified, now: float) -> float:
        return min(entry.exp, now + self._refresh)

    def _cached(self, digest: bytes) -> Principal | None:
        if self._cache is None:
            return None
        entry = self._cache.get(digest)
        if entry is None:
            return None
        if time.time() >= entry.exp:
            self._cache.pop(digest, None)
            return None
        return entry.principal

    def _remember(self, digest: bytes, principal: Principal, exp: float) -> None:
        # A token accepted only thanks to the leeway is already past exp: never cached.
        if self._cache is not None and time.time() < exp:
            self._cache[digest] = _Verified(principal, exp)

    async def _signing_key(self, kid: str | None, alg: str) -> _Key:
        keys, fresh = await self._key_set(refetch=False)
        found = _select(keys, kid, alg)
        if found is None and not fresh:
            # Perhaps the provider rotated its keys: ask it again (at most every min_refetch).
            keys, _ = await self._key_set(refetch=True)
            found = _select(keys, kid, alg)
        if found is None:
            if kid is None:
                raise _refuse(f"the identity provider's key set has no key for {alg} tokens")
            raise _refuse(
                f"no signing key {_show(kid)} is known to the identity provider's key set"
            )
        if isinstance(found, str):
            raise _refuse(found)
        return found

    async def _key_set(self, *, refetch: bool) -> tuple[tuple[_Key, ...], bool]:
        """The keys, and whether they come from a fetch this call waited for."""
        if self._inflight is None:
            now = time.monotonic()
            stale = self._keys is None or now - self._fetched_at >= self._refresh
            if (stale or refetch) and now - self._attempted_at >= self._min_refetch:
                self._inflight = asyncio.create_task(self._fetch())
        fresh = self._inflight is not None
        if self._inflight is not None:
            # Every caller waits for the same fetch; one caller giving up does not cancel it.
            await asyncio.shield(self._inflight)
        if self._keys is None:
            raise _refuse(self._failure or "the identity provider's key set is not available")
        return self._keys, fresh

    async def _fetch(self) -> None:
        self.fetches += 1
        self._attempted_at = time.monotonic()
        try:
            keys = _read_key_set(await (self._download() if self._is_url else self._read()))
        except Exception as err:  # whatever went wrong, the keys fetched before stay in use
            reason = err.reason if isinstance(err, _KeySetError) else type(err).__name__
            verb = "fetched from" if self._is_url else "read from"
            self._failure = (
                f"the identity provider's key set could not be {verb} {self._jwks}: {reason}"
            )
            kept = f"; keeping the {len(self._keys)} keys read before" if self._keys else ""
            logger.warning("%s%s", self._failure, kept)
        else:
            self._keys, self._fetched_at, self._failure = keys, time.monotonic(), ""
            logger.info(
                "read the identity provider's key set from %s (keys: %d)", self._jwks, len(keys)
            )
        finally:
            self._inflight = None

    async def _download(self) -> bytes:
        if self._client is None:
            # Redirects are not followed: one could lead from https to plain http.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                follow_redirects=False,
                trust_env=False,
                headers={"accept": "application/json"},
            )
        chunks: list[bytes] = []
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._client.stream("GET", self._jwks) as resp,
            ):
                if resp.status_code != 200:
                    raise _KeySetError(f"it answered HTTP {resp.status_code} {resp.reason_phrase}")
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_JWKS_BYTES:
                    raise _KeySetError(f"the answer is larger than {MAX_JWKS_BYTES} bytes")
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_JWKS_BYTES:
                        raise _KeySetError(f"the answer is larger than {MAX_JWKS_BYTES} bytes")
                    chunks.append(chunk)
        except (TimeoutError, httpx.TimeoutException):
            raise _KeySetError(f"no answer within {self._timeout:g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError) as err:
            raise _KeySetError(str(err) or type(err).__name__) from None
        return b"".join(chunks)

    async def _read(self) -> bytes:
        path = Path(self._jwks).expanduser()

        def read() -> bytes:
            with path.open("rb") as file:
                return file.read(MAX_JWKS_BYTES + 1)

        try:
            data = await asyncio.to_thread(read)
        except OSError as err:
            raise _KeySetError(err.strerror or type(err).__name__) from None
        if len(data) > MAX_JWKS_BYTES:
            raise _KeySetError(f"the file is larger than {MAX_JWKS_BYTES} bytes")
        return data


__all__ = ["ACCEPTABLE_ALGORITHMS", "JwtVerifier"]

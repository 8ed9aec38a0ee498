"""The JWT verifier against a real JWKS server on 127.0.0.1, with keys made in the test."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from catalog.access.jwt import JwtVerifier
from catalog.access.principal import Principal, Right, Role
from catalog.settings import Settings
from metadata.errors import UnauthenticatedError

ISSUER = "https://idp.example.com/realms/hub"
AUDIENCE = "capahub"
DROP = object()  # a claim value meaning: leave the claim out

#: Every token the tests made; the log of each test must not contain any of them.
ISSUED: list[str] = []

RsaKey = rsa.RSAPrivateKey
EcKey = ec.EllipticCurvePrivateKey
EdKey = ed25519.Ed25519PrivateKey
PrivateKey = RsaKey | EcKey | EdKey


@dataclass(frozen=True)
class Keys:
    """Signing keys, made once per module (RSA generation is the slow part)."""

    rsa: RsaKey
    rsa_other: RsaKey
    ec: EcKey
    ed: EdKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    """An RSA 2048 key, a second one, an EC P-256 key and an Ed25519 key."""
    return Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa_other=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        ed=ed25519.Ed25519PrivateKey.generate(),
    )


def jwk(private: PrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK of ``private`` with ``kid``, ``use: sig`` and ``extra`` members."""
    public = private.public_key()
    data: Any
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**data, "kid": kid, "use": "sig", **extra}


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a valid token for ada (editor, team:web, records), with ``overrides``."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "ada",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "roles": ["editor"],
        "groups": ["team:web"],
        "scope": "openid records",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def sign(
    private: PrivateKey, payload: dict[str, Any], *, kid: str | None = "rsa1", alg: str = ""
) -> str:
    """A token over ``payload`` signed with ``private`` (alg from the key type by default)."""
    if not alg:
        if isinstance(private, rsa.RSAPrivateKey):
            alg = "RS256"
        elif isinstance(private, ec.EllipticCurvePrivateKey):
            alg = "ES256"
        else:
            alg = "EdDSA"
    headers = {"kid": kid} if kid is not None else {}
    token = jwt.encode(payload, private, algorithm=alg, headers=headers)
    ISSUED.append(token)
    return token


def b64(data: bytes | dict[str, Any]) -> str:
    """base64url without padding, of bytes or of a JSON object."""
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token put together by hand (for headers no honest library would write)."""
    token = f"{b64(header)}.{b64(payload)}.{b64(signature)}"
    ISSUED.append(token)
    return token


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 serving a mutable key set and counting requests."""

    def __init__(self) -> None:
        self.document: Any = {"keys": []}
        self.status = 200
        self.requests = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.requests += 1
                    document, status = outer.document, outer.status
                body = document if isinstance(document, bytes) else json.dumps(document).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        self._running = True

    def publish(self, *keys: dict[str, Any]) -> None:
        """Serve a key set of ``keys`` from now on."""
        with self._lock:
            self.document = {"keys": list(keys)}

    def stop(self) -> None:
        """Shut the server down (later fetches are refused connections)."""
        if self._running:
            self._running = False
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()


@pytest.fixture
def server(keys: Keys) -> Iterator[JwksServer]:
    """A running JWKS server publishing rsa1 (RSA) and ec1 (EC P-256)."""
    srv = JwksServer()
    srv.publish(jwk(keys.rsa, "rsa1", alg="RS256"), jwk(keys.ec, "ec1"))
    yield srv
    srv.stop()


MakeVerifier = Callable[..., JwtVerifier]


@pytest.fixture
async def make_verifier(server: JwksServer) -> AsyncIterator[MakeVerifier]:
    """Verifiers on the test server (issuer and audience set), all closed after the test."""
    made: list[JwtVerifier] = []

    def make(**options: Any) -> JwtVerifier:
        options = {"jwks": server.url, "issuer": ISSUER, "audience": (AUDIENCE,), **options}
        verifier = JwtVerifier(**options)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.close()


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log line of the verifier is captured; none may quote a token or its signature."""
    ISSUED.clear()
    caplog.set_level(logging.DEBUG, logger="catalog.access.jwt")
    yield
    text = caplog.text
    for token in ISSUED:
        signature = token.rsplit(".", 1)[-1]
        assert token not in text
        assert len(signature) < 8 or signature not in text


def free_port() -> int:
    """A TCP port nothing listens on (a server that is down from the start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def refused(verifier: JwtVerifier, token: str) -> str:
    """The message of the refusal of ``token``, checked to quote no part of it."""
    with pytest.raises(UnauthenticatedError) as info:
        await verifier.verify(token)
    err = info.value
    assert err.code == "UNAUTHENTICATED"
    assert err.field == "authorization"
    assert_quotes_nothing_of(token, err.message)
    return err.message


def assert_quotes_nothing_of(token: str, message: str, shortest: int = 8) -> None:
    """``message`` contains neither ``token`` nor any of its segments (of ``shortest`` chars+)."""
    if len(token) >= shortest:
        assert token not in message
    for part in token.split("."):
        if len(part) >= shortest:
            assert part not in message


# --- valid tokens -----------------------------------------------------------------------


async def test_rsa_token_gives_the_principal_of_its_claims(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    token = sign(
        keys.rsa,
        claims(
            roles=["viewer", "editor", "offline_access"],
            groups=["team:web", "team:ops", "admins", "system:crm", "team:Bad Name"],
            scope="openid records pii profile",
        ),
    )
    principal = await verifier.verify(token)
    assert principal == Principal(
        actor="user:ada",
        role=Role.EDITOR,
        teams=frozenset({"team:web", "team:ops"}),
        rights=frozenset({Right.RECORDS, Right.PII}),
        unrestricted=False,
    )
    assert verifier.fetches == 1


async def test_ec_token_verifies_and_scp_lists_grant_rights(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    token = sign(keys.ec, claims(scope=DROP, scp=["records", "write"]), kid="ec1")
    principal = await verifier.verify(token)
    assert principal.actor == "user:ada"
    assert principal.rights == frozenset({Right.RECORDS})


async def test_eddsa_token_verifies_when_eddsa_is_configured(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier
) -> None:
    server.publish(jwk(keys.ed, "ed1"))
    verifier = make_verifier(algorithms=("EdDSA",))
    principal = await verifier.verify(sign(keys.ed, claims(roles="admin"), kid="ed1"))
    assert principal.role is Role.ADMIN


@pytest.mark.parametrize(
    ("roles_claim", "extra", "role"),
    [
        ("roles", {"roles": ["viewer", "steward"]}, Role.STEWARD),
        ("roles", {"roles": "viewer admin"}, Role.ADMIN),
        ("roles", {"roles": "viewer,editor"}, Role.EDITOR),
        ("realm_access.roles", {"realm_access": {"roles": ["uma", "Steward"]}}, Role.STEWARD),
        ("https://hub.example.com/roles", {"https://hub.example.com/roles": ["admin"]}, Role.ADMIN),
        ("roles", {"roles": ["offline_access", "uma_authorization"]}, None),
        ("roles", {"roles": DROP}, None),
        ("roles", {"roles": {"not": "a list"}}, None),
    ],
)
async def test_roles_come_from_a_list_a_string_or_a_dotted_path(
    keys: Keys,
    make_verifier: MakeVerifier,
    roles_claim: str,
    extra: dict[str, Any],
    role: Role | None,
) -> None:
    verifier = make_verifier(roles_claim=roles_claim)
    principal = await verifier.verify(sign(keys.rsa, claims(**extra)))
    assert principal.role is role
    if role is None:  # known caller, no role: not an error, but allowed nothing
        assert principal.describe() == "user:ada (no role)"


async def test_teams_and_user_come_from_the_configured_claims(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(user_claim="preferred_username", teams_claim="teams")
    token = sign(
        keys.rsa,
        claims(preferred_username="ada.l", teams="team:web, team:data nonsense", groups=DROP),
    )
    principal = await verifier.verify(token)
    assert principal.actor == "user:ada.l"
    assert principal.teams == frozenset({"team:web", "team:data"})


async def test_user_claim_is_required_and_capped(keys: Keys, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier()
    assert "'sub'" in await refused(verifier, sign(keys.rsa, claims(sub=DROP)))
    assert "'sub'" in await refused(verifier, sign(keys.rsa, claims(sub="  ")))
    assert "control" in await refused(verifier, sign(keys.rsa, claims(sub="ada\nroot")))
    principal = await verifier.verify(sign(keys.rsa, claims(sub="x" * 500)))
    assert principal.actor == "user:" + "x" * 200


async def test_token_without_kid_needs_exactly_one_key_for_its_algorithm(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    assert (await verifier.verify(sign(keys.ec, claims(), kid=None))).actor == "user:ada"
    server.publish(jwk(keys.rsa, "rsa1"), jwk(keys.rsa_other, "rsa2"))
    other = make_verifier()
    message = await refused(other, sign(keys.rsa, claims(), kid=None))
    assert "names no signing key (kid)" in message
    assert "2 keys for RS256" in message


# --- refusals -----------------------------------------------------------------------------


async def test_expired_token_is_refused(keys: Keys, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier()
    token = sign(keys.rsa, claims(exp=int(time.time()) - 120))
    assert await refused(verifier, token) == "the token has expired"


async def test_token_not_valid_yet_is_refused(keys: Keys, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier()
    token = sign(keys.rsa, claims(nbf=int(time.time()) + 120))
    assert await refused(verifier, token) == "the token is not valid yet"


async def test_leeway_lets_a_slightly_expired_token_pass(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    token = sign(keys.rsa, claims(exp=int(time.time()) - 10))
    assert (await make_verifier(leeway=30).verify(token)).actor == "user:ada"
    assert await refused(make_verifier(leeway=0), token) == "the token has expired"


async def test_signature_by_another_key_with_the_same_kid_is_refused(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    token = sign(keys.rsa_other, claims(), kid="rsa1")
    assert await refused(verifier, token) == "the token's signature does not verify"
    # a signature segment taken from another valid token does not verify either
    good = sign(keys.rsa, claims(sub="bob"))
    forged = token.rsplit(".", 1)[0] + "." + good.rsplit(".", 1)[1]
    assert await refused(verifier, forged) == "the token's signature does not verify"


async def test_audience_must_be_one_of_the_configured_ones(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(audience=("capahub", "capahub-api"))
    assert "audience is not 'capahub' or 'capahub-api'" in await refused(
        verifier, sign(keys.rsa, claims(aud="other-app"))
    )
    assert "names no audience" in await refused(verifier, sign(keys.rsa, claims(aud=DROP)))
    assert await verifier.verify(sign(keys.rsa, claims(aud=["x", "capahub-api"])))


async def test_token_naming_an_audience_is_refused_when_none_is_configured(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(audience=())
    message = await refused(verifier, sign(keys.rsa, claims(aud="capahub")))
    assert message.startswith("the token's audience is not accepted")
    assert await verifier.verify(sign(keys.rsa, claims(aud=DROP)))


async def test_issuer_is_checked_when_configured(keys: Keys, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier()
    message = await refused(verifier, sign(keys.rsa, claims(iss="https://evil.example.com")))
    assert message == f"the token's issuer is not {ISSUER!r}"
    assert "names no issuer" in await refused(verifier, sign(keys.rsa, claims(iss=DROP)))
    unchecked = make_verifier(issuer="")
    assert await unchecked.verify(sign(keys.rsa, claims(iss="https://any.example.com")))


async def test_token_without_exp_is_refused(keys: Keys, make_verifier: MakeVerifier) -> None:
    message = await refused(make_verifier(), sign(keys.rsa, claims(exp=DROP)))
    assert message == "the token has no 'exp' claim"


async def test_alg_none_is_refused(make_verifier: MakeVerifier) -> None:
    verifier = make_verifier()
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "none", "kid": "rsa1"}):
        token = handmade(header, claims())
        assert token.endswith(".")
        assert JwtVerifier.looks_like_jwt(token)
        message = await refused(verifier, token)
        assert message.startswith("the token's algorithm 'none' is not accepted")
    assert verifier.fetches == 0  # refused before any key is looked at


async def test_hs256_signed_with_the_rsa_public_key_is_refused(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    # The key-confusion attack: the public key's PEM, public knowledge, used as an HMAC secret.
    pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header, payload = {"alg": "HS256", "typ": "JWT", "kid": "rsa1"}, claims(roles=["admin"])
    signing_input = f"{b64(header)}.{b64(payload)}".encode()
    token = handmade(header, payload, hmac.new(pem, signing_input, hashlib.sha256).digest())
    message = await refused(make_verifier(), token)
    assert message.startswith("the token's algorithm 'HS256' is not accepted")


async def test_key_of_the_wrong_type_for_the_algorithm_is_refused(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    message = await refused(verifier, sign(keys.ec, claims(), kid="rsa1"))
    assert message.startswith("the signing key 'rsa1' cannot verify ES256 tokens")
    assert "needs an EC key" in message
    message = await refused(verifier, sign(keys.rsa, claims(), kid="ec1"))
    assert "needs an RSA key" in message


async def test_jwk_alg_use_and_private_parts_limit_what_a_key_verifies(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier
) -> None:
    private = RSAAlgorithm.to_jwk(keys.rsa_other, as_dict=True)
    server.publish(
        jwk(keys.rsa, "rs-only", alg="RS256"),
        jwk(keys.rsa, "any-rsa"),
        jwk(keys.ec, "enc", use="enc"),
        {**private, "kid": "leaked"},
    )
    verifier = make_verifier(algorithms=("RS256", "PS256", "ES256"))
    assert await verifier.verify(sign(keys.rsa, claims(), kid="any-rsa", alg="PS256"))
    message = await refused(verifier, sign(keys.rsa, claims(), kid="rs-only", alg="PS256"))
    assert message.endswith("it is published for 'RS256' only")
    message = await refused(verifier, sign(keys.ec, claims(), kid="enc"))
    assert "its use is 'enc'" in message
    message = await refused(verifier, sign(keys.rsa_other, claims(), kid="leaked"))
    assert "private part" in message


async def test_algorithm_outside_the_configured_list_is_refused(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(algorithms=("ES256",))
    message = await refused(verifier, sign(keys.rsa, claims()))
    assert message == "the token's algorithm 'RS256' is not accepted (this hub accepts ES256)"
    # an algorithm name that is no JOSE name is not echoed
    token = handmade({"alg": "X" * 60, "kid": "ec1"}, claims(), b"sig")
    assert await refused(verifier, token) == (
        "the token's algorithm is not accepted (this hub accepts ES256)"
    )


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "x.y.z w",
        "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        "!!!.###.$$$",
        "eyJhbGciOiJSUzI1NiJ9..c2ln",
        f"{b64(b'not json')}.{b64(claims())}.c2ln",
        f"{b64(b'[1, 2]')}.{b64(claims())}.c2ln",
        f"{b64({'alg': 'RS256', 'kid': 5})}.{b64(claims())}.c2ln",
        f"{b64({'alg': 'RS256', 'crit': ['exp']})}.{b64(claims())}.c2ln",
        "é.é.é",
    ],
)
async def test_malformed_tokens_are_refused(make_verifier: MakeVerifier, token: str) -> None:
    message = await refused(make_verifier(), token)
    assert message == "the token is not a well-formed JWT"


async def test_payload_that_is_not_json_is_malformed(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    token = jwt.PyJWS().encode(b"not json", keys.rsa, algorithm="RS256", headers={"kid": "rsa1"})
    ISSUED.append(token)
    assert await refused(make_verifier(), token) == "the token is not a well-formed JWT"


async def test_overlong_token_is_refused_without_decoding(make_verifier: MakeVerifier) -> None:
    token = "a" * 20_000 + "." + "b" * 20_000 + ".c"
    message = await refused(make_verifier(), token)
    assert message == "the token is longer than 32768 characters"


def test_looks_like_jwt_is_only_a_shape_check() -> None:
    assert JwtVerifier.looks_like_jwt("eyJh.eyJz.c2ln")
    assert JwtVerifier.looks_like_jwt("eyJh.eyJz.")
    assert JwtVerifier.looks_like_jwt("eyJh==.eyJz.c2ln")
    for not_jwt in ("", "capahub_0123456789abcdef", "a.b", "a.b.c.d", "a .b.c", ".b.c", "a..c"):
        assert not JwtVerifier.looks_like_jwt(not_jwt)


# --- the key set: rotation, rate limits, outages, files -------------------------------------


async def test_unknown_kid_refetches_the_key_set_once_and_follows_rotation(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(min_refetch=0.2)
    assert await verifier.verify(sign(keys.rsa, claims()))
    assert verifier.fetches == 1
    server.publish(jwk(keys.rsa_other, "rsa2"))  # the provider rotated: rsa1 gone, rsa2 new
    await asyncio.sleep(0.25)  # min_refetch after the first fetch
    principal = await verifier.verify(sign(keys.rsa_other, claims(sub="bob"), kid="rsa2"))
    assert principal.actor == "user:bob"
    assert verifier.fetches == 2
    assert server.requests == 2
    message = await refused(verifier, sign(keys.rsa, claims(sub="carol"), kid="rsa1"))
    assert message == "no signing key 'rsa1' is known to the identity provider's key set"
    assert verifier.fetches == 2  # within min_refetch of the last fetch: not asked again


async def test_garbage_kids_refetch_at_most_once_per_min_refetch(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(min_refetch=0.2)
    assert await verifier.verify(sign(keys.rsa, claims()))
    await asyncio.sleep(0.25)
    for kid in ("garbage-1", "garbage-2", "garbage-3"):
        message = await refused(verifier, sign(keys.rsa, claims(), kid=kid))
        assert message == f"no signing key {kid!r} is known to the identity provider's key set"
    assert verifier.fetches == 2
    assert server.requests == 2


async def test_long_kid_is_not_echoed_in_full(keys: Keys, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier()
    kid = "k" * 30 + "z" * 70
    message = await refused(verifier, sign(keys.rsa, claims(), kid=kid))
    assert kid not in message
    assert "kkkk" in message


async def test_concurrent_refetches_share_one_fetch(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(min_refetch=0)
    assert await verifier.verify(sign(keys.rsa, claims()))
    tokens = [sign(keys.rsa, claims(), kid=f"new-{i}") for i in range(8)]
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(r, UnauthenticatedError) for r in results)
    assert verifier.fetches == 2
    assert server.requests == 2


async def test_concurrent_first_requests_share_the_first_fetch(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    tokens = [sign(keys.rsa, claims(sub=f"user{i}")) for i in range(8)]
    principals = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert [p.actor for p in principals] == [f"user:user{i}" for i in range(8)]
    assert server.requests == 1


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("down", "connection"),
        ("500", "it answered http 500 internal server error"),
        ("not json", "the answer is not json"),
        ("no keys", "the answer is not a json web key set (no 'keys' list)"),
        ("only enc keys", "it holds no public key for signatures"),
        ("too big", "the answer is larger than 1000000 bytes"),
    ],
)
async def test_key_set_that_cannot_be_fetched_gives_a_clear_refusal(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier, mode: str, reason: str
) -> None:
    url = server.url
    if mode == "down":
        server.stop()
        url = f"http://127.0.0.1:{free_port()}/jwks.json"
    elif mode == "500":
        server.status = 500
    elif mode == "not json":
        server.document = b"<html>sign in</html>"
    elif mode == "no keys":
        server.document = {"issuer": ISSUER}
    elif mode == "only enc keys":
        server.publish(jwk(keys.rsa, "rsa1", use="enc"))
    else:
        server.document = b" " * 1_000_001
    verifier = make_verifier(jwks=url)
    token = sign(keys.rsa, claims())
    message = await refused(verifier, token)
    prefix = f"the identity provider's key set could not be fetched from {url}: "
    assert message.startswith(prefix)
    assert reason in message.lower()
    # asked again within min_refetch: the same answer, without hammering the provider
    assert await refused(verifier, token) == message
    assert verifier.fetches == 1


@pytest.mark.parametrize("outage", ["stopped", "500"])
async def test_old_keys_keep_verifying_when_a_refetch_fails(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier, outage: str
) -> None:
    verifier = make_verifier(refresh=0.05, min_refetch=0)
    assert await verifier.verify(sign(keys.rsa, claims()))
    if outage == "stopped":
        server.stop()
    else:
        server.status = 500
    await asyncio.sleep(0.1)  # the key set is due for its refresh now
    principal = await verifier.verify(sign(keys.ec, claims(sub="bob"), kid="ec1"))
    assert principal.actor == "user:bob"
    assert verifier.fetches == 2


async def test_key_set_can_be_read_from_a_file(keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(keys.ec, "ec1")]}))
    verifier = JwtVerifier(jwks=str(path), issuer=ISSUER, audience=[AUDIENCE])
    missing = JwtVerifier(jwks=str(tmp_path / "nope.json"))
    try:
        assert await verifier.verify(sign(keys.ec, claims(), kid="ec1"))
        message = await refused(missing, sign(keys.ec, claims(aud=DROP), kid="ec1"))
        assert message == (
            f"the identity provider's key set could not be read from {tmp_path / 'nope.json'}: "
            "No such file or directory"
        )
    finally:
        await verifier.close()
        await missing.close()


# --- the cache of verified tokens -------------------------------------------------------


async def test_cache_hit_does_no_key_work(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(min_refetch=0)
    token = sign(keys.rsa, claims())
    first = await verifier.verify(token)
    server.publish(jwk(keys.ec, "ec1"))  # rsa1 withdrawn at the provider
    await refused(verifier, sign(keys.rsa, claims(), kid="other"))  # refetch: rsa1 is gone
    assert verifier.fetches == 2
    assert await verifier.verify(token) is first  # cached: no key lookup, no refetch
    assert verifier.fetches == 2
    # a token the cache does not know needs rsa1, which the verifier no longer has
    assert "no signing key 'rsa1'" in await refused(verifier, sign(keys.rsa, claims(sub="x")))


async def test_cached_token_is_refused_once_it_expires(
    keys: Keys, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(leeway=0)
    exp = int(time.time()) + 2
    token = sign(keys.rsa, claims(exp=exp))
    assert await verifier.verify(token)
    await asyncio.sleep(exp - time.time() + 0.05)
    assert await refused(verifier, token) == "the token has expired"


async def test_cached_token_is_checked_again_when_the_key_set_is_refreshed(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(refresh=0.2, min_refetch=0)
    token = sign(keys.rsa, claims())
    assert await verifier.verify(token)
    server.publish(jwk(keys.ec, "ec1"))  # rsa1 withdrawn, e.g. because it leaked
    await asyncio.sleep(0.25)
    assert "no signing key 'rsa1'" in await refused(verifier, token)
    assert verifier.fetches == 2


async def test_token_accepted_within_the_leeway_is_not_cached(
    keys: Keys, server: JwksServer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(leeway=30, min_refetch=0)
    token = sign(keys.rsa, claims(exp=int(time.time()) - 5))
    assert await verifier.verify(token)
    server.publish(jwk(keys.ec, "ec1"))
    await refused(verifier, sign(keys.rsa, claims(), kid="other"))  # refetch: rsa1 is gone
    # past exp, the token was not cached: it goes back to the keys, and rsa1 is gone
    assert "no signing key 'rsa1'" in await refused(verifier, token)


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithms", "complaint"),
    [
        ((), "no JWT algorithm is configured"),
        (("none",), "'none' is never accepted"),
        (("RS256", "NONE"), "'NONE' is never accepted"),
        (("HS256",), "'HS256' is never accepted"),
        (("ES256", "hs512"), "'hs512' is never accepted"),
        (("RS256", "ES256K"), "unknown JWT algorithm 'ES256K'"),
    ],
)
def test_configuration_refuses_unsafe_algorithms(
    algorithms: tuple[str, ...], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        JwtVerifier(jwks="https://idp.example.com/jwks", algorithms=algorithms)


def test_configuration_refuses_other_jwks_schemes() -> None:
    with pytest.raises(ValueError, match="neither http"):
        JwtVerifier(jwks="ftp://idp.example.com/jwks")
    with pytest.raises(ValueError, match="empty"):
        JwtVerifier(jwks=" ")


async def test_from_settings_reads_the_auth_settings(keys: Keys, server: JwksServer) -> None:
    base: dict[str, Any] = {"_env_file": None}
    assert JwtVerifier.from_settings(Settings(**base)) is None
    with pytest.raises(ValueError, match="'HS256' is never accepted"):
        JwtVerifier.from_settings(
            Settings(**base, auth_jwks_url=server.url, auth_algorithms="RS256,HS256")
        )
    verifier = JwtVerifier.from_settings(
        Settings(
            **base,
            auth_jwks_url=server.url,
            auth_issuer=ISSUER,
            auth_audience="capahub, capahub-api",
            auth_algorithms="ES256",
            auth_roles_claim="realm_access.roles",
            auth_teams_claim="teams",
            auth_user_claim="email",
        )
    )
    assert verifier is not None
    try:
        token = sign(
            keys.ec,
            claims(
                aud="capahub-api",
                email="ada@example.com",
                realm_access={"roles": ["steward"]},
                teams=["team:data"],
            ),
            kid="ec1",
        )
        principal = await verifier.verify(token)
        assert (principal.actor, principal.role) == ("user:ada@example.com", Role.STEWARD)
        assert principal.teams == frozenset({"team:data"})
        assert "'RS256' is not accepted" in await refused(verifier, sign(keys.rsa, claims()))
    finally:
        await verifier.close()


# --- only UNAUTHENTICATED escapes, whatever is sent ----------------------------------------

FUZZ = settings(max_examples=250, deadline=None, database=None)
SEGMENT = st.binary(max_size=80).map(lambda b: b64(b))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
HEADERS = st.fixed_dictionaries(
    {"alg": st.sampled_from(["RS256", "ES256", "none", "HS256", "EdDSA", "PS256", ""]) | JSON},
    optional={"kid": st.sampled_from(["rsa1", "ec1"]) | JSON, "crit": JSON, "b64": JSON},
)
CLAIMS = st.fixed_dictionaries(
    {},
    optional={
        name: JSON | st.integers(min_value=0, max_value=2**40)
        for name in ("sub", "exp", "nbf", "iat", "iss", "aud", "roles", "groups", "scope", "scp")
    },
)


def fuzz(keys: Keys, tmp_path: Path, check: Callable[[asyncio.Runner, JwtVerifier], None]) -> None:
    """Run ``check`` with a verifier reading the key set from a file, in one event loop."""
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(keys.rsa, "rsa1"), jwk(keys.ec, "ec1")]}))
    with asyncio.Runner() as runner:
        verifier = JwtVerifier(jwks=str(path), issuer=ISSUER, audience=[AUDIENCE])
        try:
            check(runner, verifier)
        finally:
            runner.run(verifier.close())


def only_unauthenticated(runner: asyncio.Runner, verifier: JwtVerifier, token: str) -> None:
    try:
        principal = runner.run(verifier.verify(token))
    except UnauthenticatedError as err:
        assert err.field == "authorization"
        assert_quotes_nothing_of(token, err.message, shortest=16)
    else:
        assert principal.actor.startswith("user:")
        assert not principal.unrestricted


def test_arbitrary_text_only_ever_raises_unauthenticated(keys: Keys, tmp_path: Path) -> None:
    def check(runner: asyncio.Runner, verifier: JwtVerifier) -> None:
        @FUZZ
        @given(st.text(max_size=200) | st.lists(SEGMENT, max_size=5).map(".".join))
        def run(token: str) -> None:
            only_unauthenticated(runner, verifier, token)

        run()

    fuzz(keys, tmp_path, check)


def test_arbitrary_headers_and_payloads_only_raise_unauthenticated(
    keys: Keys, tmp_path: Path
) -> None:
    def check(runner: asyncio.Runner, verifier: JwtVerifier) -> None:
        @FUZZ
        @given(HEADERS, JSON | CLAIMS, SEGMENT)
        def run(header: dict[str, Any], payload: Any, signature: str) -> None:
            token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."
            only_unauthenticated(runner, verifier, token + signature)

        run()

    fuzz(keys, tmp_path, check)


def test_signed_arbitrary_claims_only_raise_unauthenticated(keys: Keys, tmp_path: Path) -> None:
    signer = jwt.PyJWS()

    def check(runner: asyncio.Runner, verifier: JwtVerifier) -> None:
        @FUZZ
        @given(JSON | CLAIMS, st.booleans())
        def run(payload: Any, valid_base: bool) -> None:
            if valid_base and isinstance(payload, dict):
                payload = {**claims(), **payload}
            body = json.dumps(payload).encode()
            token = signer.encode(body, keys.ec, algorithm="ES256", headers={"kid": "ec1"})
            only_unauthenticated(runner, verifier, token)

        run()

    fuzz(keys, tmp_path, check)

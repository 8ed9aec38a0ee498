"""CPU per ``node(id)`` request through the real ASGI app, access control off and on.

Complements ``auth_bench.py``: there wrk and the server share the machine's two cores, so
machine noise moves req/s by more than the 10 % the issue allows. Here the hub's own ASGI app
(demo loaded, real SQLite file) is driven in-process, request after request, and the process
CPU time per request is measured (best of 5 runs of 3,000 requests, after 500 warm-up ones).
Auth on sends a viewer hub token; ``--jwt`` adds a run with an RS256 JWT verified against a
JWKS file. Configurations alternate (off, on, off, on, ...) for ``--rounds`` rounds.

    .venv/bin/python bench/auth_cpu_bench.py [--rounds 3] [--jwt]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from catalog.app import create_app
from catalog.settings import Settings

BODY = json.dumps({"query": '{ node(id: "system:crm") { id name } }'}).encode()
ISSUER, AUDIENCE = "https://idp.bench.invalid", "capahub"


def _jwt_setup(directory: Path) -> tuple[str, str]:
    """A JWKS file and an RS256 JWT (viewer) it verifies."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path = directory / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k", "use": "sig", "alg": "RS256"}]}))
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "exp": int(time.time()) + 3600}
    token = jwt.encode({**claims, "roles": ["viewer"]}, key, "RS256", headers={"kid": "k"})
    return str(path), token


async def _measure(mode: str, directory: Path, jwks: str, jwt_token: str) -> float:
    settings = Settings(
        database_url=f"sqlite:///{directory / f'{mode}.db'}",
        demo_data_dir=str(directory / "demo"),
        auth="off" if mode == "off" else "on",
        auth_jwks_url=jwks,
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        _env_file=None,  # type: ignore[call-arg]
    )
    app: Any = create_app(settings, demo=True)
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await events.put({"type": "lifespan.startup"})
    answers: list[dict[str, Any]] = []

    async def lifespan_send(message: dict[str, Any]) -> None:
        answers.append(message)

    lifespan = asyncio.create_task(
        app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, events.get, lifespan_send
        )
    )
    while not answers:
        await asyncio.sleep(0.05)
    headers = [(b"content-type", b"application/json"), (b"host", b"127.0.0.1")]
    if mode == "token":
        _, text = await app.state.services.tokens.create("bench", "viewer", created_by="bench")
        headers.append((b"authorization", f"Bearer {text}".encode()))
    elif mode == "jwt":
        headers.append((b"authorization", f"Bearer {jwt_token}".encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip

    async def one() -> list[dict[str, Any]]:
        pending = [{"type": "http.request", "body": BODY, "more_body": False}]
        out: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return pending.pop() if pending else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            out.append(message)

        await app(dict(scope), receive, send)
        return out

    first = await one()
    assert first[0]["status"] == 200 and b'"CRM"' in first[1]["body"], first
    for _ in range(500):
        await one()
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(3_000):
            await one()
        best = min(best, (time.process_time() - start) / 3_000)
    await events.put({"type": "lifespan.shutdown"})
    await lifespan
    return best * 1e6


def main() -> None:
    """Run the rounds and print the per-request CPU and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of off, token[, jwt]")
    parser.add_argument("--jwt", action="store_true", help="also measure an RS256 JWT")
    args = parser.parse_args()
    modes = ["off", "token", *(["jwt"] if args.jwt else [])]
    got: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="capahub-auth-cpu-") as name:
        directory = Path(name)
        jwks, token = _jwt_setup(directory)
        for r in range(args.rounds):
            for mode in modes:
                us = asyncio.run(_measure(mode, directory / f"{mode}{r}", jwks, token))
                got[mode].append(us)
                print(f"round {r + 1} {mode:5} {us:6.1f} µs CPU per request", flush=True)
    base = statistics.median(got["off"])
    for mode in modes:
        med = statistics.median(got[mode])
        print(f"{mode:5} median {med:6.1f} µs  = {base / med:6.1%} of auth off's throughput")


if __name__ == "__main__":
    main()

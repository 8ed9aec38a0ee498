"""Throughput of ``node(id)`` under ``wrk`` with access control off, and on with a hub token or a JWT.

The issue's number: with ``CAPAHUB_AUTH=on`` and a valid token, ``node(id)`` throughput stays
within 10 % of auth off. Three configurations of one ``capahub serve --demo`` worker on
127.0.0.1, each POSTing ``{ node(id: "system:crm") { id name } }`` under the same
``wrk -t2 -c20 -d15s --latency`` as ``load_bench.py``, with the access log on (the default):

- ``off``: ``CAPAHUB_AUTH=off``, no ``Authorization`` header;
- ``token``: ``CAPAHUB_AUTH=on``, ``Authorization: Bearer chub_...``, a hub token with the
  viewer role made with ``capahub token create`` (verified ones are cached for
  ``CAPAHUB_SYNC_INTERVAL``, 1 s);
- ``jwt``: ``CAPAHUB_AUTH=on``, an RS256 JWT (``roles: [viewer]``) signed with an RSA 2048 key
  made here, its JWKS read from a file (no JWKS server competes for the CPU; verified JWTs are
  cached until ``exp``, at most ``CAPAHUB_AUTH_JWKS_REFRESH``, 300 s).

Both auth-on servers run with the same settings (the JWKS, issuer and audience set); only the
token sent differs. The configurations run interleaved, ``off, token, jwt, off, token, jwt,
...`` for ``--rounds`` rounds, each on a freshly started server, so that the machine's noise
shows in the spread. Before each timed run the body is sent once, with its header, and must
come back 200 with the node (and, with auth on, without the header 401). Reports per
configuration the median, min and max req/s, latency and server CPU per request, the ratio of
each auth-on median to the auth-off median, the ratios within each round, and the verdict.
wrk runs on the same machine as the server: on 2 cores they share the CPU.

Needs wrk (Debian: ``apt-get install -y wrk``). Exits 1 when an auth-on median is more than
10 % below the auth-off median, or wrk saw socket errors or non-2xx answers.

    .venv/bin/python bench/auth_bench.py [--rounds 3] [--duration 15] [--connections 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import orjson
from _util import CAPAHUB, code_note, cpu_seconds, machine_note, running_server
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from load_bench import WrkResult, parse_wrk

#: The issue's target: an auth-on median at least this share of the auth-off median.
TARGET_RATIO = 0.90
NODE = "system:crm"
QUERY = f'{{ node(id: "{NODE}") {{ id name }} }}'
ISSUER = "https://idp.bench.invalid/realms/capahub"
AUDIENCE = "capahub"
KID = "bench-rsa-1"

#: wrk Lua, as load_bench.py's (a request() that formats the POST each time) with the
#: Authorization header when there is one.
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{auth}local body = [==[{body}]==]
request = function()
  return wrk.format(nil, nil, nil, body)
end
"""

CONFIGS = ("off", "token", "jwt")
LABELS = {
    "off": "auth off",
    "token": "auth on, hub token (viewer)",
    "jwt": "auth on, RS256 JWT (viewer)",
}


@dataclass
class Setup:
    """What the runs share: the catalog, the two tokens and the servers' environments."""

    database: str
    tokens: dict[str, str | None]  # config -> the bearer token it sends (None: no header)
    env: dict[str, dict[str, str]]  # config -> environment of its server


def hub_token(database: str, name: str) -> str:
    """A viewer hub token: ``capahub token create`` (the token alone on its last line)."""
    cmd = [str(CAPAHUB), "token", "create", "--name", name, "--role", "viewer"]
    done = subprocess.run(
        [*cmd, "--database", database],
        capture_output=True,
        text=True,
        env={**os.environ, "CAPAHUB_AUTH": "off"},
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("chub_"):
        raise RuntimeError(f"capahub token create failed ({done.returncode}): {done.stderr}")
    return lines[-1].strip()


def signed_jwt(directory: Path, lifetime: int) -> tuple[str, Path]:
    """An RS256 access token for ``user:bench`` with the viewer role, and its JWKS file."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks = directory / "jwks.json"
    jwks.write_text(
        json.dumps({"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}),
        encoding="utf-8",
    )
    now = int(time.time())
    claims = {
        "sub": "bench",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + lifetime,
        "roles": ["viewer"],
        "scope": "openid",
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID}), jwks


def prepare(directory: Path, access_log: bool, lifetime: int) -> Setup:
    """The catalog file, a hub token and a JWT, and each configuration's environment."""
    database = f"sqlite:///{directory / 'catalog.db'}"
    token = hub_token(database, "bench-viewer")
    signed, jwks = signed_jwt(directory, lifetime)
    common = {
        "CAPAHUB_ACCESS_LOG": "true" if access_log else "false",
        "CAPAHUB_LOG_LEVEL": "info",
    }
    on = {
        **common,
        "CAPAHUB_AUTH": "on",
        "CAPAHUB_AUTH_JWKS_URL": str(jwks),
        "CAPAHUB_AUTH_ISSUER": ISSUER,
        "CAPAHUB_AUTH_AUDIENCE": AUDIENCE,
        "CAPAHUB_AUTH_ANONYMOUS_ROLE": "",
    }
    return Setup(
        database=database,
        tokens={"off": None, "token": token, "jwt": signed},
        env={"off": {**common, "CAPAHUB_AUTH": "off"}, "token": on, "jwt": on},
    )


@contextlib.contextmanager
def demo_server(
    database: str, env: dict[str, str], log: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``capahub serve --demo`` (one worker) until /healthz answers; stopped afterwards.
    Settings come from ``env`` over a clean CAPAHUB_* slate."""
    with running_server(database, log=log, env=env, args=("--demo",), clean_env=True) as server:
        yield server.url, server.process


def check(url: str, body: bytes, token: str | None) -> None:
    """The body once, with its header: 200 and the node. With auth on, without it: 401."""
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=30) as client:
        if token is not None:
            refused = client.post("/graphql", content=body, headers=headers)
            if refused.status_code != 401:
                raise RuntimeError(f"auth is not on: no token got {refused.status_code}")
            headers["authorization"] = f"Bearer {token}"
        answer = client.post("/graphql", content=body, headers=headers)
    if answer.status_code != 200:
        raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")
    data = answer.json()
    if "errors" in data or (data.get("data") or {}).get("node", {}).get("id") != NODE:
        raise RuntimeError(f"unexpected answer: {answer.text[:300]}")


def run_wrk(url: str, body: bytes, token: str | None, lua: Path, args: argparse.Namespace) -> str:
    """wrk's output for POSTs of ``body`` (with ``Authorization: Bearer token`` if given)."""
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    lua.write_text(LUA.format(auth=auth, body=body.decode()), encoding="utf-8")
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s"]
    cmd += [f"--timeout={args.timeout}s", "--latency", "-s", str(lua), f"{url}/graphql"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def measure(
    config: str, setup: Setup, tmp: Path, args: argparse.Namespace
) -> tuple[WrkResult, float]:
    """One timed run of ``config`` on a fresh server; its wrk result and load average after."""
    body = orjson.dumps({"query": QUERY})
    token = setup.tokens[config]
    with demo_server(setup.database, setup.env[config], tmp / "serve.log") as (url, proc):
        check(url, body, token)
        cpu0 = cpu_seconds(proc.pid)
        out = run_wrk(url, body, token, tmp / "post.lua", args)
        cpu = cpu_seconds(proc.pid) - cpu0
        # Still answering as it should after the run (a 1 s token cache expired in between).
        check(url, body, token)
    result = parse_wrk(out)
    result.cpu_ms = cpu * 1000 / max(1, result.requests)
    return result, os.getloadavg()[0]


def _ms(value: str) -> float:
    """wrk's latency text (``812.00us``, ``5.80ms``, ``1.20s``) in milliseconds."""
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("m", 60_000.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float("nan")


def _median_of(results: list[WrkResult], key: str) -> float:
    return statistics.median(_ms(r.latency.get(key, "nan")) for r in results)


def main(argv: list[str] | None = None) -> None:
    """Run the configurations interleaved, print the table and the verdict."""
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="A run takes about rounds x configurations x (duration + 3) seconds "
        "(3 x 3 x 18 s, under 3 minutes, by default).",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of off, token, jwt, one after the other, each on a fresh server (3)",
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run (15)")
    parser.add_argument(
        "--connections", type=int, default=20, help="wrk connections, kept open (20)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="wrk threads (2; the machine has 2 cores)"
    )
    parser.add_argument(
        "--timeout", type=int, default=30, help="wrk request timeout, s (30: slow answers count)"
    )
    parser.add_argument(
        "--only",
        default=",".join(CONFIGS),
        help="comma-separated configurations to run, of off, token, jwt (all three)",
    )
    parser.add_argument(
        "--no-access-log", action="store_true", help="serve with CAPAHUB_ACCESS_LOG=false"
    )
    parser.add_argument("--raw", action="store_true", help="also print wrk's own output")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.only.split(",") if c.strip()]
    if not configs or any(c not in CONFIGS for c in configs):
        parser.error(f"--only: name some of {', '.join(CONFIGS)}")
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get update && apt-get install -y wrk")

    access_log = not args.no_access_log
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --timeout={args.timeout}s"
        f" --latency; POST {QUERY}; {args.rounds} rounds of {', '.join(configs)}"
    )
    print(f"access log: {'on (the default)' if access_log else 'off (CAPAHUB_ACCESS_LOG=false)'}")
    print(f"machine: {machine_note()}; {code_note()}")
    results: dict[str, list[WrkResult]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="capahub-auth-bench-") as name:
        tmp = Path(name)
        # The JWT must outlive the run (a verified one is cached until exp).
        lifetime = 3600 + args.rounds * len(configs) * (args.duration + 30)
        setup = prepare(tmp, access_log, lifetime)
        for round_no in range(1, args.rounds + 1):
            for config in configs:
                result, load = measure(config, setup, tmp, args)
                results[config].append(result)
                print(
                    f"  round {round_no} {config:<6} {result.rps:>7.0f} req/s  "
                    f"p50 {result.latency.get('50%', '?'):>8}  p99 {result.latency.get('99%', '?'):>8}"
                    f"  CPU {result.cpu_ms:.3f} ms/req  errors: {result.errors}  load {load:.2f}",
                    flush=True,
                )
                if args.raw:
                    print(result.raw)
    print(f"machine: {machine_note()}")

    print(
        f"\n{'configuration':<30}{'median':>8}{'min':>8}{'max':>8}{'spread':>8}"
        f"{'p50':>8}{'p99':>8}{'CPU/req':>10}{'ratio':>8}"
    )
    medians = {c: statistics.median(r.rps for r in rs) for c, rs in results.items()}
    base = medians.get("off")
    for config, rs in results.items():
        rps = [r.rps for r in rs]
        spread = (max(rps) - min(rps)) / medians[config]
        shown = f"{medians[config] / base:.3f}" if base else "-"
        cpu = statistics.median(r.cpu_ms for r in rs)
        print(
            f"{LABELS[config]:<30}{medians[config]:>8.0f}{min(rps):>8.0f}{max(rps):>8.0f}"
            f"{spread:>8.1%}{_median_of(rs, '50%'):>6.2f}ms{_median_of(rs, '99%'):>6.2f}ms"
            f"{cpu:>8.3f}ms{shown:>8}"
        )
    print("(req/s over the rounds; spread = (max - min) / median; p50, p99, CPU: medians)")
    errors = [f"{c}: {r.errors}" for c, rs in results.items() for r in rs if r.errors != "none"]
    if errors:
        print("wrk errors: " + "; ".join(errors))
    if base is None:
        return
    missed = False
    for config in configs:
        if config == "off":
            continue
        per_round = [
            on.rps / off.rps for on, off in zip(results[config], results["off"], strict=True)
        ]
        ratio = medians[config] / base
        ok = ratio >= TARGET_RATIO
        missed |= not ok
        print(
            f"{LABELS[config]}: {ratio:.1%} of auth off (median / median; within each round "
            f"{', '.join(f'{r:.1%}' for r in per_round)}): "
            f"{'OK' if ok else 'MISSED'} (target >= {TARGET_RATIO:.0%})"
        )
    if missed or errors:
        sys.exit(1)


if __name__ == "__main__":
    main()

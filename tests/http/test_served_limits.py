"""Hostile requests against a real ``capahub serve`` (uvicorn, one process): each is answered
with a coded error, fast, and /healthz answers right after; the process does not grow.

Limits here are small (1 MB bodies, 5 kB answers, a 2 s budget) so that every case runs in a
moment; the defaults differ only in size (docs/limits.md).
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving import Served, capahub_serve

LIMITS = {
    "CAPAHUB_MAX_BODY_BYTES": "1000000",
    "CAPAHUB_MAX_RESPONSE_BYTES": "5000",
    "CAPAHUB_REQUEST_TIMEOUT": "2",
}
JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}
APPLY = "mutation($d: String!) { applyCatalog(document: $d) { added } }"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One ``capahub serve`` with the default host names and small limits."""
    tmp = tmp_path_factory.mktemp("served-limits")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPAHUB_")}
    env.update(LIMITS)
    database = f"sqlite:///{tmp / 'c.db'}"
    with capahub_serve(tmp, "--database", database, env=env) as server:
        yield server


@pytest.fixture(scope="module")
def start_rss(served: Served) -> int:
    """The server's resident memory before the hostile requests, in kB."""
    return rss_kb(served)


def rss_kb(served: Served) -> int:
    status = Path(f"/proc/{served.process.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


def host_port(served: Served) -> tuple[str, int]:
    host, port = served.base.removeprefix("http://").split(":")
    return host, int(port)


def healthy(served: Served) -> None:
    """/healthz answers at once."""
    started = time.perf_counter()
    resp = httpx.get(f"{served.base}/healthz", timeout=5, trust_env=False)
    assert resp.status_code == 200 and resp.json()["status"] == "ok"
    assert time.perf_counter() - started < 1


def coded(body: bytes, code: str) -> dict[str, Any]:
    """The first error of a GraphQL-shaped body, which must carry ``code``."""
    error: dict[str, Any] = json.loads(body)["errors"][0]
    assert error["extensions"]["code"] == code, error
    return error


def raw_exchange(served: Served, head: bytes, body_parts: Iterator[bytes]) -> tuple[bytes, int]:
    """Send ``head`` and then body parts until the server answers (or closes); returns the
    answer (read until the server closes the connection) and how many body bytes went out
    before it came."""
    sent = 0
    with socket.create_connection(host_port(served), timeout=10) as sock:
        sock.sendall(head)
        for part in body_parts:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(part)
        answer = b""
        sock.settimeout(10)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


def http_response(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    if headers.get("transfer-encoding") == "chunked":
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    return int(lines[0].split()[1]), headers, body


def post(served: Served, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{served.base}/graphql",
        content=content,
        headers={**JSON_HEADERS, **(headers or {})},
        timeout=30,
        trust_env=False,
    )


def test_a_declared_100_mb_body_is_413_before_it_is_read(served: Served, start_rss: int) -> None:
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000000\r\n\r\n"
    )
    started = time.perf_counter()
    answer, sent = raw_exchange(served, head, iter([b"[" * 65536] * 1600))
    elapsed = time.perf_counter() - started
    status, headers, body = http_response(answer)
    assert status == 413 and headers["connection"] == "close"
    assert "CAPAHUB_MAX_BODY_BYTES" in coded(body, "BAD_USER_INPUT")["message"]
    assert sent < 20_000_000 and elapsed < 2
    print(f"\n413 (declared 100 MB): {elapsed * 1000:.0f} ms, {sent:,} body bytes sent")
    healthy(served)


def test_a_streamed_body_is_413_soon_after_it_passes_the_limit(served: Served) -> None:
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"10000\r\n" + b"a" * 65536 + b"\r\n"
    started = time.perf_counter()
    answer, sent = raw_exchange(served, head, iter([b'5\r\n{"a":\r\n'] + [chunk] * 1600))
    elapsed = time.perf_counter() - started
    status, _, body = http_response(answer)
    assert status == 413
    coded(body, "BAD_USER_INPUT")
    assert sent < 20_000_000 and elapsed < 2  # of the 100 MB it would have sent
    print(f"\n413 (chunked, 100 MB offered): {elapsed * 1000:.0f} ms, {sent:,} bytes sent")
    healthy(served)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("not UTF-8", b'{"query": "{ __typename \xff\xfe }"}', "not UTF-8"),
        ("nested 400,000 deep", b"[" * 400_000 + b"]" * 400_000, "nested deeper than 64"),
        (
            "variables nested 100,000 deep",
            b'{"query": "{ __typename }", "variables": {"v": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}}",
            "nested deeper than 64",
        ),
        (
            "a 5,000-digit integer",
            b'{"query": "{ __typename }", "variables": {"n": ' + b"9" * 5000 + b"}}",
            "4,300 digits",
        ),
    ],
)
def test_a_body_that_cannot_be_read_is_400(
    served: Served, name: str, content: bytes, message: str
) -> None:
    started = time.perf_counter()
    resp = post(served, content)
    elapsed = time.perf_counter() - started
    assert resp.status_code == 400
    assert message in coded(resp.content, "BAD_USER_INPUT")["message"]
    assert elapsed < 1
    print(f"\n400 ({name}): {elapsed * 1000:.0f} ms")
    healthy(served)


def test_a_yaml_bomb_is_refused_in_milliseconds(served: Served) -> None:
    lines = ["nodes:", "  - id: system:x", "    name: X", "    properties:"]
    lines.append(f"      a0: &a0 [{', '.join(['lol'] * 9)}]")
    lines += [f"      a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    document = "\n".join(lines) + "\n"  # 9**9 strings in some 600 bytes
    started = time.perf_counter()
    resp = post(served, json.dumps({"query": APPLY, "variables": {"d": document}}).encode())
    elapsed = time.perf_counter() - started
    error = coded(resp.content, "BAD_USER_INPUT")
    assert "expands to more than 1,000,000 items at line 11" in error["message"]
    assert elapsed < 1
    print(f"\nYAML bomb ({len(document)} bytes): {elapsed * 1000:.0f} ms")
    healthy(served)


def test_an_answer_over_the_limit_is_a_coded_error(served: Served) -> None:
    query = "{ __schema { types { name fields { name args { name } } } } }"
    resp = post(served, json.dumps({"query": query}).encode())
    body = resp.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["maxResponseBytes"] == 5_000
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    healthy(served)


def test_a_body_sent_too_slowly_is_stopped_at_the_time_budget(served: Served) -> None:
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"query": "{ __'
    )
    started = time.perf_counter()
    answer, _ = raw_exchange(served, head, iter([]))
    elapsed = time.perf_counter() - started  # the answer closes the connection
    status, headers, body = http_response(answer)
    assert status == 503 and headers["connection"] == "close"
    assert "CAPAHUB_REQUEST_TIMEOUT" in coded(body, "UNAVAILABLE")["message"]
    assert 1.5 < elapsed < 4
    print(f"\n503 (body never finished, 2 s budget): {elapsed * 1000:.0f} ms")
    healthy(served)


def test_a_rebound_host_name_is_refused(served: Served) -> None:
    _, port = host_port(served)
    started = time.perf_counter()
    for path in ("/graphql", "/healthz"):
        resp = httpx.get(
            f"{served.base}{path}",
            params={"query": "{ __typename }"},
            headers={"host": f"rebound.example:{port}"},
            trust_env=False,
        )
        assert resp.status_code == 400
        assert "CAPAHUB_ALLOWED_HOSTS" in coded(resp.content, "BAD_USER_INPUT")["message"]
    elapsed = time.perf_counter() - started
    print(f"\n400 (Host rebound.example, twice): {elapsed * 1000:.0f} ms")
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        resp = post(served, b'{"query": "{ __typename }"}', {"host": host})
        assert resp.json()["data"] == {"__typename": "Query"}
    healthy(served)


def test_the_server_did_not_grow(served: Served, start_rss: int) -> None:
    grown = rss_kb(served) - start_rss
    print(f"\nRSS grew by {grown / 1024:.1f} MB over the hostile requests")
    assert grown < 150 * 1024

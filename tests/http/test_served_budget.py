"""The cost budget against a real ``capahub serve``, on the real clock, from two addresses of
the loopback network: one caller runs out of points and is answered 429 with ``Retry-After``
(at the door, before its body is read, once it cannot pay for the body), the other is not
affected, and after ``retryAfter`` seconds the first is admitted again.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.http.test_served_limits import coded, host_port, http_response
from tests.serving import Served, capahub_serve

#: 20 points a second.
PER_MINUTE = 1_200
#: Costs 1 + 2 x 20 = 41.
NODES = "{ nodes(first: 20) { edges { node { id } } } }"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One ``capahub serve`` with a budget of 1,200 points a minute."""
    tmp = tmp_path_factory.mktemp("served-budget")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPAHUB_")}
    env["CAPAHUB_COST_PER_MINUTE"] = str(PER_MINUTE)
    with capahub_serve(tmp, "--database", f"sqlite:///{tmp / 'c.db'}", env=env) as server:
        yield server


def client(address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (any 127/8 address reaches loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(transport=transport, timeout=30, trust_env=False)


def test_a_caller_out_of_points_gets_429_and_another_does_not(served: Served) -> None:
    url = f"{served.base}/graphql"
    with client("127.0.0.2") as greedy, client("127.0.0.1") as other:
        refused = None
        for _ in range(100):  # 1,200 points and 20 a second: some 35 of them at most
            resp = greedy.post(url, json={"query": NODES})
            if resp.status_code != 200:
                refused = resp
                break
            assert resp.json()["extensions"]["cost"] == 41
        assert refused is not None, "never refused"
        assert refused.status_code == 429
        error = coded(refused.content, "RATE_LIMITED")
        numbers = error["extensions"]
        assert numbers["cost"] == 41 and numbers["remaining"] < 41
        assert numbers["costPerMinute"] == PER_MINUTE
        assert 1 <= numbers["retryAfter"] <= 3
        assert refused.headers["retry-after"] == str(numbers["retryAfter"])
        assert "data" not in refused.json()

        # another address is another caller: its bucket is full
        assert other.post(url, json={"query": NODES}).status_code == 200

        # a body the bucket cannot pay for (100 points) is refused before it is read
        head = (
            b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.2", 0))
            sock.settimeout(10)
            sock.connect(host_port(served))
            started = time.perf_counter()
            sock.sendall(head)  # and not one byte of the body
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            elapsed = time.perf_counter() - started
        status, headers, body = http_response(answer)
        assert status == 429 and headers["connection"] == "close", answer
        assert int(headers["retry-after"]) >= 1
        assert json.loads(body)["errors"][0]["extensions"]["cost"] == 100
        assert elapsed < 1

        # the bucket refills: after retryAfter seconds the request is admitted
        time.sleep(numbers["retryAfter"])
        assert greedy.post(url, json={"query": NODES}).status_code == 200

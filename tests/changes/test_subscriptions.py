"""``catalogChanged`` over graphql-transport-ws against a real ``capahub serve`` (SQLite file):
this process's mutations, ``capahub apply`` in another process, resume with ``after``,
filters, bounds and hostile input."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.changes.ws import (
    acked,
    cli,
    closed,
    events,
    quiet,
    recv,
    serve_env,
    subscribe,
    upsert,
    write_catalog,
    ws_url,
)
from tests.serving import Served, capahub_serve


@pytest.fixture
def served(tmp_path: Path) -> object:
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    with capahub_serve(tmp_path, env=serve_env(db, subscription_init_timeout="2")) as s:
        s.db = db  # type: ignore[attr-defined]
        yield s


async def test_events_from_this_process_and_from_capahub_apply_in_order_once(
    served: Served, tmp_path: Path
) -> None:
    ws = await acked(served.base)
    await subscribe(ws, "all")
    await subscribe(ws, "systems", kinds=["SYSTEM"])
    await subscribe(ws, "crm", ids=["system:crm"])
    await subscribe(ws, "provides", types=["PROVIDES"])
    await asyncio.sleep(0.3)  # the subscriptions are registered before anything is written
    upsert(served.base, "system:crm", "CRM")
    upsert(served.base, "capability:order.change", "Change order")
    doc = write_catalog(
        tmp_path / "more.json",
        [("system:erp", "ERP"), ("system:crm", "CRM 2")],
        [("system:crm", "PROVIDES", "capability:order.change")],
    )
    cli("apply", str(doc), "--database", served.db, "--as", "local:tester")  # type: ignore[attr-defined]
    got = await events(ws, 5 + 4 + 3 + 1, timeout=20)
    by_op: dict[str, list[dict[str, Any]]] = {}
    for event in got:
        by_op.setdefault(str(event["_op"]), []).append(event)
    everything = by_op["all"]
    versions = [e["version"] for e in everything]
    assert versions == sorted(versions) and len(set(versions)) == len(versions) == 5
    pairs = [(e["operation"], e["targetId"]) for e in everything]
    assert pairs[:2] == [("CREATE", "system:crm"), ("CREATE", "capability:order.change")]
    assert sorted(pairs[2:]) == [
        ("CREATE", "system:crm|PROVIDES|capability:order.change"),
        ("CREATE", "system:erp"),
        ("UPDATE", "system:crm"),
    ]
    assert everything[0]["actor"] == "anonymous" and everything[-1]["actor"] == "local:tester"
    assert everything[0]["kind"] == "SYSTEM" and everything[0]["before"] is None
    assert {e["targetId"] for e in by_op["systems"]} == {
        "system:crm",
        "system:erp",
        "system:crm|PROVIDES|capability:order.change",
    }
    assert {e["targetId"] for e in by_op["crm"]} == {
        "system:crm",
        "system:crm|PROVIDES|capability:order.change",
    }
    assert [e["relationType"] for e in by_op["provides"]] == ["PROVIDES"]
    assert await quiet(ws, 0.5) == []  # nothing twice
    await ws.close()


async def test_reconnect_with_after_gets_what_was_missed_then_live_without_gap_or_repeat(
    served: Served, tmp_path: Path
) -> None:
    ws = await acked(served.base)
    await subscribe(ws, "1")
    await asyncio.sleep(0.3)
    upsert(served.base, "system:a", "A")
    (first,) = await events(ws, 1)
    await ws.close()
    # Missed while away: two API writes and an apply from another process.
    upsert(served.base, "system:b", "B")
    upsert(served.base, "system:c", "C")
    doc = write_catalog(tmp_path / "d.json", [("system:d", "D")])
    cli("apply", str(doc), "--database", served.db)  # type: ignore[attr-defined]
    ws = await acked(served.base)
    await subscribe(ws, "2", after=first["version"])
    missed = await events(ws, 3)
    assert [e["targetId"] for e in missed] == ["system:b", "system:c", "system:d"]
    upsert(served.base, "system:e", "E")
    (live,) = await events(ws, 1)
    assert live["targetId"] == "system:e"
    assert [e["version"] for e in [first, *missed, live]] == sorted(
        {e["version"] for e in [first, *missed, live]}
    )
    assert await quiet(ws, 0.5) == []
    await ws.close()


async def test_a_burst_larger_than_the_queue_arrives_whole_and_in_order(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    with capahub_serve(tmp_path, env=serve_env(db, subscription_queue="5")) as s:
        ws = await acked(s.base)
        await subscribe(ws, "1")
        await asyncio.sleep(0.3)
        doc = write_catalog(
            tmp_path / "many.json", [(f"system:s{i:03}", f"S{i}") for i in range(300)]
        )
        cli("apply", str(doc), "--database", db)
        got = await events(ws, 300, timeout=30)
        assert sorted(e["targetId"] for e in got) == [f"system:s{i:03}" for i in range(300)]
        versions = [e["version"] for e in got]
        assert versions == sorted(set(versions))
        assert await quiet(ws, 0.5) == []
        await ws.close()


async def test_hostile_input_gets_coded_errors(served: Served) -> None:
    ws = await acked(served.base)
    cases = {
        "unknown-arg": ("subscription { catalogChanged(bogus: 1) { version } }", {}),
        "bad-kind": ("subscription { catalogChanged(kinds: [NOPE]) { version } }", {}),
        "bad-id": ('subscription { catalogChanged(ids: ["nope"]) { version } }', {}),
        "too-many-ids": (
            "subscription($ids: [ID!]) { catalogChanged(ids: $ids) { version } }",
            {"ids": [f"system:s{i}" for i in range(1001)]},
        ),
        "ahead": ("subscription { catalogChanged(after: 999999) { version } }", {}),
        "negative": ("subscription { catalogChanged(after: -1) { version } }", {}),
        "query": ("{ nodes { totalCount } }", {}),
        "mutation": ('mutation { retire(id: "system:x") { id } }', {}),
    }
    for op_id, (query, variables) in cases.items():
        payload = {"query": query, "variables": variables}
        await ws.send(json.dumps({"type": "subscribe", "id": op_id, "payload": payload}))
    answers = {}
    for _ in cases:
        message = await recv(ws)
        answers[message["id"]] = message
    for op_id, message in answers.items():
        assert message["type"] == "error", message
        codes = {e["extensions"]["code"] for e in message["payload"]}
        assert codes == {"BAD_USER_INPUT"}, (op_id, message)
    assert "after" in answers["ahead"]["payload"][0]["message"]
    assert "1000" in answers["too-many-ids"]["payload"][0]["message"]
    assert "HTTP" in answers["query"]["payload"][0]["message"]
    # the connection still works
    await subscribe(ws, "fine")
    await asyncio.sleep(0.2)
    upsert(served.base, "system:ok", "OK")
    assert (await events(ws, 1))[0]["targetId"] == "system:ok"
    assert "INTERNAL" not in served.output() and "Traceback" not in served.output()
    await ws.close()


async def test_protocol_bounds_close_the_connection_with_a_reason(served: Served) -> None:
    # No connection_init within the timeout: 4408.
    ws = await websockets.connect(
        ws_url(served.base), subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    )
    assert (await closed(ws))[0] == 4408
    # A message over the size limit: 1009.
    ws = await acked(served.base)
    await ws.send(json.dumps({"type": "ping", "payload": {"x": "y" * 1_100_000}}))
    assert (await closed(ws))[0] == 1009
    # Subscribe before init: 4401 (graphql-ws).
    ws = await websockets.connect(
        ws_url(served.base), subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    )
    await subscribe(ws, "early")
    assert (await closed(ws))[0] == 4401
    # Too many subscriptions on one connection: a coded error for the one past the limit.
    ws = await acked(served.base)
    for i in range(21):
        await subscribe(ws, f"s{i}")
    message = await recv(ws)
    assert message["type"] == "error" and message["id"] == "s20"
    assert message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    await ws.close()
    # A client ping is answered.
    ws = await acked(served.base)
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv(ws) == {"type": "pong"}
    await ws.close()


async def test_host_and_origin_are_checked_on_the_handshake(served: Served) -> None:
    sub = [websockets.Subprotocol("graphql-transport-ws")]
    url = ws_url(served.base)
    port = served.base.rsplit(":", 1)[1]
    assert _handshake_status(served.base, "evil.example") == 403  # DNS rebinding
    assert _handshake_status(served.base, f"127.0.0.1:{port}") == 101
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(
            url, subprotocols=sub, origin=websockets.Origin("https://evil.example")
        )
    assert refused.value.response.status_code == 403
    ws = await websockets.connect(
        url, subprotocols=sub, origin=websockets.Origin(f"http://127.0.0.1:{port}")
    )
    await ws.send(json.dumps({"type": "connection_init"}))
    assert await recv(ws) == {"type": "connection_ack"}
    await ws.close()


def _handshake_status(base: str, host: str) -> int:
    """The status of a WebSocket handshake sent with this ``Host`` (raw, so only one is sent)."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            (
                f"GET /graphql HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            ).encode()
        )
        status_line = conn.recv(1024).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


def test_http_still_answers_and_healthz(served: Served) -> None:
    answer = httpx.post(
        f"{served.base}/graphql", json={"query": "{ nodes { totalCount } }"}, trust_env=False
    )
    assert answer.status_code == 200 and "errors" not in answer.json()


async def test_unknown_subprotocol_is_refused(served: Served) -> None:
    ws = await websockets.connect(
        ws_url(served.base), subprotocols=[websockets.Subprotocol("graphql-ws")]
    )
    assert (await closed(ws))[0] == 4406


def test_a_subscription_sent_over_http_is_refused_with_a_code(served: Served) -> None:
    for headers in ({}, {"Accept": "application/graphql-response+json"}):
        answer = httpx.post(
            f"{served.base}/graphql",
            json={"query": "subscription { catalogChanged { version } }"},
            headers=headers,
            trust_env=False,
        )
        assert answer.status_code == 400
        (error,) = answer.json()["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and "WebSocket" in error["message"]


async def test_a_client_that_stops_reading_is_closed_4499_and_may_resume(tmp_path: Path) -> None:
    """A subscriber that takes no message (its socket full) is closed with 4499 after the send
    timeout, the hub keeps answering meanwhile, and `after` resumes where it stopped."""
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    env = serve_env(db, subscription_send_timeout="1", subscription_ping_interval="60")
    with capahub_serve(tmp_path, env=env) as s:
        host, port = s.base.removeprefix("http://").split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        ws = await websockets.connect(
            ws_url(s.base),
            sock=sock,
            subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
            max_queue=1,  # the client library stops reading too
            compression=None,  # no permessage-deflate: the repeated text would shrink to nothing
            open_timeout=10,
        )
        await ws.send(json.dumps({"type": "connection_init"}))
        assert (await recv(ws)) == {"type": "connection_ack"}
        await subscribe(ws, "1")
        await asyncio.sleep(0.3)
        # About 8 MB of events (a before and an after each), far beyond what the sockets' buffers hold.
        big = "x" * 9_000
        doc = tmp_path / "big.json"
        doc.write_text(
            json.dumps(
                {
                    "nodes": [
                        {"id": f"system:b{i:03}", "name": f"B{i}", "description": big}
                        for i in range(900)
                    ]
                }
            )
        )
        cli("apply", str(doc), "--database", db)
        await asyncio.sleep(2.5)  # the send blocks; past the 1 s timeout the hub closes
        started = asyncio.get_running_loop().time()
        health = await asyncio.to_thread(
            httpx.get, f"{s.base}/healthz", trust_env=False, timeout=10
        )
        assert health.status_code == 200
        assert asyncio.get_running_loop().time() - started < 2
        # Now read: what was buffered, then the close with the reason and how to resume.
        last = 0
        try:
            while True:
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                except TimeoutError:
                    raise AssertionError(f"stuck after {last}: {s.output()[-3000:]}") from None
                if message["type"] == "next":
                    last = message["payload"]["data"]["catalogChanged"]["version"]
        except websockets.ConnectionClosed as closing:
            assert closing.rcvd is not None
            assert closing.rcvd.code == 4499, closing.rcvd
            assert "after" in closing.rcvd.reason
        received = last
        assert received < 900  # it was closed before everything was sent
        ws2 = await acked(s.base)
        await subscribe(ws2, "2", after=received)
        rest = await events(ws2, 1, timeout=15)
        assert rest[0]["version"] == received + 1 if received else rest[0]["version"] >= 1
        await ws2.close()
        assert "Traceback" not in s.output()

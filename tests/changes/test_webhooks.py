"""Webhooks in one process: a real receiver on 127.0.0.1 that fails, hangs, closes the
connection and recovers; signatures checked with the reference implementation
(``standardwebhooks``); ordering per webhook; a slow receiver beside a fast one; the retry
schedule; hostile registration input."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from standardwebhooks import Webhook as Verifier

from catalog.changes.delivery import Backoff, DeliveryWorker
from catalog.changes.signing import SecretBox
from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import parse_document
from tests.conftest import GraphQLClient

FAST = {
    "harvest_allowed_hosts": "127.0.0.1",
    "webhook_timeout": 1.0,
    "webhook_retry_base": 0.1,
    "webhook_retry_max_delay": 0.3,
    "webhook_poll_interval": 0.05,
}


class Receiver:
    """An HTTP server on 127.0.0.1; each path answers by a script of behaviours (``500``,
    ``hang``, ``close``, ``ok``), then ``ok``; every request is recorded."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[str]] = {}
        self.always: dict[str, str] = {}
        self.received: list[tuple[str, dict[str, str], bytes, float]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.lock:
                    script = outer.scripts.get(self.path, [])
                    action = script.pop(0) if script else outer.always.get(self.path, "ok")
                    outer.received.append(
                        (self.path, dict(self.headers.items()), body, time.monotonic())
                    )
                if action == "hang":
                    time.sleep(3)
                    return
                if action == "close":
                    self.close_connection = True
                    self.connection.close()
                    return
                code = 500 if action == "500" else 200
                self.send_response(code)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"no" if code == 500 else b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered(self, path: str, secret: str) -> list[dict[str, Any]]:
        """The events that reached ``path`` with a 2xx answer, deduplicated by webhook-id,
        each verified with the reference implementation (raises on a bad signature)."""
        verifier = Verifier(secret)
        with self.lock:
            got = [r for r in self.received if r[0] == path]
        seen: dict[str, dict[str, Any]] = {}
        for _, headers, body, _at in got:
            event = verifier.verify(body, headers)
            seen.setdefault(headers["webhook-id"], event)
        return list(seen.values())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


REGISTER = """mutation($input: WebhookInput!) { registerWebhook(input: $input) {
  secret webhook { id url status kinds operations } } }"""
UPSERT = """mutation($id: ID!, $name: String!) { upsertNode(input: {id: $id, name: $name}) { id version } }"""
DELIVERIES = """query($w: ID!) { webhookDeliveries(webhook: $w, first: 100) {
  edges { node { id changeId status attempts lastError lastStatusCode nextAttemptAt } } } }"""


def wait_for(cond: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _ok_events(receiver: Receiver, path: str, secret: str) -> list[dict[str, Any]]:
    # Only requests answered ok count as delivered; the script tells which were.
    return receiver.delivered(path, secret)


def test_webhook_receiver_fails_hangs_closes_then_recovers(
    app_factory: Callable[..., GraphQLClient], receiver: Receiver
) -> None:
    gql = app_factory(**FAST)
    receiver.scripts["/a"] = ["500", "hang", "close", "500"]
    reg = gql.data(REGISTER, {"input": {"url": receiver.url("/a"), "kinds": ["SYSTEM"]}})[
        "registerWebhook"
    ]
    secret, wid = reg["secret"], reg["webhook"]["id"]
    assert secret.startswith("whsec_")
    for i in range(5):
        gql.data(UPSERT, {"id": f"system:s{i}", "name": f"S {i}"})
    gql.data(UPSERT, {"id": "team:t", "name": "T"})  # filtered out (kind)

    def all_delivered() -> bool:
        log = gql.data(DELIVERIES, {"w": wid})["webhookDeliveries"]["edges"]
        return len(log) == 5 and all(e["node"]["status"] == "DELIVERED" for e in log)

    wait_for(all_delivered, what="five deliveries")
    events = receiver.delivered("/a", secret)
    ids = [e["data"]["id"] for e in events]
    assert ids == [f"system:s{i}" for i in range(5)]  # in change order, none missing
    assert [e["type"] for e in events] == ["node.created"] * 5
    changes = [e["data"]["changeId"] for e in events]
    assert changes == sorted(changes)
    assert events[0]["data"]["after"]["name"] == "S 0" and events[0]["data"]["before"] is None
    log = gql.data(DELIVERIES, {"w": wid})["webhookDeliveries"]["edges"]
    first = log[-1]["node"]  # newest first
    assert first["attempts"] == 5 and first["changeId"] == changes[0]
    # The first event took the four failures; the ones behind it waited (per-webhook order).
    with receiver.lock:
        order = [json.loads(b)["data"]["id"] for p, _, b, _ in receiver.received if p == "/a"]
    assert order[:5] == ["system:s0"] * 5
    # Same webhook-id on every retry of one event.
    with receiver.lock:
        hdr = [h["webhook-id"] for p, h, _, _ in receiver.received if p == "/a"][:5]
    assert len(set(hdr)) == 1 and hdr[0] == first["id"]


def test_a_slow_receiver_does_not_delay_another_webhook(
    app_factory: Callable[..., GraphQLClient], receiver: Receiver
) -> None:
    gql = app_factory(**FAST)
    receiver.always["/slow"] = "hang"
    slow = gql.data(REGISTER, {"input": {"url": receiver.url("/slow")}})["registerWebhook"]
    fast = gql.data(REGISTER, {"input": {"url": receiver.url("/fast")}})["registerWebhook"]
    gql.data(UPSERT, {"id": "system:first", "name": "one"})
    wait_for(lambda: len(receiver.delivered("/fast", fast["secret"])) == 1, what="fast 1")
    wait_for(lambda: any(r[0] == "/slow" for r in receiver.received), what="slow receiver called")
    # While the slow receiver hangs on its first event, the fast one gets each change quickly.
    for i in range(3):
        t0 = time.monotonic()
        gql.data(UPSERT, {"id": f"system:n{i}", "name": "n"})
        want = i + 2
        wait_for(
            lambda: len(receiver.delivered("/fast", fast["secret"])) == want,  # noqa: B023
            what="fast delivery",
        )
        assert time.monotonic() - t0 < 1.0
    pending = gql.data(DELIVERIES, {"w": slow["webhook"]["id"]})["webhookDeliveries"]["edges"]
    assert {e["node"]["status"] for e in pending} == {"PENDING"}
    errors = [e["node"]["lastError"] for e in pending if e["node"]["lastError"]]
    assert all("no answer within" in e for e in errors)


def test_pause_queues_and_resume_delivers_in_order(
    app_factory: Callable[..., GraphQLClient], receiver: Receiver
) -> None:
    gql = app_factory(**FAST)
    reg = gql.data(REGISTER, {"input": {"url": receiver.url("/p"), "operations": ["UPDATE"]}})[
        "registerWebhook"
    ]
    wid = reg["webhook"]["id"]
    gql.data(UPSERT, {"id": "system:a", "name": "a0"})  # a create: filtered out
    assert gql.data("mutation($id: ID!) { pauseWebhook(id: $id) { status } }", {"id": wid}) == {
        "pauseWebhook": {"status": "PAUSED"}
    }
    for i in range(3):
        gql.data(UPSERT, {"id": "system:a", "name": f"a{i + 1}"})
    wait_for(
        lambda: (
            gql.data("{ webhooks { pendingDeliveries } }")["webhooks"][0]["pendingDeliveries"] == 3
        ),
        what="three queued",
    )
    time.sleep(0.3)
    assert receiver.received == []
    gql.data("mutation($id: ID!) { resumeWebhook(id: $id) { status } }", {"id": wid})
    wait_for(lambda: len(receiver.delivered("/p", reg["secret"])) == 3, what="resumed")
    names = [e["data"]["after"]["name"] for e in receiver.delivered("/p", reg["secret"])]
    assert names == ["a1", "a2", "a3"]
    assert [e["type"] for e in receiver.delivered("/p", reg["secret"])] == ["node.updated"] * 3
    assert gql.data("mutation($id: ID!) { deleteWebhook(id: $id) }", {"id": wid}) == {
        "deleteWebhook": True
    }
    err = gql.error(DELIVERIES, {"w": wid})
    assert err["extensions"]["code"] == "NOT_FOUND"


def test_backoff_schedule_retries_at_least_24_hours() -> None:
    backoff = Backoff()  # the defaults: 5 s doubling to 1 h, 24 h window
    rng = random.Random(7)
    times = backoff.schedule(rng)
    assert times[-1] >= 24 * 3600
    assert times[-2] < 24 * 3600  # the last retry is the first past the window
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    for n, gap in enumerate(gaps, start=1):
        full = min(3600.0, 5.0 * 2 ** (n - 1))
        assert full / 2 <= gap <= full
    assert 25 <= len(times) <= 60
    # Jitter: two schedules differ.
    assert backoff.schedule(random.Random(1))[:8] != backoff.schedule(random.Random(2))[:8]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert not backoff.gives_up(t0, t0 + timedelta(hours=23, minutes=59))
    assert backoff.gives_up(t0, t0 + timedelta(hours=24))


async def test_delivery_marked_failed_after_the_retry_window(
    settings: Settings, receiver: Receiver
) -> None:
    receiver.always["/dead"] = "500"
    s = settings.model_copy(update=FAST)
    services = await Services.start(s)
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    worker = DeliveryWorker(
        services.store, s, clock=lambda: now[0], backoff=Backoff(60, 3600, 86400)
    )
    await worker.open()
    try:
        rec, _ = await services.webhooks.register(receiver.url("/dead"), created_by="tests")
        await services.registry.apply_document(parse_document("nodes: [{id: 'system:x', name: X}]"))
        attempts = 0
        while True:
            started = await worker.step()
            await worker.drain()
            recs, _ = await services.webhooks.deliveries(rec.id)
            d = recs[0]
            if started:
                attempts += 1
            if d.status != "pending":
                break
            assert d.next_attempt_at is not None
            now[0] = d.next_attempt_at  # jump the clock to the next attempt: no waiting
            assert attempts < 100
        assert d.status == "failed" and d.attempts == attempts
        assert d.last_status == 500 and d.last_error is not None and "HTTP 500" in d.last_error
        assert attempts >= 20  # 60 s doubling to 1 h over 24 h
    finally:
        await worker.stop()
        await services.close()


HOSTS = st.sampled_from(
    [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "[::1]",
        "0.0.0.0",
        "",
        "u:p@127.0.0.1",
        "[::ffff:10.0.0.1]",
        "8.8.8.8:99999",
        "127.0.0.1:0",
        "[zz]",
    ]
)
SCHEMES = st.sampled_from(["http", "https", "ftp", "file", "javascript", "HTTP", "gopher", ""])
URLS = st.one_of(
    st.builds(lambda s, h, p: f"{s}://{h}/{p}", SCHEMES, HOSTS, st.text(max_size=30)),
    st.text(max_size=60),
    st.just("http://127.0.0.1/" + "x" * 3000),
)
SECRETS = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.just("whsec_" + "A" * 20),
    st.just("whsec_!!!!"),
    st.just("whsec_" + "QUFB" * 40),
)
IDS = st.one_of(
    st.none(),
    st.lists(st.sampled_from(["system:crm", "nope", "x:y", "system:UPPER", ""]), max_size=3),
    st.just([f"system:s{i}" for i in range(101)]),
)


@hsettings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    url=URLS,
    secret=SECRETS,
    ids=IDS,
    description=st.one_of(st.none(), st.text(max_size=10), st.just("d" * 501)),
    ops=st.one_of(st.none(), st.lists(st.sampled_from(["CREATE", "DELETE", "MOVE"]))),
)
def test_hostile_registration_is_coded_and_writes_nothing(
    hostile_gql: GraphQLClient,
    url: str,
    secret: str | None,
    ids: list[str] | None,
    description: str | None,
    ops: list[str] | None,
) -> None:
    before = len(hostile_gql.data("{ webhooks { id } }")["webhooks"])
    body = hostile_gql.post(
        REGISTER,
        {
            "input": {
                "url": url,
                "secret": secret,
                "ids": ids,
                "description": description,
                "operations": ops,
            }
        },
    )
    after = len(hostile_gql.data("{ webhooks { id } }")["webhooks"])
    if body.get("errors"):
        err = body["errors"][0]
        assert err["extensions"]["code"] in ("BAD_USER_INPUT", "FORBIDDEN"), err
        assert after == before
    else:
        assert after == before + 1
        hostile_gql.data(
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            {"id": body["data"]["registerWebhook"]["webhook"]["id"]},
        )


def test_registration_errors_name_the_field(gql: GraphQLClient) -> None:
    cases = {
        "ftp://example.com/x": ("BAD_USER_INPUT", "url"),
        "http://127.0.0.1:9/x": ("FORBIDDEN", "url"),
        "http://169.254.169.254/latest": ("FORBIDDEN", "url"),
        "http://u:p@93.184.215.14/": ("BAD_USER_INPUT", "url"),
    }
    for url, (code, field) in cases.items():
        err = gql.error(REGISTER, {"input": {"url": url}})
        assert err["extensions"]["code"] == code, (url, err)
        assert err["extensions"]["field"] == field and err["message"].startswith(f"{field}:")
    err = gql.error(REGISTER, {"input": {"url": "http://93.184.215.14/", "secret": "whsec_abc"}})
    assert err["extensions"]["field"] == "secret"
    err = gql.error(REGISTER, {"input": {"url": "http://93.184.215.14/", "ids": ["nope"]}})
    assert err["extensions"]["field"] == "ids"
    err = gql.error(REGISTER, {"input": {"url": "http://93.184.215.14/", "kinds": ["PLANET"]}})
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "PLANET" in err["message"]
    assert gql.data("{ webhooks { id } }") == {"webhooks": []}


def test_webhook_count_is_bounded(app_factory: Callable[..., GraphQLClient]) -> None:
    gql = app_factory(webhook_max_count=2, harvest_allowed_hosts="127.0.0.1")
    for _ in range(2):
        gql.data(REGISTER, {"input": {"url": "http://127.0.0.1:9/h"}})
    err = gql.error(REGISTER, {"input": {"url": "http://127.0.0.1:9/h"}})
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "at most 2" in err["message"]


def test_large_events_are_sent_without_their_images(
    app_factory: Callable[..., GraphQLClient], receiver: Receiver
) -> None:
    gql = app_factory(**FAST, webhook_max_body_bytes=4096)
    reg = gql.data(REGISTER, {"input": {"url": receiver.url("/big")}})["registerWebhook"]
    gql.data(
        'mutation($p: JSON) { upsertNode(input: {id: "system:big", name: "b", properties: $p}) { id } }',
        {"p": {"blob": "x" * 10_000}},
    )
    wait_for(lambda: len(receiver.delivered("/big", reg["secret"])) == 1, what="big event")
    (event,) = receiver.delivered("/big", reg["secret"])
    assert event["data"]["truncated"] is True and event["data"]["after"] is None
    assert event["data"]["id"] == "system:big"


@pytest.fixture
def hostile_gql(app_factory: Callable[..., GraphQLClient]) -> GraphQLClient:
    return app_factory()


def test_secrets_are_sealed_with_the_configured_key(
    app_factory: Callable[..., GraphQLClient], receiver: Receiver, settings: Settings
) -> None:
    gql = app_factory(**FAST, webhook_secret_key=SecretStr("correct horse battery staple"))
    given_secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    reg = gql.data(
        REGISTER,
        {"input": {"url": receiver.url("/r"), "types": ["OWNS"], "secret": given_secret}},
    )["registerWebhook"]
    assert reg["secret"] == given_secret
    gql.data(UPSERT, {"id": "team:a", "name": "A"})  # a node event: filtered out by types
    gql.data(UPSERT, {"id": "system:b", "name": "B"})
    gql.data('mutation { relate(input: {from: "team:a", type: OWNS, to: "system:b"}) { type } }')
    wait_for(lambda: len(receiver.delivered("/r", given_secret)) == 1, what="relation event")
    (event,) = receiver.delivered("/r", given_secret)
    assert event["type"] == "relation.created"
    assert event["data"]["from"] == "team:a" and event["data"]["type"] == "OWNS"
    engine = create_engine(make_url(settings.database_url).set(drivername=_sync_driver(settings)))
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT secret FROM webhooks")).scalar_one()
    engine.dispose()
    assert stored.startswith("fernet:") and given_secret not in stored
    with pytest.raises(ValueError, match="another CAPAHUB_WEBHOOK_SECRET_KEY"):
        SecretBox("another key").open(stored)
    assert SecretBox("correct horse battery staple").open(stored) == given_secret


def _sync_driver(settings: Settings) -> str:
    return "sqlite" if settings.database_url.startswith("sqlite") else "postgresql+psycopg"


async def test_two_workers_on_one_database_send_each_event_once_in_order(
    settings: Settings, receiver: Receiver
) -> None:
    """Two replicas' workers (each its own engine) share the queue: leases make each event go
    out once, and a webhook's next event waits for the one before, whoever sends it."""
    s = settings.model_copy(update=FAST)
    services = await Services.start(s, projections=False)
    workers = [DeliveryWorker.from_settings(services.store, s) for _ in range(2)]
    try:
        rec, secret = await services.webhooks.register(receiver.url("/two"), created_by="t")
        for w in workers:
            await w.start()
        for i in range(20):
            await services.registry.apply_document(
                parse_document(f"nodes: [{{id: 'system:r{i}', name: R}}]")
            )
        deadline = time.monotonic() + 60
        while len(receiver.delivered("/two", secret)) < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        with receiver.lock:
            sent = [h["webhook-id"] for p, h, _, _ in receiver.received if p == "/two"]
        assert len(sent) == 20 and len(set(sent)) == 20  # none twice
        ids = [e["data"]["id"] for e in receiver.delivered("/two", secret)]
        assert ids == [f"system:r{i}" for i in range(20)]
        recs, _ = await services.webhooks.deliveries(rec.id, first=50)
        assert {r.status for r in recs} == {"delivered"}
    finally:
        for w in workers:
            await w.stop()
        await services.close()


def test_delivery_log_paging_and_bad_arguments(
    app_factory: Callable[..., GraphQLClient], receiver: Receiver
) -> None:
    gql = app_factory(**FAST)
    reg = gql.data(REGISTER, {"input": {"url": receiver.url("/pg")}})["registerWebhook"]
    wid = reg["webhook"]["id"]
    for i in range(5):
        gql.data(UPSERT, {"id": f"system:p{i}", "name": "p"})
    wait_for(lambda: len(receiver.delivered("/pg", reg["secret"])) == 5, what="five")
    page = """query($w: ID!, $after: String, $first: Int) { webhookDeliveries(webhook: $w, first: $first, after: $after) {
      edges { cursor node { changeId } } pageInfo { hasNextPage endCursor } } }"""
    seen: list[int] = []
    after = None
    while True:
        conn = gql.data(page, {"w": wid, "after": after, "first": 2})["webhookDeliveries"]
        seen += [e["node"]["changeId"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    for variables, field in (
        ({"w": wid, "after": "nope", "first": 2}, "after"),
        ({"w": wid, "first": -1}, "first"),
        ({"w": wid, "first": 100_000}, "first"),
        ({"w": "wh_missing", "first": 2}, "webhook"),
    ):
        err = gql.error(page, variables)
        assert err["extensions"]["code"] in ("BAD_USER_INPUT", "NOT_FOUND"), err
        assert err["extensions"].get("field") == field, err

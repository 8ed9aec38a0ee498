"""Webhook delivery: from the change log into each webhook's queue, and out to the receivers.

Two steps, both on the catalog database so that a restart, a crash or several replicas lose
nothing and send nothing twice without the same ``webhook-id``:

1. *Dispatch* (an outbox): in one write transaction (PostgreSQL: under an advisory lock that
   one replica at a time takes; SQLite: the file's write lock), the changes after each
   webhook's stored ``cursor`` that match its filter become delivery rows with their exact
   body, and the cursor moves on. Changes from any process (this serve's mutations,
   ``capahub apply``, another replica) are in the change log, so all are delivered. A webhook
   whose queue is full (``webhook_max_queue``) keeps its cursor: its later changes wait in the
   change log, and are queued as the backlog drains.
2. *Send*: each webhook's oldest pending delivery (per-webhook order: the next waits for it) is
   claimed with a lease (``lease_until``, a conditional UPDATE, so two replicas never both
   send it), POSTed with a per-attempt timeout by one shared httpx client on the harvest's
   guarded transport (no loopback/private targets unless allowed), at most
   ``webhook_concurrency`` at a time, and the outcome is written. A process killed mid-send
   leaves a lease that expires; the delivery is then sent again with the same id.

Failed attempts are retried with exponential backoff and jitter (``Backoff``) until the retry
window (24 h by default) has passed since the first attempt; then the delivery is marked
failed and the webhook goes on with its next event.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.changes.signing import SecretBox, secret_bytes, sign
from catalog.changes.webhooks import WebhookFilter, webhook_from_row
from catalog.harvest.fetch import guarded_transport
from catalog.settings import Settings
from metadata.errors import CatalogError
from metadata.store import Change, ChangeNotifications, Store
from metadata.tables import history, webhook_deliveries, webhooks

log = logging.getLogger("capahub.webhooks")

#: Bytes of a receiver's answer that are read (for the log's last error); the rest is not.
MAX_RESPONSE_BYTES = 4096
#: Changes one dispatch pass reads from the change log.
DISPATCH_BATCH = 500
#: PostgreSQL advisory lock key of the dispatcher (the store's writers use 7412).
_DISPATCH_LOCK = 7415

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass(frozen=True)
class Backoff:
    """When a failed delivery is tried again: ``base * 2**(n-1)`` seconds after its n-th
    failure, at most ``max_delay``, with "equal jitter" (half fixed, half random, so
    receivers that failed together do not all come back at once); retried until ``window``
    seconds have passed since the first attempt."""

    base: float = 5.0
    max_delay: float = 3600.0
    window: float = 86400.0

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds before the attempt after ``failures`` failed ones."""
        full = min(self.max_delay, self.base * 2 ** min(max(failures - 1, 0), 60))
        return float(full / 2 + (rng or random).uniform(0, full / 2))

    def gives_up(self, first_attempt: datetime, now: datetime) -> bool:
        """Whether a delivery first tried at ``first_attempt`` that failed again ``now`` is
        past its retry window (then it is marked failed)."""
        return (now - first_attempt).total_seconds() >= self.window

    def schedule(self, rng: random.Random | None = None) -> list[float]:
        """Seconds after the first attempt of every attempt a never-answering receiver gets,
        the first (0) included; the last is at or past the window."""
        times, t, failures = [0.0], 0.0, 0
        while t < self.window:
            failures += 1
            t += self.delay(failures, rng)
            times.append(t)
        return times

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        """The schedule the settings configure."""
        return cls(
            settings.webhook_retry_base,
            settings.webhook_retry_max_delay,
            settings.webhook_retry_window,
        )


def event_type(change: Change) -> str:
    """``node.created``, ``relation.deleted`` ...: the change's target and operation."""
    return f"{change.target}.{change.op}d"


def event_body(change: Change, *, max_bytes: int) -> bytes:
    """The JSON body of a change's event; without before/after when it would be larger than
    ``max_bytes`` (``data.truncated``: the receiver reads the node through the API)."""
    version = None
    for image in (change.after, change.before):
        if isinstance(image, dict) and isinstance(image.get("version"), int):
            version = image["version"]
            break
    data: dict[str, Any] = {
        "changeId": change.id,
        "version": version,
        "target": change.target,
        "id": change.target_id,
        "operation": change.op,
        "before": change.before,
        "after": change.after,
        "actor": change.actor,
    }
    if change.target == "relation":
        src, rtype, dst = (change.target_id.split("|") + ["", ""])[:3]
        data.update({"from": src, "type": rtype, "to": dst})
    at = change.at or _now()
    payload = {"type": event_type(change), "timestamp": at.isoformat(), "data": data}
    body = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    if len(body) > max_bytes:
        data.update(before=None, after=None, truncated=True)
        body = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    return body


def event_id(webhook_id: str, change_id: int) -> str:
    """The ``webhook-id`` of a change's event for one webhook: the same on every retry."""
    return f"msg_{webhook_id.removeprefix('wh_')}_{change_id}"


@contextlib.asynccontextmanager
async def _writing(store: Store) -> AsyncIterator[AsyncConnection]:
    """A short write transaction on the queue tables: SQLite's BEGIN IMMEDIATE (the store's
    write option), PostgreSQL's row locks (no catalog-wide writer lock)."""
    async with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            conn = await conn.execution_options(capahub_write=True)
        async with conn.begin():
            yield conn


async def dispatch(store: Store, settings: Settings, *, now: datetime | None = None) -> int:
    """Move the changes after each webhook's cursor into its queue; returns how many
    deliveries were queued (0 when another replica is dispatching right now)."""
    now = now or _now()
    queued = 0
    async with store.read() as r:  # most ticks: nothing new, and no write lock taken
        low = (await r.conn.execute(select(func.min(webhooks.c.cursor)))).scalar()
        if low is None:
            return 0
        last = (await r.conn.execute(select(func.max(history.c.id)))).scalar()
        if int(last or 0) <= int(low):
            return 0
    async with _writing(store) as conn:
        if store.dialect == "postgresql":
            got = (
                await conn.execute(text(f"SELECT pg_try_advisory_xact_lock({_DISPATCH_LOCK})"))
            ).scalar()
            if not got:
                return 0
        hooks = [webhook_from_row(r) for r in (await conn.execute(select(webhooks))).all()]
        if not hooks:
            return 0
        pending: dict[str, int] = dict(
            (
                await conn.execute(
                    select(webhook_deliveries.c.webhook_id, func.count())
                    .where(webhook_deliveries.c.status == "pending")
                    .group_by(webhook_deliveries.c.webhook_id)
                )
            ).all()
        )
        room = {h.id: settings.webhook_max_queue - int(pending.get(h.id, 0)) for h in hooks}
        open_hooks = [h for h in hooks if room[h.id] > 0]
        if not open_hooks:
            return 0
        low = min(h.cursor for h in open_hooks)
        stmt = (
            select(history).where(history.c.id > low).order_by(history.c.id).limit(DISPATCH_BATCH)
        )
        changes = [Change.from_row(r) for r in (await conn.execute(stmt)).all()]
        if not changes:
            return 0
        cursors = {h.id: h.cursor for h in open_hooks}
        full: set[str] = set()
        rows: list[dict[str, Any]] = []
        bodies: dict[int, bytes] = {}
        for change in changes:
            for hook in open_hooks:
                if hook.id in full or change.id <= cursors[hook.id]:
                    continue
                if _matches(hook.filter, change):
                    if room[hook.id] <= 0:
                        full.add(hook.id)
                        continue
                    room[hook.id] -= 1
                    body = bodies.get(change.id)
                    if body is None:
                        body = event_body(change, max_bytes=settings.webhook_max_body_bytes)
                        bodies[change.id] = body
                    rows.append(
                        {
                            "webhook_id": hook.id,
                            "change_id": change.id,
                            "event_id": event_id(hook.id, change.id),
                            "event_type": event_type(change),
                            "body": body.decode(),
                            "status": "pending",
                            "attempts": 0,
                            "created_at": now,
                            "next_attempt_at": now,
                        }
                    )
                cursors[hook.id] = change.id
        if rows:
            await conn.execute(webhook_deliveries.insert(), rows)
            queued = len(rows)
        for hook in open_hooks:
            if cursors[hook.id] != hook.cursor:
                await conn.execute(
                    update(webhooks)
                    .where(webhooks.c.id == hook.id, webhooks.c.cursor == hook.cursor)
                    .values(cursor=cursors[hook.id])
                )
    return queued


def _matches(flt: WebhookFilter, change: Change) -> bool:
    return flt.matches(change)


@dataclass
class _Claimed:
    id: int
    webhook_id: str
    event_id: str
    body: str
    attempts: int
    first_attempt_at: datetime | None
    url: str
    secret: str


@dataclass
class DeliveryWorker:
    """Dispatches and sends webhook deliveries in the background of one serve process."""

    store: Store
    settings: Settings
    clock: Clock = _now
    backoff: Backoff = field(default_factory=Backoff)
    owner: str = field(default_factory=lambda: "w" + secrets.token_hex(6))
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _sending: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    _client: httpx.AsyncClient | None = None
    _last_prune: float = 0.0
    _db: Store | None = None
    _notifications: ChangeNotifications | None = None

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> DeliveryWorker:
        """A worker with the settings' retry schedule."""
        return cls(store, settings, backoff=Backoff.from_settings(settings))

    @property
    def lease(self) -> timedelta:
        """How long a claimed delivery is this worker's (then another may send it again)."""
        return timedelta(seconds=2 * self.settings.webhook_timeout + 5)

    @property
    def db(self) -> Store:
        """The worker's own connections to the catalog database (``open`` makes them)."""
        if self._db is None:
            raise RuntimeError("DeliveryWorker.open() was not called")
        return self._db

    async def open(self) -> None:
        """Make the HTTP client and the worker's own engine (``start`` does; tests that drive
        ``step`` themselves too). Its own engine: the worker's polling never takes a
        connection a request needs, nor counts among a request's statements."""
        if self._client is not None:
            return
        self._db = await Store.open(
            self.store.engine.url.render_as_string(hide_password=False),
            migrate=False,
            write_wait=self.store.write_wait,
        )
        from catalog.harvest.fetch import FetchPolicy

        policy = FetchPolicy.from_settings(self.settings, trusted=False)
        limit = self.settings.webhook_concurrency
        self._client = httpx.AsyncClient(
            transport=guarded_transport(policy.allowed_hosts),
            timeout=httpx.Timeout(self.settings.webhook_timeout),
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            follow_redirects=False,
            trust_env=False,
        )

    async def start(self) -> None:
        """Start working; changes this process commits wake the worker at once."""
        if self._task is not None:
            return
        self._wake = asyncio.Event()
        await self.open()
        self.store.subscribe(lambda _changes: self._wake.set())
        # On PostgreSQL, other processes' commits wake it too (LISTEN), not only the poll.
        self._notifications = self.store.listen(lambda _last_id: self._wake.set())
        if self._notifications is not None:
            self._notifications.start()
        self._task = asyncio.create_task(self._run(), name="capahub-webhooks")

    async def drain(self) -> None:
        """Wait for the sends in flight (tests that drive ``step`` themselves)."""
        while self._sending:
            await asyncio.gather(*self._sending.values(), return_exceptions=True)

    async def stop(self) -> None:
        """Stop: sends in flight are cancelled (their leases expire; they are sent again)."""
        tasks = [t for t in (self._task, *self._sending.values()) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._task = None
        self._sending.clear()
        if self._notifications is not None:
            await self._notifications.close()
            self._notifications = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _run(self) -> None:
        interval = self.settings.webhook_poll_interval
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a busy or lost database: try again next tick
                if isinstance(err, CatalogError | DBAPIError | OSError):
                    log.warning("webhook delivery step failed (%s); retrying", err)
                else:
                    log.exception("webhook delivery step failed; retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()

    async def step(self) -> int:
        """One round: dispatch new changes, claim due deliveries, start sending them;
        returns how many sends it started."""
        await dispatch(self.db, self.settings, now=self.clock())
        free = self.settings.webhook_concurrency - len(self._sending)
        if free <= 0:
            return 0
        claimed = await self._claim(free)
        for item in claimed:
            task = asyncio.create_task(self._send(item))
            self._sending[item.id] = task
            task.add_done_callback(functools.partial(self._done, item.id))
        await self._prune()
        return len(claimed)

    def _done(self, delivery_id: int, _task: asyncio.Task[None]) -> None:
        self._sending.pop(delivery_id, None)
        self._wake.set()  # the webhook's next event may go now

    async def _claim(self, limit: int) -> list[_Claimed]:
        now = self.clock()
        d = webhook_deliveries.c
        heads = (
            select(func.min(d.id))
            .where(d.status == "pending")
            .group_by(d.webhook_id)
            .scalar_subquery()
        )
        async with self.db.read() as r:  # most ticks: nothing due, and no write lock taken
            due = (
                await r.conn.execute(
                    select(d.id)
                    .where(
                        d.status == "pending",
                        d.next_attempt_at <= now,
                        or_(d.lease_until.is_(None), d.lease_until < now),
                    )
                    .limit(1)
                )
            ).first()
            if due is None:
                return []
        async with _writing(self.db) as conn:
            stmt = (
                select(d.id, d.webhook_id)
                .join(webhooks, webhooks.c.id == d.webhook_id)
                .where(
                    webhooks.c.status == "active",
                    d.status == "pending",
                    d.id.in_(heads),
                    d.next_attempt_at <= now,
                    or_(d.lease_until.is_(None), d.lease_until < now),
                )
                .order_by(d.next_attempt_at, d.id)
                .limit(limit)
            )
            # A delivery being sent is leased (the lease outlasts the attempt's timeout), so
            # its webhook's next event is not a head until the outcome is written.
            ids = [r.id for r in (await conn.execute(stmt)).all()]
            if not ids:
                return []
            await conn.execute(
                update(webhook_deliveries)
                .where(
                    d.id.in_(ids),
                    d.status == "pending",
                    or_(d.lease_until.is_(None), d.lease_until < now),
                )
                .values(lease_owner=self.owner, lease_until=now + self.lease)
            )
            rows = (
                await conn.execute(
                    select(
                        d.id,
                        d.webhook_id,
                        d.event_id,
                        d.body,
                        d.attempts,
                        d.first_attempt_at,
                        webhooks.c.url,
                        webhooks.c.secret,
                    )
                    .join(webhooks, webhooks.c.id == d.webhook_id)
                    .where(d.id.in_(ids), d.lease_owner == self.owner, d.lease_until > now)
                )
            ).all()
        return [
            _Claimed(
                r.id,
                r.webhook_id,
                r.event_id,
                r.body,
                r.attempts,
                _utc(r.first_attempt_at),
                r.url,
                r.secret,
            )
            for r in rows
        ]

    async def _send(self, item: _Claimed) -> None:
        started = self.clock()
        status: int | None = None
        error: str | None = None
        try:
            key = secret_bytes(SecretBox(self._key()).open(item.secret))
            timestamp = int(started.timestamp())
            body = item.body.encode()
            headers = {
                "content-type": "application/json",
                "user-agent": "capahub-webhooks",
                "webhook-id": item.event_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(key, item.event_id, timestamp, body),
            }
            assert self._client is not None
            async with (
                asyncio.timeout(self.settings.webhook_timeout),
                self._client.stream("POST", item.url, content=body, headers=headers) as resp,
            ):
                status = resp.status_code
                excerpt = b""
                async for chunk in resp.aiter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= MAX_RESPONSE_BYTES:
                        break
            if not 200 <= status < 300:
                shown = excerpt[:200].decode("utf-8", "replace").strip()
                error = f"HTTP {status}" + (f": {shown}" if shown else "")
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            error = f"no answer within {self.settings.webhook_timeout:g} s"
        except httpx.TimeoutException:
            error = f"no answer within {self.settings.webhook_timeout:g} s"
        except CatalogError as err:
            error = err.message
        except ValueError as err:  # a secret this hub cannot open
            error = str(err)
        except (httpx.HTTPError, OSError) as err:
            error = f"{type(err).__name__}: {str(err)[:300] or 'connection failed'}"
        await self._record(item, started, status, error)

    def _key(self) -> str:
        return self.settings.webhook_secret_key.get_secret_value()

    async def _record(
        self, item: _Claimed, started: datetime, status: int | None, error: str | None
    ) -> None:
        now = self.clock()
        first = item.first_attempt_at or started
        attempts = item.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_attempt_at": started,
            "first_attempt_at": first,
            "last_status": status,
            "last_error": error,
            "lease_owner": None,
            "lease_until": None,
        }
        if error is None:
            values.update(status="delivered", next_attempt_at=None)
        elif self.backoff.gives_up(first, now):
            values.update(status="failed", next_attempt_at=None)
        else:
            values["next_attempt_at"] = now + timedelta(seconds=self.backoff.delay(attempts))
        d = webhook_deliveries.c
        for _ in range(5):  # the database may be busy with another writer for a moment
            try:
                async with _writing(self.db) as conn:
                    await conn.execute(
                        update(webhook_deliveries)
                        .where(d.id == item.id, d.lease_owner == self.owner)
                        .values(**values)
                    )
                return
            except (CatalogError, DBAPIError) as err:
                log.warning("recording webhook delivery %s failed (%s); retrying", item.id, err)
                await asyncio.sleep(0.5)
        # Not recorded: the lease expires and the delivery is sent again (same webhook-id).

    async def _prune(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_prune < 60:
            return
        self._last_prune = loop.time()
        cutoff = self.clock() - timedelta(days=self.settings.webhook_log_retention_days)
        d = webhook_deliveries.c
        async with _writing(self.db) as conn:
            await conn.execute(
                delete(webhook_deliveries).where(
                    and_(d.status != "pending", d.last_attempt_at < cutoff)
                )
            )


__all__ = ["Backoff", "DeliveryWorker", "dispatch", "event_body", "event_id", "event_type"]

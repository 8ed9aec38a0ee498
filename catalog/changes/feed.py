"""The in-process change feed: one reader of the change log fanning committed changes out to
subscribers, each with a bounded queue.

The change log (``history``, its ids rising in commit order: writers are serialized) is the
only source. The reader wakes when something may be new - this process's commits, the graph
projection's syncs (which follow other processes), a PostgreSQL NOTIFY - and reads every change
above its cursor, in order, then hands each subscriber the ones its filter matches. Nothing is
delivered before it is committed, since only committed rows can be read.

A subscriber starts from a version (``after``; by default the latest): it joins the live
fan-out at the reader's cursor ``C``, reads ``(after, C]`` from the log itself, then takes its
queue (everything above ``C``), skipping any id it has already passed, so it gets each change
once, in order, with no gap. When its queue is full (a burst larger than the queue, or a slow
client) the queue is dropped and the subscriber goes back to reading the log from the last
change it delivered, at its own pace, and joins the live fan-out again once it has caught up:
memory stays bounded and nothing is lost or repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field

import orjson

from metadata.errors import InvalidInputError, UnavailableError
from metadata.model import KIND_BY_PREFIX, Kind, Lifecycle, RelationType, parse_id
from metadata.store import Change, Store

log = logging.getLogger("capahub.changes")

#: Most ids one subscription may filter on.
MAX_FILTER_IDS = 1_000
#: Changes read from the log per statement (the reader's and a catching-up subscriber's).
PAGE = 500


class ChangeOperation(enum.Enum):
    """What a change did: ``RETIRE`` is an update that moved a node to RETIRED."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    RETIRE = "RETIRE"


def operation_of(change: Change) -> ChangeOperation:
    """The operation of a recorded change (history stores create, update and delete)."""
    if change.op == "create":
        return ChangeOperation.CREATE
    if change.op == "delete":
        return ChangeOperation.DELETE
    after, before = change.after or {}, change.before or {}
    retired = Lifecycle.RETIRED.value
    if (
        change.target == "node"
        and after.get("lifecycle") == retired
        and before.get("lifecycle") != retired
    ):
        return ChangeOperation.RETIRE
    return ChangeOperation.UPDATE


def ends_of(change: Change) -> tuple[str, ...]:
    """The node ids a change is about: the node, or a relation's two ends."""
    if change.target == "node":
        return (change.target_id,)
    snap = change.after or change.before or {}
    return tuple(i for i in (snap.get("from"), snap.get("to")) if isinstance(i, str))


def relation_type_of(change: Change) -> RelationType | None:
    """A relation change's type (None for node changes)."""
    if change.target != "relation":
        return None
    snap = change.after or change.before or {}
    try:
        return RelationType(snap.get("type"))
    except ValueError:
        return None


def _kind_of(node_id: str) -> Kind | None:
    return KIND_BY_PREFIX.get(node_id.partition(":")[0])


def visible(change: Change) -> bool:
    """Whether subscribers may see a change at all: catalog metadata (nodes and relations),
    which every role may read; anything else the log may hold is not part of the stream."""
    return change.target in ("node", "relation")


@dataclass(frozen=True, slots=True)
class ChangeFilter:
    """Which changes a subscriber wants; each given list must match (an empty one matches all).

    ``kinds``: a node of one of these kinds, or a relation with an end of one. ``ids``: that
    node, or a relation with that node at an end. ``types``: relations of these types only.
    """

    kinds: frozenset[Kind] = frozenset()
    ids: frozenset[str] = frozenset()
    types: frozenset[RelationType] = frozenset()

    @classmethod
    def of(
        cls,
        kinds: Iterable[Kind] | None = None,
        ids: Iterable[str] | None = None,
        types: Iterable[RelationType] | None = None,
    ) -> ChangeFilter:
        """A filter from subscription arguments, or ``InvalidInputError`` naming the bad one."""
        id_list = list(ids or ())
        if len(id_list) > MAX_FILTER_IDS:
            raise InvalidInputError(
                f"ids: {len(id_list)} ids given; a subscription may filter on at most "
                f"{MAX_FILTER_IDS} (subscribe by kinds instead, or open several subscriptions)",
                field="ids",
            )
        for node_id in id_list:
            if not isinstance(node_id, str):
                raise InvalidInputError("ids: every id must be a string", field="ids")
            parse_id(node_id, field="ids")
        return cls(frozenset(kinds or ()), frozenset(id_list), frozenset(types or ()))

    def matches(self, change: Change) -> bool:
        """Whether ``change`` passes the filter (and may be seen at all)."""
        if not visible(change):
            return False
        if self.types and relation_type_of(change) not in self.types:
            return False
        if not (self.kinds or self.ids):
            return True
        ends = ends_of(change)
        if self.ids and not any(i in self.ids for i in ends):
            return False
        return not self.kinds or any(_kind_of(i) in self.kinds for i in ends)


@dataclass(frozen=True, slots=True)
class FeedLimits:
    """Bounds of the feed: subscriptions per process, each one's queue, the largest payload."""

    max_subscriptions: int = 1_000
    queue: int = 1_000
    max_message_bytes: int = 1_000_000


class ChangeFeed:
    """Follows the change log and fans each committed change out to the subscribers."""

    def __init__(self, store: Store, limits: FeedLimits | None = None) -> None:
        self.store = store
        self.limits = limits or FeedLimits()
        #: The id of the newest change the reader has handed out (or passed, with nobody
        #: subscribed).
        self.cursor = 0
        self._live: set[Subscription] = set()
        self._count = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sizes: dict[int, int] = {}

    async def start(self) -> None:
        """Start at the newest change and follow this process's commits."""
        self.cursor = await self.latest()
        self.store.subscribe(lambda _changes: self.wake())
        self._task = asyncio.get_running_loop().create_task(self._run(), name="capahub-feed")

    def wake(self) -> None:
        """Tell the reader something may have been committed (cheap; call it freely)."""
        self._wake.set()

    @property
    def subscriptions(self) -> int:
        """How many subscriptions this process serves now."""
        return self._count

    async def close(self) -> None:
        """Stop the reader and end every subscription."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sub in list(self._live):
            sub.end()

    async def latest(self) -> int:
        """The id of the newest committed change."""
        now = self.store.last_change_id_now()
        if now is not None:
            return now
        async with self.store.read() as r:
            return await r.last_change_id()

    async def subscribe(self, flt: ChangeFilter, after: int | None = None) -> Subscription:
        """A new subscription from ``after`` (default: the latest change), or a coded error.

        Raises:
            InvalidInputError: ``after`` is negative or ahead of the latest change.
            UnavailableError: the process serves ``max_subscriptions`` already.
        """
        if self._count >= self.limits.max_subscriptions:
            raise UnavailableError(
                f"catalogChanged: this hub serves {self._count} subscriptions, its limit "
                "(CAPAHUB_SUBSCRIPTIONS_MAX); retry later or use another replica",
                field="catalogChanged",
                retry_after=5,
            )
        latest = await self.latest()
        if after is None:
            after = latest
        elif after < 0:
            raise InvalidInputError(
                f"after: {after} is not a version; versions are change log ids, 0 or more",
                field="after",
            )
        elif after > latest:
            raise InvalidInputError(
                f"after: version {after} is ahead of the latest change, {latest}; pass the "
                "`version` of the last change you received, or omit `after` to start now",
                field="after",
            )
        if self._count >= self.limits.max_subscriptions:  # others came while we read
            raise UnavailableError(
                f"catalogChanged: this hub serves {self._count} subscriptions, its limit "
                "(CAPAHUB_SUBSCRIPTIONS_MAX); retry later or use another replica",
                field="catalogChanged",
                retry_after=5,
            )
        self._count += 1
        return Subscription(self, flt, after)

    def too_big(self, change: Change) -> bool:
        """Whether a change's before/after images are over the message limit (judged once per
        change, whoever receives it)."""
        size = self._sizes.get(change.id)
        if size is None:
            size = len(orjson.dumps([change.before, change.after]))
            if len(self._sizes) >= 4096:
                self._sizes.clear()
            self._sizes[change.id] = size
        return size > self.limits.max_message_bytes

    # -- the reader --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._read_new()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep following: a transient database error must not stop it
                log.exception("reading the change log for subscribers failed; retrying")
                await asyncio.sleep(1)
                self._wake.set()

    async def _read_new(self) -> None:
        while True:
            if not self._live:
                # Nobody listens: move the cursor without reading rows, unless someone joined
                # while the id was read (then that subscriber needs the rows in between).
                latest = await self.latest()
                if not self._live:
                    self.cursor = max(self.cursor, latest)
                    return
                continue
            changes = await self.read(self.cursor, limit=PAGE)
            if not changes:
                return
            # No await from here to the end of the fan-out: a subscriber joins either before
            # (and gets these through its queue) or after (and reads them from the log).
            self.cursor = changes[-1].id
            for sub in list(self._live):
                sub.offer(changes)
            if len(changes) < PAGE:
                return

    async def read(self, after: int, *, limit: int = PAGE) -> list[Change]:
        """Committed changes after ``after``, oldest first, at most ``limit``."""
        async with self.store.read() as r:
            return await r.changes_since(after, limit=limit)

    def _join(self, sub: Subscription) -> int:
        self._live.add(sub)
        return self.cursor

    def _leave(self, sub: Subscription) -> None:
        self._live.discard(sub)

    def _closed(self) -> None:
        self._count -= 1


@dataclass(eq=False)
class Subscription:
    """One subscriber: iterate ``changes()`` for its changes, once each and in order."""

    feed: ChangeFeed
    filter: ChangeFilter
    #: The id of the last change of the log this subscriber has passed (delivered or not
    #: matching): where a resume or a catch-up starts.
    delivered: int
    _queue: deque[Change] = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _overflowed: bool = False
    _ended: bool = False
    _closed: bool = False
    #: Times the queue overflowed and the subscriber went back to the log.
    overflows: int = 0

    def offer(self, changes: Sequence[Change]) -> None:
        """Queue the matching changes of a batch (called by the feed's reader)."""
        if self._overflowed:
            return
        limit = self.feed.limits.queue
        for change in changes:
            if self.filter.matches(change):
                if len(self._queue) >= limit:
                    # Dropped, not lost: the subscriber reads them from the log.
                    self._queue.clear()
                    self._overflowed = True
                    self.overflows += 1
                    self.feed._leave(self)
                    break
                self._queue.append(change)
        self._ready.set()

    def end(self) -> None:
        """End the iteration (the feed is closing)."""
        self._ended = True
        self._ready.set()

    async def changes(self) -> AsyncGenerator[Change, None]:
        """The subscriber's changes, from ``delivered`` on, live for as long as it iterates."""
        try:
            while not self._ended:
                self._queue.clear()
                self._overflowed = False
                joined_at = self.feed._join(self)
                # What was committed before joining: from the log, at the subscriber's pace.
                while self.delivered < joined_at and not self._ended:
                    page = await self.feed.read(self.delivered, limit=PAGE)
                    if not page:
                        self.delivered = joined_at
                        break
                    for change in page:
                        if change.id > joined_at:
                            break
                        self.delivered = change.id
                        if self.filter.matches(change):
                            yield change
                    else:
                        continue
                    break
                self.delivered = max(self.delivered, joined_at)
                # Live: the queue, until it overflows (then back to the log) or the feed ends.
                while not self._overflowed and not self._ended:
                    while self._queue and not self._overflowed:
                        change = self._queue.popleft()
                        if change.id > self.delivered:
                            self.delivered = change.id
                            yield change
                    if self._overflowed or self._ended:
                        break
                    self._ready.clear()
                    await self._ready.wait()
        finally:
            self.close()

    def close(self) -> None:
        """Leave the feed (idempotent)."""
        self.feed._leave(self)
        if not self._closed:
            self._closed = True
            self.feed._closed()


__all__ = [
    "MAX_FILTER_IDS",
    "ChangeFeed",
    "ChangeFilter",
    "ChangeOperation",
    "FeedLimits",
    "Subscription",
    "ends_of",
    "operation_of",
    "relation_type_of",
    "visible",
]

"""Graph answers kept per catalog version and read a page at a time.

A graph question over the whole catalog (gaps, redundancies, hotspots) or from one node
(impact, neighborhood, lineage) is answered whole once per catalog version
(``GraphView.version``) and kept in ``Answers``, a cache bounded by the answers' estimated
bytes (cachetools); the answer to a filter of it (kind, reason, domain, owner, relation type)
is kept beside it. A page is then a slice of a kept list: the first page of a large answer
costs what any other page costs.

A cursor names the answer it was cut from (a digest of the question, its arguments and the
filter), the catalog version it was read at (the change id every replica agrees on, as
``extensions.catalogVersion`` states it: ``CatalogVersions`` tells it for each version of a
process's projection), a fingerprint of the whole filtered answer and the position in it. Every
answer is in a total order that does not depend on the process (the ranking, then the node id;
``ORDERS``), so two replicas at the same catalog version cut the same pages, and the
fingerprint makes sure of it: a replica whose answer differs refuses the cursor rather than
skip or repeat items. A cursor of another answer or listing, of an older catalog version, or
that does not fit is refused with ``InvalidInputError`` naming ``after``; one of a version
this replica has not reached yet is first waited for (``reach``), then refused with
``UnavailableError`` (docs/graph.md, "Paging graph answers").
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cachetools import LRUCache

from catalog.discovery import decode_cursor, encode_cursor
from metadata.errors import InvalidInputError, UnavailableError
from metadata.graph import CatalogGraph
from metadata.model import Kind, RelationType, parse_id
from metadata.search.documents import MAX_HIERARCHY_DEPTH, domains_of

if TYPE_CHECKING:
    from metadata.graph import GraphView

T = TypeVar("T")

#: Memory for whole answers and their filtered answers, by estimated size.
ANSWER_CACHE_BYTES = 64 * 2**20
#: Estimated bytes of a kept answer besides its items.
ANSWER_OVERHEAD = 200
#: The longest ``reason`` filter.
MAX_REASON_LENGTH = 200

#: A question and its arguments, e.g. ``("gaps", ("SYSTEM",))``: with the catalog version,
#: the key of its whole answer.
Question = tuple[Hashable, ...]


@dataclass(frozen=True)
class AnswerFilter:
    """What a page of a graph answer keeps: items of a node of these ``kinds``, whose reason
    contains ``reason`` (ignoring case), whose node is part of ``domain`` (directly, or for
    capabilities and systems through their ancestors, as search counts it), owned by
    ``owner`` (its ``owner`` or an OWNS relation), relations of these ``types``. Empty: all."""

    kinds: frozenset[Kind] = frozenset()
    reason: str | None = None
    domain: str | None = None
    owner: str | None = None
    types: frozenset[RelationType] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        kinds: Sequence[Kind] | None = None,
        reason: str | None = None,
        domain: str | None = None,
        owner: str | None = None,
        types: Sequence[RelationType] | None = None,
    ) -> AnswerFilter:
        """A checked filter.

        Raises:
            InvalidInputError: a malformed or too long argument, naming it.
        """
        if reason is not None and len(reason) > MAX_REASON_LENGTH:
            raise InvalidInputError(
                f"reason: at most {MAX_REASON_LENGTH} characters, got {len(reason)}",
                field="reason",
            )
        for name, value, kind in (("domain", domain, Kind.DOMAIN), ("owner", owner, Kind.TEAM)):
            if value is not None and parse_id(value, field=name)[0] is not kind:
                raise InvalidInputError(
                    f"{name}: {value[:60]!r} is not a {kind.prefix} id; use '{kind.prefix}:<key>'",
                    field=name,
                )
        return cls(
            kinds=frozenset(kinds or ()),
            reason=reason.casefold() if reason else None,
            domain=domain,
            owner=owner,
            types=frozenset(types or ()),
        )

    @property
    def empty(self) -> bool:
        """True when it keeps everything."""
        return not (self.kinds or self.reason or self.domain or self.owner or self.types)

    def key(self) -> tuple[Hashable, ...]:
        """A stable, hashable form (cursors digest it)."""
        return (
            tuple(sorted(k.name for k in self.kinds)),
            self.reason,
            self.domain,
            self.owner,
            tuple(sorted(t.name for t in self.types)),
        )


@dataclass(frozen=True)
class AnswerPage(Generic[T]):
    """One page of a kept answer: its items, where they start, the whole filtered answer's
    length, and what its cursors name."""

    items: Sequence[T]
    start: int
    total: int
    tag: str
    #: The catalog version the answer was read at: ``c<change id>`` for the present,
    #: ``p<change id>`` for a past catalog (``asOf``).
    at: str
    #: The fingerprint of the whole filtered answer (``fingerprint``).
    print: str = ""

    @property
    def has_next(self) -> bool:
        """Whether items follow this page."""
        return self.start + len(self.items) < self.total

    def cursor(self, i: int) -> str:
        """The cursor of ``items[i]``."""
        return encode_cursor(f"a{self.tag}.{self.at}.{self.print}.{self.start + i}")


#: How many versions of the projection ``CatalogVersions`` remembers the change id of.
MAX_VERSIONS = 4096


class CatalogVersions:
    """The catalog version (change id) that each version of one process's live projection
    holds: ``GraphView.version`` counts the projection's changes from the process's start, so
    it means nothing to another replica; the change id does.

    It follows the projection: when a batch of changes is applied, the projection is already at
    its new version while its ``last_change`` still names the previous one's change id, which
    is then written down. The newest version's is read from the projection itself.
    """

    def __init__(self) -> None:
        self._graph: CatalogGraph | None = None
        self._held: dict[int, int] = {}

    def follow(self, graph: CatalogGraph) -> None:
        """Track ``graph`` (once; call it on the event loop's thread, where changes apply)."""
        if self._graph is graph:
            return
        self._held = {}
        self._graph = graph
        graph.follow(self._applied)

    def _applied(self, changes: Sequence[Any]) -> None:
        graph = self._graph
        if graph is None:  # pragma: no cover - follow sets it before following
            return
        held = self._held
        held[graph.version - 1] = graph.last_change
        if len(held) > MAX_VERSIONS:
            del held[next(iter(held))]  # the oldest (dicts keep insertion order)

    def change_of(self, view: GraphView) -> int | None:
        """The change id ``view`` holds everything up to (None: not known here). Any thread."""
        if view.version < 0:  # a past catalog: catalog.changes.asof.past_version
            return -1 - view.version
        if isinstance(view, CatalogGraph):  # the live projection, read on the loop's thread
            return view.last_change
        graph = self._graph
        held = self._held.get(view.version)
        if held is not None or graph is None:
            return held
        # The newest version: its change id is the projection's, read between two looks at
        # the version (changes apply on the loop's thread; the id moves only after the version).
        before = graph.version
        change = graph.last_change
        if before == view.version == graph.version:
            return change
        return self._held.get(view.version)


def state_of(change: int, view: GraphView) -> str:
    """How a cursor names the catalog version ``change`` of ``view``: present or past."""
    return f"p{change}" if view.version < 0 else f"c{change}"


class Answers:
    """Whole answers by (catalog version, question), and filtered ones beside them; bounded
    by their estimated bytes (least recently used go first). Safe to share between the graph
    worker threads (two threads asking the same question at once may both compute it)."""

    def __init__(self, max_bytes: int = ANSWER_CACHE_BYTES) -> None:
        #: Which catalog version each version of the projection holds (cursors name that).
        self.versions = CatalogVersions()
        self._lock = threading.Lock()
        self._cache: LRUCache[tuple[Hashable, ...], tuple[int, Any]] = LRUCache(
            maxsize=max(max_bytes, 1), getsizeof=_first_item
        )

    @property
    def max_bytes(self) -> int:
        """The bound."""
        return int(self._cache.maxsize)

    @property
    def bytes(self) -> int:
        """The estimated bytes held now."""
        return int(self._cache.currsize)

    def remember(
        self,
        key: tuple[Hashable, ...],
        compute: Callable[[], T],
        size: Callable[[T], int],
        *,
        keep: bool = True,
    ) -> T:
        """The answer kept under ``key``, else ``compute()``, kept when it fits (and ``keep``)."""
        with self._lock:
            found = self._cache.get(key)
        if found is not None:
            kept: T = found[1]
            return kept
        value = compute()
        if not keep:
            return value
        nbytes = size(value)
        if nbytes <= self._cache.maxsize:
            with self._lock:
                self._cache[key] = (nbytes, value)
        return value

    def clear(self) -> None:
        """Forget every answer."""
        with self._lock:
            self._cache.clear()


def _first_item(value: tuple[int, Any]) -> int:
    return value[0]


def list_bytes(per_item: int) -> Callable[[Sequence[Any]], int]:
    """A size estimate for a list whose items take about ``per_item`` bytes each."""

    def size(items: Sequence[Any]) -> int:
        return ANSWER_OVERHEAD + 8 * len(items) + per_item * len(items)

    return size


def digest(question: Question, flt: AnswerFilter) -> str:
    """The short name of one filtered answer that its cursors carry."""
    text = repr((question, flt.key())).encode()
    return hashlib.blake2b(text, digest_size=6).hexdigest()


def fingerprint(items: Sequence[T], ident: Callable[[T], str]) -> str:
    """A digest of an answer's items in order (by ``ident``): equal on two replicas exactly
    when they would cut the same pages out of it."""
    text = "\n".join(map(ident, items)).encode()
    return hashlib.blake2b(text, digest_size=6).hexdigest()


def _rounded(score: float) -> float:
    """``score`` to 9 significant digits."""
    if score == 0 or not math.isfinite(score):
        return score
    return round(score, 8 - math.floor(math.log10(abs(score))))


def _by_rank(item: tuple[str, float]) -> tuple[float, str]:
    # PageRank's last digits depend on the order the projection holds its nodes and relations
    # in, which differs between processes: ranked on 9 digits, ties by id, every replica agrees.
    return -_rounded(item[1]), item[0]


#: Answers whose own order is not the same in every process, by question: the total order
#: their pages (and list forms, through ``Pager.ordered``) take instead.
ORDERS: dict[str, Callable[[Any], Any]] = {"hotspots": _by_rank}


def cursor_change(after: str) -> int | None:
    """The present catalog version a graph answer's cursor was cut at (None: a cursor of a
    past catalog, of another listing, or damaged; ``position`` says which)."""
    try:
        raw = decode_cursor(after)
    except InvalidInputError:
        return None
    parts = raw[1:].split(".") if raw.startswith("a") else []
    if len(parts) != 4 or not parts[1].startswith("c") or not parts[1][1:].isdigit():
        return None
    return int(parts[1][1:])


async def reach(
    wanted: int,
    *,
    current: Callable[[], int],
    sync: Callable[[], Awaitable[object]],
    committed: Callable[[], Awaitable[int]],
    wait: float,
) -> None:
    """Wait, at most ``wait`` seconds, until this replica holds catalog version ``wanted``
    (a cursor's), syncing with the change log meanwhile, as ``X-Capahub-Catalog-Version``
    waits (docs/deployment.md, "Read your writes").

    Raises:
        InvalidInputError: the version is ahead of anything committed (a cursor of another
            hub's database), naming ``after``.
        UnavailableError: not reached in time (this replica is behind), naming ``after``.
    """
    deadline = time.monotonic() + wait
    delay = 0.005
    while current() < wanted:
        await sync()
        if current() >= wanted:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 0.1)
    else:
        return
    newest = await committed()
    if wanted > newest:
        raise InvalidInputError(
            f"after: this cursor was cut at catalog version {wanted}, ahead of anything "
            f"committed (the newest is {newest}): it comes from another hub; ask again "
            "without `after`",
            field="after",
        )
    raise UnavailableError(
        f"after: this cursor was cut at catalog version {wanted}, which this replica has not "
        f"reached after waiting {wait:g} s (it is at {current()}); try again shortly",
        field="after",
    )


def position(after: str, tag: str, at: str | None, print_: str, total: int) -> int:
    """Where the page after the cursor ``after`` starts in the answer ``tag`` read at ``at``
    (``AnswerPage.at``; None: not known) whose fingerprint is ``print_``.

    Raises:
        InvalidInputError: a cursor from another answer or listing, another catalog version
            or instant, or one that does not fit this answer, naming ``after``.
        UnavailableError: a cursor of a catalog version this replica has not reached, or
            while it cannot tell which version it answers from, naming ``after``.
    """
    raw = decode_cursor(after)
    parts = raw[1:].split(".") if raw.startswith("a") else []
    if len(parts) != 4 or parts[0] != tag or parts[1][:1] not in ("c", "p"):
        raise InvalidInputError(
            "after: this cursor comes from another question, other arguments or another "
            "listing; give one from the edges of this field, asked with the same arguments",
            field="after",
        )
    was, printed = parts[1], parts[2]
    try:
        was_change, index = int(was[1:]), int(parts[3])
    except ValueError:
        raise InvalidInputError(
            "after: this cursor is damaged or from an older hub; ask again without `after`",
            field="after",
        ) from None
    if at is None:
        raise UnavailableError(
            "after: this replica cannot tell the catalog version of its answer right now; "
            "try again shortly",
            field="after",
        )
    if was[:1] != at[:1] or (was[0] == "p" and was != at):
        raise InvalidInputError(
            "after: this cursor is of the catalog at another instant (`asOf`, or its absence); "
            "give one from the edges of this field, asked with the same `asOf`",
            field="after",
        )
    now = int(at[1:])
    if was_change < now:
        raise InvalidInputError(
            f"after: the catalog changed since this cursor was given (version {was_change}, "
            f"now {now}); ask again without `after` for the current answer",
            field="after",
        )
    if was_change > now:
        raise UnavailableError(
            f"after: this cursor was cut at catalog version {was_change}, which this replica "
            f"has not reached yet (it is at {now}); try again shortly",
            field="after",
        )
    if printed != print_:
        raise InvalidInputError(
            f"after: this replica's answer at catalog version {now} is not the one this cursor "
            "was cut from (a replica held a write of its own before the ones before it); ask "
            "again without `after`",
            field="after",
        )
    if not 0 <= index < total:
        raise InvalidInputError(
            "after: this cursor points outside the answer; give one from its edges",
            field="after",
        )
    return index + 1


def _identity(
    node: Callable[[T], str] | None, reason: Callable[[T], str] | None
) -> Callable[[T], str]:
    """How an item is named in its answer's fingerprint: its node, and its reason if any."""
    if node is None:
        return repr
    if reason is None:
        return node
    of, why = node, reason
    return lambda x: f"{of(x)}\t{why(x)}"


class Pager:
    """Cuts pages out of the answers of one catalog version (``view``), filtering them by
    what ``view`` says of their nodes; filtered answers are kept in ``answers``."""

    def __init__(self, view: GraphView, answers: Answers) -> None:
        self.view = view
        self.answers = answers

    def ordered(
        self, question: Question, whole: Sequence[T], order: Callable[[T], Any] | None = None
    ) -> Sequence[T]:
        """``whole`` in the order its pages take: ``order``, else the question's in
        ``ORDERS``, else its own (kept per version when it is sorted here)."""
        key = order or ORDERS.get(str(question[0]) if question else "")
        if key is None:
            return whole
        return self.answers.remember(
            (self.view.version, *question, "ordered"),
            lambda: sorted(whole, key=key),
            list_bytes(0),  # the items are the whole answer's own
        )

    def page(
        self,
        question: Question,
        whole: Sequence[T],
        flt: AnswerFilter,
        first: int,
        after: str | None,
        *,
        node: Callable[[T], str] | None = None,
        reason: Callable[[T], str] | None = None,
        rtype: Callable[[T], RelationType] | None = None,
        per_item: int = 64,
        order: Callable[[T], Any] | None = None,
        ident: Callable[[T], str] | None = None,
    ) -> AnswerPage[T]:
        """``first`` items of ``whole`` (the answer to ``question`` at this version) that
        ``flt`` keeps, after the item of the cursor ``after``; ``node``, ``reason`` and
        ``rtype`` read an item's node, reason and relation type for the filter, ``order``
        (or ``ORDERS``) puts them in a total order first, ``ident`` names an item for the
        answer's fingerprint (default: its node and reason)."""
        version = self.view.version
        chosen: Sequence[T] = self.ordered(question, whole, order)
        if not flt.empty:
            keep = self._keeps(flt, node, reason, rtype)
            ordered = chosen
            chosen = self.answers.remember(
                (version, *question, "filtered", flt.key()),
                lambda: [x for x in ordered if keep(x)],
                list_bytes(0),  # the items are the whole answer's own
            )
        tag = digest(question, flt)
        name = ident or _identity(node, reason)
        kept = chosen
        print_ = self.answers.remember(
            (version, *question, "print", flt.key()),
            lambda: fingerprint(kept, name),
            lambda _: ANSWER_OVERHEAD,
        )
        change = self.answers.versions.change_of(self.view)
        at = None if change is None else state_of(change, self.view)
        if after is not None:
            start = position(after, tag, at, print_, len(chosen))
        elif at is None:
            raise UnavailableError(
                "this replica cannot tell the catalog version of its answer right now (its "
                "projection moved on meanwhile); try again shortly"
            )
        else:
            start = 0
        assert at is not None  # position refuses a cursor while the version is not known
        return AnswerPage(chosen[start : start + first], start, len(chosen), tag, at, print_)

    def _keeps(
        self,
        flt: AnswerFilter,
        node: Callable[[T], str] | None,
        reason: Callable[[T], str] | None,
        rtype: Callable[[T], RelationType] | None,
    ) -> Callable[[T], bool]:
        tests: list[Callable[[T], bool]] = []
        view = self.view
        if node is not None:
            of = node
            if flt.kinds:
                kinds = flt.kinds
                tests.append(lambda x: view.has(of(x)) and view.kind(of(x)) in kinds)
            if flt.owner is not None:
                owner = flt.owner
                tests.append(lambda x: self.owned_by(of(x), owner))
            if flt.domain is not None:
                domain = flt.domain
                tests.append(lambda x: domain in self.domains(of(x)))
        if reason is not None and flt.reason is not None:
            words, why = flt.reason, reason
            tests.append(lambda x: words in why(x).casefold())
        if rtype is not None and flt.types:
            types, type_of = flt.types, rtype
            tests.append(lambda x: type_of(x) in types)
        return lambda x: all(t(x) for t in tests)

    def owned_by(self, node_id: str, team: str) -> bool:
        """Whether ``team`` owns the node (its ``owner``, or an OWNS relation)."""
        view = self.view
        return view.has(node_id) and (
            view.owner(node_id) == team or team in view.into(node_id, RelationType.OWNS)
        )

    def domains(self, node_id: str) -> set[str]:
        """The domains a node is PART_OF (capabilities and systems also through their
        ancestors), by ``metadata.search.documents.domains_of``, the rule search uses."""
        view = self.view
        parents: dict[str, list[str]] = {}
        todo = [node_id]
        while todo and len(parents) <= MAX_HIERARCHY_DEPTH:
            n = todo.pop()
            if n in parents or not view.has(n):
                continue
            parents[n] = up = view.out(n, RelationType.PART_OF)
            todo.extend(p for p in up if view.has(p) and view.kind(p) is view.kind(node_id))
        return domains_of(node_id, parents)


__all__ = [
    "ANSWER_CACHE_BYTES",
    "AnswerFilter",
    "AnswerPage",
    "Answers",
    "CatalogVersions",
    "ORDERS",
    "Pager",
    "Question",
    "cursor_change",
    "digest",
    "fingerprint",
    "list_bytes",
    "position",
    "reach",
]

"""Graph answers kept per catalog version and read a page at a time.

A graph question over the whole catalog (gaps, redundancies, hotspots) or from one node
(impact, neighborhood, lineage) is answered whole once per catalog version
(``GraphView.version``) and kept in ``Answers``, a cache bounded by the answers' estimated
bytes (cachetools); the answer to a filter of it (kind, reason, domain, owner, relation type)
is kept beside it. A page is then a slice of a kept list: the first page of a large answer
costs what any other page costs.

A cursor names the answer it was cut from (a digest of the question, its arguments and the
filter), the process that answered (versions are counted by each process), the catalog version
and the position in the list; a cursor of another answer, process or version, or from another
listing, is refused with ``InvalidInputError`` naming ``after`` (docs/graph.md, "Paging graph
answers").
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cachetools import LRUCache

from catalog.discovery import decode_cursor, encode_cursor
from metadata.errors import InvalidInputError
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
    version: int
    #: The ``Answers.epoch`` of the process that answered.
    epoch: str = ""

    @property
    def has_next(self) -> bool:
        """Whether items follow this page."""
        return self.start + len(self.items) < self.total

    def cursor(self, i: int) -> str:
        """The cursor of ``items[i]``."""
        return encode_cursor(f"a{self.tag}.{self.epoch}.{self.version}.{self.start + i}")


class Answers:
    """Whole answers by (catalog version, question), and filtered ones beside them; bounded
    by their estimated bytes (least recently used go first). Safe to share between the graph
    worker threads (two threads asking the same question at once may both compute it)."""

    def __init__(self, max_bytes: int = ANSWER_CACHE_BYTES) -> None:
        #: Names this cache's versions in cursors: another process (a replica, this hub after
        #: a restart) counts versions from its own start, so its version 7 is not this one's.
        self.epoch = secrets.token_hex(3)
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


def position(after: str, tag: str, epoch: str, version: int, total: int) -> int:
    """Where the page after the cursor ``after`` starts in the answer ``tag`` of ``version``
    (as the process of ``epoch`` counts versions).

    Raises:
        InvalidInputError: a cursor from another answer, another listing, another process or
            another version, naming ``after``.
    """
    raw = decode_cursor(after)
    parts = raw[1:].split(".") if raw.startswith("a") else []
    if len(parts) != 4 or parts[0] != tag:
        raise InvalidInputError(
            "after: this cursor comes from another question, other arguments or another "
            "listing; give one from the edges of this field, asked with the same arguments",
            field="after",
        )
    if parts[1] != epoch:
        raise InvalidInputError(
            "after: this cursor was given by another hub process (another replica, or this one "
            "before a restart); ask again without `after` and keep to the pages this one gives",
            field="after",
        )
    try:
        was, index = int(parts[2]), int(parts[3])
    except ValueError:
        raise InvalidInputError(
            "after: this cursor is damaged; give one from the edges of this field",
            field="after",
        ) from None
    if was != version:
        raise InvalidInputError(
            f"after: the catalog changed since this cursor was given (version {was}, now "
            f"{version}); ask again without `after` for the current answer",
            field="after",
        )
    if not 0 <= index < total:
        raise InvalidInputError(
            "after: this cursor points outside the answer; give one from its edges",
            field="after",
        )
    return index + 1


class Pager:
    """Cuts pages out of the answers of one catalog version (``view``), filtering them by
    what ``view`` says of their nodes; filtered answers are kept in ``answers``."""

    def __init__(self, view: GraphView, answers: Answers) -> None:
        self.view = view
        self.answers = answers

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
    ) -> AnswerPage[T]:
        """``first`` items of ``whole`` (the answer to ``question`` at this version) that
        ``flt`` keeps, after the item of the cursor ``after``; ``node``, ``reason`` and
        ``rtype`` read an item's node, reason and relation type for the filter."""
        version = self.view.version
        chosen: Sequence[T] = whole
        if not flt.empty:
            keep = self._keeps(flt, node, reason, rtype)
            chosen = self.answers.remember(
                (version, *question, "filtered", flt.key()),
                lambda: [x for x in whole if keep(x)],
                list_bytes(0),  # the items are the whole answer's own
            )
        tag, epoch = digest(question, flt), self.answers.epoch
        start = 0 if after is None else position(after, tag, epoch, version, len(chosen))
        return AnswerPage(chosen[start : start + first], start, len(chosen), tag, version, epoch)

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
    "Pager",
    "Question",
    "digest",
    "list_bytes",
    "position",
]

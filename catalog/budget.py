"""Per-caller cost budgets: a token bucket of query-cost points for each caller.

The query cost (``resolvers.cost``) bounds one request; a budget bounds what one caller may
ask of the hub over time, as GitHub's GraphQL API (points per hour per user) and Shopify's
(a bucket of cost points refilled at a fixed rate) do. Each caller, the authenticated
principal or, for a request without one, the client's address (an IPv6 address by its /64
network, which one host usually holds whole), has a bucket of ``per_minute`` points,
refilled continuously at ``per_minute / 60`` a second. A request is charged, before it runs:

    charge = max(1, static cost, body bytes // 1000)

so every request pays at least a point, an answer pays for the objects it may hold and a large
body for being read and decoded. A request whose charge is more than the bucket holds is
refused with ``RATE_LIMITED`` and the seconds after which it would be admitted
(``retryAfter``); nothing of it runs and nothing is charged. An operation refused for costing
more than the per-request limit is charged ``REFUSED_POINTS``, into debt if need be (its
check was work: a client that repeats it without end is soon in debt, and refused at the door
until its bucket refills), and a caller that cannot pay even for its body is refused before
the body is read (``early_refusal``). A full bucket
admits any request within the per-request limits, even one that costs more than a whole
minute's points (the bucket is then in debt), so that no operation the limits admit is refused
for ever.

Buckets are kept in a ``cachetools.TTLCache`` bounded by ``max_callers``. A bucket is dropped
once it would have refilled (its time to live is the time from its lowest possible level to
full), so dropping it changes nothing; when more callers than ``max_callers`` are active at
once the least recently seen are dropped, which gives them a full bucket (never less).
docs/limits.md ("Cost budget per caller") has the numbers.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache, TTLCache

#: Body bytes that cost one point: reading and decoding 2 MB (about 10 ms of the event loop's
#: time, bench/README.md "Hostile load") is charged like a 2,000-object answer.
BODY_BYTES_PER_POINT = 1_000
#: What an operation refused for its cost (over ``CAPAHUB_MAX_QUERY_COST``) is charged: about
#: the hub's time its check takes for the largest documents (parsing and validating 200
#: aliased graph questions, 2-5 ms) at the rate answers cost (some 5 us a point).
REFUSED_POINTS = 1_000
#: Callers whose buckets are kept at most (about 300 bytes each).
MAX_CALLERS = 50_000
#: Where the HTTP layer records a request's body size for the charge (ASGI scope state).
BODY_BYTES = "capahub_body_bytes"
#: Where it records the caller's key, once known (ASGI scope state).
CALLER = "capahub_caller"


@dataclass(frozen=True)
class BudgetRefusal:
    """Why a caller's request is refused: its charge, what the bucket holds, when to retry."""

    charge: int
    remaining: int
    retry_after: int
    per_minute: int

    @property
    def message(self) -> str:
        """The refusal as the caller reads it."""
        return (
            f"This request costs {self.charge:,} points and this caller has {self.remaining:,} "
            f"of its {self.per_minute:,} a minute left (CAPAHUB_COST_PER_MINUTE): try again in "
            f"{self.retry_after} s, or ask for less; docs/limits.md explains the budget."
        )

    @property
    def extensions(self) -> dict[str, object]:
        """The error's ``extensions``: the code and the numbers."""
        return {
            "code": "RATE_LIMITED",
            "cost": self.charge,
            "remaining": self.remaining,
            "retryAfter": self.retry_after,
            "costPerMinute": self.per_minute,
        }


def charge_of(cost: int, body_bytes: int = 0) -> int:
    """What a request of this static cost and body size is charged."""
    return max(1, cost, body_bytes // BODY_BYTES_PER_POINT)


def caller_key(actor: str | None, address: str | None) -> str | None:
    """The bucket of a caller: its principal when it proved one (``actor``, e.g.
    ``token:ci``; not ``anonymous``), else its address (IPv6 by its /64); None: unknown."""
    if actor and actor != "anonymous":
        return f"actor {actor}"
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # a name (a test client, a Unix socket): the bucket of that name
        return f"address {address}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address {ip.ipv4_mapped}"
        return f"address {ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"address {ip}"


def header_digest(authorization: str) -> bytes:
    """The key under which a credential's caller is remembered (never the credential)."""
    return hashlib.sha256(authorization.encode("utf-8", "surrogateescape")).digest()


class CostBudget:
    """The token buckets of one hub process: ``per_minute`` points per caller and minute.

    ``max_charge`` is the largest charge the per-request limits admit (the cost limit, the
    body limit in points): it sets how deep in debt a full bucket can go and so how long a
    bucket must be kept.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        max_charge: int,
        max_callers: int = MAX_CALLERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        #: The lowest level a bucket can reach: in debt by what a full one admits beyond it,
        #: and by a minute's points more for the operations refused for their cost (``take``).
        self.lowest = min(0.0, self.capacity - max_charge) - self.capacity
        #: Seconds from the lowest level to full.
        self.ttl = (self.capacity - self.lowest) / self.rate
        self._buckets: TTLCache[str, tuple[float, float]] = TTLCache(
            maxsize=max_callers, ttl=self.ttl, timer=clock
        )
        #: Credential digest -> the caller it proved, so that a caller out of points is refused
        #: before its body is read (``early_refusal``).
        self._callers: LRUCache[bytes, str] = LRUCache(maxsize=max_callers)

    def __len__(self) -> int:
        return len(self._buckets)

    def remaining(self, caller: str) -> float:
        """The points the caller's bucket holds now (negative: in debt)."""
        found = self._buckets.get(caller)
        if found is None:
            return self.capacity
        level, at = found
        return min(self.capacity, level + (self._clock() - at) * self.rate)

    def _refusal(self, charge: int, level: float) -> BudgetRefusal | None:
        if charge <= level or level >= self.capacity:
            return None
        needed = min(float(charge), self.capacity) - level
        return BudgetRefusal(
            charge=charge,
            remaining=max(0, math.floor(level)),
            retry_after=max(1, math.ceil(needed / self.rate)),
            per_minute=self.per_minute,
        )

    def spend(self, caller: str, charge: int) -> BudgetRefusal | None:
        """Take ``charge`` points from the caller's bucket, or say why not (nothing taken)."""
        level = self.remaining(caller)
        refusal = self._refusal(charge, level)
        if refusal is None:
            self._buckets[caller] = (level - charge, self._clock())
        return refusal

    def take(self, caller: str, points: int) -> None:
        """Take ``points`` whatever the bucket holds, into debt down to its lowest level: the
        charge of an operation refused for its cost. A client that repeats such operations is
        soon in debt, and then refused at the door until its bucket refills."""
        level = max(self.remaining(caller) - points, self.lowest)
        self._buckets[caller] = (level, self._clock())

    def remember(self, authorization: str | None, caller: str) -> None:
        """Note which caller a credential proved (for ``early_refusal``)."""
        if authorization:
            self._callers[header_digest(authorization)] = caller

    def known_caller(self, authorization: str | None, address: str | None) -> str | None:
        """The caller of a request before it is authenticated: its address without a
        credential, the caller the credential proved before, else None (not known yet)."""
        if not authorization:
            return caller_key(None, address)
        return self._callers.get(header_digest(authorization))

    def early_refusal(self, caller: str | None, body_bytes: int) -> BudgetRefusal | None:
        """The refusal of a request whose caller cannot pay even for its body (or the one
        point every request costs): decided before the body is read."""
        if caller is None or caller not in self._buckets:
            return None
        return self._refusal(charge_of(0, body_bytes), self.remaining(caller))


__all__ = [
    "BODY_BYTES",
    "BODY_BYTES_PER_POINT",
    "CALLER",
    "MAX_CALLERS",
    "REFUSED_POINTS",
    "BudgetRefusal",
    "CostBudget",
    "caller_key",
    "charge_of",
    "header_digest",
]

"""Arrays and lists that grow at their end while older readers keep theirs: appending costs
what is appended, not what is there (the search projection's states, ``metadata.search.
projection``, and the text index's per-document columns, ``metadata.search.bm25``).

A reader holds a view of a buffer's front (an array ``buf[:n]``; for a list, the list and its
``n``); the owner of the newest front writes past it into the buffer's spare room, which no
older reader looks at. An older front appended to again (a failed sync's leftover) gets a copy,
as does a front whose buffer is full (a quarter more room each time: amortized O(1) per item).
Arrays grow along their first axis (rows of a 2-D array too).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Tail:
    """A buffer whose front ``filled`` items belong to the newest state built on it (an
    array with spare capacity, or a list that only grows)."""

    __slots__ = ("buf", "filled")

    def __init__(self, buf: Any, filled: int) -> None:
        self.buf = buf
        self.filled = filled


#: Items a fresh buffer has room for at least.
_MIN_CAPACITY = 1024


def append_array(tails: dict[str, Tail], name: str, old: Any, new: Any) -> Any:
    """``old`` (a state's array) followed by ``new``, written into the buffer ``old`` is the
    front of when it is that buffer's newest state and there is room; else into a new buffer
    with a quarter more room."""
    n, k = len(old), len(new)
    tail = tails.get(name)
    if tail is None or old.base is not tail.buf or tail.filled != n or len(tail.buf) < n + k:
        # A quarter more room: amortized O(1) per row, and a reload's arrays 25 % larger.
        room = n + k + max((n + k) // 4, _MIN_CAPACITY)
        buf = np.empty((room, *old.shape[1:]), dtype=old.dtype)
        buf[:n] = old
        tail = tails[name] = Tail(buf, n)
    tail.buf[n : n + k] = new
    tail.filled = n + k
    return tail.buf[: n + k]


def append_list(
    tails: dict[str, Tail], name: str, old: list[str], size: int, new: list[str]
) -> list[str]:
    """The first ``size`` items of ``old`` (a state's list) followed by ``new``: the same list
    object grown when its state is the newest on it (a state reads only positions below its
    size), else a copy."""
    tail = tails.get(name)
    if tail is None or tail.buf is not old or tail.filled != size or len(old) != size:
        old = old[:size]
        tail = tails[name] = Tail(old, size)
    old.extend(new)
    tail.filled = len(old)
    return old


__all__ = ["Tail", "append_array", "append_list"]

"""Pausing the cyclic garbage collector around bulk work that does not ``await``.

Only synchronous work may be wrapped (parsing a document) and the one-shot CLI process
(``capahub apply``): a pause held across an ``await`` in the server would switch collection
off for every other request while the holder waits (for the write lock, for the database).

Parsing and applying a large catalog document allocates hundreds of thousands of objects that
all stay alive until the work is done (specs, records, rows, history snapshots): the collector
found nothing to free, yet its collections took 1.5 s of a 10,000-node apply (measured with
``gc.callbacks``). Reference counting still frees everything as usual; cycles made meanwhile are
collected at the next collection after the pause.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_depth = 0
_was_enabled = True


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic collector inside the block; nestable (also across coroutines): the
    collector is left as it was found when the last block exits."""
    global _depth, _was_enabled
    if _depth == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _was_enabled:
            gc.enable()


__all__ = ["paused_gc"]
